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

import argparse
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

#: The paper settings both the CelebA-HQ and the CUB scripts shrink for ``--tiny``: every stage runs in seconds.
TINY = {
    "avp_backbone": "small_cnn",
    "avp_width": 2,
    "avp_lr": 2e-3,
    "avp_batch_size": 4,
    "avp_epochs": 1,
    "avp_patience": 1,
    "avp_pretrained": None,
    "prior_size": 8,
    "prior_components": 4,
    "prior_fit_samples": 8,
    "num_sequences": 2,
    "num_samples": 2,
    "first_num_samples": 1,
    "k1": 4,
    "search": "coarse",
    "glimpses": 2,
    "train_iterations": 4,
    "validate_every": 2,
    "batch_size": 4,
    "num_supervised": 2,
    "seeds": (0,),
    "pretrain_iterations": 2,
}


@dataclass
class Stage:
    name: str
    done: Path | Callable[[], bool] | None  # a path that exists once finished, or a test; None: always run
    call: Callable[[], object] | None  # a pipeline function with its arguments bound; None: filled in later

    def finished(self) -> bool:
        if self.done is None:
            return False
        return bool(self.done()) if callable(self.done) else Path(self.done).exists()


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


def boed_stages(
    s, data: pipeline.Dataset, root: Path, out: Path, seqs: Path, common: dict, names: tuple[str, str], **extra: dict
) -> list[Stage]:
    """The stages before hard attention that the CelebA-HQ and CUB scripts share, with the paper settings ``s``:
    train the AVP (not on the images designed for: no oracle) and evaluate it, build the prior, design
    ``s.num_sequences`` sequences into ``seqs``.  ``names`` are the AVP's and the design's stage names; ``extra``
    holds a dataset's own options per stage (``avp``, ``prior``, ``design``)."""
    avp, prior = out / "avp", out / "prior"
    avp_options = {"backbone": s.avp_backbone, "epochs": s.avp_epochs, "patience": s.avp_patience, "lr": s.avp_lr}
    avp_options |= {"batch_size": s.avp_batch_size, "width": s.avp_width, "pretrained": s.avp_pretrained}
    prior_options = {"components": s.prior_components, "fit_samples": s.prior_fit_samples}
    design_options = {"num_samples": s.num_samples, "k1": s.k1, "search": s.search, "sigma": s.completion_sigma}
    return [
        Stage(
            names[0],
            avp / "manifest.json",
            partial(
                pipeline.train_avp,
                avp,
                data,
                max_glimpses=s.glimpses,
                exclude_design=s.num_sequences,
                **avp_options,
                **extra.get("avp", {}),
                **common,
            ),
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
    ]


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
