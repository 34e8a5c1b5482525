"""The paper's Table 1 on translated and cluttered MNIST: RAM, RAM+, PS-H1, PS-H5, PS-HGS and PS-NOGS over several
seeds, with the mean and standard deviation of iterations to convergence (both criteria) and of test accuracy.

Per dataset, the BOED stages are :mod:`ppl_attention.pipeline` functions, skipped once finished
(examples/_paper_pipeline.py): train-avp -> evaluate-avp -> build-prior -> generate (600 near-optimal sequences)
-> EPE figure.  Existing artefacts can be reused instead (``--avp`` / ``--prior`` / ``--sequences``, each
assigned to its dataset by its manifest).  Then every (method, seed) run goes through
examples/compare_supervision.py's layout, ``OUT/{dataset}/{method}-s{seed}/``: a finished run is re-read, an
interrupted or shorter one resumes, so the whole script resumes at every level.  It writes

    OUT/{dataset}/results.md|csv, validation_curves.png   one table per dataset (compare_supervision's format)
    OUT/table1.md|csv, OUT/table1.json                     both datasets side by side; settings, machine, command

    python examples/reproduce_mnist.py                                     # CPU scale: both datasets, 6 methods,
                                                                           # seeds 0 1 2 (CPU hours)
    python examples/reproduce_mnist.py --datasets cluttered-mnist --avp runs/demo/avp --prior runs/demo/prior \\
        --sequences runs/demo/sequences                                    # reuse the demo's BOED artefacts
    python examples/reproduce_mnist.py --scale paper --device cuda --out runs/reproduce-paper   # on a GPU
    python examples/reproduce_mnist.py --quick --out runs/reproduce        # every size shrunk: a smoke run

Method names are compare_supervision's: none (RAM), ram+ (RAM pretrained with heuristic locations), h1, h5,
hgs (the digit's bounding box), nogs.  All runs of one dataset use the same data (the sequence store's seed).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from ppl_attention.runtime import machine_info

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_supervision as cs  # noqa: E402
from _paper_pipeline import Stage, add_scale_flags, avp_stage, run_stages, scale_settings, shrunk  # noqa: E402

from ppl_attention import pipeline  # noqa: E402

DATASETS = ("translated-mnist", "cluttered-mnist")
METHOD_ORDER = tuple(cs.SUPERVISED_METHODS)  # the paper's methods in its Table 1 order


@dataclass(frozen=True)
class Scale:
    """Every size of one reproduction.  ``cpu`` is what this repository ran; ``paper`` the paper's settings."""

    # AVP (train-avp): small CNN on masked canvases, t ~ U{0..T} glimpses
    avp_epochs: int = 12
    avp_patience: int | None = None
    avp_width: int | None = None
    avp_train_size: int | None = None
    # image prior (build-prior): the canvases' own generative process (digit x offset x clutter), which leaves out
    # each design canvas's digits; a database rendered from the training digits holds them (an oracle)
    # BOED (generate): 600 sequences of T glimpses, N completions per step, K1 proposal draws
    num_sequences: int = 600
    glimpses: int = 5
    num_samples: int = 50
    first_num_samples: int | None = None
    k1: int = 1000
    search: str = "halving"
    # hard-attention training (compare_supervision)
    iterations: int = 15_000
    validate_every: int = 100
    hidden: int = 256
    lr: float = 1e-3
    batch_size: int = 64
    pretrain_iterations: int = 1000
    seeds: tuple[int, ...] = (0, 1, 2)
    run_figures: bool = True
    tensorboard: bool = True


SCALES = {
    # What runs here: the demo's BOED settings with T = 5, 15,000 iterations per run (RAM has not converged by
    # 3,000 on cluttered MNIST). Measured on 2 busy cores: the demo's BOED stages took ~10 min (T = 4), one
    # 15,000-iteration run ~13 min (19 it/s); 6 methods x 3 seeds make ~4 hours per dataset.
    "cpu": Scale(),
    # The paper's settings where they carry over to MNIST (paper sec. 6, app. A/B: Harvey, Teng & Wood,
    # arXiv:1906.05462):
    # N = 200 completions, K1 = 1000, exhaustive search over every location, T = 5, GRU hidden 64, Adam 3e-4,
    # batch 64, validation every 100 iterations (the paper's 1.5 M-image GAN database is replaced by the canvases'
    # generative process, which leaves each design canvas's digits out).
    # Not from the paper (it has no MNIST experiment): the AVP is the small CNN trained to convergence (200 epochs,
    # patience 30) and 50,000 training iterations per run (~2x RAM's 24,000 on CelebA-HQ).  A GPU job (its cost
    # is not measured here).
    "paper": Scale(
        avp_epochs=200,
        avp_patience=30,
        num_samples=200,
        k1=1000,
        search="exhaustive",
        iterations=50_000,
        hidden=64,
        lr=3e-4,
    ),
    # Every size shrunk so both datasets run end to end in seconds (tests, smoke runs).  Numbers meaningless.
    "quick": shrunk(Scale(), num_sequences=3, hidden=8),
}

#: run-manifest entries a reused run must agree on (path in manifest["config"], the Scale field or None)
_RUN_KEYS = {
    ("train", "glimpses"): "glimpses",
    ("train", "lr"): "lr",
    ("train", "batch_size"): "batch_size",
    ("train", "validate_every"): "validate_every",
    ("network", "network", "hidden"): "hidden",
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/reproduce"))
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--methods", nargs="+", default=list(METHOD_ORDER), choices=list(METHOD_ORDER))
    scales = "cpu: what runs here (default); paper: the paper's settings, for a GPU; quick: a smoke run"
    add_scale_flags(p, SCALES, "cpu", "training seeds", scales)
    for name in ("avp", "prior", "sequences"):
        p.add_argument(
            f"--{name}",
            nargs="+",
            type=Path,
            default=[],
            metavar="DIR",
            help=f"reuse these {name} directories (each is used for the dataset its manifest names)",
        )
    p.add_argument("--seed", type=int, default=0, help="seed of the AVP, prior and BOED stages, and of the data")
    args = p.parse_args(argv)
    args.settings = scale_settings(p, args, SCALES)
    args.given = {name: _assign(name, getattr(args, name), args.datasets) for name in ("avp", "prior", "sequences")}
    return args


def _assign(name: str, dirs: list[Path], datasets) -> dict[str, Path]:
    """{dataset: dir} for the directories given to --NAME, read from each one's manifest."""
    out = {}
    for d in dirs:
        manifest = d / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"--{name} {d}: no manifest.json there (not a finished `ppl-attention` output)")
        dataset = json.loads(manifest.read_text()).get("config", {}).get("dataset")
        if dataset not in datasets:
            raise ValueError(f"--{name} {d} was built for dataset {dataset!r}, which is not in --datasets {datasets}")
        if dataset in out:
            raise ValueError(f"--{name} got two directories for {dataset}: {out[dataset]} and {d}")
        out[dataset] = d
    return out


def _records(store: Path) -> int:
    return len(list((store / "records").glob("*.json"))) if (store / "records").is_dir() else 0


def boed_stages(dataset: str, s: Scale, out: Path, given: dict, device: str, seed: int) -> tuple[list[Stage], Path]:
    """Train-avp / evaluate-avp / build-prior / generate / EPE figure for one dataset (the unneeded ones left out);
    returns them and the sequence store."""
    common = {"device": device, "seed": seed}
    avp = given["avp"].get(dataset, out / "avp")
    prior = given["prior"].get(dataset, out / "prior")
    store = given["sequences"].get(dataset, out / "sequences")
    stages = []
    if dataset not in given["sequences"]:
        if dataset not in given["avp"]:
            stages += [
                # not trained on the images generate designs for (no oracle)
                avp_stage(s, avp, dataset, max_glimpses=s.glimpses, exclude_design=s.num_sequences, **common),
                Stage("evaluate AVP", avp / "evaluation.json", partial(pipeline.evaluate, avp, **common)),
            ]
        if dataset not in given["prior"]:
            stages.append(
                Stage(
                    "build prior",
                    prior / "summary.json",
                    partial(pipeline.build_prior, prior, dataset, kind="generative", **common),
                )
            )
        stages.append(
            Stage(
                f"generate {s.num_sequences} sequences",
                lambda: (store / "summary.json").exists() and _records(store) >= s.num_sequences,
                partial(
                    pipeline.design_sequences,
                    store,
                    avp,
                    prior,
                    dataset=dataset,
                    num_images=s.num_sequences,
                    glimpses=s.glimpses,
                    num_samples=s.num_samples,
                    k1=s.k1,
                    search=s.search,
                    first_num_samples=s.first_num_samples,
                    **common,
                ),
            )
        )
    elif _records(store) < s.num_sequences:
        raise ValueError(
            f"--sequences {store} holds {_records(store)} sequences, fewer than the {s.num_sequences} "
            f"this scale supervises; finish it with `ppl-attention generate --out {store} ...`"
        )
    stages.append(
        Stage(
            "EPE figure",
            out / "figures" / "epe.png",
            partial(pipeline.plot, "epe", store, out / "figures" / "epe.png", index=0),
        )
    )
    return stages, store


def check_reused_runs(out: Path, methods, s: Scale, data_seed: int) -> None:
    """Refuse to mix in runs under ``out`` that were trained with other settings than ``s`` (a longer run is
    fine: its summary is read; a shorter one resumes)."""
    for method in methods:
        kind, pretrain = cs.METHODS[method].supervision, cs.METHODS[method].pretrain
        for seed in s.seeds:
            manifest = out / f"{method}-s{seed}" / "manifest.json"
            if not manifest.is_file():
                continue
            cfg = json.loads(manifest.read_text())["config"]
            expected = {
                **{keys: getattr(s, field) for keys, field in _RUN_KEYS.items()},
                ("run", "supervision"): kind,
                ("run", "pretrain"): pretrain,
                ("data_seed",): data_seed,
            }
            for keys, want in expected.items():
                have = cfg
                for k in keys:
                    have = have.get(k) if isinstance(have, dict) else None
                if have != want:
                    raise ValueError(
                        f"{manifest.parent} was trained with {'.'.join(keys)}={have!r}, this "
                        f"reproduction needs {want!r}; move it away or use another --out"
                    )


def train_options(
    dataset: str, out: Path, store: Path, methods, s: Scale, data_seed: int, threads: int, device: str
) -> dict:
    """compare_supervision's settings (:func:`compare_supervision.settings`) for one dataset."""
    return {
        "out": out,
        "dataset": dataset,
        "sequences": store,
        "methods": methods,
        "seeds": s.seeds,
        "data_seed": data_seed,
        "iterations": s.iterations,
        "validate_every": s.validate_every,
        "num_supervised": s.num_sequences,
        "glimpses": s.glimpses,
        "hidden": s.hidden,
        "lr": s.lr,
        "batch_size": s.batch_size,
        "pretrain_iterations": s.pretrain_iterations,
        "threads": threads,
        "device": device,
        "run_figures": s.run_figures,
        "tensorboard": s.tensorboard,
        "progress": s.tensorboard,
    }


def read_results(path: Path) -> dict[str, dict]:
    """compare_supervision's results.csv as {method: row} (numbers as floats, missing ones as None)."""
    with open(path) as f:
        return {
            r["method"]: {
                k: (v if k == "method" else (float(v) if v not in ("", "None") else None)) for k, v in r.items()
            }
            for r in csv.DictReader(f)
        }


def _cell(row: dict | None, metric: str, scale: float = 1.0, digits: int = 0) -> str:
    if row is None or row.get(f"{metric}_mean") is None:
        return "—"
    return f"{scale * row[f'{metric}_mean']:.{digits}f} ± {scale * row[f'{metric}_std']:.{digits}f}"


def table1(out: Path) -> tuple[str, list[dict]]:
    """Markdown and CSV rows of every dataset's results found under ``out``, side by side."""
    found = {d: read_results(out / d / "results.csv") for d in DATASETS if (out / d / "results.csv").is_file()}
    methods = [m for m in METHOD_ORDER if any(m in rows for rows in found.values())]
    head = "| method |" + "".join(
        f" {d}: iterations (val. CE within 0.01) | (val. acc. within 1 %) | test acc. (%) | seeds |" for d in found
    )
    lines = [head, "|---|" + "---|---|---|---|" * len(found)]
    rows = []
    for m in methods:
        cells = []
        row = {"method": m, "label": cs.LABELS[m]}
        for d, results in found.items():
            r = results.get(m)
            cells += [
                _cell(r, "iterations_to_convergence_loss"),
                _cell(r, "iterations_to_convergence_accuracy"),
                _cell(r, "test_greedy_acc", 100.0, 1),
                "—" if r is None else f"{r['seeds']:.0f}",
            ]
            for key in ("iterations_to_convergence_loss", "iterations_to_convergence_accuracy", "test_greedy_acc"):
                for stat in ("mean", "std"):
                    row[f"{d}:{key}_{stat}"] = None if r is None else r.get(f"{key}_{stat}")
            row[f"{d}:seeds"] = None if r is None else int(r["seeds"])
        lines.append(f"| {cs.LABELS[m]} | " + " | ".join(cells) + " |")
        rows.append(row)
    return "\n".join(lines) + "\n", rows


def _merge_seconds(previous: dict, now: dict) -> dict:
    """Seconds per stage and dataset; a stage cached now (about 0 s) keeps the time it took when it ran."""
    out = {d: dict(v) for d, v in previous.items()}
    for dataset, stages in now.items():
        for stage, sec in stages.items():
            out.setdefault(dataset, {})[stage] = max(sec, out.get(dataset, {}).get(stage, 0.0))
    return out


def main(argv=None) -> dict:
    from ppl_attention.artifacts import atomic_write_json, atomic_write_text
    from ppl_attention.design.store import SequenceStore

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    s = args.settings
    command = "python examples/reproduce_mnist.py " + " ".join(map(str, argv if argv is not None else sys.argv[1:]))
    args.out.mkdir(parents=True, exist_ok=True)
    timings, stores = {}, {}
    for i, dataset in enumerate(args.datasets, 1):
        out = args.out / dataset
        print(f"=== [{i}/{len(args.datasets)}] {dataset} ===", flush=True)
        stages, store = boed_stages(dataset, s, out, args.given, args.device, args.seed)
        timings[dataset] = run_stages(stages)
        store_cfg = SequenceStore.open(store).config
        data_seed = int(store_cfg.get("seed", args.seed))
        stores[dataset] = {
            "sequences": str(store),
            "T": store_cfg.get("T"),
            "data_seed": data_seed,
            "avp": str(args.given["avp"].get(dataset, out / "avp")),
            "prior": str(args.given["prior"].get(dataset, out / "prior")),
        }
        check_reused_runs(out, args.methods, s, data_seed)
        print(f"[train] {len(args.methods)} methods x {len(s.seeds)} seeds into {out}", flush=True)
        start = time.perf_counter()
        cs.compare(
            cs.settings(**train_options(dataset, out, store, args.methods, s, data_seed, args.threads, args.device)),
            command=command,
        )
        timings[dataset]["training"] = round(time.perf_counter() - start, 1)
    previous = json.loads((args.out / "table1.json").read_text()) if (args.out / "table1.json").is_file() else {}
    for dataset in args.datasets:
        stores[dataset].update(command=command, settings=asdict(s))
    # a dataset run by an earlier command keeps that command's settings (they may differ, e.g. in --iterations)
    earlier = {d: {"settings": previous.get("settings"), **info} for d, info in previous.get("datasets", {}).items()}
    markdown, rows = table1(args.out)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(args.out / "table1.csv", buf.getvalue())
    atomic_write_text(args.out / "table1.md", markdown)
    summary = {
        "command": command,
        "scale": args.scale,
        "settings": asdict(s),
        "datasets": {**earlier, **stores},
        "methods": args.methods,
        "seconds": _merge_seconds(previous.get("seconds", {}), timings),
        "machine": machine_info(),
        "table": rows,
    }
    atomic_write_json(args.out / "table1.json", summary)
    print()
    print(markdown)
    print(f"written: {args.out / 'table1.md'}, {args.out / 'table1.json'}")
    return summary


if __name__ == "__main__":
    main()
