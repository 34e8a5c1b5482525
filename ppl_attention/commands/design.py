"""``ppl-attention generate | export-sequences | import-sequences``: near-optimal glimpse sequences and their
paper-format import/export (their figures are :mod:`.design_plots`).

Which images ``generate`` designs: the first ``--num-images`` of the ``--split`` (default: training) split, or
exactly ``--indices``; ``--shard i/n`` keeps every n-th of those starting at i, so n machines can share a run
into one store (each image has its own seed, so the result does not depend on the sharding).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import GLIMPSES, add_config_arguments
from ..pipeline.design import GenerateConfig
from ._common import add_command, check_in_dir, check_out_dir, stage_options, write_summary
from ._dataset import add_dataset_arguments


def register(sub, common):
    p = add_command(sub, common, "generate", run_generate)
    add_config_arguments(p, GenerateConfig, skip=("T",))
    add_dataset_arguments(p, reads="the AVP and the prior")
    p.add_argument(
        "--glimpses", dest="T", type=int, default=None, help=f"T: glimpses per sequence (default {GLIMPSES})"
    )
    p.add_argument("-T", dest="T", type=int, default=None, help=argparse.SUPPRESS)  # the earlier spelling

    e = add_command(sub, common, "export-sequences", run_export, out="folder for {index}.txt files")
    e.add_argument("store", type=Path, help="sequence store directory")
    e.add_argument("--format", default="paper", choices=["paper"])
    e.add_argument(
        "--image-path-template",
        default=None,
        help="birds layout: last line of each file, e.g. data/birds/train/images/{index}.png",
    )

    i = add_command(sub, common, "import-sequences", run_import, out="sequence store directory to create")
    i.add_argument("src", type=Path, help="folder of {index}.txt files (e.g. celebhq/20 or birds)")
    i.add_argument("--grid", required=True, choices=["celeba-hq", "cub", "mnist"])
    i.add_argument("--dataset", default=None, help="dataset name to record in the manifest")
    i.add_argument("--task", default=None, help="task to record (e.g. the attribute index)")


def run_generate(args):
    """Greedy expected-posterior-entropy minimisation (the paper's Algorithm 1) for each image, with an AVP and an
    importance-sampling prior, into a resumable sequence store (DIR/manifest.json, DIR/records/{index:07d}.json,
    DIR/first_glimpse.json). Re-running skips finished images; a store built with another config is refused. Images:
    the first --num-images of --split (or --indices)."""
    from ..pipeline.design import DesignIncomplete, design_sequences

    try:
        design_sequences(**stage_options(args))
    except DesignIncomplete:  # the failed images are named on stderr; what was designed is kept
        return 1
    return 0


def run_export(args):
    """Write a sequence store in the paper's format: one {index}.txt file of glimpse locations per image."""
    from ..design.store import SequenceStore

    check_in_dir(args.store, "store", "a sequence store directory")
    check_out_dir(args.out)
    store = SequenceStore.open(args.store)
    files = store.export_paper(args.out, args.image_path_template)
    print(f"wrote {len(files)} sequence files to {args.out}")
    return 0


def run_import(args):
    """Read the paper's released sequences (a folder of {index}.txt files) into a sequence store."""
    from ..design.store import SequenceStore
    from ..sensor import Sensor

    check_in_dir(args.src, "src", "a folder of {index}.txt sequence files")
    check_out_dir(args.out)
    store = SequenceStore.import_paper(args.src, Sensor.preset(args.grid), args.out, args.dataset, args.task)
    write_summary(args.out, {"store": str(args.out), "sequences": len(store), "T": store.T, "grid": args.grid})
    return 0
