"""A prior directory (kind ``"prior"``): an image database and its PCA index, built in one go.

Layout::

    DIR/database/   the image database (:mod:`.database`)
    DIR/pca/        its PCA index (:mod:`.pca_index`)
    DIR/manifest.json   written last: the config and the checksums of both

Open one with :func:`ppl_attention.completion.importance.open_prior` or
``ImportanceCompletion.from_prior(DIR)``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..artifacts import MANIFEST, read_manifest, write_manifest
from ..sensor import Sensor
from .base import DEFAULT_K1
from .database import ImageSource, build_database
from .importance import PRIOR_KIND
from .pca_index import PCAIndexConfig, build_pca_index

if TYPE_CHECKING:
    import os
    from .base import Completion

__all__ = ["build_prior", "prior_type", "open_completion"]


def build_prior(out_dir: str | os.PathLike, source: ImageSource, n: int | None, grid: Sensor,
                index_config: PCAIndexConfig | None = None, chunk_size: int = 10_000, seed: int = 0, flip: bool = False,
                overwrite: bool = False, progress: bool = True, extra: dict | None = None) -> dict:
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
    database = build_database(out_dir / "database", source, n, chunk_size=chunk_size, seed=seed, flip=flip,
                              overwrite=overwrite, progress=progress)
    t1 = time.perf_counter()
    index = build_pca_index(out_dir / "pca", database, grid, index_config, seed=seed, overwrite=overwrite,
                            progress=progress)
    t2 = time.perf_counter()
    config = {"source": source.describe(), "n": database.config["n"], "flip": flip, "chunk_size": chunk_size}
    config.update(seed=seed, grid=grid.to_dict(), index=index.config, **(extra or {}))
    write_manifest(out_dir, PRIOR_KIND, config, inputs={"database": database.checksum, "index": index.checksum})
    summary = {"rows": len(database), "image_shape": list(database.image_shape), "components": index.k}
    summary.update(explained_variance=index.manifest["explained_variance"], positions=len(index.positions),
                   database_seconds=round(t1 - t0, 2), index_seconds=round(t2 - t1, 2))
    return {**summary, "disk_bytes": _disk_bytes(out_dir), "out": str(out_dir)}


def _disk_bytes(out_dir: Path) -> int:
    """The size of the prior's own files only: summary.json (written after this) must not count, or a rerun of a
    finished build would report another size than the first run."""
    files = [p for d in ("database", "pca") for p in (out_dir / d).rglob("*") if p.is_file()] + [out_dir / MANIFEST]
    return sum(p.stat().st_size for p in files)


def prior_type(directory: str | os.PathLike) -> str:
    """``"generative"`` or ``"database"``: which kind of prior a prior directory holds."""
    return read_manifest(directory, PRIOR_KIND).get("config", {}).get("prior", "database")


def open_completion(directory: str | os.PathLike, grid: Sensor | None = None, k1: int = DEFAULT_K1, **kw) -> Completion:
    """The importance sampler of any prior directory: :func:`open_generative_prior` for a generative prior, the
    paper's :class:`~.importance.ImportanceCompletion` over a database otherwise (``kw``: that sampler's options)."""
    from .generative import GENERATIVE, open_generative_prior
    from .importance import ImportanceCompletion

    if prior_type(directory) == GENERATIVE:
        return open_generative_prior(directory, grid=grid, k1=k1, **kw)
    return ImportanceCompletion.from_prior(directory, grid=grid, k1=k1, **kw)
