"""``train_attention``: one hard-attention training run (RAM, RAM+, PS-NOGS, PS-H1/H5, PS-HGS)."""

from __future__ import annotations

from pathlib import Path

from ..checks import check_in_dir, check_int, check_out_dir
from ._stage import DATASET_OPTIONS, dataset_flags, resolve_dataset, running, split_options, write_summary
from .handles import Dataset, DatasetArg, PathArg, RunHandle

__all__ = ["train_attention", "train_configs"]


def _classes():
    from ..attention.network import NetworkConfig
    from ..attention.run import RunConfig
    from ..attention.trainer import TrainConfig

    return RunConfig, TrainConfig, NetworkConfig


def train_attention(
    out: PathArg,
    dataset: DatasetArg = None,
    *,
    sequences: PathArg | None = None,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = False,
    **options,
) -> RunHandle:
    """Train a hard-attention network into ``out`` (``ppl-attention train``): PS-NOGS when ``sequences`` are
    given (partial supervision by the store's sequences), RAM otherwise unless ``supervision`` says.  Options are
    the fields of :class:`~ppl_attention.attention.run.RunConfig`, :class:`~ppl_attention.attention.trainer.
    TrainConfig` and :class:`~ppl_attention.attention.network.NetworkConfig`, ``pretrain`` (RAM+) and the
    dataset's (``root``, ``data_seed``...); running it again resumes ``out``."""
    if sequences is not None:
        options = {"supervision": "nogs", **options, "sequences": Path(sequences)}
    extra = ("pretrain", *DATASET_OPTIONS)
    _, rest = split_options("train", options, _classes(), extra, skip=("dataset", "data_seed"))
    with running(quiet, **rest):
        run, cfg, net_cfg = train_configs(dataset, **options)
        summary = _train(Path(out), run, cfg, net_cfg, dataset, rest, seed, device)
    return RunHandle(Path(out), summary)


def train_configs(dataset: DatasetArg = None, **options) -> list:
    """(RunConfig, TrainConfig, NetworkConfig) of :func:`train_attention`'s ``options``: defaults < one YAML file
    (``config``) holding fields of any of them < the options given."""
    import dataclasses

    from ..config import DATASET_KEYS, config_from_dict, load_yaml

    classes = _classes()
    values, rest = split_options(
        "train", options, classes, ("pretrain", *DATASET_OPTIONS), skip=("dataset", "data_seed")
    )
    values[0].update({k: rest[k] for k in ("pretrain", "data_seed") if k in rest})
    if dataset is not None:
        values[0]["dataset"] = dataset.name if isinstance(dataset, Dataset) else dataset
    config = rest.get("config")
    data = {k.replace("-", "_"): v for k, v in (load_yaml(config) if config else {}).items()}
    names = [{f.name for f in dataclasses.fields(c)} for c in classes]
    unknown = sorted(set(data) - set().union(*names) - set(DATASET_KEYS))
    if unknown:
        raise ValueError(f"`config` {config}: unknown field(s) {unknown}")
    out = []
    for cls, fields, given in zip(classes, names, values):
        merged = {k: v for k, v in data.items() if k in fields}
        merged.update({k: v for k, v in given.items() if v is not None})
        out.append(config_from_dict(cls, merged))
    return out


def _check_network(net_cfg) -> None:
    for name in ("hidden", "glimpse_dim", "policy_hidden", "backbone_layers"):
        check_int(name, getattr(net_cfg, name))
    from ..attention.policy import check_policy

    check_policy(net_cfg.policy, net_cfg.policy_std)
    weights = net_cfg.backbone_weights
    if weights is not None and Path(weights).suffix != ".safetensors":
        raise ValueError(f"`backbone_weights` {weights} must be a .safetensors file (nothing is ever unpickled)")
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"`backbone_weights` {weights} does not exist (expected a .safetensors file)")


def _check_early(run, cfg=None, net_cfg=None) -> int | None:
    """Refuse a wrong supervision source or setting before loading any data; returns the store's data seed."""
    if cfg is not None:
        cfg.check()
    if net_cfg is not None:
        _check_network(net_cfg)
    check_int("num_supervised", run.num_supervised, minimum=0, optional=True)
    check_int("pretrain_iterations", run.pretrain_iterations)
    if run.supervision == "nogs" and run.sequences is None:
        raise ValueError("`supervision` nogs needs `sequences` DIR (a store written by `ppl-attention generate`)")
    if run.sequences is not None:
        from ..design.store import SequenceStore

        check_in_dir(run.sequences, "sequences", "a sequence store directory (generate)")
        store = SequenceStore.open(run.sequences)  # FileNotFoundError / ArtifactError (a ValueError)
        if store.config.get("dataset") != run.dataset:
            raise ValueError(
                f"`sequences` {run.sequences} was built for dataset {store.config.get('dataset')!r}, "
                f"expected {run.dataset!r}"
            )
        if cfg is not None and run.supervision == "nogs" and store.T < cfg.glimpses:
            raise ValueError(
                f"`sequences` {run.sequences} holds sequences of T = {store.T} glimpses, fewer than "
                f"`glimpses` {cfg.glimpses}; use `glimpses` <= {store.T} or a longer store"
            )
        return store.config.get("seed")
    if run.epe_first is not None and not Path(run.epe_first).exists():
        raise FileNotFoundError(
            f"`epe_first` {run.epe_first} does not exist (expected a first_glimpse.json or a sequence store)"
        )
    return None


def _train(out: Path, run, cfg, net_cfg, dataset, rest: dict, seed: int, device) -> dict:
    """Resolve the dataset, check the settings, load the data, train (resuming ``out``) and write the summary."""
    from ..attention.run import train_run
    from ..runtime import resolve_device, seed_everything

    check_out_dir(out)
    if run.supervision == "nogs" and run.sequences is None:
        raise ValueError("`supervision` nogs needs `sequences` DIR (a store written by `ppl-attention generate`)")
    # The dataset: the store's (name, root, options; for nogs also its split seed, the images its sequences were
    # made for) and a resumed run's; the arguments may only repeat them.  Other runs use data_seed, else seed.
    artefacts = []
    if run.sequences is not None:
        from ..data.spec import recorded_spec

        check_in_dir(run.sequences, "sequences", "a sequence store directory (generate)")
        label, recorded = recorded_spec(run.sequences)
        if recorded and run.supervision != "nogs":
            recorded = {k: v for k, v in recorded.items() if k != "seed"}
        artefacts.append((label, recorded))
    if (out / "manifest.json").is_file():
        artefacts.append(out)
    flags = dataset_flags(dataset, **{k: rest.get(k) for k in (*DATASET_OPTIONS, "config")})
    spec = resolve_dataset(flags, artefacts, default=run.dataset, seed=seed)
    run.dataset, run.data_seed = spec.name, spec.seed
    _check_early(run, cfg, net_cfg)
    seed_everything(seed)
    device = resolve_device(device)
    datasets = {s: spec.load(s) for s in ("train", "valid", "test")}
    progress = not rest.get("no_progress", False)
    return write_summary(out, train_run(run, cfg, net_cfg, datasets, out, seed, device, progress=progress))
