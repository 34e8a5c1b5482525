"""Shared helpers of the on-disk datasets: checked paths, annotation lines, image loading, channel statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import os
    from typing import Sequence
    from torch.utils.data import Dataset

__all__ = ["require_dir", "require_file", "annotation_lines", "load_image", "channel_stats", "stratified_indices"]


def require_dir(path: str | os.PathLike | None, what: str) -> Path:
    if path is None:
        raise ValueError(f"root ({what}) is required, got None")
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder {path} does not exist")
    return path


def require_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    return path


def annotation_lines(path: Path, n_fields: int | None = None, skip: int = 0) -> Iterator[tuple[int, list[str]]]:
    """``(line_number, fields)`` of each non-empty line of a whitespace-separated annotation file.

    Refuses a line with a number of fields other than ``n_fields``, naming the file and line.
    """
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if number <= skip:
                continue
            fields = line.split()
            if not fields:
                continue
            if n_fields is not None and len(fields) != n_fields:
                raise ValueError(
                    f"{path}, line {number}: expected {n_fields} fields, got {len(fields)}: {line.rstrip()[:80]!r}"
                )
            yield number, fields


def parse_number(path: Path, number: int, text: str, kind=int):
    try:
        return kind(text)
    except ValueError:
        raise ValueError(
            f"{path}, line {number}: expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None


def load_image(
    path: Path, size: tuple[int, int] | None, box: Sequence[float] | None = None, grayscale: bool = False
) -> torch.Tensor:
    """Float32 (C, H, W) in [0, 1] of an image file, optionally cropped to ``box`` (left, top, right, bottom)
    and resized (bilinear, antialiased) to ``size`` (H, W)."""
    from .cache import decode_image, to_tensor

    return to_tensor(decode_image(path, size, box=box, grayscale=grayscale))


def channel_stats(dataset: Dataset, limit: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over the first ``limit`` items of ``dataset`` (deterministic: by position)."""
    n = min(limit, len(dataset))
    if n == 0:
        raise ValueError("cannot compute channel statistics of an empty dataset")
    total = sq = 0.0
    count = 0
    for i in range(n):  # reading files from disk is per image anyway
        x = dataset[i]["image"].double()
        total = total + x.sum(dim=(1, 2))
        sq = sq + (x * x).sum(dim=(1, 2))
        count += x.shape[1] * x.shape[2]
    mean = total / count
    std = (sq / count - mean * mean).clamp_min(1e-12).sqrt()
    return mean.float(), std.float()


class LazyChannelStats:
    """``mean`` / ``std`` per channel, computed on first use by ``_stats_fn(*self._stats_key)`` (a cached module
    function that reads the training images), so opening a dataset reads no image it does not need."""

    _mean_std: tuple[torch.Tensor, torch.Tensor] | None = None
    _stats_key: tuple = ()

    @staticmethod
    def _stats_fn(*key) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _channel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._mean_std is None:
            self._mean_std = type(self)._stats_fn(*self._stats_key)
        return self._mean_std

    @property
    def mean(self) -> torch.Tensor:
        return self._channel_stats()[0]

    @property
    def std(self) -> torch.Tensor:
        return self._channel_stats()[1]


class CachedImageFiles:
    """A split of image files read through ``self.image_cache``: item ``i`` is its image, label and row index."""

    indices: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.image_cache.image(i), "label": self.labels[i], "index": self.indices[i]}


def stratified_indices(labels: torch.Tensor | Sequence[int], n: int) -> torch.Tensor:
    """``n`` positions drawn across classes: the first item of each class, then the second of each, and so on.

    Figures of a few samples show every class this way, not just the first class of a sorted folder.  Labels
    that are not one int per item (multilabel) give ``n`` evenly spaced positions instead.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"`n` must be a positive number of samples, got {n!r}")
    labels = torch.as_tensor(labels)
    total = len(labels)
    n = min(int(n), total)
    if labels.ndim != 1 or labels.is_floating_point():
        return torch.linspace(0, total - 1, n).round().long().unique()
    order = torch.sort(labels, stable=True).indices
    sorted_labels = labels[order]
    first = torch.searchsorted(sorted_labels, sorted_labels, right=False)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(total) - first  # position of each item within its class
    classes = torch.unique(labels, return_inverse=True)[1]
    key = rank * (int(classes.max()) + 1) + classes
    return torch.sort(key, stable=True).indices[:n]
