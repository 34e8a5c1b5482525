"""One complete training run: supervision, optional pretraining (RAM+), training, test at the best checkpoint.

``OUT/`` holds ``manifest.json``, ``pretrain/`` (its own checkpoints), ``checkpoint/``, ``log.csv``,
``tensorboard/``, ``best.safetensors`` + ``.json``, ``test_locations.json`` (greedy glimpses on the test set),
``summary.json`` and the figures.  Running the same command again resumes (or, when finished, only re-reads).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..artifacts import atomic_write_json, load_weights, write_manifest
from ..config import config_to_dict, setting
from ..runtime import derive_seed, run_record
from .network import HardAttentionNet, NetworkConfig, classifier_flops, flops_per_glimpse
from .supervision import KINDS, build_supervision, heuristic_distribution, load_first_glimpse_epe
from .trainer import SplitData, TrainConfig, Trainer

if TYPE_CHECKING:
    import os
    from torch.utils.data import Dataset

__all__ = ["RunConfig", "train_run", "build_network", "load_run_network"]

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    """What is trained on, and with which supervision."""

    dataset: str = setting("cluttered-mnist", "dataset name (ppl_attention.data)")
    supervision: str = setting(
        "none",
        "none (RAM), nogs (sequence store), h1 / h5 (heuristic), hgs (hand-crafted from annotations)",
        choices=list(KINDS),
    )
    sequences: str | None = setting(None, "sequence store directory (for nogs; its first_glimpse.json serves h1/h5)")
    epe_first: str | None = setting(
        None, "first_glimpse.json (EPE of each first location) for h1/h5 and heuristic pretraining"
    )
    num_supervised: int | None = setting(
        None,
        "supervised training images, chosen by the seed (default: every image the --sequences store holds "
        "for nogs, 600 for the heuristic supervisions)",
    )
    data_seed: int | None = setting(
        None,
        "seed of the dataset (its split and its MNIST canvases); default: the sequence store's seed for "
        "nogs (its sequences were made for those canvases), else the run's --seed",
    )
    pretrain: bool = setting(
        False, "pretrain embedder/core/classifier with fixed location distributions, then freeze them (RAM+)", cli=False
    )
    pretrain_iterations: int = setting(1000, "pretraining iterations")
    pretrain_locations: str = setting(
        "uniform",
        "pretraining location distribution: uniform (RAM) or the gamma^-1=1 heuristic (RAM+)",
        choices=["uniform", "heuristic"],
    )
    stopping_thresholds: list[float] = setting(
        help="adaptive-stopping thresholds swept at test time",
        factory=lambda: [-1.0, 0.0, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 1.0],
    )


def build_network(dataset: Dataset, net_cfg: NetworkConfig, num_classes: int | None = None) -> HardAttentionNet:
    """A network for a dataset's grid, channels and normalisation."""
    if num_classes is None:
        num_classes = 2 if getattr(dataset, "task", "categorical") == "multilabel" else dataset.num_classes
    mean = getattr(dataset, "mean", None)
    std = getattr(dataset, "std", None)
    return HardAttentionNet(
        dataset.grid,
        num_classes,
        dataset.channels,
        net_cfg,
        None if mean is None else torch.as_tensor(mean).flatten().tolist(),
        None if std is None else torch.as_tensor(std).flatten().tolist(),
    )


def _epe_source(run: RunConfig):
    return run.epe_first if run.epe_first is not None else run.sequences


def train_run(
    run: RunConfig,
    cfg: TrainConfig,
    net_cfg: NetworkConfig,
    datasets: dict,
    out: str | os.PathLike,
    seed: int,
    device: torch.device,
    progress: bool = True,
    stop_at: int | None = None,
    figures: bool = True,
) -> dict:
    """Train one network (resuming whatever ``out`` already holds); returns the summary written to summary.json.

    ``datasets``: {"train", "valid", "test"} torch datasets. ``stop_at`` stops the main stage early (tests).
    """
    out = Path(out)
    cfg.check()
    _check_run_config(run)
    train_ds = datasets["train"]
    grid = train_ds.grid
    train, valid, test = (SplitData(datasets[s], cfg.attribute) for s in ("train", "valid", "test"))
    supervision = _supervision(run, cfg, train, train_ds, seed)
    torch.manual_seed(derive_seed(seed, "init"))
    net = build_network(train_ds, net_cfg).to(device)
    _start_run(out, run, cfg, net, seed, train_ds, supervision)
    trainable, pre_summary = None, None
    if run.pretrain:
        trainable, pre_summary = _pretrain(run, cfg, net, grid, (train, valid), out, seed, device, progress)
    trainer = Trainer(cfg, net, train, valid, out, seed, supervision=supervision, trainable=trainable)
    result = trainer.run(stop_at=stop_at, progress=progress)
    if trainer.iteration < cfg.iterations:
        return result  # interrupted on purpose: no test yet
    trainer.load_best()
    summary, (locations, images, labels) = _test_summary(
        run, cfg, net, grid, trainer, test, out, result, supervision, seed, pre_summary
    )
    if cfg.ce_every_step:
        from .stopping import stopping_curve

        summary["stopping_curve"] = stopping_curve(
            net, images.to(device), labels, cfg.glimpses, run.stopping_thresholds, cfg.eval_batch_size
        )
    if figures:
        summary["figures"] = _run_figures(run, grid, trainer, locations, images, labels, out, summary)
    summary["run"] = run_record()
    atomic_write_json(out / "summary.json", summary)
    return summary


def _supervision(run: RunConfig, cfg: TrainConfig, train: SplitData, train_ds: Dataset, seed: int):
    """The run's supervised images and their sequences (None: RAM), from ``run.supervision``."""
    data = dict(data_seed=getattr(train_ds, "seed", None), data_spec=getattr(train_ds, "data_spec", None))
    return build_supervision(
        run.supervision,
        len(train),
        train_ds.grid,
        cfg.glimpses,
        run.num_supervised,
        seed,
        dataset=run.dataset,
        sequences_dir=run.sequences,
        epe_first=run.epe_first,
        annotations=train.annotations,
        **data,
    )


def _start_run(
    out: Path, run: RunConfig, cfg: TrainConfig, net: HardAttentionNet, seed: int, train_ds: Dataset, supervision
) -> None:
    """Refuse an ``out`` that a run with other settings began (before anything is written), then record the run's
    manifest and its supervision."""
    manifest_config = {"run": config_to_dict(run), "train": config_to_dict(cfg), "network": net.to_config()}
    manifest_config.update(
        seed=seed, data_seed=getattr(train_ds, "seed", None), data=getattr(train_ds, "data_spec", None)
    )
    _check_resumable(out, run, cfg, net, seed, manifest_config)
    write_manifest(
        out, "attention-run", manifest_config, inputs={"sequences": run.sequences, "epe_first": run.epe_first}
    )
    if supervision is not None:
        atomic_write_json(
            out / "supervision.json",
            {"kind": supervision.kind, "indices": supervision.indices, "sequences": supervision.sequences},
        )


def _check_run_config(run: RunConfig) -> None:
    """Refuse a bad supervised-image count or pretraining length before any data is read."""
    if run.num_supervised is not None and (
        isinstance(run.num_supervised, bool) or not isinstance(run.num_supervised, int) or run.num_supervised < 0
    ):
        raise ValueError(f"`num_supervised` must be an int >= 0, got {run.num_supervised!r}")
    if run.pretrain and (not isinstance(run.pretrain_iterations, int) or run.pretrain_iterations < 1):
        raise ValueError(f"`pretrain_iterations` must be an int >= 1, got {run.pretrain_iterations!r}")


def _pretrain(
    run: RunConfig,
    cfg: TrainConfig,
    net: HardAttentionNet,
    grid,
    splits: tuple,
    out: Path,
    seed: int,
    device: torch.device,
    progress: bool,
):
    """RAM+ pretraining on (train, valid) ``splits`` with fixed location distributions, then the trunk frozen:
    the parameters left to train and the pretraining's summary."""
    train, valid = splits
    if run.pretrain_locations == "uniform":
        probs = torch.full((grid.num_locations,), 1.0 / grid.num_locations)
    else:
        source = _epe_source(run)
        if source is None:
            raise ValueError("`pretrain_locations` heuristic needs `epe_first` FILE or `sequences` DIR")
        probs = heuristic_distribution(load_first_glimpse_epe(source, grid.num_locations), 1.0)
    pre_cfg = TrainConfig(**{**config_to_dict(cfg), "iterations": run.pretrain_iterations})
    pre = Trainer(pre_cfg, net, train, valid, out / "pretrain", seed, fixed_probs=probs.to(device), stage="pretrain")
    pre_summary = pre.run(progress=progress)
    pre.load_best()  # the best pretrained trunk, then frozen
    for p in net.trunk_parameters():
        p.requires_grad_(False)
    return [p for p in net.parameters() if p.requires_grad], pre_summary


def _test_summary(
    run: RunConfig,
    cfg: TrainConfig,
    net: HardAttentionNet,
    grid,
    trainer: Trainer,
    test: SplitData,
    out: Path,
    result: dict,
    supervision,
    seed: int,
    pre_summary,
):
    """Test the best checkpoint (greedy, sampled, Monte Carlo) and write its greedy glimpses: the run's summary,
    and the test (locations, images, labels) the stopping curve and figures reuse."""
    test_greedy = trainer.evaluate(test, "greedy", ("test",))
    test_sampled = trainer.evaluate(test, "sample", ("test-sample",))
    test_mc = trainer.evaluate(test, "sample", ("test-mc",), mc_samples=cfg.mc_samples)
    locations, images, labels = _test_glimpses(net, test, cfg)
    atomic_write_json(out / "test_locations.json", {"locations": locations})
    summary = {
        "dataset": run.dataset,
        "supervision": run.supervision,
        "pretrain": run.pretrain,
        "seed": seed,
        "num_supervised": 0 if supervision is None else len(supervision.indices),
        **{k: v for k, v in result.items() if k != "best"},
        "best_iteration": result["best"]["iteration"] if result["best"] else None,
        "test_greedy_acc": test_greedy["acc"],
        "test_greedy_ce": test_greedy["ce"],
        "test_sampled_acc": test_sampled["acc"],
        "test_mc_acc": test_mc["acc"],
        "test_mc_samples": cfg.mc_samples,
        "sensor": grid.to_dict(),
        "flops_per_glimpse": flops_per_glimpse(net),
        "classifier_flops": classifier_flops(net),
        "pretrain_summary": pre_summary,
    }
    return summary, (locations, images, labels)


def _run_figures(
    run: RunConfig, grid, trainer: Trainer, locations, images, labels, out: Path, summary: dict
) -> list[str]:
    """The run's figures (glimpse frequency, validation curve, glimpse strip and animation, stopping curve)."""
    from ..data._files import stratified_indices
    from ..plots.attention import animate_glimpses, plot_glimpse_frequency, plot_glimpse_strip, plot_validation_curves

    shown = stratified_indices(labels, 8)  # across classes, not the first class of a sorted split
    figures = [
        str(
            plot_glimpse_frequency(
                grid,
                locations,
                out / "glimpse_frequency.png",
                title=f"{run.dataset} {run.supervision}: glimpse frequency (test)",
            )
        ),
        str(plot_validation_curves({out.name: trainer.history}, out / "validation_curve.png")),
        str(
            plot_glimpse_strip(
                images[shown], locations[shown], grid, out / "glimpses.png", labels=labels[shown].tolist()
            )
        ),
        str(animate_glimpses(images[shown], locations[shown], grid, out / "glimpses.gif")),
    ]
    if "stopping_curve" in summary:
        from ..plots.attention import plot_stopping_curve

        figures.append(
            str(plot_stopping_curve({run.supervision: summary["stopping_curve"]}, out / "stopping_flops.png"))
        )
    return figures


def _check_resumable(
    out: Path, run: RunConfig, cfg: TrainConfig, net: HardAttentionNet, seed: int, config: dict
) -> None:
    """Refuse ``out`` unless it is new or holds a run these settings may resume, before anything is written."""
    import json

    from ..artifacts import MANIFEST, ArtifactError, check_compatible, clean_temporaries, read_manifest
    from .trainer import check_checkpoint

    if out.exists() and not out.is_dir():
        raise ArtifactError(f"`out` {out} is a file, expected a run directory")
    if (out / MANIFEST).is_file():
        stored = read_manifest(out)
        if stored.get("kind") != "attention-run":
            raise ArtifactError(
                f"`out` {out} holds a {stored.get('kind')!r} artefact, expected an 'attention-run' "
                "directory (or a new path)"
            )
        old = dict(stored.get("config", {}))
        old["network"] = HardAttentionNet.complete_config(old.get("network"))  # fields it does not record: defaults
        if isinstance(old.get("train"), dict):  # training settings it does not record: defaults
            old["train"] = {**config_to_dict(TrainConfig()), **old["train"]}
        check_compatible(
            f"`out` {out} holds a run",
            old,
            json.loads(json.dumps(config, default=str)),
            keys=("run", "network", "seed", "data_seed", "train"),
            ignore=("train.iterations", "train.supervision_until"),  # may change on resume (the
            remedy="use another `out` or the same settings",
        )  # checkpoint check is exact)
    if run.pretrain:
        pre_cfg = TrainConfig(**{**config_to_dict(cfg), "iterations": run.pretrain_iterations})
        check_checkpoint(
            out / "pretrain" / "checkpoint" / "last.safetensors", pre_cfg, net.to_config(), seed, "pretrain"
        )
    check_checkpoint(out / "checkpoint" / "last.safetensors", cfg, net.to_config(), seed, "train")
    clean_temporaries(out)  # what a killed run left half-written (only once the run may resume here)


@torch.no_grad()
def _test_glimpses(net: HardAttentionNet, test: SplitData, cfg: TrainConfig):
    """Greedy glimpse locations (N, T) on the whole test split, and its images and labels."""
    net.eval()
    images, labels = test.batch(torch.arange(len(test)))
    locs = [
        net(images[s : s + cfg.eval_batch_size].to(net.h0.device), cfg.glimpses, policy="greedy").locations.cpu()
        for s in range(0, len(images), cfg.eval_batch_size)
    ]
    net.train()
    return torch.cat(locs), images, labels


def load_run_network(out: str | os.PathLike) -> HardAttentionNet:
    """The best network of a finished run directory."""
    tensors, config = load_weights(Path(out) / "best.safetensors")
    net = HardAttentionNet.from_config(config)
    net.load_state_dict(tensors)
    return net
