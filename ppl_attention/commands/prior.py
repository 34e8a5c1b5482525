"""``ppl-attention build-prior``: the image database + PCA index the importance-sampling completion draws from."""

from __future__ import annotations


from ..config import add_config_arguments
from ..pipeline.prior import BuildPriorConfig
from ._common import add_command, stage_options
from ._dataset import add_dataset_arguments


def register(sub, common):
    p = add_command(sub, common, "build-prior", run, out="output directory")
    add_dataset_arguments(
        p,
        default="cluttered-mnist (random training digits at random positions), or any "
        "dataset of load_dataset (its training images); --dataset-from AVP_DIR takes the AVP's",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a finished prior built with other settings")
    add_config_arguments(p, BuildPriorConfig)


def run(args):
    """Build DIR/database (memory-mapped uint8 images + labels) and DIR/pca (faiss PCA codes + glimpse energies) in
    streaming chunks. An interrupted build resumes when run again with the same settings; manifest.json is written
    last."""
    from ..pipeline import build_prior

    build_prior(**stage_options(args))
    return 0
