"""Any folder of images, labelled by a ``filename,label`` CSV or by torchvision's ImageFolder layout (one
subfolder per class): resized, labels mapped to ints, split by seed."""

from __future__ import annotations

import csv
import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from ..sensor import Sensor
from ..runtime import derive_seed, generator
from ._files import CachedImageFiles, LazyChannelStats, channel_stats, require_dir
from .cache import ImageCache

if TYPE_CHECKING:
    import os

__all__ = ["ImageFolderCSV", "read_labels_csv", "read_class_folders"]


def read_labels_csv(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Filenames and label names of a ``filename,label`` CSV (an optional header row is skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels file {path} does not exist")
    names, labels = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 2:
                raise ValueError(f"{path}, line {number}: expected 2 fields (filename,label), got {len(row)}: {row}")
            name, label = row[0].strip(), row[1].strip()
            if number == 1 and (name.lower(), label.lower()) == ("filename", "label"):
                continue
            if not name or not label:
                raise ValueError(f"{path}, line {number}: empty filename or label: {row}")
            names.append(name)
            labels.append(label)
    if not names:
        raise ValueError(f"{path} lists no images")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"{path}: image {dup!r} is listed twice")
    return names, labels


def read_class_folders(root: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Filenames (relative to ``root``) and label names of torchvision's ImageFolder layout: ``root/CLASS/...``,
    every image file under a class's subfolder labelled with that subfolder's name."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    root = Path(root)
    try:
        classes, class_to_idx = find_classes(str(root))
        samples = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{root} holds no labels.csv and no class subfolders ({e})") from None
    if not samples:
        raise ValueError(
            f"the class subfolders of {root} ({classes[:5]}) hold no image files (extensions {list(IMG_EXTENSIONS)})"
        )
    names = [Path(path).relative_to(root).as_posix() for path, _ in samples]
    return names, [classes[k] for _, k in samples]


def _read_labels(root: Path, labels: str) -> tuple[list[str], list[str], str]:
    """Filenames, label names and where they came from: ``labels`` (a CSV) when it exists, else, for the
    default ``labels.csv``, the class subfolders of ``root``."""
    path = Path(labels) if Path(labels).is_absolute() else root / labels
    if path.is_file() or labels != "labels.csv":
        return (*read_labels_csv(path), str(path))
    return (*read_class_folders(root), f"the class subfolders of {root}")


def _sorted_labels(labels: list[str]) -> list[str]:
    """Label names in sorted order (numerically when every label is an integer, so "10" follows "9")."""
    unique = set(labels)
    if all(u.lstrip("-").isdigit() for u in unique):
        return sorted(unique, key=int)
    return sorted(unique)


#: The folder's default glimpse-noise schedule for the importance-sampling completion (std on 0..255 pixels after
#: 1, 2, ... glimpses, the last repeating): ``192 sqrt(t)``, the schedule measured on MNIST's glimpses (see
#: ``completion.importance.default_mnist_schedule``); give ``noise_schedule`` to change it (the paper used
#: 5 10 20 40 on CelebA-HQ, 80 on CUB).
DEFAULT_NOISE_SCHEDULE = tuple(round(192.0 * math.sqrt(t), 1) for t in range(1, 6))


def _noise_schedule(value) -> tuple[float, ...]:
    if value is None:
        return DEFAULT_NOISE_SCHEDULE
    values = [value] if isinstance(value, (int, float)) else list(value)
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(
            f"`noise_schedule` must be positive stds (0..255 pixels) after 1, 2, ... glimpses, got {value!r}"
        )
    return tuple(float(v) for v in values)


@functools.lru_cache(maxsize=8)
def _stats(root, labels, size, seed, valid_fraction, test_fraction, grayscale, limit):
    ds = ImageFolderCSV(
        root,
        "train",
        seed,
        labels=labels,
        size=size,
        valid_fraction=valid_fraction,
        test_fraction=test_fraction,
        grayscale=grayscale,
        _stats=False,
    )
    return channel_stats(ds, limit)


def _check_options(
    channels: int | None, grayscale: bool, split: str, size: int, valid_fraction: float, test_fraction: float
) -> bool:
    """Refuse contradictory or out-of-range folder options; whether the images are read as grayscale."""
    if channels is not None:
        if channels not in (1, 3):
            raise ValueError(f"`channels` must be 1 (grayscale) or 3 (RGB), got {channels!r}")
        if grayscale and channels == 3:
            raise ValueError("grayscale=true contradicts channels=3")
        grayscale = channels == 1
    if split not in ("train", "valid", "test"):
        raise ValueError(f"`split` must be one of ['train', 'valid', 'test'], got {split!r}")
    if not isinstance(size, (int, np.integer)) or size < 4:
        raise ValueError(f"`size` must be an int >= 4, got {size!r}")
    for name, v in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0 <= v < 1:
            raise ValueError(f"`{name}` must be in [0, 1), got {v!r}")
    if valid_fraction + test_fraction >= 1:
        raise ValueError(f"valid_fraction + test_fraction must be < 1, got {valid_fraction + test_fraction}")
    return grayscale


def _split_rows(n: int, seed: int, valid_fraction: float, test_fraction: float) -> dict[str, torch.Tensor]:
    """The rows of the labels file in each split, by a permutation drawn from ``seed`` (a non-zero fraction of
    three or more images keeps at least one)."""
    perm = torch.randperm(n, generator=generator(derive_seed(seed, "folder-split")))
    n_test = int(round(n * test_fraction)) if n < 3 or test_fraction == 0 else max(1, int(round(n * test_fraction)))
    n_valid = int(round(n * valid_fraction)) if n < 3 or valid_fraction == 0 else max(1, int(round(n * valid_fraction)))
    return {"test": perm[:n_test], "valid": perm[n_test : n_test + n_valid], "train": perm[n_test + n_valid :]}


class ImageFolderCSV(CachedImageFiles, LazyChannelStats, Dataset):
    """Images of ``root`` listed in ``root/labels.csv`` (``filename,label``), resized to ``size`` x ``size``;
    without that file, torchvision's ImageFolder layout (``root/CLASS/IMAGE``, the subfolder is the label).

    Label names map to ints in sorted order (numerically when every label is an integer).  The split is a seeded
    permutation: ``test_fraction`` and ``valid_fraction`` of the images (at least one each when there are 3+
    images) go to test and valid.

    Options (``--dataset-option KEY=VALUE`` on every command, recorded in every artefact): ``size`` (side in
    pixels, default 64), ``channels`` (1 = grayscale, 3 = RGB; or ``grayscale``), ``glimpse_size`` (default
    size // 5), ``stride`` (default glimpse_size // 2), ``noise_schedule`` (the completion's glimpse noise, default
    :data:`DEFAULT_NOISE_SCHEDULE`), ``labels``, ``valid_fraction``, ``test_fraction``, ``allows_flip``.
    """

    _stats_fn = staticmethod(_stats)  # the mean / std of LazyChannelStats

    task = "categorical"
    allows_flip = False

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        seed: int = 0,
        labels: str = "labels.csv",
        size: int = 64,
        valid_fraction: float = 0.1,
        test_fraction: float = 0.1,
        grayscale: bool = False,
        channels: int | None = None,
        glimpse_size: int | None = None,
        stride: int | None = None,
        noise_schedule: list | None = None,
        allows_flip: bool = False,
        stats_images: int = 256,
        _stats: bool = True,
    ) -> None:
        self.root = require_dir(root, "image")
        grayscale = _check_options(channels, grayscale, split, size, valid_fraction, test_fraction)
        self.noise_schedule = _noise_schedule(noise_schedule)
        self.name, self.split, self.seed, self.size = "folder", split, int(seed), int(size)
        names, label_names, labels_path = _read_labels(self.root, labels)
        self.class_names = tuple(_sorted_labels(label_names))
        lookup = {c: k for k, c in enumerate(self.class_names)}
        all_labels = torch.tensor([lookup[c] for c in label_names], dtype=torch.long)
        n = len(names)
        chosen = _split_rows(n, self.seed, valid_fraction, test_fraction)[split].sort().values
        if len(chosen) == 0:
            raise ValueError(f"split {split!r} of {labels_path} is empty ({n} images listed)")
        self.indices = chosen.clone()
        self.paths = [self.root / names[int(k)] for k in chosen]
        missing = [p for p in self.paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"image {missing[0]} listed in {labels_path} does not exist ({len(missing)} missing in split {split!r})"
            )
        self.labels = all_labels[chosen]
        self.num_classes = len(self.class_names)
        self.grayscale = bool(grayscale)
        self.channels = 1 if grayscale else 3
        self.allows_flip = bool(allows_flip)
        self.image_size = (self.size, self.size)
        self.image_cache = ImageCache(self.paths, self.image_size, grayscale=self.grayscale)
        g = int(glimpse_size) if glimpse_size else max(1, self.size // 5)
        self.grid = Sensor(self.size, g, stride=int(stride) if stride else max(1, g // 2))
        self._stats_key = (
            str(self.root),
            str(labels),
            self.size,
            self.seed,
            float(valid_fraction),
            float(test_fraction),
            self.grayscale,
            int(stats_images),
        )
        self._mean_std = None if _stats else (torch.zeros(self.channels), torch.ones(self.channels))

    def __repr__(self) -> str:
        return f"ImageFolderCSV(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"
