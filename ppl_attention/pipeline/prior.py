"""``build_prior``: the image prior the completions draw from (the dataset's generative process, or a
PCA-indexed database of its images)."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..checks import check_int, check_out_dir
from ..completion.pca_index import PCAIndexConfig
from ..completion.prior import PRIORS
from ..config import build_config, config_to_dict, setting
from ._stage import DATASET_OPTIONS, dataset_flags, resolve_dataset, running, split_options, write_summary
from .handles import DatasetArg, PathArg, PriorHandle

__all__ = ["BuildPriorConfig", "build_prior"]


@dataclass
class BuildPriorConfig(PCAIndexConfig):
    """build-prior's settings: the database prior's PCA index (:class:`PCAIndexConfig`), its rows, and the
    generative prior's proposal."""

    database_size: int = setting(
        200_000, "rows of the database: images rendered (generated datasets) or dataset images used"
    )
    chunk_size: int = setting(10_000, "images per build chunk (the resume unit)")
    flip: bool = setting(False, "add horizontal mirrors as extra rows (datasets where flips are natural)")
    kind: Optional[str] = setting(
        None,
        "which prior: 'generative' (the data's own generative process: digit x offset x clutter, MNIST "
        "canvases only) or 'database' (the paper's PCA-indexed database of whole images); default: the "
        "dataset's own (its default_prior: generative for the MNIST canvases, database elsewhere)",
        choices=list(PRIORS),
    )
    prototypes: int = setting(32, "generative prior: k-means prototype digits of the offset proposal")
    digit_components: int = setting(24, "generative prior: PCA components of the digit pool (the digit proposal)")


def build_prior(
    out: PathArg,
    dataset: DatasetArg = None,
    *,
    avp: PathArg | None = None,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = False,
    **options,
) -> PriorHandle:
    """Build the image prior of the completions into ``out`` (``ppl-attention build-prior``): the dataset's own
    (generative for the MNIST canvases, a PCA-indexed database elsewhere); ``avp`` lends its dataset.  Options
    are :class:`BuildPriorConfig`'s fields, ``overwrite`` (replace a finished prior built with other settings) and
    the dataset's (``root``, ``data_seed``, ``dataset_option``, ``dataset_from``)."""
    (values,), rest = split_options("build-prior", options, [BuildPriorConfig], ("overwrite", *DATASET_OPTIONS))
    if avp is not None and dataset is None:
        rest["dataset_from"] = [avp]
    with running(quiet, **rest):
        cfg = build_config(BuildPriorConfig, yaml_path=rest.get("config"), **values)
        summary = _build(Path(out), cfg, dataset, rest, seed)
    return PriorHandle(Path(out), summary)


def _check_options(cfg: BuildPriorConfig, kind, spec) -> None:
    """Refuse a setting that only another kind of prior reads, changed from its default (it would be ignored)."""
    defaults = BuildPriorConfig()
    ignored = {
        name: other.name
        for other in PRIORS.values()
        for name in other.build_options
        if name not in kind.build_options and getattr(cfg, name) != getattr(defaults, name)
    }
    if ignored:
        names = ", ".join(f"`{name}`" for name in ignored)
        own = ", ".join(f"`{name}`" for name in kind.build_options)
        raise ValueError(
            f"{names} set the {' / '.join(sorted(set(ignored.values())))} prior; the {kind.name} prior "
            f"of {spec.name} does not use them (its settings are {own}); drop them, or pass `kind` "
            f"{next(iter(ignored.values()))}"
        )


def _build(out: Path, cfg: BuildPriorConfig, dataset, rest: dict, seed: int) -> dict:
    """Check the settings, resolve the dataset, build the prior and write its summary."""
    for name in ("database_size", "chunk_size", "prototypes", "digit_components"):  # the index's: checked by it
        check_int(name, getattr(cfg, name))
    check_out_dir(out)
    previous = [out] if (out / "manifest.json").is_file() else []
    flags = dataset_flags(dataset, **{k: rest.get(k) for k in (*DATASET_OPTIONS, "config")})
    spec = resolve_dataset(flags, previous, default="cluttered-mnist", seed=seed)
    from ..data import DATASETS
    from ..data.spec import default_prior

    if spec.root is not None and not DATASETS[spec.name].needs_root:
        raise ValueError(f"`root` is not used by {spec.name} (built from bundled digits), got {spec.root!r}")
    kind = PRIORS[cfg.kind or default_prior(spec.name)]
    _check_options(cfg, kind, spec)
    t0 = time.perf_counter()
    options = {name: getattr(cfg, name) for name in kind.build_options}
    summary = kind.build(out, spec, options, seed, bool(rest.get("overwrite")), config_to_dict(cfg))
    summary.update(
        {
            "dataset": spec.name,
            "data": spec.describe(),
            "kind": kind.name,
            "seconds": round(time.perf_counter() - t0, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    )
    return write_summary(out, summary)
