"""``ppl-attention baselines``: train the low-FLOP CNN baselines and plot accuracy against FLOPs."""

from __future__ import annotations


from ..artifacts import read_json, write_manifest
from ..baselines.train import TrainBaselineConfig, sweep_baselines
from ..config import add_config_arguments, build_config, config_to_dict
from ..runtime import resolve_device, seed_everything
from ._common import add_command, write_summary
from ._dataset import add_dataset_arguments, resolve_dataset


def register(sub, common):
    p = add_command(sub, common, "baselines", run, out="output directory")
    add_dataset_arguments(p, default="cluttered-mnist")
    p.add_argument("--archs", nargs="+", default=["mobilenet_v2", "shufflenet_v2"])
    p.add_argument("--widths", nargs="+", type=float, default=[0.25, 0.5, 1.0])
    p.add_argument("--resolutions", nargs="+", type=int, default=[28, 60])
    p.add_argument(
        "--attention",
        nargs="*",
        default=[],
        metavar="NAME=FILE.json",
        help="hard-attention accuracy/FLOPs curves to draw too (JSON list of {flops, accuracy})",
    )
    add_config_arguments(p, TrainBaselineConfig)


def run(args):
    """Sweep CNN baselines (architecture x channel multiplier x input resolution), count FLOPs with
    torch.utils.flop_counter, and plot test accuracy against FLOPs. Finished points are reused, so an interrupted
    sweep resumes."""
    from ._common import check_int, check_number, check_out_dir

    check_out_dir(args.out)
    for w in args.widths:
        check_number("--widths", w, strict=True)
    for r in args.resolutions:
        check_int("--resolutions", r)
    curves = {}
    for spec in args.attention:
        if "=" not in spec:
            raise ValueError(f"--attention takes NAME=FILE.json, got {spec!r}")
        name, file = spec.split("=", 1)
        curves[name] = read_json(file)
    from ..plots.baselines import plot_accuracy_vs_flops

    cfg = build_config(TrainBaselineConfig, args)
    seed_everything(args.seed)
    device = resolve_device(args.device)
    spec = resolve_dataset(args, [args.out] if (args.out / "manifest.json").is_file() else [])
    datasets = {split: spec.load(split) for split in ("train", "valid", "test")}
    write_manifest(
        args.out,
        "baselines",
        {
            "dataset": spec.name,
            "data": spec.to_dict(),
            "archs": args.archs,
            "widths": args.widths,
            "resolutions": args.resolutions,
            **config_to_dict(cfg),
        },
    )
    results = sweep_baselines(datasets, args.out, args.archs, args.widths, args.resolutions, cfg, args.seed, device)
    figure = plot_accuracy_vs_flops(
        results, args.out / "accuracy_vs_flops.png", curves, title=f"{spec.name}: accuracy against computation"
    )
    table = sorted(
        (
            {
                "arch": r["config"]["arch"],
                "width": r["config"]["width"],
                "resolution": r["config"]["resolution"],
                "mflops": round(r["flops"] / 1e6, 3),
                "test_accuracy": round(r["test_accuracy"], 4),
            }
            for r in results
        ),
        key=lambda r: r["mflops"],
    )
    write_summary(args.out, {"dataset": spec.name, "data": spec.describe(), "points": table, "figure": str(figure)})
    return 0
