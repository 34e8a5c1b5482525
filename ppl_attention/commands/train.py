"""``ppl-attention train`` (one hard-attention run) and ``ppl-attention plot-attention`` (compare runs)."""

from __future__ import annotations

from pathlib import Path

from ..config import add_config_arguments
from ._common import add_command, check_out_file, stage_options
from ._dataset import add_dataset_arguments


def register(sub, common):
    from ..attention.network import NetworkConfig
    from ..attention.run import RunConfig
    from ..attention.trainer import TrainConfig

    p = add_command(sub, common, "train", run_train, out="output directory")
    p.add_argument(
        "--pretrain",
        action="store_const",
        const=True,
        default=None,
        help="pretrain embedder, core and classifier with fixed location distributions, then freeze "
        "them while the policy trains (RAM+)",
    )
    add_config_arguments(p, RunConfig, skip=("dataset", "data_seed"))
    add_dataset_arguments(p, default="cluttered-mnist, or the --sequences store's (for nogs, also its split seed)")
    add_config_arguments(p, TrainConfig)
    add_config_arguments(p, NetworkConfig)

    q = add_command(sub, common, "plot-attention", run_plot, out="figure path (.png)")
    q.add_argument("runs", nargs="+", metavar="LABEL=DIR", help="run directories, e.g. ram=runs/ram-s0")
    q.add_argument("--metric", default="val_greedy_acc", help="column of log.csv to draw")


def run_train(args):
    """Train a hard-attention network with partial supervision. Running the same command again resumes from
    OUT/checkpoint and gives the same curves as an uninterrupted run."""
    from ..pipeline import train_attention

    train_attention(**stage_options(args))
    return 0


def run_plot(args):
    """Read OUT/log.csv of each run directory and draw their validation accuracy (mean +- std over runs of the same
    label)."""
    import csv

    from ..plots.attention import plot_validation_curves

    check_out_file(args.out, suffixes=(".png", ".pdf", ".svg"))
    groups: dict[str, list] = {}
    for spec in args.runs:
        if "=" not in spec:
            raise ValueError(f"runs take LABEL=DIR, got {spec!r}")
        label, folder = spec.split("=", 1)
        path = Path(folder) / "log.csv"
        if not path.is_file():
            raise FileNotFoundError(f"run {folder!r} has no log.csv (expected a `ppl-attention train` output)")
        try:
            with open(path, encoding="utf-8") as f:
                rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
        except (UnicodeDecodeError, ValueError, TypeError, csv.Error) as e:
            raise ValueError(f"{path} is not a log.csv of numbers (written by `ppl-attention train`): {e}") from None
        if rows and args.metric not in rows[0]:
            raise ValueError(f"--metric {args.metric!r} is not a column of {path}; columns: {sorted(rows[0])}")
        groups.setdefault(label, []).append(rows)
    fig = plot_validation_curves(groups, args.out, metric=args.metric, ylabel=args.metric)
    print(f"figure written to {fig}")
    return 0
