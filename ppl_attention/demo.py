"""The main job, end to end on cluttered MNIST: AVP -> prior -> near-optimal sequences -> RAM vs PS-NOGS.

Each stage is a :mod:`ppl_attention.pipeline` function writing into a sub-folder of ``out``, skipped when its
finished artefact is already there, so a second run only redoes what is missing (and an interrupted run resumes:
every stage resumes on its own).  :meth:`DemoConfig.quick` is the same pipeline scaled down to about a minute.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Optional

from .pipeline.stages import Stage, run_stages
from .artifacts import atomic_write_json, atomic_write_text, read_json, write_manifest
from .config import GLIMPSES, config_to_dict, setting
from .runtime import run_record

__all__ = ["DemoConfig", "run_demo", "STAGES"]

log = logging.getLogger(__name__)

STAGES = (
    "dataset figure",
    "train AVP",
    "evaluate AVP",
    "build prior",
    "generate sequences",
    "EPE figure",
    "train RAM",
    "train PS-NOGS",
    "results table",
)


@dataclass
class DemoConfig:
    out: Path = setting(Path("runs/demo"), "where every artefact goes")
    dataset: str = setting("cluttered-mnist", "dataset (bundled digits need no --root)")
    avp_epochs: int = setting(12, "AVP training epochs")
    avp_train_size: Optional[int] = setting(None, "AVP training canvases per epoch (default: the dataset's)")
    avp_calibrate: bool = setting(True, "fit the AVP's temperature on validation data")
    evaluation_draws: int = setting(20, "random glimpse sets per test image and t in the AVP's evaluation")
    prior_size: int = setting(100_000, "canvases in the image database (a dataset whose prior is the paper's database)")
    pca_components: int = setting(256, "PCA components of the database's index")
    num_sequences: int = setting(600, "training images given near-optimal sequences")
    glimpses: int = setting(GLIMPSES, "T: glimpses per sequence and per hard-attention run")
    num_samples: int = setting(50, "image completions per BOED step")
    search: str = setting("halving", "candidate search", choices=["exhaustive", "halving", "coarse"])
    iterations: int = setting(3000, "hard-attention training iterations per run")
    validate_every: int = setting(100, "validation interval (iterations)")
    seeds: tuple[int, ...] = setting((0,), "seeds of the RAM and PS-NOGS runs")
    threads: Optional[int] = setting(
        None, "CPU threads for torch (default: torch's choice; 1 is fastest for these small networks on a busy machine)"
    )

    @classmethod
    def quick(cls, **changes) -> "DemoConfig":
        """The whole pipeline in about a minute on two CPU cores: a small uncalibrated AVP, 16 designed images,
        short training runs (figures that show each stage's output, not the paper's numbers)."""
        small = dict(
            out=Path("runs/demo-quick"),
            avp_epochs=3,
            avp_train_size=2000,
            avp_calibrate=False,
            evaluation_draws=2,
            num_sequences=16,
            num_samples=20,
            glimpses=4,
            iterations=200,
            validate_every=50,
            threads=1,
        )
        return replace(cls(), **{**small, **changes})


def _figures(cfg: DemoConfig, seed: int, figures: Path, sequences: Path, kind: str, runs=None) -> None:
    """The demo's figures, drawn above the stages: samples across classes, one image's EPE maps, the curves."""
    if kind == "dataset":
        from .pipeline import Dataset
        from .plots.data import plot_samples

        plot_samples(Dataset(cfg.dataset).load("train", seed=seed), figures / "dataset.png")
    elif kind == "epe":
        from .pipeline import Dataset, SequencesHandle
        from .plots.design import plot_epe_steps

        store = SequencesHandle(sequences).load()
        first = min(store.indices())
        image = Dataset(cfg.dataset).load(store.config.get("split", "train"), seed=seed)[first]["image"]
        plot_epe_steps(
            store.epe_maps(first),
            store.record(first)["locations"],
            store.grid,
            figures / "epe.png",
            image,
            title=f"{cfg.dataset} image {first}: EPE of every candidate",
        )
    else:
        import csv

        from .plots.attention import plot_validation_curves

        groups = {}
        for method, dirs in runs.items():
            for d in dirs:
                with open(d / "log.csv", encoding="utf-8") as f:
                    groups.setdefault(method, []).append(
                        [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
                    )
        plot_validation_curves(groups, figures / "validation_curves.png", ylabel="validation accuracy")


def run_demo(cfg: DemoConfig, device: str = "auto", seed: int = 0, progress: bool = True) -> dict:
    """Run (or resume) every stage; returns the results table as a dict and writes ``out/summary.json``."""
    from .commands._common import set_threads

    set_threads(cfg.threads, "threads")
    out = Path(cfg.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    write_manifest(out, "demo", config_to_dict(cfg))
    common = dict(device=device, seed=seed, quiet=True)
    runs = {method: [out / f"{method.lower()}-s{s}" for s in cfg.seeds] for method in ("RAM", "PS-NOGS")}
    curves = partial(_figures, cfg, seed, out / "figures", out / "sequences", "curves", runs)
    stages = [
        *_avp_stages(cfg, out, common),
        *_design_stages(cfg, out, common),
        *_training_stages(cfg, out, runs, common, progress),
        Stage(STAGES[8], None, curves),
    ]
    return _report(out, runs, run_stages(stages))


def _avp_stages(cfg: DemoConfig, out: Path, common: dict) -> list[Stage]:
    """The dataset figure, the AVP (the designed images left out: no oracle) and its evaluation."""
    from . import pipeline as pl

    avp, figures = out / "avp", out / "figures"
    train = partial(
        pl.train_avp,
        avp,
        cfg.dataset,
        epochs=cfg.avp_epochs,
        glimpses=cfg.glimpses,
        train_size=cfg.avp_train_size,
        calibrate=cfg.avp_calibrate,
        exclude_design=cfg.num_sequences,
        **common,
    )
    return [
        Stage(
            STAGES[0],
            figures / "dataset.png",
            partial(_figures, cfg, common["seed"], figures, out / "sequences", "dataset"),
        ),
        Stage(STAGES[1], lambda: (avp / "avp.safetensors").exists() and (avp / "manifest.json").exists(), train),
        Stage(STAGES[2], avp / "evaluation.json", partial(pl.evaluate, avp, draws=cfg.evaluation_draws, **common)),
    ]


def _design_stages(cfg: DemoConfig, out: Path, common: dict) -> list[Stage]:
    """The prior, the sequences and their EPE figure."""
    from . import pipeline as pl

    avp, prior, sequences, figures = out / "avp", out / "prior", out / "sequences", out / "figures"
    design = partial(
        pl.design_sequences,
        sequences,
        avp,
        prior,
        num_images=cfg.num_sequences,
        search=cfg.search,
        glimpses=cfg.glimpses,
        num_samples=cfg.num_samples,
        **common,
    )
    return [
        Stage(
            STAGES[3],
            prior / "manifest.json",
            partial(pl.build_prior, prior, cfg.dataset, **_prior_sizes(cfg), **common),
        ),
        Stage(
            STAGES[4],
            lambda: (sequences / "summary.json").exists() and _store_complete(sequences, cfg.num_sequences),
            design,
        ),
        Stage(STAGES[5], figures / "epe.png", partial(_figures, cfg, common["seed"], figures, sequences, "epe")),
    ]


def _training_stages(cfg: DemoConfig, out: Path, runs: dict, common: dict, progress: bool) -> list[Stage]:
    """The RAM and PS-NOGS runs of every seed (into ``runs``' folders), on the canvases the sequences were made for."""
    from . import pipeline as pl

    extras = {
        "RAM": dict(dataset=cfg.dataset, supervision="none"),
        "PS-NOGS": dict(sequences=out / "sequences", num_supervised=cfg.num_sequences),
    }
    settings = dict(iterations=cfg.iterations, glimpses=cfg.glimpses, validate_every=cfg.validate_every)

    def train_all(method: str) -> None:
        for s, run_dir in zip(cfg.seeds, runs[method]):
            if not (run_dir / "summary.json").exists():
                pl.train_attention(
                    run_dir,
                    **extras[method],
                    **settings,
                    data_seed=common["seed"],
                    device=common["device"],
                    seed=s,
                    quiet=True,
                    no_progress=not progress,
                )

    return [
        Stage(STAGES[stage], partial(_all_finished, runs[method]), partial(train_all, method))
        for stage, method in ((6, "RAM"), (7, "PS-NOGS"))
    ]


def _all_finished(dirs: list[Path]) -> bool:
    return all((d / "summary.json").exists() for d in dirs)


def _report(out: Path, runs: dict[str, list[Path]], timings: dict) -> dict:
    """Write and print the results table; the summary ``run_demo`` returns."""
    results = _results_table(runs)
    summary = {
        "results": results,
        "seconds_per_stage": timings,
        "out": str(out),
        "figures": sorted(str(p) for p in (out / "figures").glob("*.png")),
        "run": run_record(),
    }
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "results.md", _markdown(results))
    print()
    print(_markdown(results))
    print(f"figures: {', '.join(summary['figures'])}")
    print(f"summary written to {out / 'summary.json'}")
    return summary


def _prior_sizes(cfg: DemoConfig) -> dict:
    """The size options of the dataset's own prior (the generative process for the MNIST canvases) that it reads."""
    from .completion.prior import PRIORS
    from .data.spec import default_prior

    sizes = dict(database_size=cfg.prior_size, components=cfg.pca_components)
    return {k: v for k, v in sizes.items() if k in PRIORS[default_prior(cfg.dataset)].build_options}


def _stored_indices(store: Path) -> list[int]:
    records = store / "records"
    return sorted(int(p.stem) for p in records.glob("*.json")) if records.is_dir() else []


def _store_complete(store: Path, n: int) -> bool:
    return len(_stored_indices(store)) >= n


def _results_table(runs: dict[str, list[Path]]) -> dict:
    import statistics

    table = {}
    for method, dirs in runs.items():
        rows = [read_json(d / "summary.json") for d in dirs]
        iters = [r["iterations_to_convergence_loss"] for r in rows]
        iters_acc = [r["iterations_to_convergence_accuracy"] for r in rows]
        accs = [100 * r["test_greedy_acc"] for r in rows]
        table[method] = {
            "seeds": len(rows),
            "iterations_to_convergence": statistics.mean(iters),
            "iterations_std": statistics.pstdev(iters) if len(iters) > 1 else 0.0,
            "iterations_to_convergence_accuracy": statistics.mean(iters_acc),
            "test_accuracy": statistics.mean(accs),
            "test_accuracy_std": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
        }
    return table


def _markdown(results: dict) -> str:
    lines = [
        "| method | seeds | iterations to convergence (val. CE within 0.01) | (val. accuracy within 1 %) "
        "| test accuracy (%) |",
        "|---|---|---|---|---|",
    ]
    for method, r in results.items():
        lines.append(
            f"| {method} | {r['seeds']} | {r['iterations_to_convergence']:.0f} "
            f"± {r['iterations_std']:.0f} | {r['iterations_to_convergence_accuracy']:.0f} "
            f"| {r['test_accuracy']:.1f} ± {r['test_accuracy_std']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def load_results(out) -> dict:
    """The results of a finished demo (``out/summary.json``)."""
    return json.loads((Path(out) / "summary.json").read_text())
