"""``ppl-attention policy-sequences RUN --out STORE``: a trained network's greedy sequences as a sequence store
(PS-RAM's supervision)."""

from __future__ import annotations

from pathlib import Path

from ._common import add_command, check_in_dir, check_int, check_out_dir, write_summary


def register(sub, common):
    p = add_command(
        sub, common, "policy-sequences", run_policy_sequences, out="the sequence store to write (or resume)"
    )
    p.add_argument("run", type=Path, help="a finished training run directory (holds best.safetensors)")
    p.add_argument("--num-images", type=int, default=600, help="the first N training images (default: 600)")
    p.add_argument(
        "--indices-of",
        type=Path,
        default=None,
        metavar="STORE",
        help="instead: the training images of this sequence store (e.g. PS-NOGS's, so both supervise the same images)",
    )
    p.add_argument("--batch-size", type=int, default=500, help="images per forward pass")


def run_policy_sequences(args):
    """Take the greedy glimpse sequences of a finished `ppl-attention train` run on training images (their epoch-0
    canvases) and write them into a sequence store that `train --supervision nogs --sequences STORE` accepts."""
    import torch

    from ..artifacts import file_checksum, read_manifest
    from ..attention.own_sequences import write_policy_sequences
    from ..attention.run import load_run_network
    from ..attention.trainer import SplitData
    from ..data.spec import DatasetSpec
    from ..design.store import SequenceStore
    from ..runtime import resolve_device

    check_in_dir(args.run, "RUN", "a `ppl-attention train` run directory")
    check_int("--num-images", args.num_images)
    check_int("--batch-size", args.batch_size)
    check_out_dir(args.out)
    weights = args.run / "best.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"RUN {args.run} has no best.safetensors (expected a `ppl-attention train` run)")
    config = read_manifest(args.run, "attention-run")["config"]
    if not config.get("data"):
        raise ValueError(
            f"RUN {args.run} does not record its dataset spec (an older format); run `ppl-attention migrate {args.run}`"
        )
    spec = DatasetSpec.from_dict(config["data"], where=f"RUN {args.run}")
    train_cfg = config["train"]
    train = SplitData(spec.load("train"), train_cfg.get("attribute"))
    if args.indices_of is not None:
        check_in_dir(args.indices_of, "--indices-of", "a sequence store directory")
        indices = torch.tensor(SequenceStore.open(args.indices_of).indices(), dtype=torch.long)
    else:
        indices = torch.arange(min(args.num_images, len(train)))
    net = load_run_network(args.run).to(resolve_device(args.device))
    attribute = train_cfg.get("attribute")
    store = write_policy_sequences(
        net,
        train,
        indices,
        int(train_cfg["glimpses"]),
        args.out,
        {
            "dataset": spec.name,
            "data": spec.to_dict(),
            "seed": spec.seed,
            "task": "label" if attribute is None else str(attribute),
            "network": file_checksum(weights),
        },
        args.batch_size,
    )
    summary = {
        "store": str(args.out),
        "run": str(args.run),
        "data": spec.describe(),
        "sequences": len(store),
        "glimpses": store.T,
    }
    write_summary(args.out, summary)
    print(f"{len(store)} greedy sequences of {args.run} written to {args.out}")
    return 0
