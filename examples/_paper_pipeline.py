"""Shared machinery of the examples that run the paper's stages (celeba_hq.py, cub.py, paper_regime.py,
reproduce_mnist.py, verdict.py, dagger_epe_net.py): run the stages of :mod:`ppl_attention.pipeline` (as
ppl_attention/demo.py), skip finished ones, shrink every size for a smoke run, and tabulate the hard-attention runs.

Each stage is ``Stage(name, done, call)``: ``call`` is a pipeline function with its keyword arguments bound
(``functools.partial(pipeline.train_avp, out, dataset, epochs=...)``); ``done`` is a path whose existence means
the stage finished (every stage writes it last), or a function that tells (e.g. "the store holds all its
sequences"), so re-running a script skips what is finished and resumes what was interrupted (each stage resumes on
its own: train-avp from its checkpoint, build-prior by chunks, generate per image, train per validation interval).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Callable

from ppl_attention import pipeline
from ppl_attention.pipeline import stages as stages_module
from ppl_attention.pipeline.stages import Stage

log = logging.getLogger(__name__)


@dataclass
class CommonPaperSettings:
    """What the paper's CelebA-HQ and CUB runs share (celeba_hq.py and cub.py add and override the rest)."""

    glimpses: int = 5  # T = 5 (paper sec. 6)
    # AVP: DenseNet-121 from ImageNet weights, 4th (mask) input channel zero-initialised, Adam 1e-4, batch 64, best
    # validation cross-entropy checkpoint (paper app. B.1).
    avp_backbone: str = "densenet121"
    avp_width: int | None = None  # only for the tiny run's small_cnn
    avp_lr: float = 1e-4
    avp_batch_size: int = 64
    avp_pretrained: str | None = None  # local torchvision DenseNet-121 state dict (.safetensors); never downloaded
    # Prior: PCA with 256 components over the dataset's training images (paper app. A.3 / REFERENCE).
    prior_components: int = 256
    # BOED: exhaustive search; the cached first-glimpse EPE uses the N samples of every step (paper sec. 6).
    search: str = "exhaustive"
    first_num_samples: int | None = None
    # Hard-attention network: location network with one 32-unit hidden layer, batch 64 (paper sec. 6); validation
    # every 100 iterations (REFERENCE "iterations to convergence"); the paper plots mean and std over runs.
    policy_hidden: int = 32
    batch_size: int = 64
    validate_every: int = 100
    seeds: tuple[int, ...] = (0, 1, 2)


#: The sizes every example's smoke run (``--quick``, ``--tiny``) shrinks to, whichever of them its settings have
#: (:func:`shrunk`): every stage runs in seconds.
SMOKE = {
    "avp_epochs": 1,
    "avp_patience": 1,
    "avp_width": 2,
    "avp_train_size": 64,
    "num_samples": 2,
    "first_num_samples": 1,
    "k1": 4,
    "search": "coarse",
    "glimpses": 2,
    "iterations": 4,
    "train_iterations": 4,
    "validate_every": 2,
    "batch_size": 4,
    "pretrain_iterations": 2,
    "seeds": (0,),
    "run_figures": False,
    "tensorboard": False,
}

#: What the CelebA-HQ and CUB scripts shrink besides for ``--tiny``: a small CNN for the AVP, a tiny prior.
TINY = {
    "avp_backbone": "small_cnn",
    "avp_lr": 2e-3,
    "avp_batch_size": 4,
    "avp_pretrained": None,
    "prior_size": 8,
    "prior_components": 4,
    "prior_fit_samples": 8,
    "num_sequences": 2,
    "num_supervised": 2,
}


def shrunk(settings, **own):
    """The dataclass ``settings`` with the :data:`SMOKE` sizes of its fields, and ``own`` on top."""
    names = {f.name for f in fields(settings)}
    return replace(settings, **({k: v for k, v in SMOKE.items() if k in names} | own))


def paper_parser(doc: str, dataset: str, out: str) -> argparse.ArgumentParser:
    """The flags of both paper scripts: the ``dataset``'s folder, where to write, the device and seed of the BOED
    stages, the AVP's ImageNet weights and ``--tiny``."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--root", type=Path, required=True, help=f"{dataset} folder")
    p.add_argument("--out", type=Path, default=Path(out))
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0, help="seed of the AVP, prior and BOED stages")
    p.add_argument("--avp-pretrained", default=None, help="ImageNet DenseNet-121 weights (.safetensors)")
    p.add_argument("--tiny", action="store_true", help="shrink every size (smoke test on tiny fixtures)")
    return p


def parse_paper_args(p: argparse.ArgumentParser, argv, what: str) -> argparse.Namespace:
    """``argv`` parsed by a :func:`paper_parser`; a ``--root`` that is not a folder is refused (``what`` it should
    hold)."""
    args = p.parse_args(argv)
    if not args.root.is_dir():
        raise FileNotFoundError(f"--root {args.root} is not a folder (expected {what})")
    return args


def paper_stages(args: argparse.Namespace, s, tiny: Callable, stages: Callable) -> tuple:
    """A paper script's settings ``s`` with ``--avp-pretrained`` (all shrunk by ``tiny`` under ``--tiny``), and its
    ``stages(s, root, out, device, seed, train_extra=...)`` for them, the output folder made: ``(s, stages, runs)``."""
    s = replace(s, avp_pretrained=args.avp_pretrained)
    if args.tiny:
        s = tiny(s)
    train_extra = {"tensorboard": False} if args.tiny else None
    st, runs = stages(s, args.root, args.out, args.device, args.seed, train_extra=train_extra)
    args.out.mkdir(parents=True, exist_ok=True)
    return s, st, runs


def add_scale_flags(p: argparse.ArgumentParser, scales: dict, default: str, seeds: str, scale_help=None) -> None:
    """``--scale`` (a name in ``scales``; ``--quick`` is ``--scale quick`` where there is one), the sizes a run may
    override (``--iterations``, and ``--seeds``: ``seeds`` says whose), and where the runs train (``--threads``,
    ``--device``)."""
    p.add_argument("--scale", default=default, choices=list(scales), help=scale_help)
    if "quick" in scales:
        p.add_argument("--quick", action="store_const", const="quick", dest="scale", help="the same as --scale quick")
    p.add_argument("--iterations", type=int, default=None, help="training iterations per run (default: the scale's)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help=f"{seeds} (default: the scale's)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the training runs")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def scale_settings(p: argparse.ArgumentParser, args: argparse.Namespace, scales: dict, **changes):
    """The scale ``--scale`` names with ``--iterations`` and ``--seeds`` where given, and the ``changes`` that are
    not None; fewer than 1 iteration is a usage error."""
    scale = scales[args.scale]
    changes = {k: v for k, v in changes.items() if v is not None}
    seeds = tuple(args.seeds) if args.seeds else scale.seeds
    settings = replace(scale, iterations=args.iterations or scale.iterations, seeds=seeds, **changes)
    if settings.iterations < 1:
        p.error(f"--iterations must be >= 1, got {settings.iterations}")
    return settings


def run_stages(stages: list[Stage], start: int = 1, total: int | None = None) -> dict[str, float]:
    """:func:`ppl_attention.pipeline.stages.run_stages`, with the stages logging at INFO as under `ppl-attention`."""
    from ppl_attention.runtime import setup_logging

    setup_logging()
    return stages_module.run_stages(stages, start, total)


def avp_stage(s, avp: Path, data, done: str = "summary.json", name: str = "train AVP", **options) -> Stage:
    """Train the AVP into ``avp`` on ``data``: every setting ``avp_X`` of the settings ``s`` is train-avp's option
    ``X``; ``options`` are the rest (the images designed for are left out of its training: no oracle).  ``done``
    is the file in ``avp`` that says it finished."""
    settings = {f.name.removeprefix("avp_"): getattr(s, f.name) for f in fields(s) if f.name.startswith("avp_")}
    return Stage(name, avp / done, partial(pipeline.train_avp, avp, data, **settings, **options))


def boed_stages(
    s, data: pipeline.Dataset, root: Path, out: Path, seqs: Path, common: dict, names: tuple[str, str], **extra: dict
) -> list[Stage]:
    """The stages before hard attention that the CelebA-HQ and CUB scripts share, with the paper settings ``s``:
    train the AVP (:func:`avp_stage`) and evaluate it, build the prior, design ``s.num_sequences`` sequences into
    ``seqs`` and draw the first one's EPE maps.  ``names`` are the AVP's and the design's stage names; ``extra``
    holds a dataset's own options per stage (``avp``, ``prior``, ``design``)."""
    avp, prior = out / "avp", out / "prior"
    prior_options = {"components": s.prior_components, "fit_samples": s.prior_fit_samples}
    design_options = {"num_samples": s.num_samples, "k1": s.k1, "search": s.search, "sigma": s.completion_sigma}
    return [
        avp_stage(
            s,
            avp,
            data,
            "manifest.json",
            names[0],
            max_glimpses=s.glimpses,
            exclude_design=s.num_sequences,
            **extra.get("avp", {}),
            **common,
        ),
        Stage("evaluate AVP", avp / "evaluation.json", partial(pipeline.evaluate, avp, root=root, **common)),
        Stage(
            "build prior",
            prior / "manifest.json",
            partial(
                pipeline.build_prior,
                prior,
                data,
                database_size=s.prior_size,
                **prior_options,
                **extra.get("prior", {}),
                **common,
            ),
        ),
        Stage(
            names[1],
            seqs / "summary.json",
            partial(
                pipeline.design_sequences,
                seqs,
                avp,
                prior,
                dataset=s.dataset,
                root=root,
                num_images=s.num_sequences,
                glimpses=s.glimpses,
                first_num_samples=s.first_num_samples,
                **design_options,
                **extra.get("design", {}),
                **common,
            ),
        ),
        epe_figure_stage(seqs, out / "figures" / "epe.png", root),
    ]


def first_designed(seqs: Path) -> int:
    """The index of the first image designed into the sequence store ``seqs``."""
    records = sorted((seqs / "records").glob("*.json"))
    if not records:
        raise FileNotFoundError(f"sequence store {seqs} holds no records")
    return int(records[0].stem)


def epe_figure_stage(seqs: Path, figure: Path, root: Path) -> Stage:
    """The EPE maps of the first image designed into ``seqs``, drawn into ``figure`` (which image it is is read
    when the stage runs, after the design)."""
    return Stage(
        "EPE figure of the first designed image",
        figure,
        lambda: pipeline.plot("epe", seqs, figure, index=first_designed(seqs), root=root),
    )


def network_options(s, data: pipeline.Dataset, **extra) -> dict:
    """The hard-attention network's and its training's options from the paper settings ``s``, and ``extra``."""
    sizes = {"hidden": s.hidden, "glimpse_dim": s.glimpse_dim, "policy_hidden": s.policy_hidden}
    steps = {"iterations": s.train_iterations, "validate_every": s.validate_every, "glimpses": s.glimpses}
    return {
        "backbone": s.backbone,
        "lr": s.lr,
        "batch_size": s.batch_size,
        **sizes,
        **steps,
        "no_progress": True,
        "dataset": data,
        **extra,
    }


def run_folders(out: Path, methods, seeds, tag: str = "") -> dict[str, list[Path]]:
    """Each method's run folder per seed: ``out / "<method><tag>-s<seed>"`` (``RAM+`` spelt ``ramplus``)."""
    return {m: [out / f"{m.lower().replace('+', 'plus')}{tag}-s{k}" for k in seeds] for m in methods}


def training_stages(
    methods: dict[str, dict], runs: dict[str, list[Path]], seeds, net: dict, device: str, metric: str, figure: Path
) -> list[Stage]:
    """One :func:`~ppl_attention.pipeline.train_attention` stage per (method, seed) with the method's options and
    the network's ``net``, then the validation curves of every run on one figure."""
    stages = [
        Stage(
            f"train {m} (seed {k})",
            d / "summary.json",
            partial(pipeline.train_attention, d, device=device, seed=k, **net, **options),
        )
        for m, options in methods.items()
        for k, d in zip(seeds, runs[m])
    ]
    stages.append(Stage("validation curves", None, partial(pipeline.plot_attention, figure, runs, metric=metric)))
    return stages


def results_table(runs: dict[str, list[Path]], criterion: str) -> dict:
    """Mean / std over seeds of iterations to convergence (``criterion``: "loss" = validation CE within 0.01 of
    the best, the paper's CelebA-HQ criterion; "accuracy" = within 1 %, its CUB criterion) and test accuracy."""
    key = f"iterations_to_convergence_{criterion}"
    table = {}
    for method, dirs in runs.items():
        rows = [json.loads((d / "summary.json").read_text()) for d in dirs]
        iters = [float(r[key]) for r in rows]
        accs = [100.0 * float(r["test_greedy_acc"]) for r in rows]
        table[method] = {
            "seeds": len(rows),
            "criterion": criterion,
            "iterations_to_convergence": statistics.mean(iters),
            "iterations_std": statistics.pstdev(iters) if len(iters) > 1 else 0.0,
            "test_accuracy": statistics.mean(accs),
            "test_accuracy_std": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
        }
    return table


def markdown(table: dict) -> str:
    crit = next(iter(table.values()))["criterion"] if table else "loss"
    what = "val. CE within 0.01 of best" if crit == "loss" else "val. accuracy within 1 % of best"
    lines = [f"| method | seeds | iterations to convergence ({what}) | test accuracy (%) |", "|---|---|---|---|"]
    for m, r in table.items():
        lines.append(
            f"| {m} | {r['seeds']} | {r['iterations_to_convergence']:.0f} ± {r['iterations_std']:.0f} "
            f"| {r['test_accuracy']:.1f} ± {r['test_accuracy_std']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def write_results(out: Path, table: dict, timings: dict, settings: dict) -> dict:
    """Write ``out/summary.json`` (the results, seconds per stage, settings, figures and machine) and the results
    table ``out/results.md``, print the table; returns the summary."""
    from ppl_attention.artifacts import atomic_write_json, atomic_write_text
    from ppl_attention.runtime import run_record

    summary = {
        "results": table,
        "seconds_per_stage": timings,
        "settings": settings,
        "out": str(out),
        "figures": sorted(str(p) for p in (out / "figures").glob("*.png")),
        "run": run_record(),
    }
    text = markdown(table)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "results.md", text)
    print()
    print(text)
    print(f"summary written to {out / 'summary.json'}")
    return summary
