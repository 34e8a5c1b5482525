"""PS-NOGS against RAM (and optionally PS-H1 / PS-H5 / PS-HGS) on cluttered MNIST, over several seeds.

Trains one network per (method, seed) with :func:`ppl_attention.attention.train_run`, then writes

    OUT/{method}-s{seed}/     each run (resumable: a finished run is skipped, an interrupted or
                              shorter one resumes and continues)
    OUT/results.csv, OUT/results.md   iterations to convergence (both criteria) and test accuracy, mean and std
    OUT/validation_curves.png         validation accuracy per method (mean +- std over seeds)

Example (600 NOGS sequences from `ppl-attention generate`):

    .venv/bin/python examples/compare_supervision.py --sequences runs/nogs-store --methods none nogs \
        --seeds 0 1 2 --iterations 3000 --out results/compare

``nogs-stop`` is PS-NOGS whose supervision stops at ``--supervision-until`` (default: a quarter of the
iterations); from then on REINFORCE trains every example.  ``nogs-all`` supervises every training image the store
has a sequence for, each draw with probability ``--all-supervision-probability`` (default: ``--num-supervised`` /
the store's sequences, so a batch holds as many supervised examples as PS-NOGS's); the rest of its draws are the
epoch's redrawn canvases, so the sequences do not freeze the training canvases.  Without a store, compare RAM with
the hand-crafted (``hgs``) or heuristic (``h1``/``h5``, with --epe-first) supervision.

The sensor and the data are dataset options (``--dataset-option scales=1`` for the single 12 x 12 patch instead of
the MNIST datasets' default 3-scale retina, ``train_digits=1000`` for a smaller pool of training digits); the
network and schedule have flags of their own (``--backbone mnih --core rnn --location-embedding mlp`` is Mnih et
al.'s RAM).  Example, RAM with the retina on cluttered MNIST at Mnih's 8 glimpses:

    .venv/bin/python examples/compare_supervision.py --methods none --glimpses 8 --iterations 20000 \
        --out runs/sensor/cluttered-retina

The fine grid (49 x 49 = 2,401 locations, the same canvases) with a policy that scales to it:

    .venv/bin/python examples/compare_supervision.py --methods none hgs --dataset-option stride=1 \
        --policy gaussian --location-embedding mlp --glimpses 8 --out runs/fine/cluttered
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import statistics
import sys
from dataclasses import fields
from pathlib import Path

import torch

from ppl_attention.artifacts import atomic_write_json, atomic_write_text, read_json
from ppl_attention.attention import NetworkConfig, RunConfig, TrainConfig, train_run
from ppl_attention.attention.network import LOCATION_EMBEDDINGS
from ppl_attention.attention.policy import POLICIES, check_policy
from ppl_attention.attention.supervision import METHODS as SUPERVISED_METHODS, Method
from ppl_attention.plots.attention import plot_validation_curves
from ppl_attention.runtime import machine_info, resolve_device

#: the paper's methods and two PS-NOGS variants of this comparison (supervision stopped part-way, every image)
METHODS = {
    **SUPERVISED_METHODS,
    "nogs-stop": Method("PS-NOGS, supervision stopped", "nogs"),
    "nogs-all": Method("PS-NOGS, every image", "nogs"),
}
#: method -> its name in the tables
LABELS = {name: method.label for name, method in METHODS.items()}
METRICS = (
    "iterations_to_convergence_loss",
    "iterations_to_convergence_accuracy",
    "test_greedy_acc",
    "best_val_acc",
    "iterations_per_second",
    "test_mc_acc",
)


def _dataset_option(text: str):
    """``KEY=VALUE`` through the library's parser (the same values as ``--dataset-option`` on the CLI)."""
    from ppl_attention.data.spec import parse_option

    try:
        return parse_option(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--sequences", default=None, help="sequence store of NOGS sequences (needed for nogs)")
    p.add_argument("--epe-first", default=None, help="first_glimpse.json for h1/h5 (default: the store's)")
    p.add_argument(
        "--methods",
        nargs="+",
        default=["none", "nogs"],
        choices=list(METHODS),
        help="none = RAM, ram+ = RAM pretrained with heuristic locations, then the PS-* supervisions",
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument(
        "--data-seed",
        type=int,
        default=None,
        help="seed of the data (split, canvases), the same for "
        "every run so that methods see the same images; default: the store's seed, else 0",
    )
    p.add_argument("--dataset", default="cluttered-mnist")
    p.add_argument(
        "--dataset-option",
        dest="dataset_options",
        type=_dataset_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset keyword argument, e.g. scales=1 (repeatable)",
    )
    p.add_argument(
        "--backbone",
        default="small",
        choices=["small", "mnih", "vgg16", "mobilenet_v2"],
        help="glimpse network ('what'); mnih = Mnih et al.'s linear layer on the retina",
    )
    p.add_argument("--core", default="gru", choices=["gru", "lstm", "rnn"])
    p.add_argument("--glimpse-dim", type=int, default=64, help="size of g, the glimpse network's output")
    p.add_argument(
        "--location-embedding",
        default="table",
        choices=list(LOCATION_EMBEDDINGS),
        help="where-embedding: table, mlp or factorised (mlp / factorised for fine grids)",
    )
    p.add_argument(
        "--policy",
        default="dense",
        choices=list(POLICIES),
        help="location policy: dense (the paper's), gaussian or factorised (for fine grids, see "
        "ppl_attention.attention.policy)",
    )
    p.add_argument(
        "--policy-std",
        type=float,
        default=0.2,
        help="gaussian policy: standard deviation in normalised grid coordinates",
    )
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "step", "cosine"])
    p.add_argument("--lr-horizon", type=int, default=None, help="cosine schedule: iterations of decay")
    p.add_argument("--mc-samples", type=int, default=10, help="M of the Monte-Carlo test accuracy")
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--validate-every", type=int, default=100)
    p.add_argument("--num-supervised", type=int, default=600)
    p.add_argument(
        "--supervision-probability",
        type=float,
        default=None,
        help="nogs / nogs-stop / h1 / h5 / hgs: supervise a drawn supervised image with this probability, "
        "else show its redrawn canvas unsupervised (for sequences on every training image)",
    )
    p.add_argument(
        "--all-supervision-probability",
        type=float,
        default=None,
        help="nogs-all: the probability of supervising a drawn image (default: --num-supervised / the "
        "store's sequences, PS-NOGS's supervised examples per batch)",
    )
    p.add_argument(
        "--supervision-until",
        type=int,
        default=None,
        help="nogs-stop: the iteration at which the supervision stops and REINFORCE trains every "
        "example (default: a quarter of --iterations)",
    )
    p.add_argument("--glimpses", type=int, default=5)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--pretrain-iterations", type=int, default=1000, help="RAM+'s pretraining iterations")
    p.add_argument(
        "--ce-every-step",
        action="store_true",
        help="cross-entropy after every glimpse: trains the "
        "adaptive-stopping head, so each run's summary gets an accuracy-against-FLOPs stopping curve",
    )
    p.add_argument(
        "--no-run-figures",
        dest="run_figures",
        action="store_false",
        help="skip each run's own figures (glimpse frequency, strip, animation)",
    )
    p.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", help="no TensorBoard events")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for this small network)")
    p.add_argument("--device", default="auto")
    return p


def parse_args(argv=None):
    p = _parser()
    return _checked(p.parse_args(argv), p.error)


def settings(**options) -> argparse.Namespace:
    """What :func:`parse_args` returns, from keyword arguments: the flags' destinations (``out``, ``methods``,
    ``seeds``, ``dataset_options`` as a mapping, ``run_figures=False`` for ``--no-run-figures``...), the others
    at their defaults, checked the same way (a ValueError names the setting) -- for the scripts that run the
    comparison in Python (examples/paper_regime.py, examples/reproduce_mnist.py)."""
    actions = {a.dest: a for a in _parser()._actions if a.dest != "help"}
    unknown = set(options) - set(actions)
    if unknown:
        raise TypeError(f"unknown settings {sorted(unknown)}; expected some of {sorted(actions)}")
    if options.get("out") is None:
        raise ValueError("`out` is required")
    args = argparse.Namespace(**{d: a.default for d, a in actions.items()})
    for name, value in options.items():
        setattr(args, name, _typed(actions[name], value))
    return _checked(args, _refuse)


def _typed(action: argparse.Action, value):
    """``value`` as the flag would have parsed it from its text (a tuple as a list, a path as the flag's type, a
    mapping of dataset options as its items); a value outside the flag's choices is refused."""
    if action.dest == "dataset_options":
        return list(dict(value).items())
    if isinstance(value, (list, tuple)):
        return [_typed(action, v) for v in value]
    if isinstance(value, Path) and action.type is not Path:
        value = str(value)
    elif value is not None and action.type is not None and not isinstance(value, bool):
        value = action.type(value)
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"`{action.dest}` must be one of {list(action.choices)}, got {value!r}")
    return value


def _refuse(message: str):
    raise ValueError(message)


def _checked(args: argparse.Namespace, error) -> argparse.Namespace:
    """The checks argparse cannot make and the defaults that depend on other settings; ``error(message)`` refuses."""
    try:
        check_policy(args.policy, args.policy_std)
    except ValueError as e:
        error(str(e))
    if {"nogs", "nogs-stop", "nogs-all"} & set(args.methods) and args.sequences is None:
        error("methods nogs, nogs-stop and nogs-all need --sequences DIR")
    q = args.all_supervision_probability
    if q is not None and not 0 < q <= 1:
        error(f"--all-supervision-probability must be in (0, 1], got {q}")
    if args.supervision_until is None:
        args.supervision_until = args.iterations // 4
    if not 0 < args.supervision_until <= args.iterations:
        error(f"--supervision-until must lie in [1, --iterations = {args.iterations}], got {args.supervision_until}")
    if args.data_seed is None:
        args.data_seed = 0
        if args.sequences is not None:
            from ppl_attention.design.store import SequenceStore

            config = SequenceStore.open(args.sequences).config
            args.data_seed = int((config.get("data") or {}).get("seed", config.get("seed", 0)))
    if args.seeds and len(args.seeds) < 3:
        logging.warning("fewer than 3 seeds: the std of each method is poorly estimated")
    return args


def all_supervision(args) -> tuple[int, float]:
    """``nogs-all``'s (supervised images, supervision probability): every sequence of the store, each draw
    supervised with ``--all-supervision-probability`` or by default ``--num-supervised`` / the sequences, so that a
    batch holds as many supervised examples as PS-NOGS's and the two differ only in how many images supply them."""
    from ppl_attention.design.store import SequenceStore

    n = len(SequenceStore.open(args.sequences))
    if n == 0:
        raise ValueError(f"--sequences {args.sequences} holds no sequences")
    q = args.all_supervision_probability
    return n, (min(1.0, args.num_supervised / n) if q is None else q)


def _config(cls, args, **changes):
    """The config ``cls`` with every field that a flag sets taken from ``args`` (the flags are named after the
    fields), and ``changes`` on top."""
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if f.init and hasattr(args, f.name)} | changes)


def run_all(args) -> dict[str, list[dict]]:
    from ppl_attention.data.spec import DatasetSpec

    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    results: dict[str, list[dict]] = {m: [] for m in args.methods}
    datasets = None
    for seed in args.seeds:
        for method in args.methods:
            out = args.out / f"{method}-s{seed}"
            done = read_json(out / "summary.json") if (out / "summary.json").is_file() else None
            if done is not None and done.get("iterations", 0) >= args.iterations:
                summary = done
                logging.info("%s: finished earlier, skipped", out)
            else:
                if datasets is None:
                    # Through the dataset spec, so each run's manifest records the data (name, seed, options such
                    # as stride or train_digits) like `ppl-attention train` does.
                    spec = DatasetSpec.make(args.dataset, seed=args.data_seed, options=dict(args.dataset_options))
                    datasets = {s: spec.load(s) for s in ("train", "valid", "test")}
                kind, pretrain = METHODS[method].supervision, METHODS[method].pretrain
                num_supervised, probability = args.num_supervised, args.supervision_probability
                if method == "nogs-all":
                    num_supervised, probability = all_supervision(args)
                run = _config(
                    RunConfig,
                    args,
                    supervision=kind,
                    num_supervised=num_supervised,
                    pretrain=pretrain,
                    pretrain_locations="heuristic" if pretrain else "uniform",
                )
                stop = args.supervision_until if method == "nogs-stop" else None
                cfg = _config(TrainConfig, args, supervision_until=stop, supervision_probability=probability)
                net_cfg = _config(NetworkConfig, args)
                summary = train_run(
                    run, cfg, net_cfg, datasets, out, seed, device, progress=args.progress, figures=args.run_figures
                )
                logging.info(
                    "%s: test accuracy %.4f, converged (loss) at %s",
                    out,
                    summary["test_greedy_acc"],
                    summary["iterations_to_convergence_loss"],
                )
            results[method].append(summary)
    return results


def mean_std(values) -> tuple[float | None, float | None]:
    """Mean and sample sd of the values that are not None (sd 0 for one value; (None, None) for none)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def validation_curve(run: Path) -> list[tuple[float, float]]:
    """A run's ``(iteration, greedy validation accuracy)`` at every validation, from its ``log.csv``."""
    with open(run / "log.csv") as f:
        rows = csv.DictReader(f)
        return [(float(r["iteration"]), float(r["val_greedy_acc"])) for r in rows if r.get("val_greedy_acc")]


def first_reaching(run: Path, accuracy: float) -> float | None:
    """The first validated iteration of a run whose greedy validation accuracy reaches ``accuracy`` (None: never)."""
    return next((i for i, a in validation_curve(run) if a >= accuracy), None)


def write_tables(results: dict, out: Path) -> list[dict]:
    rows = []
    for method, runs in results.items():
        row = {"method": method, "seeds": len(runs)}
        for m in METRICS:
            row[f"{m}_mean"], row[f"{m}_std"] = mean_std([r.get(m) for r in runs])
        rows.append(row)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "results.csv", buf.getvalue())

    def fmt(row, m, digits):
        mean, std = row[f"{m}_mean"], row[f"{m}_std"]
        return "n/a" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"

    lines = [
        "| method | seeds | iterations to convergence (val CE within 0.01) | (val acc within 1 %) | "
        "test accuracy (greedy policy) | test accuracy (MC average of M sampled policies) | iterations/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {LABELS.get(row['method'], row['method'])} | {row['seeds']} | {fmt(row, METRICS[0], 0)} | "
            f"{fmt(row, METRICS[1], 0)} | "
            f"{fmt(row, METRICS[2], 4)} | {fmt(row, METRICS[5], 4)} | {fmt(row, METRICS[4], 1)} |"
        )
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    return rows


def read_history(run_dir: Path) -> list[dict]:
    with open(run_dir / "log.csv") as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def curve_label(method: str, summaries: list[dict]) -> str:
    """The method's name in a validation-curve legend; RAM+'s curve starts after its pretraining (its log counts the
    policy's iterations only), which the label says, so that its high start is not read as a head start."""
    pretrained = {s["pretrain_summary"]["iterations"] for s in summaries if s.get("pretrain_summary")}
    if len(pretrained) == 1:
        return f"{LABELS[method]} (after {pretrained.pop():,} pretraining iterations)"
    return LABELS[method]


def compare(args, command: str | None = None) -> list[dict]:
    """Train (or re-read) every run, write OUT/results.csv|md, OUT/validation_curves.png and OUT/comparison.json
    (the command and settings, for the results page); returns the rows."""
    results = run_all(args)
    rows = write_tables(results, args.out)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    atomic_write_json(
        args.out / "comparison.json", {"command": command, "settings": settings, "machine": machine_info()}
    )
    curves = {
        curve_label(m, results[m]): [read_history(args.out / f"{m}-s{s}") for s in args.seeds] for m in args.methods
    }
    plot_validation_curves(
        curves, args.out / "validation_curves.png", title=f"{args.dataset}: validation accuracy (greedy policy)"
    )
    return rows


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else [str(a) for a in argv]
    rows = compare(args, command=" ".join(["python examples/compare_supervision.py", *given]))
    print((args.out / "results.md").read_text())
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
