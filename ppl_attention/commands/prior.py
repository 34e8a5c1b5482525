"""``ppl-attention build-prior``: the image database + PCA index the importance-sampling completion draws from."""
from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..config import add_config_arguments, build_config, config_to_dict
from ._common import write_summary
from ._dataset import add_dataset_arguments, resolve_dataset


@dataclass
class BuildPriorConfig:
    database_size: int = field(default=200_000, metadata={"help": "rows of the database: images rendered "
                                                                  "(generated datasets) or dataset images used"})
    components: int = field(default=256, metadata={"help": "PCA components"})
    fit_samples: int = field(default=20_000, metadata={"help": "database rows the PCA is fitted on"})
    code_dtype: str = field(default="float32", metadata={"help": "storage type of the PCA codes (float16: half the "
                                                         "size, slower queries)",
                                                         "choices": ["float16", "float32"]})
    shift: int = field(default=0, metadata={"help": "also index glimpses shifted by up to this many pixels"})
    chunk_size: int = field(default=10_000, metadata={"help": "images per build chunk (the resume unit)"})
    flip: bool = field(default=False, metadata={"help": "add horizontal mirrors as extra rows (datasets where "
                                                        "flips are natural)"})
    kind: Optional[str] = field(default=None, metadata={
        "help": "which prior: 'generative' (the data's own generative process: digit x offset x clutter, MNIST "
                "canvases only) or 'database' (the paper's PCA-indexed database of whole images); default: the "
                "dataset's own (its default_prior: generative for the MNIST canvases, database elsewhere)",
        "choices": ["generative", "database"]})
    prototypes: int = field(default=32, metadata={"help": "generative prior: k-means prototype digits of the offset "
                                                          "proposal"})
    digit_components: int = field(default=24, metadata={"help": "generative prior: PCA components of the digit "
                                                                "pool (the digit proposal)"})


#: BuildPriorConfig fields that only the database prior reads.
DATABASE_ONLY = ("database_size", "components", "fit_samples", "code_dtype", "shift", "chunk_size", "flip")


def register(sub, common):
    p = sub.add_parser("build-prior", parents=[common], help="build an image database and its PCA index (the "
                       "prior of the importance-sampling image completion)",
                       description="Build DIR/database (memory-mapped uint8 images + labels) and DIR/pca (faiss PCA "
                       "codes + glimpse energies) in streaming chunks. An interrupted build resumes when run again "
                       "with the same settings; manifest.json is written last.")
    add_dataset_arguments(p, default="cluttered-mnist (random training digits at random positions), or any "
                          "dataset of load_dataset (its training images); --dataset-from AVP_DIR takes the AVP's")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace a finished prior built with other settings")
    add_config_arguments(p, BuildPriorConfig)
    p.set_defaults(func=run)


def run(args):
    from ..completion.pca_index import PCAIndexConfig
    from ..completion.prior import build_prior
    from ._common import check_int, check_out_dir

    cfg = build_config(BuildPriorConfig, args)
    check_int("--database-size", cfg.database_size)
    check_int("--components", cfg.components)
    check_int("--fit-samples", cfg.fit_samples)
    check_int("--chunk-size", cfg.chunk_size)
    check_int("--shift", cfg.shift, minimum=0)
    check_out_dir(args.out)
    previous = [args.out] if (args.out / "manifest.json").is_file() else []
    spec = resolve_dataset(args, previous, default="cluttered-mnist")
    data = spec.to_dict()
    from ..data.spec import default_prior

    kind = cfg.kind or default_prior(spec.name)
    if kind == "generative":
        return _run_generative(args, cfg, spec, kind)
    source, grid, n = _database_source(cfg, spec, data)
    index_config = PCAIndexConfig(components=cfg.components, fit_samples=cfg.fit_samples,
                                  code_dtype=cfg.code_dtype, shift=cfg.shift)
    t0 = time.perf_counter()
    summary = build_prior(args.out, source, n, grid, index_config, chunk_size=cfg.chunk_size, seed=args.seed,
                          flip=cfg.flip, overwrite=args.overwrite,
                          extra={"dataset": spec.name, "data": data, "command": config_to_dict(cfg)})
    summary.update({"dataset": spec.name, "data": spec.describe(), "seconds": round(time.perf_counter() - t0, 2),
                    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
    write_summary(args.out, summary)
    return 0


def _run_generative(args, cfg: BuildPriorConfig, spec, kind: str) -> int:
    """Build the generative prior, refusing the database-only settings it would silently ignore."""
    from ..completion.generative import build_generative_prior
    from ._common import check_int

    check_int("--prototypes", cfg.prototypes)
    check_int("--digit-components", cfg.digit_components)
    if spec.root is not None:
        raise ValueError(f"--root is not used by {spec.name} (built from bundled digits), got {spec.root!r}")
    # The generative prior has no database: a database setting the user changed would be silently ignored.
    defaults = BuildPriorConfig()
    ignored = [f"--{name.replace('_', '-')}" for name in DATABASE_ONLY
               if getattr(cfg, name) != getattr(defaults, name)]
    if ignored:
        raise ValueError(f"{', '.join(ignored)} set the database prior; the generative prior of {spec.name} does "
                         f"not use them (its settings are --digit-components and --prototypes); drop them, or "
                         f"pass --kind database")
    t0 = time.perf_counter()
    summary = build_generative_prior(args.out, spec, cfg.digit_components, cfg.prototypes, seed=args.seed,
                                     command=config_to_dict(cfg))
    summary.update({"dataset": spec.name, "data": spec.describe(), "kind": kind,
                    "seconds": round(time.perf_counter() - t0, 2)})
    write_summary(args.out, summary)
    return 0


def _database_source(cfg: BuildPriorConfig, spec, data: dict):
    """The database's image source, sensor grid and row count: fresh training canvases for the MNIST canvases
    (``data``'s split seed is then cleared), else the dataset's training images."""
    from ..completion.database import DatasetSource, mnist_canvas_source

    if spec.name.startswith(("cluttered-mnist", "translated-mnist")):
        if spec.root is not None:
            raise ValueError(f"--root is not used by {spec.name} (built from bundled digits), got {spec.root!r}")
        dataset = spec.load("valid")  # its sensor and canvas settings (valid: the smallest split to render)
        render = {k: getattr(dataset, k) for k, default in (("canvas_size", 60), ("n_clutter", 4),
                                                            ("clutter_size", 8)) if getattr(dataset, k) != default}
        source = mnist_canvas_source("train", cluttered=dataset.cluttered, **render)
        data["seed"] = None  # fresh canvases of the training digits: no split seed (the digits' split is fixed)
        return source, dataset.grid, cfg.database_size
    dataset = spec.load("train")
    if cfg.flip and not getattr(dataset, "allows_flip", False):
        raise ValueError(f"--flip was given but {spec.name} does not allow horizontal flips")
    return DatasetSource(dataset, name=spec.name), dataset.grid, min(cfg.database_size, len(dataset))
