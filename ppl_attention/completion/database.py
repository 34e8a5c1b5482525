"""An on-disk image database: N images as a memory-mapped uint8 ``.npy`` array, with labels where known.

It is the support of the empirical image prior the importance sampler draws from (the paper's 1.5 M GAN
samples).  Built in streaming chunks from an :class:`ImageSource`:

- :func:`mnist_canvas_source`: random *training* digits at random positions (optionally cluttered),
- :class:`ModelSource`: any trained generative model, a callable ``batch_size -> images``,
- :class:`DatasetSource`: an image folder or any Dataset whose items are dicts with ``image`` (and ``label``).

Layout of a database directory (kind ``"image-database"``)::

    images.npy    uint8 (N, C, H, W), memory-mapped
    labels.npy    int64 (N,) (categorical; -1 unknown) or uint8 (N, A) (multi-label); absent if unknown
    manifest.json written LAST: config, rows, shapes and a checksum over the chunk digests

``flip=True`` doubles the database with horizontal mirrors stored as ordinary rows (row ``2i`` is source
image ``i``, row ``2i + 1`` its mirror), so a flipped image is scored exactly like any other image by both the
proposal and the exact stage -- nothing has to mirror PCA regions or locations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Protocol, TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from ..artifacts import ArtifactError, write_manifest
from ..runtime import derive_seed, generator as make_generator
from ._build import ChunkedBuild, already_built, chunk_digest, load_array, open_array, open_finished

if TYPE_CHECKING:
    import os
    from typing import Iterator, Sequence
    from torch.utils.data import Dataset

__all__ = [
    "ImageSource",
    "GeneratorSource",
    "ModelSource",
    "DatasetSource",
    "mnist_canvas_source",
    "build_database",
    "ImageDatabase",
    "KIND",
]

log = logging.getLogger(__name__)

KIND = "image-database"


class ImageSource(Protocol):
    """Where database rows come from.

    ``batch(start, count, generator)`` returns uint8 images ``(count, C, H, W)`` (numpy) and labels
    ``(count,)`` / ``(count, A)`` or None; it must be deterministic given ``(start, count, generator)``.
    """

    image_shape: tuple[int, int, int]
    label_shape: Optional[tuple]
    size: Optional[int]  # rows available (None: unlimited, e.g. a generator)

    def describe(self) -> dict: ...

    def batch(self, start: int, count: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray | None]: ...


def _to_uint8(images, shape, what: str) -> np.ndarray:
    """uint8 (n, C, H, W) from uint8 or float-in-[0, 1] images (tensor or array)."""
    x = images.detach().cpu() if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(
            f"{what} returned images of shape {tuple(x.shape)}, expected (n, {', '.join(map(str, shape))})"
        )
    if x.dtype == torch.uint8:
        return x.numpy()
    if not x.dtype.is_floating_point:
        raise ValueError(f"{what} returned images of dtype {x.dtype}; expected uint8 or float in [0, 1]")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what} returned NaN or infinite pixels")
    return x.float().mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()


@dataclass
class GeneratorSource:
    """Rows from ``fn(n, generator) -> (images, labels or None)`` (uint8 or float [0, 1] images)."""

    fn: Callable
    image_shape: tuple
    label_shape: Optional[tuple] = ()
    name: str = "generator"
    options: dict = None
    size: Optional[int] = None

    def describe(self) -> dict:
        return {"source": self.name, **(self.options or {})}

    def batch(self, start: int, count: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        images, labels = self.fn(count, generator)
        images = _to_uint8(images, self.image_shape, self.name)
        if self.label_shape is None or labels is None:
            return images, None
        return images, np.asarray(torch.as_tensor(labels).cpu().numpy())


def mnist_canvas_source(split: str = "train", cluttered: bool = True, **render_kw) -> GeneratorSource:
    """Canvases (60 x 60 unless ``canvas_size``) of random digits of ``split`` at random positions (clutter from
    the same split)."""
    from ..data.mnist import load_digits, render_canvases

    digits, labels = load_digits(split)
    size = int(render_kw.get("canvas_size", 60))

    def fn(n, g):
        images, lab, _ = render_canvases(digits, labels, n, g, cluttered=cluttered, **render_kw)
        return images, lab

    name = "cluttered-mnist" if cluttered else "translated-mnist"
    return GeneratorSource(fn, (1, size, size), (), name, {"split": split, "cluttered": cluttered, **render_kw})


@dataclass
class ModelSource:
    """Rows sampled from a trained generative model: ``model(batch_size) -> images`` (float [0, 1] or uint8),
    or ``-> (images, labels)``.  Torch's global RNG is seeded per chunk (and restored afterwards) so that a
    resumed build is identical to an uninterrupted one."""

    model: Callable
    image_shape: tuple
    name: str = "model"
    label_shape: Optional[tuple] = None
    size: Optional[int] = None

    def describe(self) -> dict:
        return {"source": self.name}

    def batch(self, start: int, count: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            out = self.model(count)
        labels = None
        if isinstance(out, (tuple, list)):
            out, labels = out
        images = _to_uint8(out, self.image_shape, self.name)
        if images.shape[0] != count:
            raise ValueError(f"{self.name} returned {images.shape[0]} images for a batch of {count}")
        if self.label_shape is None or labels is None:
            return images, None
        return images, np.asarray(torch.as_tensor(labels).cpu().numpy())


class DatasetSource:
    """Rows ``start .. start + count`` of a Dataset whose items are dicts with ``image`` (C, H, W) float in
    [0, 1] (and optionally ``label``), e.g. ``load_dataset("folder", root=...)``."""

    def __init__(self, dataset: Dataset, name: str | None = None, num_workers: int = 0) -> None:
        if len(dataset) == 0:
            raise ValueError("dataset is empty; an image database needs at least one image")
        first = dataset[0]
        if not isinstance(first, dict) or "image" not in first:
            raise ValueError("dataset items must be dicts with an 'image' entry (C, H, W)")
        self.dataset = dataset
        self.image_shape = tuple(first["image"].shape)
        label = first.get("label")
        self.label_shape = None if label is None else tuple(torch.as_tensor(label).shape)
        self.size = len(dataset)
        self.name = name or getattr(dataset, "name", type(dataset).__name__)
        self.num_workers = num_workers

    def describe(self) -> dict:
        return {"source": self.name, "rows": self.size, "split": getattr(self.dataset, "split", None)}

    def batch(self, start: int, count: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        from torch.utils.data import DataLoader, Subset

        loader = DataLoader(
            Subset(self.dataset, range(start, start + count)), batch_size=count, num_workers=self.num_workers
        )
        item = next(iter(loader))
        images = _to_uint8(item["image"], self.image_shape, self.name)
        labels = None if self.label_shape is None else item["label"].numpy()
        return images, labels


def _label_dtype(label_shape) -> Optional[np.dtype]:
    if label_shape is None:
        return None
    return np.dtype(np.int64) if len(label_shape) == 0 else np.dtype(np.uint8)


def _check_build_args(source: ImageSource, n, chunk_size) -> int:
    """The number of images to build (the source's size when ``n`` is None), with ``n`` and ``chunk_size``
    checked."""
    if n is None:
        if source.size is None:
            raise ValueError("n (number of images) is required for a source without a fixed size")
        n = source.size
    if not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"`n` must be a positive number of images, got {n!r}")
    if source.size is not None and n > source.size:
        raise ValueError(f"n={n} exceeds the {source.size} images the source has")
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size <= 0:
        raise ValueError(f"`chunk_size` must be a positive int, got {chunk_size!r}")
    return n


def _write_chunk(
    source: ImageSource, c: int, n: int, chunk_size: int, seed: int, flip: bool, images, labels, build
) -> None:
    """Draw chunk ``c`` with its own generator, check its shapes, write it (and its mirror when ``flip``) into
    the memory-mapped arrays and mark it done with its digest."""
    C, H, W = source.image_shape
    copies = 2 if flip else 1
    start = c * chunk_size
    count = min(chunk_size, n - start)
    g = make_generator(derive_seed(seed, "image-database", c))
    x, y = source.batch(start, count, g)
    if x.shape != (count, C, H, W):
        raise ValueError(f"source returned images of shape {x.shape}, expected {(count, C, H, W)}")
    if flip:
        x = np.stack([x, x[..., ::-1]], axis=1).reshape(count * 2, C, H, W)
    images[start * copies : (start + count) * copies] = x
    if labels is not None:
        y = np.asarray(y).astype(labels.dtype)
        if y.shape != (count, *source.label_shape):
            raise ValueError(f"source returned labels of shape {y.shape}, expected {(count, *source.label_shape)}")
        if flip:
            y = np.repeat(y, 2, axis=0)
        labels[start * copies : (start + count) * copies] = y
        labels.flush()
    images.flush()
    build.mark_done(c, chunk_digest(x, *(() if labels is None else (y,))))


def build_database(
    out_dir: str | os.PathLike,
    source: ImageSource,
    n: int | None = None,
    chunk_size: int = 10_000,
    seed: int = 0,
    flip: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> "ImageDatabase":
    """Build (or resume, or reuse) an image database of ``n`` source images in ``out_dir``.

    Chunk ``c`` is drawn with its own generator (``derive_seed(seed, "image-database", c)``), so a build that
    was interrupted and resumed is byte-identical to one that was not.  A finished database with the same
    config is reused; one with another config is refused unless ``overwrite``.
    """
    out_dir = Path(out_dir)
    n = _check_build_args(source, n, chunk_size)
    copies = 2 if flip else 1
    rows = int(n) * copies
    C, H, W = source.image_shape
    label_dtype = _label_dtype(source.label_shape)
    config = {"source": source.describe(), "n": int(n), "flip": bool(flip), "rows": rows}
    config.update(
        chunk_size=int(chunk_size),
        seed=int(seed),
        image_shape=[C, H, W],
        label_shape=None if source.label_shape is None else list(source.label_shape),
    )
    if already_built(out_dir, KIND, {"config": config}, overwrite, "image database", "config"):
        return ImageDatabase(out_dir)
    files = ("images.npy",) + (("labels.npy",) if label_dtype is not None else ())
    build = ChunkedBuild(out_dir, config, files)
    resume = build.start()
    images = open_array(out_dir / "images.npy", (rows, C, H, W), np.uint8, resume)
    labels = None
    if label_dtype is not None:
        labels = open_array(out_dir / "labels.npy", (rows, *source.label_shape), label_dtype, resume)
    n_chunks = -(-int(n) // int(chunk_size))
    todo = [c for c in range(n_chunks) if not build.is_done(c)]
    for c in tqdm(todo, desc=f"database {out_dir.name}", unit="chunk", disable=not progress):
        _write_chunk(source, c, n, chunk_size, seed, flip, images, labels, build)
    checksum = build.checksum(n_chunks)
    del images, labels
    labels_info = dict(label_shape=config["label_shape"], label_dtype=None if label_dtype is None else label_dtype.name)
    write_manifest(out_dir, KIND, config, inputs={}, rows=rows, image_shape=[C, H, W], **labels_info, checksum=checksum)
    build.finish()
    log.info("image database of %d rows written to %s", rows, out_dir)
    return ImageDatabase(out_dir)


class ImageDatabase:
    """A finished image database opened read-only (memory-mapped)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        directory, manifest = open_finished(directory, KIND, "image database")
        self.directory = directory
        self.manifest = manifest
        self.config = manifest["config"]
        self.rows = int(manifest["rows"])
        if self.rows <= 0:
            raise ArtifactError(f"image database {directory} is empty")
        self.image_shape = tuple(manifest["image_shape"])
        self.checksum = manifest["checksum"]
        self.images = load_array(directory / "images.npy", (self.rows, *self.image_shape), np.uint8, "images")
        self.labels = None
        if manifest.get("label_dtype") is not None:
            self.labels = load_array(
                directory / "labels.npy", (self.rows, *manifest["label_shape"]), manifest["label_dtype"], "labels"
            )

    def __len__(self) -> int:
        return self.rows

    def __repr__(self) -> str:
        return f"ImageDatabase({str(self.directory)!r}, rows={self.rows}, image_shape={self.image_shape})"

    def get_uint8(self, indices: torch.Tensor | Sequence[int]) -> np.ndarray:
        """uint8 rows ``(k, C, H, W)`` in the order given (read in sorted order, for locality)."""
        idx = np.asarray(torch.as_tensor(indices).cpu().numpy(), dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.rows):
            raise ValueError(f"`indices` must lie in [0, {self.rows - 1}], got range [{idx.min()}, {idx.max()}]")
        order = np.argsort(idx, kind="stable")
        out = np.empty((idx.size, *self.image_shape), dtype=np.uint8)
        out[order] = self.images[idx[order]]
        return out

    def get(self, indices: torch.Tensor | Sequence[int], device: str | torch.device | None = None) -> torch.Tensor:
        """Float images ``(k, C, H, W)`` in [0, 1]."""
        return torch.from_numpy(self.get_uint8(indices)).to(device).float().div_(255.0)

    def get_labels(self, indices: torch.Tensor | Sequence[int]) -> Optional[torch.Tensor]:
        if self.labels is None:
            return None
        idx = np.asarray(torch.as_tensor(indices).cpu().numpy(), dtype=np.int64).reshape(-1)
        return torch.from_numpy(np.asarray(self.labels[idx]))

    def batches(self, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, uint8 array)`` over the whole database in order."""
        for start in range(0, self.rows, batch_size):
            yield start, np.asarray(self.images[start : start + batch_size])

    def verify(self) -> None:
        """Re-read every chunk and compare with the manifest's checksum (raises ArtifactError on a mismatch)."""
        import hashlib

        chunk = int(self.config["chunk_size"]) * (2 if self.config["flip"] else 1)
        h = hashlib.sha256()
        for start in range(0, self.rows, chunk):
            parts = [np.asarray(self.images[start : start + chunk])]
            if self.labels is not None:
                parts.append(np.asarray(self.labels[start : start + chunk]))
            h.update(chunk_digest(*parts).encode())
        if f"sha256:{h.hexdigest()}" != self.checksum:
            raise ArtifactError(
                f"image database {self.directory} does not match its manifest checksum (files changed or corrupt)"
            )
