"""``ppl-attention datasets``: list the datasets, or draw samples of one with its glimpse grid."""

from __future__ import annotations

from pathlib import Path

from ..config import load_yaml, preset_summary, presets
from ._common import add_command, print_summary
from ._dataset import add_dataset_arguments, resolve_dataset


def register(sub, common):
    p = add_command(sub, common, "datasets", run_list)
    dsub = p.add_subparsers(dest="datasets_command", metavar="{list,show}")
    pl = dsub.add_parser("list", parents=[common], help="list the datasets")
    pl.set_defaults(func=run_list)
    ps = dsub.add_parser("show", parents=[common], help="draw samples of a dataset with its glimpse grid")
    ps.add_argument("name", help="dataset name (see `ppl-attention datasets`)")
    ps.add_argument("--split", default="train", choices=["train", "valid", "test"], help="split (default: train)")
    ps.add_argument("--n", type=int, default=8, help="number of samples (default: 8)")
    ps.add_argument("--out", required=True, type=Path, help="output image (PNG)")
    ps.add_argument("--attribute", default=None, help="celeba-hq: attribute name or index 0-39 (default: all 40)")
    add_dataset_arguments(ps, name=False, default="NAME")
    ps.set_defaults(func=run_show)


def run_list(args):
    """Without a subcommand: list the datasets (classes, image size, glimpse grid, whether --root is needed) and the
    named dataset presets that --config takes. `datasets show NAME --out x.png` draws a grid of samples with their
    labels, one with every candidate glimpse location drawn over it."""
    from ..data import DATASETS

    header = ("name", "classes", "image", "grid", "needs --root")
    rows = [(i.name, i.classes, i.image_size, i.grid, "yes" if i.needs_root else "no") for i in DATASETS.values()]
    widths = [max(len(str(r[k])) for r in rows + [header]) for k in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
    print("\npresets (--config NAME; the same canvases as the dataset's default grid):")
    for name in presets():
        data = load_yaml(name)
        options = "".join(f" --dataset-option {k}={v}" for k, v in (data.get("dataset_options") or {}).items())
        print(f"  {name}: {preset_summary(name)}\n      = --dataset {data.get('dataset')}{options}")
    return 0


def run_show(args):
    from ..plots.data import plot_samples

    if args.n <= 0:
        raise ValueError(f"--n must be a positive number of samples, got {args.n}")
    if args.attribute is not None:
        args.dataset_option = (args.dataset_option or []) + [f"attribute={args.attribute}"]
    ds = resolve_dataset(args, positional_name=args.name).load(args.split)
    path = plot_samples(ds, args.out, n=args.n)
    g = ds.grid
    print_summary(
        {
            "dataset": ds.name,
            "split": args.split,
            "items": len(ds),
            "classes": ds.num_classes,
            "task": ds.task,
            "image_size": list(ds.image_size),
            "grid": f"{g.n_rows}x{g.n_cols} locations, {g.glimpse_size[0]}x{g.glimpse_size[1]} glimpses",
            "figure": str(path),
        }
    )
    return 0
