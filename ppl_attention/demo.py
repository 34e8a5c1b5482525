"""The main job, end to end on cluttered MNIST: AVP -> prior -> near-optimal sequences -> RAM vs PS-NOGS.

Each stage runs the same ``ppl-attention`` subcommand a user would run, into a sub-folder of ``out``, and is
skipped when its finished artefact is already there, so a second run only redoes what is missing (and an
interrupted run resumes: every stage below resumes on its own).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from .artifacts import atomic_write_json, atomic_write_text, read_json, write_manifest
from .config import config_to_dict

__all__ = ["DemoConfig", "run_demo", "STAGES"]

log = logging.getLogger(__name__)

STAGES = ("dataset figure", "train AVP", "evaluate AVP", "build prior", "generate sequences", "EPE figure",
          "train RAM", "train PS-NOGS", "results table")


@dataclass
class DemoConfig:
    out: Path = field(default=Path("runs/demo"), metadata={"help": "where every artefact goes"})
    dataset: str = field(default="cluttered-mnist", metadata={"help": "dataset (bundled digits need no --root)"})
    avp_epochs: int = field(default=12, metadata={"help": "AVP training epochs"})
    prior_size: int = field(default=100_000, metadata={"help": "canvases in the image database (a dataset whose "
                                                                "prior is the paper's database)"})
    pca_components: int = field(default=256, metadata={"help": "PCA components of the database's index"})
    num_sequences: int = field(default=600, metadata={"help": "training images given near-optimal sequences"})
    glimpses: int = field(default=4, metadata={"help": "T: glimpses per sequence and per hard-attention run"})
    num_samples: int = field(default=50, metadata={"help": "image completions per BOED step"})
    search: str = field(default="halving", metadata={"help": "candidate search",
                                                       "choices": ["exhaustive", "halving", "coarse"]})
    iterations: int = field(default=3000, metadata={"help": "hard-attention training iterations per run"})
    validate_every: int = field(default=100, metadata={"help": "validation interval (iterations)"})
    seeds: tuple[int, ...] = field(default=(0,), metadata={"help": "seeds of the RAM and PS-NOGS runs"})


def _run(argv: list[str]) -> None:
    from .cli import main

    log.debug("ppl-attention %s", " ".join(argv))
    code = main(argv)
    if code != 0:
        raise RuntimeError(f"stage `ppl-attention {' '.join(argv)}` failed with exit code {code}")


def _stage(i: int, name: str, done: bool, action, timings: dict) -> None:
    header = f"[{i}/{len(STAGES)}] {name}"
    if done:
        print(f"{header}: cached", flush=True)
        timings[name] = 0.0
        return
    print(f"{header} ...", flush=True)
    start = time.perf_counter()
    action()
    timings[name] = round(time.perf_counter() - start, 1)
    print(f"{header}: done in {timings[name]:.0f} s", flush=True)


def run_demo(cfg: DemoConfig, device: str = "auto", seed: int = 0) -> dict:
    """Run (or resume) every stage; returns the results table as a dict and writes ``out/summary.json``."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, "demo", config_to_dict(cfg))
    common = ["--device", device, "--seed", str(seed)]
    figures = out / "figures"
    avp, prior, sequences = out / "avp", out / "prior", out / "sequences"
    timings: dict[str, float] = {}

    _stage(1, STAGES[0], (figures / "dataset.png").exists(),
           lambda: _run(["datasets", "show", cfg.dataset, "--out", str(figures / "dataset.png")]), timings)
    _stage(2, STAGES[1], (avp / "avp.safetensors").exists() and (avp / "manifest.json").exists(),
           lambda: _run(["train-avp", "--dataset", cfg.dataset, "--out", str(avp), "--epochs", str(cfg.avp_epochs),
                         "--max-glimpses", str(cfg.glimpses), "--exclude-design", str(cfg.num_sequences),
                         *common]), timings)  # the images generate designs for (no oracle)
    _stage(3, STAGES[2], (avp / "evaluation.json").exists(),
           lambda: _run(["evaluate-avp", str(avp), *common]), timings)
    from .data.spec import default_prior

    # the dataset's own prior (the generative process for the MNIST canvases); the size options are the database's
    sizes = ["--size", str(cfg.prior_size), "--components", str(cfg.pca_components)] \
        if default_prior(cfg.dataset) == "database" else []
    _stage(4, STAGES[3], (prior / "manifest.json").exists(),
           lambda: _run(["build-prior", "--dataset", cfg.dataset, "--out", str(prior), *sizes, *common]), timings)
    _stage(5, STAGES[4], (sequences / "summary.json").exists() and _store_complete(sequences, cfg.num_sequences),
           lambda: _run(["generate", "--dataset", cfg.dataset, "--avp", str(avp), "--prior", str(prior),
                         "--num-images", str(cfg.num_sequences), "--out", str(sequences), "--search", cfg.search,
                         "-T", str(cfg.glimpses), "--num-samples", str(cfg.num_samples), *common]), timings)
    first = min(_stored_indices(sequences), default=0)
    _stage(6, STAGES[5], (figures / "epe.png").exists(),
           lambda: _run(["plot", "epe", str(sequences), "--index", str(first), "--out", str(figures / "epe.png")]),
           timings)
    runs = {"RAM": [], "PS-NOGS": []}
    for method, extra, stage in (("RAM", ["--supervision", "none"], 7),
                                 ("PS-NOGS", ["--supervision", "nogs", "--sequences", str(sequences),
                                              "--num-supervised", str(cfg.num_sequences)], 8)):
        def train_all(method=method, extra=extra):
            for s in cfg.seeds:
                run_dir = out / f"{method.lower()}-s{s}"
                if not (run_dir / "summary.json").exists():
                    _run(["train", "--dataset", cfg.dataset, *extra, "--out", str(run_dir), "--iterations",
                          str(cfg.iterations), "--glimpses", str(cfg.glimpses), "--validate-every",
                          str(cfg.validate_every), "--device", device, "--seed", str(s),
                          "--data-seed", str(seed)])  # every run sees the canvases the sequences were made for
        dirs = [out / f"{method.lower()}-s{s}" for s in cfg.seeds]
        runs[method] = dirs
        _stage(stage, STAGES[stage - 1], all((d / "summary.json").exists() for d in dirs), train_all, timings)

    def table():
        _run(["plot-attention", *(f"{m}={d}" for m, ds in runs.items() for d in ds),
              "--out", str(figures / "validation_curves.png")])
    _stage(9, STAGES[8], False, table, timings)
    results = _results_table(runs)
    summary = {"results": results, "seconds_per_stage": timings, "out": str(out),
               "figures": sorted(str(p) for p in figures.glob("*.png"))}
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "results.md", _markdown(results))
    print()
    print(_markdown(results))
    print(f"figures: {', '.join(summary['figures'])}")
    print(f"summary written to {out / 'summary.json'}")
    return summary


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
    lines = ["| method | seeds | iterations to convergence (val. CE within 0.01) | (val. accuracy within 1 %) "
             "| test accuracy (%) |", "|---|---|---|---|---|"]
    for method, r in results.items():
        lines.append(f"| {method} | {r['seeds']} | {r['iterations_to_convergence']:.0f} "
                     f"± {r['iterations_std']:.0f} | {r['iterations_to_convergence_accuracy']:.0f} "
                     f"| {r['test_accuracy']:.1f} ± {r['test_accuracy_std']:.1f} |")
    return "\n".join(lines) + "\n"


def load_results(out) -> dict:
    """The results of a finished demo (``out/summary.json``)."""
    return json.loads((Path(out) / "summary.json").read_text())
