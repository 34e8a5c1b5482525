"""CelebA-HQ from a local folder: faces, 40 binary attributes, and the paper's splits by image index.

Images are looked up as ``{i:06d}.png`` / ``.jpg`` (or ``{i}.jpg``) in the root, or in CelebAMask-HQ's
``CelebA-HQ-img/`` folder.  Attributes come from either the paper's annotation file (one line per image:
``000000.png`` then 40 labels in {-1, 1}, alphabetical attribute order) or CelebAMask-HQ's
``CelebAMask-HQ-attribute-anno.txt`` (a count line, a line of the 40 names, then ``0.jpg  1 -1 ...``).
Labels are mapped to {0, 1}.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from ..sensor import Sensor
from ._files import CachedImageFiles, LazyChannelStats, annotation_lines, channel_stats, parse_number, require_dir
from .cache import ImageCache

if TYPE_CHECKING:
    import os

__all__ = ["CelebAHQ", "CELEBA_ATTRIBUTES", "SPLIT_RANGES", "read_attributes", "scaled_celeba_grid"]

#: The 40 CelebA attributes in their (alphabetical) file order; index 20 is ``Male``.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)

#: The paper's splits by CelebA-HQ image index (half-open ranges).
SPLIT_RANGES = {"train": (0, 27000), "valid": (27000, 27500), "test": (27500, 30000)}

#: Annotation file names tried in the root (and its parent) when none is given.
ANNOTATION_NAMES = (
    "CelebAMask-HQ-attribute-anno.txt",
    "annotations.txt",
    "attributes.txt",
    "list_attr_celeba_hq.txt",
    "list_attr_celebahq.txt",
    "celeba_hq_attributes.txt",
)
IMAGE_FOLDERS = (".", "CelebA-HQ-img", "CelebAMask-HQ/CelebA-HQ-img", "images")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def scaled_celeba_grid(size: int) -> Sensor:
    """The paper's grid (224 px, 16 px glimpses, 50 x 50) with the same relative positions at ``size`` px."""
    if size == 224:
        return Sensor.celeba_hq()
    base = Sensor.celeba_hq()
    g = max(1, int(round(16 * size / 224)))
    pos = sorted({min(int(round(p * size / 224)), size - g) for p in base.rows})
    return Sensor(size, g, rows=pos, cols=pos)


def _image_index(path: Path, number: int, name: str) -> int:
    stem = name.rsplit(".", 1)[0]
    if not stem.isdigit():
        raise ValueError(f"{path}, line {number}: expected an image name like 000000.png, got {name!r}")
    return int(stem)


def read_attributes(path: str | os.PathLike) -> tuple[dict[int, np.ndarray], tuple[str, ...]]:
    """``{image index: int8 (40,) in {0, 1}}`` and the attribute names, from either annotation format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CelebA-HQ annotation file {path} does not exist")
    with open(path, encoding="utf-8") as f:
        head = [line.split() for _, line in zip(range(2), f)]
    names, skip, expected = CELEBA_ATTRIBUTES, 0, None
    if head and len(head[0]) == 1 and head[0][0].isdigit():  # CelebAMask-HQ / CelebA: count, names, rows
        expected = int(head[0][0])
        if len(head) < 2 or len(head[1]) != 40:
            raise ValueError(
                f"{path}, line 2: expected the 40 attribute names, got {len(head[1]) if len(head) > 1 else 0} fields"
            )
        names, skip = tuple(head[1]), 2
    elif head and len(head[0]) == 40 and not head[0][0].lstrip("-").isdigit():  # a header of names only
        names, skip = tuple(head[0]), 1
    labels: dict[int, np.ndarray] = {}
    for number, fields in annotation_lines(path, 41, skip=skip):
        idx = _image_index(path, number, fields[0])
        values = np.array([parse_number(path, number, v) for v in fields[1:]], dtype=np.int64)
        if not np.isin(values, (-1, 1)).all():
            bad = int(values[~np.isin(values, (-1, 1))][0])
            raise ValueError(f"{path}, line {number}: attribute labels must be -1 or 1, got {bad}")
        if idx in labels:
            raise ValueError(f"{path}, line {number}: image {fields[0]} is annotated twice")
        labels[idx] = ((values + 1) // 2).astype(np.int8)
    if expected is not None and expected != len(labels):
        raise ValueError(f"{path}, line 1: says {expected} images but the file annotates {len(labels)}")
    return labels, names


def _find_annotations(root: Path) -> Path:
    for folder in (root, root.parent):
        for name in ANNOTATION_NAMES:
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(
        f"no CelebA-HQ annotation file in {root} (tried {list(ANNOTATION_NAMES)} there and in "
        f"its parent); pass annotations=PATH"
    )


def _find_images(root: Path) -> dict[int, Path]:
    for sub in IMAGE_FOLDERS:
        folder = root / sub
        if not folder.is_dir():
            continue
        found = {
            int(p.stem): p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.stem.isdigit()
        }
        if found:
            return found
    raise FileNotFoundError(f"no CelebA-HQ images ({{i:06d}}.png / .jpg, or CelebA-HQ-img/{{i}}.jpg) found in {root}")


@functools.lru_cache(maxsize=8)
def _stats(root: str, annotations: str, size: int, limit: int):
    train = CelebAHQ(root, split="train", annotations=annotations, size=size, _stats=False)
    return channel_stats(train, limit)


class CelebAHQ(CachedImageFiles, LazyChannelStats, Dataset):
    """CelebA-HQ faces resized to ``size`` (default 224), with one attribute (binary) or all 40 (multilabel).

    Args:
        root: folder of the images (or of CelebAMask-HQ).
        split: "train" (indices 0-26999), "valid" (27000-27499) or "test" (27500-29999); only indices whose
            image exists are used.
        attribute: a name (``"Male"``) or index 0-39 for a binary categorical task; ``None`` or ``"all"`` for
            the 40-way multilabel task.
        annotations: the annotation file (default: searched in ``root`` and its parent).
        size: side of the (square) resized image.
        stats_images: how many training images the per-channel ``mean`` / ``std`` are computed from (lazily).
    """

    _stats_fn = staticmethod(_stats)  # the mean / std of LazyChannelStats

    channels = 3
    allows_flip = True
    #: Glimpse-noise schedule of the importance-sampling completion (0..255 stds after 1, 2, ... glimpses):
    #: the paper's CelebA-HQ schedule (app. A.3).
    noise_schedule = (5.0, 10.0, 20.0, 40.0)

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        seed: int = 0,
        attribute: int | str | None = None,
        annotations: str | os.PathLike | None = None,
        size: int = 224,
        stats_images: int = 256,
        _stats: bool = True,
    ) -> None:
        self.root = require_dir(root, "CelebA-HQ")
        if split not in SPLIT_RANGES:
            raise ValueError(f"`split` must be one of {list(SPLIT_RANGES)}, got {split!r}")
        if not isinstance(size, (int, np.integer)) or size < 16:
            raise ValueError(f"`size` must be an int >= 16, got {size!r}")
        self.split, self.seed, self.size = split, int(seed), int(size)
        self.name = "celeba-hq"
        self.annotations = Path(annotations) if annotations is not None else _find_annotations(self.root)
        labels, names = read_attributes(self.annotations)
        self.attribute_names = names
        images = _find_images(self.root)
        lo, hi = SPLIT_RANGES[split]
        self.indices = torch.tensor(sorted(i for i in images if lo <= i < hi), dtype=torch.long)
        if len(self.indices) == 0:
            raise ValueError(f"no CelebA-HQ image of split {split!r} (indices {lo}-{hi - 1}) in {self.root}")
        missing = [int(i) for i in self.indices if int(i) not in labels]
        if missing:
            raise ValueError(
                f"{self.annotations} has no labels for image {missing[0]} (and {len(missing) - 1} "
                f"more of split {split!r}); labels and images do not match"
            )
        self.paths = [images[int(i)] for i in self.indices]
        self.attributes = torch.from_numpy(np.stack([labels[int(i)] for i in self.indices])).long()
        self.attribute = self._resolve_attribute(attribute)
        if self.attribute is None:
            self.task, self.num_classes = "multilabel", len(names)
            self.class_names = tuple(names)
            self.labels = self.attributes.float()
        else:
            self.task, self.num_classes = "categorical", 2
            n = names[self.attribute]
            self.class_names = (f"not {n}", n)
            self.labels = self.attributes[:, self.attribute].clone()
        self.image_size = (self.size, self.size)
        self.grid = scaled_celeba_grid(self.size)
        self.image_cache = ImageCache(self.paths, self.image_size)
        self._stats_key = (str(self.root), str(self.annotations), self.size, int(stats_images))
        self._mean_std = None if _stats else (torch.zeros(3), torch.ones(3))

    def _resolve_attribute(self, attribute):
        if attribute is None or attribute == "all":
            return None
        if isinstance(attribute, (int, np.integer)) and not isinstance(attribute, bool):
            if not 0 <= attribute < len(self.attribute_names):
                raise ValueError(f"attribute index must be in [0, {len(self.attribute_names) - 1}], got {attribute}")
            return int(attribute)
        if isinstance(attribute, str):
            if attribute.isdigit():
                return self._resolve_attribute(int(attribute))
            lower = [n.lower() for n in self.attribute_names]
            if attribute.lower() in lower:
                return lower.index(attribute.lower())
        raise ValueError(
            f"`attribute` must be a name among {list(self.attribute_names)}, an index 0-39, or 'all'; got {attribute!r}"
        )

    def __repr__(self) -> str:
        what = "all" if self.attribute is None else self.attribute_names[self.attribute]
        return f"CelebAHQ(root={str(self.root)!r}, split={self.split!r}, attribute={what!r}, n={len(self)})"
