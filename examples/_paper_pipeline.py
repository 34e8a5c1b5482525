"""Shared machinery of examples/celeba_hq.py, examples/cub.py, examples/paper_regime.py and
examples/reproduce_mnist.py: run the stages of :mod:`ppl_attention.pipeline` (like ppl_attention/demo.py), skip
finished ones, and tabulate the hard-attention runs.

Each stage is ``Stage(name, done, call)``: ``call`` is a pipeline function with its keyword arguments bound
(``functools.partial(pipeline.train_avp, out, dataset, epochs=...)``); ``done`` is a path whose existence means
the stage finished (every stage writes it last), or a function that tells (e.g. "the store holds all its
sequences"), so re-running a script skips what is finished and resumes what was interrupted (each stage resumes on
its own: train-avp from its checkpoint, build-prior by chunks, generate per image, train per validation interval).
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from ppl_attention import pipeline

log = logging.getLogger(__name__)


@dataclass
class Stage:
    name: str
    done: Path | Callable[[], bool] | None  # a path that exists once finished, or a test; None: always run
    call: Callable[[], object] | None  # a pipeline function with its arguments bound; None: filled in later

    def finished(self) -> bool:
        if self.done is None:
            return False
        return bool(self.done()) if callable(self.done) else Path(self.done).exists()


def run_stages(stages: list[Stage], start: int = 1, total: int | None = None) -> dict[str, float]:
    """Run the unfinished stages in order (numbered from ``start`` of ``total``); returns seconds per stage (0 for
    cached ones)."""
    from ppl_attention.runtime import setup_logging

    setup_logging()  # the stages log at INFO, as they do under `ppl-attention`
    timings = {}
    for i, st in enumerate(stages, start):
        header = f"[{i}/{total or len(stages)}] {st.name}"
        if st.finished():
            print(f"{header}: cached", flush=True)
            timings[st.name] = 0.0
            continue
        print(f"{header} ...", flush=True)
        start = time.perf_counter()
        st.call()
        timings[st.name] = round(time.perf_counter() - start, 1)
        print(f"{header}: done in {timings[st.name]:.0f} s", flush=True)
    return timings


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
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "results.md", markdown(table))
    print()
    print(markdown(table))
    print(f"summary written to {out / 'summary.json'}")
    return summary
