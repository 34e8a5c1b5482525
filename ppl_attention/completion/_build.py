"""Resumable chunked builds of on-disk arrays (shared by the image database and the PCA index).

A build preallocates its ``.npy`` files (memory-mapped), fills them chunk by chunk, and after each chunk is
flushed records the chunk's digest in ``progress.json`` (atomically).  ``manifest.json`` is written last, so a
directory without one is never mistaken for a finished artefact.  An interrupted build is resumed when the
same config is asked for again (chunks are deterministic: one seed per chunk), and restarted from scratch when
another config is asked for.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np

from ..artifacts import MANIFEST, ArtifactError, atomic_write_json, read_json, read_manifest

log = logging.getLogger(__name__)

PROGRESS = "progress.json"


class ChunkedBuild:
    """Bookkeeping of one resumable build in ``directory`` with ``config`` (a JSON-able dict)."""

    def __init__(self, directory, config: dict, files: tuple[str, ...]):
        self.directory = Path(directory)
        self.config = config
        self.files = files
        self.done: dict[str, str] = {}

    def start(self) -> bool:
        """Prepare the directory; True when an interrupted build with the same config is being resumed."""
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        progress = d / PROGRESS
        if progress.is_file():
            try:
                state = read_json(progress)
            except ValueError:
                state = {}
            if state.get("config") == self.config and all((d / f).is_file() for f in self.files):
                self.done = dict(state.get("chunks", {}))
                log.info("resuming the build in %s: %d chunk(s) already written", d, len(self.done))
                return True
            log.info("discarding an interrupted build in %s made with another config", d)
        self.wipe()
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_json(progress, {"config": self.config, "chunks": {}})
        return False

    def wipe(self) -> None:
        """Remove the build's files (the manifest first, so nothing half-removed looks complete)."""
        d = self.directory
        for name in (MANIFEST, PROGRESS, *self.files):
            p = d / name
            if p.is_file():
                p.unlink()
            elif p.is_dir():
                shutil.rmtree(p)

    def is_done(self, chunk: int) -> bool:
        return str(chunk) in self.done

    def mark_done(self, chunk: int, digest: str) -> None:
        self.done[str(chunk)] = digest
        atomic_write_json(self.directory / PROGRESS, {"config": self.config, "chunks": self.done})

    def checksum(self, n_chunks: int) -> str:
        """One digest of the whole build: sha256 over the chunk digests in order."""
        missing = [c for c in range(n_chunks) if str(c) not in self.done]
        if missing:
            raise RuntimeError(f"build in {self.directory} is missing chunks {missing[:5]}")
        h = hashlib.sha256()
        for c in range(n_chunks):
            h.update(self.done[str(c)].encode())
        return f"sha256:{h.hexdigest()}"

    def finish(self) -> None:
        (self.directory / PROGRESS).unlink(missing_ok=True)


def chunk_digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def open_array(path: Path, shape, dtype, resume: bool) -> np.memmap:
    """The preallocated ``.npy`` memmap of a build (created, or reopened read-write when resuming)."""
    if resume:
        try:
            arr = np.load(path, mmap_mode="r+", allow_pickle=False)
        except (ValueError, OSError, EOFError):  # torn or foreign: rebuilt below (its chunks are redone)
            arr = None
        if arr is not None and arr.shape == tuple(shape) and arr.dtype == np.dtype(dtype):
            return arr
        del arr
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=tuple(shape))


def open_finished(directory, kind: str, what: str) -> tuple[Path, dict]:
    """The directory of a finished build of ``kind`` and its manifest; a missing directory, or one an interrupted
    build left without a manifest, is refused (``what``: the artefact, in words)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{what} directory {directory} does not exist")
    if not (directory / MANIFEST).is_file():
        hint = " (an interrupted build: run the build again to resume it)" if (directory / PROGRESS).is_file() else ""
        raise ArtifactError(f"{directory} is not a finished {what}: it has no {MANIFEST}{hint}")
    return directory, read_manifest(directory, kind)


def load_array(path: Path, shape, dtype, what: str) -> np.memmap:
    """Open a finished ``.npy`` read-only and check it against the manifest."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{what} file {path} is not a valid .npy array: {e}") from None
    if arr.shape != tuple(shape) or arr.dtype != np.dtype(dtype):
        raise ValueError(
            f"{what} file {path} holds {arr.dtype} {arr.shape}, the manifest says {np.dtype(dtype)} {tuple(shape)}"
        )
    return arr


def already_built(out_dir: Path, kind: str, expected: dict, overwrite: bool, what: str, other: str) -> bool:
    """Whether ``out_dir`` holds a finished artefact of ``kind`` whose manifest has the ``expected`` entries
    (``config``, ``inputs``); another finished artefact there is refused (``other``: what may differ) unless
    ``overwrite``."""
    if not (out_dir / MANIFEST).is_file():
        return False
    manifest = read_manifest(out_dir)
    if manifest.get("kind") == kind and all(manifest.get(k) == v for k, v in expected.items()):
        log.info("%s in %s is already built", what, out_dir)
        return True
    if not overwrite:
        raise ValueError(
            f"out_dir {out_dir} already holds a finished artefact built with another {other}; "
            "set `overwrite` or choose another directory"
        )
    return False
