"""Decoded images cached on disk: every image of a split decoded and resized once into a uint8 ``.npy`` memmap.

Decoding a JPEG / PNG and resizing it costs milliseconds per image, far more than a network's forward pass on a
GPU, and training reads every image once per epoch.  :class:`ImageCache` decodes a split's images once (in a
thread pool: PIL releases the GIL while decoding) and serves them from a memory-mapped array afterwards.

The cache file's name is a hash of everything that decides its pixels: the image paths, their sizes and
modification times, the crop boxes, the output size and the colour mode.  A changed file, size or crop is a new
key, so a stale cache is never read.  The file is written under a temporary name and renamed into place, so a
reader sees either nothing or a complete array; a file of the wrong shape or length (a partial copy, a truncated
disk) is rebuilt.  When an image cannot be decoded, nothing is cached and every access decodes its own file, so
the unreadable image fails alone, with its own error.

Where: ``$PPL_ATTENTION_IMAGE_CACHE`` (a folder), else ``$XDG_CACHE_HOME/ppl_attention/images``, else
``~/.cache/ppl_attention/images``.  ``PPL_ATTENTION_IMAGE_CACHE=off`` decodes on every access instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

__all__ = ["ImageCache", "cache_dir", "decode_image"]

log = logging.getLogger(__name__)

ENV = "PPL_ATTENTION_IMAGE_CACHE"
#: Accesses after which a split's missing cache is built (before that each access decodes its own file).
BUILD_AFTER = 32
FORMAT_VERSION = 1


def cache_dir() -> Path | None:
    """The folder of the image caches, or ``None`` when ``$PPL_ATTENTION_IMAGE_CACHE`` is ``off``."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in ("off", "0", "false", "none", "no"):
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ppl_attention" / "images"


def decode_image(
    path: Path, size: tuple[int, int] | None, box: Sequence[float] | None = None, grayscale: bool = False
) -> np.ndarray:
    """uint8 (H, W, C) of an image file, optionally cropped to ``box`` (left, top, right, bottom) and resized
    (bilinear) to ``size`` (H, W)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L" if grayscale else "RGB")
        if box is not None:
            im = im.crop(tuple(float(b) for b in box))
        if size is not None and im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """Float32 (C, H, W) in [0, 1] of a uint8 (H, W, C) array."""
    return torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1).float().div_(255.0)


class ImageCache:
    """The images ``paths`` (each cropped to its ``boxes`` entry, if given) decoded at ``size`` into one uint8
    (N, H, W, C) memmap, built on first use and shared by every later process that asks for the same images.

    ``image(i)`` is float32 (C, H, W) in [0, 1], identical to decoding the file then.  With the cache off
    (``directory=None``) every call decodes the file.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        size: tuple[int, int],
        boxes: Sequence[Sequence[float]] | None = None,
        grayscale: bool = False,
        directory: Path | None | str = "default",
        workers: int | None = None,
    ) -> None:
        if boxes is not None and len(boxes) != len(paths):
            raise ValueError(f"`boxes` must have one entry per path ({len(paths)}), got {len(boxes)}")
        self.paths = [Path(p) for p in paths]
        self.size = (int(size[0]), int(size[1]))
        self.boxes = None if boxes is None else [tuple(float(b) for b in box) for box in boxes]
        self.grayscale = bool(grayscale)
        self.channels = 1 if grayscale else 3
        self.directory = cache_dir() if directory == "default" else (None if directory is None else Path(directory))
        self.workers = workers or min(8, os.cpu_count() or 1)
        self._array: np.ndarray | None = None
        self._file: Path | None = None
        self._uncachable = False
        self._accesses = 0

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), *self.size, self.channels)

    def key(self) -> str:
        """A hash of what decides the pixels: paths, file sizes and mtimes, boxes, size, colour mode."""
        h = hashlib.sha256(
            json.dumps(
                {"v": FORMAT_VERSION, "size": self.size, "grayscale": self.grayscale, "boxes": self.boxes}
            ).encode()
        )
        for p in self.paths:
            try:
                st = p.stat()
            except FileNotFoundError:
                raise FileNotFoundError(f"image {p} does not exist") from None
            h.update(f"\0{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        return h.hexdigest()[:32]

    @property
    def file(self) -> Path | None:
        return None if self.directory is None else self.directory / f"{self.key()}.npy"

    def _decode(self, i: int) -> np.ndarray:
        return decode_image(self.paths[i], self.size, None if self.boxes is None else self.boxes[i], self.grayscale)

    def _open(self, file: Path) -> np.ndarray | None:
        """The cached array, or ``None`` when the file is missing, partial or of another shape."""
        try:
            arr = np.load(file, mmap_mode="r")
        except (OSError, ValueError, EOFError):
            return None
        if arr.shape != self.shape or arr.dtype != np.uint8:
            return None
        return arr

    def build(self) -> Path:
        """Decode every image into the cache file (temporary name, then renamed); returns the file."""
        file = self.file
        if file is None:
            raise ValueError("the image cache is off (PPL_ATTENTION_IMAGE_CACHE=off); there is no file to build")
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{file.stem}.", suffix=".npy.tmp", dir=file.parent)
        os.close(fd)
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=self.shape)
            with ThreadPoolExecutor(self.workers) as pool:  # decoded in threads, copied in order
                for i, arr in enumerate(pool.map(self._decode, range(len(self.paths)))):
                    out[i] = arr
            out.flush()
            del out
            os.replace(tmp, file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        log.info("cached %d decoded images (%s) in %s", len(self.paths), "x".join(map(str, self.shape[1:])), file)
        return file

    def array(self, build: bool = True) -> np.ndarray | None:
        """The (N, H, W, C) uint8 memmap, built if missing or broken (unless ``build`` is false); ``None`` with the
        cache off, or when it is missing and not built."""
        if self._array is not None or self.directory is None or self._uncachable:
            return self._array
        if self._file is None:
            self._file = self.file
        arr = self._open(self._file)
        if arr is None and build:
            if self._file.exists():
                log.warning("image cache %s is incomplete or of another shape; rebuilding it", self._file)
            try:
                self.build()
            except (OSError, ValueError, SyntaxError) as e:  # PIL's errors of an unreadable file
                log.warning("not caching these %d images (decoding each on access): %s", len(self.paths), e)
                self._uncachable = True
                return None
            arr = self._open(self._file)
            if arr is None:
                raise OSError(f"image cache {self._file} could not be read back after it was written")
        self._array = arr
        return arr

    def image(self, i: int) -> torch.Tensor:
        """Image ``i``, float32 (C, H, W) in [0, 1].  The first accesses of a split with no cache yet decode their
        files; the ``BUILD_AFTER``-th builds the cache (a figure of a few samples does not decode a whole split)."""
        self._accesses += 1
        arr = self.array(build=self._accesses >= min(BUILD_AFTER, len(self.paths)))
        return to_tensor(self._decode(i) if arr is None else arr[i])

    def __getstate__(self):  # a memmap is reopened, not pickled, in worker processes
        return {**self.__dict__, "_array": None, "_file": None}
