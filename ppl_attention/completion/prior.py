"""A prior directory (kind ``"prior"``): an image database and its PCA index, built in one go.

Layout::

    DIR/database/   the image database (:mod:`.database`)
    DIR/pca/        its PCA index (:mod:`.pca_index`)
    DIR/manifest.json   written last: the config and the checksums of both

Open one with :func:`ppl_attention.completion.importance.open_prior` or
``ImportanceCompletion.from_prior(DIR)``.

:data:`PRIORS` is the registry of the kinds of prior directory (the database above, and the MNIST canvases'
generative process of :mod:`.generative`): what each is built from, how its sampler is opened, and what it must
leave out for a design image (no oracle).  A prior's manifest names its kind (``config["prior"]``).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from ..artifacts import MANIFEST, ArtifactError, read_manifest, write_manifest
from ..sensor import Sensor
from .base import DEFAULT_K1
from .database import ImageSource, build_database
from .importance import PRIOR_KIND
from .pca_index import PCAIndexConfig, build_pca_index

if TYPE_CHECKING:
    import os
    from torch.utils.data import Dataset
    from ..data.spec import DatasetSpec
    from .base import Completion

__all__ = ["build_prior", "prior_type", "prior_kind", "open_completion", "PriorKind", "PRIORS", "DATABASE"]

#: The manifest's ``config["prior"]`` of a database prior.
DATABASE = "database"


def build_prior(
    out_dir: str | os.PathLike,
    source: ImageSource,
    n: int | None,
    grid: Sensor,
    index_config: PCAIndexConfig | None = None,
    chunk_size: int = 10_000,
    seed: int = 0,
    flip: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    extra: dict | None = None,
) -> dict:
    """Build (or resume) the database and the PCA index in ``out_dir``; returns a summary dict."""
    out_dir = Path(out_dir)
    index_config = index_config or PCAIndexConfig()
    from ..artifacts import clean_temporaries

    if (out_dir / MANIFEST).is_file():
        if read_manifest(out_dir).get("kind") != PRIOR_KIND:
            raise ValueError(f"out_dir {out_dir} holds another kind of artefact; choose another directory")
        if overwrite:
            (out_dir / MANIFEST).unlink()
    clean_temporaries(out_dir)  # what a killed build left half-written
    t0 = time.perf_counter()
    database = build_database(
        out_dir / "database",
        source,
        n,
        chunk_size=chunk_size,
        seed=seed,
        flip=flip,
        overwrite=overwrite,
        progress=progress,
    )
    t1 = time.perf_counter()
    index = build_pca_index(
        out_dir / "pca", database, grid, index_config, seed=seed, overwrite=overwrite, progress=progress
    )
    t2 = time.perf_counter()
    config = {
        "prior": DATABASE,
        "source": source.describe(),
        "n": database.config["n"],
        "flip": flip,
        "chunk_size": chunk_size,
    }
    config.update(seed=seed, grid=grid.to_dict(), index=index.config, **(extra or {}))
    write_manifest(out_dir, PRIOR_KIND, config, inputs={"database": database.checksum, "index": index.checksum})
    summary = {"rows": len(database), "image_shape": list(database.image_shape), "components": index.k}
    summary.update(
        explained_variance=index.manifest["explained_variance"],
        positions=len(index.positions),
        database_seconds=round(t1 - t0, 2),
        index_seconds=round(t2 - t1, 2),
    )
    return {**summary, "disk_bytes": _disk_bytes(out_dir), "out": str(out_dir)}


def _disk_bytes(out_dir: Path) -> int:
    """The size of the prior's own files only: summary.json (written after this) must not count, or a rerun of a
    finished build would report another size than the first run."""
    files = [p for d in ("database", "pca") for p in (out_dir / d).rglob("*") if p.is_file()] + [out_dir / MANIFEST]
    return sum(p.stat().st_size for p in files)


def _dataset_source(spec: DatasetSpec, size: int, flip: bool) -> tuple[ImageSource, Sensor, int, dict]:
    """The database's image source, sensor, row count and recorded data spec: fresh training canvases for the
    MNIST canvases (no split seed then: the digits' split is fixed), else the dataset's training images."""
    from .database import DatasetSource, mnist_canvas_source

    data = spec.to_dict()
    if spec.name.startswith(("cluttered-mnist", "translated-mnist")):
        dataset = spec.load("valid")  # its sensor and canvas settings (valid: the smallest split to render)
        render = {
            k: getattr(dataset, k)
            for k, default in (("canvas_size", 60), ("n_clutter", 4), ("clutter_size", 8))
            if getattr(dataset, k) != default
        }
        data["seed"] = None
        return mnist_canvas_source("train", cluttered=dataset.cluttered, **render), dataset.grid, size, data
    dataset = spec.load("train")
    if flip and not getattr(dataset, "allows_flip", False):
        raise ValueError(f"`flip` was given but {spec.name} does not allow horizontal flips")
    return DatasetSource(dataset, name=spec.name), dataset.grid, min(size, len(dataset)), data


def _build_database(out_dir, spec: DatasetSpec, options: dict, seed: int, overwrite: bool, command: dict) -> dict:
    source, grid, n, data = _dataset_source(spec, options["database_size"], options["flip"])
    index_config = PCAIndexConfig(**{f.name: options[f.name] for f in fields(PCAIndexConfig)})
    return build_prior(
        out_dir,
        source,
        n,
        grid,
        index_config,
        chunk_size=options["chunk_size"],
        seed=seed,
        flip=options["flip"],
        overwrite=overwrite,
        extra={"dataset": spec.name, "data": data, "command": command},
    )


def _build_generative(out_dir, spec: DatasetSpec, options: dict, seed: int, overwrite: bool, command: dict) -> dict:
    from .generative import build_generative_prior

    return build_generative_prior(
        out_dir, spec, options["digit_components"], options["prototypes"], seed=seed, command=command
    )


def _open_database(directory, **kw) -> Completion:
    from .importance import ImportanceCompletion

    return ImportanceCompletion.from_prior(directory, **kw)


def _open_generative(directory, **kw) -> Completion:
    from .generative import open_generative_prior

    return open_generative_prior(directory, **kw)


def _database_check(directory, split: str) -> None:
    source = read_manifest(Path(directory) / "database").get("config", {}).get("source", {})
    if source.get("split") == split and "rows" not in source:
        raise ValueError(
            f"`prior` {directory} was rendered from the digits of the {split} split, which the design "
            f"images show, and cannot leave them out: an oracle. Design for another split, use the "
            "generative prior, or set `allow_oracle` for a diagnosis"
        )


def _row_hashes(database) -> dict:
    """Every row's content digest -> its rows (one pass over the database)."""
    out: dict = {}
    for start, chunk in database.batches(4096):
        for k, row in enumerate(chunk):
            out.setdefault(hashlib.blake2b(row.tobytes(), digest_size=16).digest(), []).append(start + k)
    return out


def _database_exclusions(sampler: Completion, directory, data: Dataset, split: str):
    """A design image's own rows (and mirrors) and every exact duplicate of it."""
    database = sampler.database
    source = database.config.get("source", {})
    if source.get("split") != split or "rows" not in source:
        return None
    copies = 2 if database.config.get("flip") else 1
    hashes = _row_hashes(database)

    def rows(index, image):
        own = [index * copies + c for c in range(copies)] if index * copies < len(database) else []
        u8 = image.detach().cpu().float().mul(255.0).round().clamp(0, 255).to(torch.uint8).numpy()
        dup = hashes.get(hashlib.blake2b(np.ascontiguousarray(u8).tobytes(), digest_size=16).digest(), [])
        return torch.tensor(sorted(set(own) | set(dup)), dtype=torch.long)

    return rows


def _generative_exclusions(sampler: Completion, directory, data: Dataset, split: str):
    """A design canvas's own digit, when the prior's digit pool is the canvases' split."""
    if split != read_manifest(Path(directory))["config"]["pool"] or not hasattr(data, "source_digits"):
        return None
    return lambda index, image: data.source_digits([index])[0]


@dataclass(frozen=True)
class PriorKind:
    """One kind of prior directory: how ``build-prior`` makes it, how its sampler is opened, and what it must leave
    out for a design image."""

    name: str
    build: Callable[..., dict]  # (out_dir, spec, options, seed, overwrite, command) -> summary
    build_options: tuple[str, ...]  # the ``build-prior`` settings it reads (its ``options``)
    open: Callable[..., Completion]  # (directory, grid=, k1=, sigma=, sigma_q=, **sampler_options) -> its sampler
    sampler_options: tuple[str, ...]  # the design settings only its sampler reads
    on_device: bool  # its sampler runs on the design's device (else on the CPU)
    own_noise: bool  # its manifest records the completions' noise schedule (``config["sigma"]``)
    exclusions: Callable  # (sampler, directory, data, split) -> fn(index, image) -> ids, or None: nothing to leave
    check: Callable[..., None] | None = None  # (directory, split): refuse a prior holding a split inseparably


#: The kinds of prior directory by name (a prior manifest's ``config["prior"]``): the one registry that opening,
#: building (``build-prior --kind``), the no-oracle exclusions and the noise schedule look up.
PRIORS: dict[str, PriorKind] = {
    kind.name: kind
    for kind in (
        PriorKind(
            "generative",
            _build_generative,
            ("digit_components", "prototypes"),
            _open_generative,
            ("min_ess", "max_k1"),
            on_device=False,
            own_noise=True,
            exclusions=_generative_exclusions,
        ),
        PriorKind(
            DATABASE,
            _build_database,
            ("database_size", *(f.name for f in fields(PCAIndexConfig)), "chunk_size", "flip"),
            _open_database,
            ("target_ess", "shift"),
            on_device=True,
            own_noise=False,
            exclusions=_database_exclusions,
            check=_database_check,
        ),
    )
}


def prior_kind(directory: str | os.PathLike) -> PriorKind:
    """The :data:`PRIORS` entry of a prior directory, named by its manifest."""
    config = read_manifest(directory, PRIOR_KIND).get("config", {})
    if "prior" not in config:
        raise ArtifactError(
            f"`prior` {directory} does not name its kind (a prior of an older format); run "
            f"`ppl-attention migrate {directory}`"
        )
    if config["prior"] not in PRIORS:
        raise ValueError(f"`prior` {directory} is a {config['prior']!r} prior; the known kinds are {list(PRIORS)}")
    return PRIORS[config["prior"]]


def prior_type(directory: str | os.PathLike) -> str:
    """The kind of prior a prior directory holds (a key of :data:`PRIORS`)."""
    return prior_kind(directory).name


def open_completion(directory: str | os.PathLike, grid: Sensor | None = None, k1: int = DEFAULT_K1, **kw) -> Completion:
    """The importance sampler of any prior directory (``kw``: that kind's sampler options)."""
    return prior_kind(directory).open(directory, grid=grid, k1=k1, **kw)
