"""CUB-200-2011 from its official layout: birds cropped to their bounding box, resized, with part locations.

Reads ``images.txt``, ``bounding_boxes.txt``, ``image_class_labels.txt``, ``train_test_split.txt``,
``classes.txt``, ``parts/parts.txt``, ``parts/part_locs.txt`` and ``images/<folder>/<file>.jpg``.  The official
test split is kept; a seeded validation split (default 874 images, as in the paper) is carved from the
official training images.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from ..sensor import Sensor
from ..runtime import derive_seed, generator
from ._files import LazyChannelStats, annotation_lines, channel_stats, parse_number, require_dir, require_file
from .cache import ImageCache

if TYPE_CHECKING:
    import os

__all__ = ["CUB", "read_cub", "PAPER_VALID_SIZE", "CUB_PART_NAMES"]

PAPER_VALID_SIZE = 874
#: CUB-200-2011 parts.txt, in file order (part id = position + 1).
CUB_PART_NAMES = (
    "back",
    "beak",
    "belly",
    "breast",
    "crown",
    "forehead",
    "left eye",
    "left leg",
    "left wing",
    "nape",
    "right eye",
    "right leg",
    "right wing",
    "tail",
    "throat",
)
PAPER_TRAIN_TOTAL = 5994


def _root(root) -> Path:
    root = require_dir(root, "CUB-200-2011")
    if not (root / "images.txt").is_file() and (root / "CUB_200_2011" / "images.txt").is_file():
        root = root / "CUB_200_2011"
    return root


def _id_table(path: Path, n_fields: int, kinds) -> dict[int, tuple]:
    """``{id: (fields...)}`` of a CUB table whose first column is an id; refuses duplicate ids."""
    table = {}
    for number, fields in annotation_lines(path, n_fields):
        key = parse_number(path, number, fields[0])
        if key in table:
            raise ValueError(f"{path}, line {number}: id {key} appears twice")
        table[key] = tuple(parse_number(path, number, f, k) if k is not str else f for f, k in zip(fields[1:], kinds))
    return table


@functools.lru_cache(maxsize=4)
def read_cub(root: str) -> dict:
    """Parse the official annotation files of a CUB-200-2011 folder (every file checked, errors name the line)."""
    root = Path(root)
    f = {
        name: require_file(root / name, "CUB-200-2011")
        for name in (
            "images.txt",
            "bounding_boxes.txt",
            "image_class_labels.txt",
            "train_test_split.txt",
            "classes.txt",
            "parts/parts.txt",
            "parts/part_locs.txt",
        )
    }
    images = _id_table(f["images.txt"], 2, (str,))
    boxes = _id_table(f["bounding_boxes.txt"], 5, (float,) * 4)
    classes = _id_table(f["image_class_labels.txt"], 2, (int,))
    is_train = _id_table(f["train_test_split.txt"], 2, (int,))
    class_names = _id_table(f["classes.txt"], 2, (str,))
    part_names = _part_names(f["parts/parts.txt"])
    ids = sorted(images)
    n_classes = len(class_names)
    _check_tables(f, ids, boxes, classes, is_train, class_names)
    P = len(part_names)
    if sorted(part_names) != list(range(1, P + 1)):
        raise ValueError(f"{f['parts/parts.txt']}: part ids must be 1..{P}")
    parts = _part_locations(f["parts/part_locs.txt"], ids, P)
    return {
        "ids": ids,
        "paths": [root / "images" / images[i][0] for i in ids],
        "boxes": np.array([boxes[i] for i in ids], dtype=np.float64),
        "labels": np.array([classes[i][0] - 1 for i in ids], dtype=np.int64),
        "is_train": np.array([is_train[i][0] for i in ids], dtype=bool),
        "class_names": tuple(class_names[k][0].split(".", 1)[-1] for k in range(1, n_classes + 1)),
        "part_names": tuple(part_names[k] for k in range(1, P + 1)),
        "parts": parts,
    }


def _part_names(path: Path) -> dict[int, str]:
    """``parts/parts.txt``: part id -> name (names may contain spaces)."""
    part_names = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            key, _, name = line.strip().partition(" ")
            part_names[parse_number(path, number, key)] = name.strip()
    return part_names


def _check_tables(
    f: dict[str, Path], ids: list[int], boxes: dict, classes: dict, is_train: dict, class_names: dict
) -> None:
    """Refuse annotation tables whose image ids disagree with images.txt, or whose values are out of range."""
    for name, table in (
        ("bounding_boxes.txt", boxes),
        ("image_class_labels.txt", classes),
        ("train_test_split.txt", is_train),
    ):
        missing = sorted(set(ids) - set(table))
        extra = sorted(set(table) - set(ids))
        if missing or extra:
            raise ValueError(
                f"{f[name]}: its image ids do not match images.txt ({len(table)} entries for "
                f"{len(ids)} images; first mismatch id {(missing or extra)[0]})"
            )
    n_classes = len(class_names)
    if sorted(class_names) != list(range(1, n_classes + 1)):
        raise ValueError(f"{f['classes.txt']}: class ids must be 1..{n_classes}, got {sorted(class_names)[:5]}...")
    for i in ids:
        if not 1 <= classes[i][0] <= n_classes:
            raise ValueError(
                f"{f['image_class_labels.txt']}: image {i} has class {classes[i][0]}, "
                f"outside 1..{n_classes} of classes.txt"
            )
        if is_train[i][0] not in (0, 1):
            raise ValueError(
                f"{f['train_test_split.txt']}: image {i} has is_training {is_train[i][0]}, expected 0 or 1"
            )
        if boxes[i][2] <= 0 or boxes[i][3] <= 0:
            raise ValueError(f"{f['bounding_boxes.txt']}: image {i} has an empty box {boxes[i]}")


def _part_locations(path: Path, ids: list[int], P: int) -> np.ndarray:
    """``parts/part_locs.txt`` as (images, P, 3): (x, y, visible) per image (in ``ids`` order) and part."""
    position = {i: k for k, i in enumerate(ids)}
    parts = np.zeros((len(ids), P, 3), dtype=np.float32)
    for number, fields in annotation_lines(path, 5):
        img, part = parse_number(path, number, fields[0]), parse_number(path, number, fields[1])
        if img not in position or not 1 <= part <= P:
            raise ValueError(f"{path}, line {number}: unknown image {img} or part {part} (parts 1..{P})")
        parts[position[img], part - 1] = [parse_number(path, number, v, float) for v in fields[2:5]]
    return parts


def _valid_count(n_train: int, valid_size: int) -> int:
    """The paper's 874 of 5994; on a smaller folder, the same fraction (at least 1 when there are 2+ images)."""
    if valid_size < 0:
        raise ValueError(f"`valid_size` must be >= 0, got {valid_size}")
    if valid_size <= n_train // 2:
        return valid_size
    return min(n_train - 1, max(1, int(round(n_train * PAPER_VALID_SIZE / PAPER_TRAIN_TOTAL)))) if n_train > 1 else 0


@functools.lru_cache(maxsize=8)
def _stats(root: str, seed: int, valid_size: int, limit: int):
    return channel_stats(CUB(root, split="train", seed=seed, valid_size=valid_size, _stats=False), limit)


class CUB(LazyChannelStats, Dataset):
    """CUB-200-2011 crops (bounding box, resized to ``size`` x ``size``, default 128) with 200-way labels.

    Items carry ``parts`` (P, 3) = (row, col, visible) in crop pixels; a part outside the crop is marked not
    visible.  ``index`` is the official image id minus one.
    """

    _stats_fn = staticmethod(_stats)  # the mean / std of LazyChannelStats

    channels = 3
    allows_flip = True
    #: Glimpse-noise schedule of the importance-sampling completion (0..255 stds after 1, 2, ... glimpses):
    #: the paper's CUB sigma_p = 80 (app. A.3).
    noise_schedule = (80.0,)
    task = "categorical"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        seed: int = 0,
        valid_size: int = PAPER_VALID_SIZE,
        size: int = 128,
        stats_images: int = 256,
        _stats: bool = True,
    ) -> None:
        self.root = _root(root)
        if split not in ("train", "valid", "test"):
            raise ValueError(f"`split` must be one of ['train', 'valid', 'test'], got {split!r}")
        if not isinstance(size, (int, np.integer)) or size < 32:
            raise ValueError(f"`size` must be an int >= 32 (the glimpse is 32 px at 128), got {size!r}")
        self.split, self.seed, self.size, self.name = split, int(seed), int(size), "cub"
        meta = read_cub(str(self.root))
        train_pos = np.flatnonzero(meta["is_train"])
        n_valid = _valid_count(len(train_pos), int(valid_size))
        perm = torch.randperm(len(train_pos), generator=generator(derive_seed(self.seed, "cub-valid"))).numpy()
        chosen = {
            "valid": np.sort(train_pos[perm[:n_valid]]),
            "train": np.sort(train_pos[perm[n_valid:]]),
            "test": np.flatnonzero(~meta["is_train"]),
        }[split]
        if len(chosen) == 0:
            raise ValueError(f"split {split!r} of {self.root} is empty")
        self.positions = chosen
        self.indices = torch.tensor([meta["ids"][k] - 1 for k in chosen], dtype=torch.long)
        self.paths = [meta["paths"][k] for k in chosen]
        self.boxes = torch.from_numpy(meta["boxes"][chosen])  # (x, y, w, h) in original pixels
        self.labels = torch.from_numpy(meta["labels"][chosen])
        self.class_names = meta["class_names"]
        self.part_names = meta["part_names"]
        self.num_classes = len(self.class_names)
        self.image_size = (self.size, self.size)
        self.grid = (
            Sensor.cub()
            if self.size == 128
            else Sensor(self.size, max(1, self.size // 4), stride=max(1, self.size // 16))
        )
        # Parts into crop coordinates: (row, col, visible), all images at once.
        raw = torch.from_numpy(meta["parts"][chosen])  # (N, P, 3) = (x, y, visible)
        x, y, vis = raw.unbind(-1)
        bx, by, bw, bh = (self.boxes[:, k, None].float() for k in range(4))
        row = (y - by) * self.size / bh
        col = (x - bx) * self.size / bw
        inside = (row >= 0) & (row < self.size) & (col >= 0) & (col < self.size)
        self.parts = torch.stack([row, col, ((vis > 0) & inside).float()], -1).float()
        boxes = [(x, y, x + w, y + h) for x, y, w, h in self.boxes.tolist()]
        self.image_cache = ImageCache(self.paths, self.image_size, boxes=boxes)
        self._stats_key = (str(self.root), self.seed, int(valid_size), int(stats_images))
        self._mean_std = None if _stats else (torch.zeros(3), torch.ones(3))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        path = self.paths[i]
        if not path.is_file():
            raise FileNotFoundError(f"CUB image {path} (listed in {self.root / 'images.txt'}) does not exist")
        image = self.image_cache.image(i)
        return {"image": image, "label": self.labels[i], "index": self.indices[i], "parts": self.parts[i]}

    def __repr__(self) -> str:
        return f"CUB(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"
