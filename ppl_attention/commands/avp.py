"""``ppl-attention train-avp`` / ``evaluate-avp``: train the attentional variational posterior and measure its
accuracy, NLL and calibration against the number of random glimpses.

``train-avp`` runs under ``torchrun --nproc_per_node N`` too (DistributedDataParallel; rank 0 writes).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from ..config import add_config_arguments, build_config, config_to_dict

log = logging.getLogger(__name__)


def register(sub, common):
    from ..posterior.training import TrainAVPConfig

    p = sub.add_parser("train-avp", parents=[common], help="train the AVP g(label | glimpses) on random glimpses",
                       description="Train the attentional variational posterior on masked images with t ~ U{0..T} "
                       "random glimpses; keeps the best validation-NLL epoch, stops early, resumes from DIR's "
                       "checkpoint, calibrates a temperature. Writes DIR/avp.safetensors, avp.json, manifest.json.")
    p.add_argument("--dataset", default="cluttered-mnist", help="dataset name (default: cluttered-mnist)")
    p.add_argument("--root", default=None, help="dataset folder, for datasets read from disk")
    p.add_argument("--train-size", type=int, default=None,
                   help="training canvases per epoch for MNIST datasets (fresh canvases every epoch)")
    p.add_argument("--out", required=True, type=Path, help="output AVP directory")
    add_config_arguments(p, TrainAVPConfig)
    p.set_defaults(func=run_train)

    e = sub.add_parser("evaluate-avp", parents=[common], help="accuracy, NLL and ECE of an AVP against the number "
                       "of random glimpses 0..T on the test split",
                       description="Evaluate a trained AVP directory on the test split; writes DIR/evaluation.json, "
                       "DIR/summary.json and DIR/avp_evaluation.png.")
    e.add_argument("dir", type=Path, help="AVP directory written by train-avp")
    e.add_argument("--root", default=None, help="dataset folder, for datasets read from disk")
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument("--max-glimpses", type=int, default=None, help="largest t (default: the T it was trained with)")
    e.add_argument("--batch-size", type=int, default=512)
    e.set_defaults(func=run_evaluate)


def _init_distributed(device):
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo" if device.type == "cpu" else "nccl")
        return True
    return False


def run_train(args):
    import torch.distributed as dist

    from ..data import load_dataset
    from ..posterior.training import TrainAVPConfig, train_avp
    from ..runtime import resolve_device, seed_everything
    from ._common import write_summary

    cfg = build_config(TrainAVPConfig, args)
    device = resolve_device(args.device)
    started = _init_distributed(device)
    if device.type == "cuda" and started:
        import torch
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    seed_everything(args.seed)
    kw = {"size": args.train_size} if args.train_size else {}
    train = load_dataset(args.dataset, root=args.root, split="train", seed=args.seed, **kw)
    valid = load_dataset(args.dataset, root=args.root, split="valid", seed=args.seed)
    try:
        model = train_avp(train, valid, args.out, cfg, seed=args.seed, device=device, dataset_name=args.dataset)
        rank = dist.get_rank() if started else 0
        if rank == 0:
            from ..artifacts import read_json
            hist = read_json(args.out / "history.json")
            write_summary(args.out, {"dataset": args.dataset, "out": str(args.out), "config": config_to_dict(cfg),
                                     "best_epoch": hist["best_epoch"], "epochs_run": len(hist["history"]),
                                     "best_valid_nll": min(h["valid_nll"] for h in hist["history"]),
                                     "temperature": float(model.temperature)})
    finally:
        if started:
            dist.destroy_process_group()
    return 0


def run_evaluate(args):
    from ..artifacts import atomic_write_json, read_manifest
    from ..data import load_dataset
    from ..plots.posterior import plot_avp_evaluation
    from ..posterior import evaluate_avp, load_avp
    from ..runtime import resolve_device
    from ._common import write_summary

    if not args.dir.is_dir():
        raise FileNotFoundError(f"AVP directory {args.dir} does not exist")
    manifest = read_manifest(args.dir, "avp")
    device = resolve_device(args.device)
    avp = load_avp(args.dir, device)
    cfg = manifest["config"]
    T = cfg["T"] if args.max_glimpses is None else args.max_glimpses
    if T < 0:
        raise ValueError(f"--max-glimpses must be >= 0, got {T}")
    data = load_dataset(cfg["dataset"], root=args.root, split=args.split, seed=args.seed)
    if data.grid != avp.grid:
        raise ValueError(f"dataset {cfg['dataset']} uses grid {data.grid.to_dict()}, the AVP {avp.grid.to_dict()}")
    result = evaluate_avp(avp, data, T, seed=args.seed, batch_size=args.batch_size, device=device)
    result.update(dataset=cfg["dataset"], split=args.split, seed=args.seed)
    atomic_write_json(args.dir / "evaluation.json", result)
    figure = plot_avp_evaluation(result, args.dir / "avp_evaluation.png",
                                 title=f"AVP on {cfg['dataset']} ({args.split})")
    write_summary(args.dir, {
        "dataset": cfg["dataset"], "split": args.split, "n": result["full_image"]["n"],
        "full_image_accuracy": round(result["full_image"]["accuracy"], 4),
        "accuracy_by_t": [round(r["accuracy"], 4) for r in result["per_glimpses"]],
        "nll_by_t": [round(r["nll"], 4) for r in result["per_glimpses"]],
        "ece_by_t": [round(r["ece"], 4) for r in result["per_glimpses"]],
        "temperature": result["temperature"], "evaluation": str(args.dir / "evaluation.json"), "figure": str(figure)})
    return 0
