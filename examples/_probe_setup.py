"""What examples/probe_imitability.py and probe_dispersion.py share: a trained network, its data, and sequences.

The network: ``--run RUN`` (a finished ``ppl-attention train`` run), or a small RAM trained here into
``OUT/ram`` (``--ram-iterations``).  The sequences: ``--sequences STORE`` (a store of training images, e.g. the
near-optimal ones or PS-RAM's), or, to run without one, the hand-crafted bounding-box sequences of the training
canvases (PS-HGS's: the digit's centre, then its quadrants).  Everything on the training images' epoch-0 canvases,
the ones supervision uses.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ppl_attention.artifacts import read_manifest
from ppl_attention.attention import NetworkConfig, RunConfig, TrainConfig, train_run
from ppl_attention.attention.run import load_run_network
from ppl_attention.attention.supervision import bbox_sequences, load_store_sequences
from ppl_attention.attention.trainer import SplitData
from ppl_attention.data.spec import DatasetSpec
from ppl_attention.sensor import NO_GLIMPSE


def add_arguments(p) -> None:
    p.add_argument("--run", type=Path, default=None, help="a finished training run (default: train a small RAM)")
    p.add_argument(
        "--sequences",
        type=Path,
        default=None,
        help="sequence store of training images (default: the digits' bounding-box sequences)",
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dataset", default="cluttered-mnist", help="without --run: the dataset of the small RAM")
    p.add_argument("--ram-iterations", type=int, default=300, help="without --run: the small RAM's iterations")
    p.add_argument("--glimpses", type=int, default=5, help="without --run: the small RAM's T")
    p.add_argument(
        "--stride",
        type=int,
        default=None,
        help="without --run: the grid's stride in pixels (MNIST canvases: 1 = every pixel, 2,401 "
        "locations; default: the dataset's)",
    )
    p.add_argument("--num-images", type=int, default=5000, help="at most this many sequences are used")
    p.add_argument("--test-images", type=int, default=1000, help="test images for the accuracies")
    p.add_argument("--seed", type=int, default=0)


def _small_ram(args) -> Path:
    out = args.out / "ram"
    spec = DatasetSpec.make(
        args.dataset, seed=args.seed, options=None if args.stride is None else {"stride": args.stride}
    )
    cfg = TrainConfig(
        glimpses=args.glimpses,
        iterations=args.ram_iterations,
        batch_size=64,
        lr=3e-3,
        validate_every=max(args.ram_iterations // 3, 1),
        tensorboard=False,
        mc_samples=2,
    )
    net_cfg = NetworkConfig(hidden=64, glimpse_dim=64, location_embedding="mlp")
    datasets = {s: spec.load(s) for s in ("train", "valid", "test")}
    train_run(
        RunConfig(dataset=spec.name),
        cfg,
        net_cfg,
        datasets,
        out,
        args.seed,
        torch.device("cpu"),
        progress=False,
        figures=False,
    )
    return out


def setup(args) -> dict:
    """``net`` (the run's best), ``T``, ``grid``, ``train`` / ``test`` (:class:`SplitData`), ``images`` (N, C, H,
    W) and ``sequences`` (N, T) of the training images with a full-length sequence, ``test_images``,
    ``test_labels``, ``source`` (what the sequences are)."""
    run = args.run if args.run is not None else _small_ram(args)
    config = read_manifest(run, "attention-run")["config"]
    spec = DatasetSpec.from_dict(config["data"], where=f"--run {run}")
    T, attribute = int(config["train"]["glimpses"]), config["train"].get("attribute")
    net = load_run_network(run).eval()
    train, test = SplitData(spec.load("train"), attribute), SplitData(spec.load("test"), attribute)
    train.set_epoch(0)
    if args.sequences is not None:
        idx, seqs = load_store_sequences(args.sequences, spec.name, net.grid, max(T, 1), spec.seed, spec.to_dict())
        keep = (seqs != NO_GLIMPSE).all(1)
        idx, seqs, source = idx[keep], seqs[keep], f"store {args.sequences}"
        if seqs.shape[1] > T:
            seqs = seqs[:, :T]
    else:
        idx = torch.arange(min(args.num_images, len(train)))
        seqs, source = bbox_sequences(train.annotations(idx)["bbox"], net.grid, T), "bounding-box (hgs)"
    idx, seqs = idx[: args.num_images], seqs[: args.num_images]
    images, _ = train.batch(idx)
    test_pos = torch.arange(min(args.test_images, len(test)))
    test_images, test_labels = test.batch(test_pos)
    return {
        "run": str(run),
        "net": net,
        "T": seqs.shape[1],
        "grid": net.grid,
        "images": images,
        "sequences": seqs,
        "test_images": test_images,
        "test_labels": test_labels,
        "source": source,
    }


def print_table(rows: list[dict], columns: dict[str, str]) -> None:
    """A Markdown table on stderr: ``columns`` maps each row key to its header and format, ``"header:.3f"``."""
    import sys

    heads = [spec.split(":", 1)[0] for spec in columns.values()]
    formats = [spec.split(":", 1)[1] if ":" in spec else "" for spec in columns.values()]
    print("| " + " | ".join(heads) + " |", file=sys.stderr)
    print("|" + "---|" * len(heads), file=sys.stderr)
    for r in rows:
        print("| " + " | ".join(format(r[k], f) for k, f in zip(columns, formats)) + " |", file=sys.stderr)
