"""``ppl-attention build-prior``: the image database + PCA index the importance-sampling completion draws from."""

from __future__ import annotations

from pathlib import Path

from ..config import add_config_arguments
from ..pipeline.prior import BuildPriorConfig
from ._common import stage_options
from ._dataset import add_dataset_arguments


def register(sub, common):
    p = sub.add_parser(
        "build-prior",
        parents=[common],
        help="build an image database and its PCA index (the prior of the importance-sampling image completion)",
        description="Build DIR/database (memory-mapped uint8 images + labels) and DIR/pca (faiss PCA "
        "codes + glimpse energies) in streaming chunks. An interrupted build resumes when run again "
        "with the same settings; manifest.json is written last.",
    )
    add_dataset_arguments(
        p,
        default="cluttered-mnist (random training digits at random positions), or any "
        "dataset of load_dataset (its training images); --dataset-from AVP_DIR takes the AVP's",
    )
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace a finished prior built with other settings")
    add_config_arguments(p, BuildPriorConfig)
    p.set_defaults(func=run)


def run(args):
    from ..pipeline import build_prior

    build_prior(**stage_options(args))
    return 0
