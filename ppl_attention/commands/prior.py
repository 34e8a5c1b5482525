"""``ppl-attention build-prior``: the image database + PCA index the importance-sampling completion draws from."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..completion.prior import PRIORS
from ..config import add_config_arguments, build_config, config_to_dict
from ._common import write_summary
from ._dataset import add_dataset_arguments, resolve_dataset


@dataclass
class BuildPriorConfig:
    database_size: int = field(
        default=200_000,
        metadata={"help": "rows of the database: images rendered (generated datasets) or dataset images used"},
    )
    components: int = field(default=256, metadata={"help": "PCA components"})
    fit_samples: int = field(default=20_000, metadata={"help": "database rows the PCA is fitted on"})
    code_dtype: str = field(
        default="float32",
        metadata={
            "help": "storage type of the PCA codes (float16: half the size, slower queries)",
            "choices": ["float16", "float32"],
        },
    )
    shift: int = field(default=0, metadata={"help": "also index glimpses shifted by up to this many pixels"})
    chunk_size: int = field(default=10_000, metadata={"help": "images per build chunk (the resume unit)"})
    flip: bool = field(
        default=False, metadata={"help": "add horizontal mirrors as extra rows (datasets where flips are natural)"}
    )
    kind: Optional[str] = field(
        default=None,
        metadata={
            "help": "which prior: 'generative' (the data's own generative process: digit x offset x clutter, MNIST "
            "canvases only) or 'database' (the paper's PCA-indexed database of whole images); default: the "
            "dataset's own (its default_prior: generative for the MNIST canvases, database elsewhere)",
            "choices": list(PRIORS),
        },
    )
    prototypes: int = field(
        default=32, metadata={"help": "generative prior: k-means prototype digits of the offset proposal"}
    )
    digit_components: int = field(
        default=24, metadata={"help": "generative prior: PCA components of the digit pool (the digit proposal)"}
    )


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
    from ._common import check_int, check_out_dir

    cfg = build_config(BuildPriorConfig, args)
    for name in ("database_size", "components", "fit_samples", "chunk_size", "prototypes", "digit_components"):
        check_int(f"--{name.replace('_', '-')}", getattr(cfg, name))
    check_int("--shift", cfg.shift, minimum=0)
    check_out_dir(args.out)
    previous = [args.out] if (args.out / "manifest.json").is_file() else []
    spec = resolve_dataset(args, previous, default="cluttered-mnist")
    from ..data import DATASETS
    from ..data.spec import default_prior

    if spec.root is not None and not DATASETS[spec.name].needs_root:
        raise ValueError(f"--root is not used by {spec.name} (built from bundled digits), got {spec.root!r}")
    kind = PRIORS[cfg.kind or default_prior(spec.name)]
    # a setting that only another kind of prior reads, changed from its default, would be silently ignored
    defaults = BuildPriorConfig()
    ignored = {
        name: other.name
        for other in PRIORS.values()
        for name in other.build_options
        if name not in kind.build_options and getattr(cfg, name) != getattr(defaults, name)
    }
    if ignored:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in ignored)
        own = ", ".join(f"--{name.replace('_', '-')}" for name in kind.build_options)
        raise ValueError(
            f"{flags} set the {' / '.join(sorted(set(ignored.values())))} prior; the {kind.name} prior "
            f"of {spec.name} does not use them (its settings are {own}); drop them, or pass --kind "
            f"{next(iter(ignored.values()))}"
        )
    t0 = time.perf_counter()
    summary = kind.build(
        args.out,
        spec,
        {name: getattr(cfg, name) for name in kind.build_options},
        args.seed,
        args.overwrite,
        config_to_dict(cfg),
    )
    summary.update(
        {
            "dataset": spec.name,
            "data": spec.describe(),
            "kind": kind.name,
            "seconds": round(time.perf_counter() - t0, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    )
    write_summary(args.out, summary)
    return 0
