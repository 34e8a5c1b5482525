"""``ppl-attention train-avp`` / ``evaluate-avp``: train the attentional variational posterior and measure its
accuracy, NLL and calibration against the number of random glimpses.

``train-avp`` runs under ``torchrun --nproc_per_node N`` too (DistributedDataParallel; rank 0 writes).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from ..config import add_config_arguments, build_config, config_to_dict
from ._dataset import add_dataset_arguments, resolve_dataset

log = logging.getLogger(__name__)


def register(sub, common):
    from ..posterior.training import TrainAVPConfig

    p = sub.add_parser(
        "train-avp",
        parents=[common],
        help="train the AVP g(label | glimpses) on random glimpses",
        description="Train the attentional variational posterior on masked images with t ~ U{0..T} "
        "random glimpses; keeps the best validation-NLL epoch, stops early, resumes from DIR's "
        "checkpoint, calibrates a temperature. Writes DIR/avp.safetensors, avp.json, manifest.json.",
    )
    add_dataset_arguments(p, default="cluttered-mnist")
    p.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="training canvases per epoch for MNIST datasets (fresh canvases every epoch)",
    )
    p.add_argument(
        "--exclude-design",
        type=int,
        default=None,
        metavar="N",
        help="leave the first N training images (for MNIST: every canvas of their digits) out of training, "
        "so that `generate --num-images N` may design for them (no oracle); recorded in the manifest",
    )
    p.add_argument("--out", required=True, type=Path, help="output AVP directory")
    add_config_arguments(p, TrainAVPConfig)
    p.set_defaults(func=run_train)
    _register_evaluate(sub, common)


def _register_evaluate(sub, common) -> None:
    """The ``evaluate-avp`` subcommand and its flags."""
    e = sub.add_parser(
        "evaluate-avp",
        parents=[common],
        help="accuracy, NLL and ECE of an AVP against the number of random glimpses 0..T on the test split",
        description="Evaluate a trained AVP directory on the test split: every image under --draws "
        "random glimpse sets per t; ECE with a bootstrap 95%% interval over images and the noise "
        "floor of a perfectly calibrated predictor. Writes DIR/evaluation.json, DIR/summary.json and "
        "DIR/avp_evaluation.png (evaluation_summary.json; train-avp's summary.json is kept). The "
        "dataset, its root, split seed and options are read from DIR's manifest (so the test split "
        "is the one the AVP was trained beside); a contradicting flag is an error. --recalibrate "
        "first refits the calibration on the validation split "
        "and rewrites DIR's weights and manifest.",
    )
    e.add_argument("dir", type=Path, help="AVP directory written by train-avp")
    add_dataset_arguments(e, reads="the AVP")
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument(
        "--glimpses", dest="max_glimpses", type=int, default=None, help="largest t (default: the T it was trained with)"
    )
    e.add_argument("--max-glimpses", dest="max_glimpses", type=int, default=None, help=argparse.SUPPRESS)
    e.add_argument("--batch-size", type=int, default=512, help="masked images per forward pass")
    e.add_argument("--draws", type=int, default=20, help="random glimpse sets per image and t (default: 20)")
    e.add_argument("--bins", type=int, default=15, help="confidence bins of the ECE (default: 15)")
    e.add_argument(
        "--recalibrate",
        action="store_true",
        help="refit the calibration (a temperature or "
        "temperatures per observed fraction) on the validation split before evaluating, and save it",
    )
    e.add_argument(
        "--calibration-draws",
        type=int,
        default=10,
        help="random glimpse sets per validation image and t for --recalibrate (default: 10)",
    )
    e.set_defaults(func=run_evaluate)


def _init_distributed(device):
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo" if device.type == "cpu" else "nccl")
        return True
    return False


def run_train(args):
    import torch.distributed as dist

    from ..posterior.training import TrainAVPConfig, train_avp
    from ..runtime import resolve_device, seed_everything

    from ..posterior.training import check_train_avp_config
    from ._common import check_int, check_out_dir

    cfg = check_train_avp_config(build_config(TrainAVPConfig, args))
    check_int("--train-size", args.train_size, optional=True)
    check_out_dir(args.out)
    if cfg.pretrained is not None and not Path(cfg.pretrained).is_file():
        raise FileNotFoundError(
            f"--pretrained {cfg.pretrained} does not exist (expected a torchvision state dict in .safetensors)"
        )
    device = resolve_device(args.device)
    started = _init_distributed(device)
    if device.type == "cuda" and started:
        import torch

        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    seed_everything(args.seed)
    previous = [args.out] if (args.out / "manifest.json").is_file() else []  # a finished AVP: same data
    spec = resolve_dataset(args, previous, default="cluttered-mnist")
    kw = {"size": args.train_size} if args.train_size is not None else {}
    train = spec.load("train", **kw)
    if args.exclude_design:
        from ..design.honest import HeldOut

        check_int("--exclude-design", args.exclude_design, minimum=0)
        try:  # the design images are the default split's (--train-size only sets the canvases per epoch)
            train = HeldOut(train, args.exclude_design, spec.load("train") if kw else None)
        except ValueError as e:
            raise ValueError(f"--exclude-design: {e}") from None
    valid = spec.load("valid")
    try:
        model = train_avp(train, valid, args.out, cfg, seed=args.seed, device=device, dataset_name=spec.name)
        rank = dist.get_rank() if started else 0
        if rank == 0:
            _write_train_summary(args.out, spec, cfg, model)
    finally:
        if started:
            dist.destroy_process_group()
    return 0


def _write_train_summary(out: Path, spec, cfg, model) -> None:
    """``summary.json`` of a finished ``train-avp``: the data, the config and the best epoch's figures."""
    from ..artifacts import read_json
    from ._common import write_summary

    hist = read_json(out / "history.json")
    summary = {"dataset": spec.name, "data": spec.describe(), "out": str(out), "config": config_to_dict(cfg)}
    summary.update(
        best_epoch=hist["best_epoch"],
        epochs_run=len(hist["history"]),
        best_valid_nll=min(h["valid_nll"] for h in hist["history"]),
        temperature=float(model.temperature),
    )
    write_summary(out, summary)


def _recalibrate(avp, directory: Path, manifest: dict, T: int, args, device, spec) -> dict:
    """Refit ``avp``'s calibration on the validation split and rewrite ``directory`` (weights + manifest)."""
    from ..posterior import calibrate_avp, save_avp

    cfg = manifest["config"]
    valid = spec.load("valid")
    calibration = calibrate_avp(
        avp, valid, T, seed=args.seed, batch_size=args.batch_size, device=device, draws=args.calibration_draws
    )
    own = {"dataset", "backbone", "head", "grid", "T", "normalisation", "temperature", "fraction_temperatures"}
    save_avp(
        avp,
        directory,
        cfg["dataset"],
        cfg["T"],
        extra_config={
            **{k: v for k, v in cfg.items() if k not in own},
            "data": spec.to_dict(),
            "calibration": calibration,
        },
        inputs=manifest.get("inputs"),
    )
    return calibration


def run_evaluate(args):
    from ..artifacts import atomic_write_json, read_manifest
    from ..plots.posterior import plot_avp_evaluation
    from ..posterior import evaluate_avp, load_avp
    from ..runtime import resolve_device
    from ._common import write_summary

    from ._common import check_in_dir, check_int, check_out_dir

    if not args.dir.exists():
        raise FileNotFoundError(f"AVP directory {args.dir} does not exist")
    check_in_dir(args.dir, "dir", "an AVP directory (train-avp)")
    if args.draws < 1 or args.calibration_draws < 1 or args.bins < 1:
        raise ValueError(
            f"--draws, --calibration-draws and --bins must be >= 1, got {args.draws}, "
            f"{args.calibration_draws}, {args.bins}"
        )
    check_int("--batch-size", args.batch_size)
    check_int("--glimpses", args.max_glimpses, minimum=0, optional=True)
    check_out_dir(args.dir, "dir")
    manifest = read_manifest(args.dir, "avp")
    device = resolve_device(args.device)
    avp = load_avp(args.dir, device)
    cfg = manifest["config"]
    T = cfg["T"] if args.max_glimpses is None else args.max_glimpses
    if T < 0:
        raise ValueError(f"--glimpses must be >= 0, got {T}")
    spec = resolve_dataset(args, [args.dir], default=None)
    data = spec.load(args.split)
    from ..sensor import check_sensor

    check_sensor(avp.grid, data.grid, f"the AVP {args.dir}", f"the dataset {spec.describe()}'s sensor")
    calibration = _recalibrate(avp, args.dir, manifest, T, args, device, spec) if args.recalibrate else None
    result = evaluate_avp(
        avp, data, T, seed=args.seed, batch_size=args.batch_size, device=device, bins=args.bins, draws=args.draws
    )
    result.update(dataset=cfg["dataset"], split=args.split, seed=args.seed, data=spec.to_dict())
    if calibration is not None:
        result["recalibrated"] = calibration
    atomic_write_json(args.dir / "evaluation.json", result)
    figure = plot_avp_evaluation(
        result, args.dir / "avp_evaluation.png", title=f"AVP on {cfg['dataset']} ({args.split})"
    )
    summary = _evaluation_summary(result, cfg["dataset"], spec, args)
    write_summary(args.dir, {**summary, "figure": str(figure)}, name="evaluation_summary.json")
    return 0


def _evaluation_summary(result: dict, dataset: str, spec, args) -> dict:
    """What ``evaluation_summary.json`` holds of an evaluation: accuracy, NLL and ECE per t, rounded."""
    rows = result["per_glimpses"]
    summary = {"dataset": dataset, "data": spec.describe(), "split": args.split, "images": rows[0]["images"]}
    summary.update(draws=args.draws, full_image_accuracy=round(result["full_image"]["accuracy"], 4))
    for key in ("accuracy", "nll", "ece"):
        summary[f"{key}_by_t"] = [round(r[key], 4) for r in rows]
    summary["ece_95_by_t"] = [[round(r["ece_low"], 4), round(r["ece_high"], 4)] for r in rows]
    summary["ece_noise_floor_by_t"] = [round(r["ece_noise_floor"], 4) for r in rows]
    summary["uncalibrated_ece_by_t"] = [round(r["uncalibrated"]["ece"], 4) for r in rows]
    return {**summary, "calibration": result["calibration"], "evaluation": str(args.dir / "evaluation.json")}
