"""Tiny datasets written in the official on-disk layouts, for tests and examples (nothing is downloaded).

The images carry known content so readers can be checked exactly: CelebA-HQ image ``i`` is filled with the
colour ``fixture_colour(i)``; a CUB image is one colour outside its bounding box and another inside it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .celeba_hq import CELEBA_ATTRIBUTES
from .cub import CUB_PART_NAMES

__all__ = [
    "fixture_colour",
    "fixture_attributes",
    "make_celeba_hq_folder",
    "make_cub_folder",
    "make_image_folder",
    "make_digits_folder",
    "CUB_BOX_COLOUR",
    "CUB_BACKGROUND",
]

CUB_BOX_COLOUR = (200, 40, 10)
CUB_BACKGROUND = (0, 90, 250)


def fixture_colour(i: int) -> tuple[int, int, int]:
    return ((37 * i) % 256, (91 * i + 50) % 256, (13 * i + 100) % 256)


def fixture_attributes(i: int) -> np.ndarray:
    """The {-1, 1} attributes written for image ``i`` (a fixed pseudo-random pattern)."""
    return np.where(np.random.default_rng(i).random(40) < 0.5, -1, 1)


def _save(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def make_celeba_hq_folder(
    root: str | os.PathLike,
    indices: Sequence[int] = (0, 1, 2, 27000, 27001, 27500, 27501),
    size: int = 32,
    layout: str = "paper",
) -> Path:
    """Write CelebA-HQ images and annotations for ``indices``.

    ``layout="paper"``: ``{i:06d}.png`` and ``annotations.txt`` (``000000.png`` + 40 labels per line);
    ``layout="mask"``: CelebAMask-HQ's ``CelebA-HQ-img/{i}.jpg`` and ``CelebAMask-HQ-attribute-anno.txt``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in indices:
        img = np.empty((size, size, 3), dtype=np.uint8)
        img[:] = fixture_colour(i)
        labels = " ".join(str(int(v)) for v in fixture_attributes(i))
        if layout == "paper":
            _save(root / f"{i:06d}.png", img)
            lines.append(f"{i:06d}.png {labels}")
        elif layout == "mask":
            _save(root / "CelebA-HQ-img" / f"{i}.jpg", img)
            lines.append(f"{i}.jpg  {labels}")
        else:
            raise ValueError(f"`layout` must be 'paper' or 'mask', got {layout!r}")
    if layout == "paper":
        (root / "annotations.txt").write_text("\n".join(lines) + "\n")
    else:
        (root / "CelebAMask-HQ-attribute-anno.txt").write_text(
            f"{len(lines)}\n{' '.join(CELEBA_ATTRIBUTES)}\n" + "\n".join(lines) + "\n"
        )
    return root


def make_cub_folder(
    root: str | os.PathLike,
    n_classes: int = 3,
    per_class: int = 4,
    test_per_class: int = 1,
    image_size: tuple[int, int] = (40, 60),
) -> Path:
    """Write a CUB-200-2011 folder: ``n_classes * per_class`` images (the last ``test_per_class`` of each class
    are test images), bounding boxes, 15 parts (part 1 at the box centre, part 2 at its top-left quarter point,
    part 3 outside the box, the rest invisible)."""
    root = Path(root)
    H, W = image_size
    images, boxes, labels, split, locs = [], [], [], [], []
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "parts").mkdir(exist_ok=True)
    classes = [f"{c + 1:03d}.Bird_{c + 1}" for c in range(n_classes)]
    img_id = 0
    for c in range(n_classes):
        for k in range(per_class):
            img_id += 1
            x, y, w, h = 4 + k, 3 + c, W // 2 + k, H // 2 + c  # box in original pixels
            arr = np.empty((H, W, 3), dtype=np.uint8)
            arr[:] = CUB_BACKGROUND
            arr[y : y + h, x : x + w] = CUB_BOX_COLOUR
            name = f"{classes[c]}/Bird_{c + 1}_{k:04d}.jpg"
            from PIL import Image

            (root / "images" / classes[c]).mkdir(exist_ok=True)
            Image.fromarray(arr).save(root / "images" / name, quality=100, subsampling=0)
            images.append(f"{img_id} {name}")
            boxes.append(f"{img_id} {float(x)} {float(y)} {float(w)} {float(h)}")
            labels.append(f"{img_id} {c + 1}")
            split.append(f"{img_id} {0 if k >= per_class - test_per_class else 1}")
            locs.extend(_part_lines(img_id, x, y, w, h))
    (root / "images.txt").write_text("\n".join(images) + "\n")
    (root / "bounding_boxes.txt").write_text("\n".join(boxes) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (root / "train_test_split.txt").write_text("\n".join(split) + "\n")
    (root / "classes.txt").write_text("\n".join(f"{c + 1} {n}" for c, n in enumerate(classes)) + "\n")
    parts = "\n".join(f"{k + 1} {p}" for k, p in enumerate(CUB_PART_NAMES))
    (root / "parts" / "parts.txt").write_text(parts + "\n")
    (root / "parts" / "part_locs.txt").write_text("\n".join(locs) + "\n")
    return root


def _part_lines(img_id: int, x: int, y: int, w: int, h: int) -> list[str]:
    """``part_locs.txt`` lines of one image: parts 1-3 visible (the box's centre, upper-left quarter point and
    just right of its top-right corner), the other twelve not."""
    lines = []
    for p in range(1, 16):
        if p == 1:
            px, py, v = x + w / 2, y + h / 2, 1
        elif p == 2:
            px, py, v = x + w / 4, y + h / 4, 1
        elif p == 3:
            px, py, v = x + w + 2, y, 1
        else:
            px, py, v = 0.0, 0.0, 0
        lines.append(f"{img_id} {p} {float(px)} {float(py)} {v}")
    return lines


def make_image_folder(
    root: str | os.PathLike,
    labels: Sequence[str] = ("cat", "dog", "cat", "bird", "dog", "cat", "bird", "dog", "cat", "bird"),
    size: tuple[int, int] = (20, 30),
) -> Path:
    """Write ``{k}.png`` images (filled with grey level 20 * k) and ``labels.csv`` with a header."""
    root = Path(root)
    rows = ["filename,label"]
    for k, label in enumerate(labels):
        _save(root / f"{k}.png", np.full((*size, 3), (20 * k) % 256))
        rows.append(f"{k}.png,{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def make_digits_folder(
    root: str | os.PathLike,
    per_class: int | None = None,
    classes: Iterable[int] = range(10),
    upscale: int = 1,
    labels_csv: bool = False,
) -> Path:
    """A folder of labelled PNGs from scikit-learn's 8 x 8 digits (1,797 images bundled with scikit-learn, which
    mlxtend depends on; nothing is downloaded): ``{digit}/{k:04d}.png`` (torchvision's ImageFolder layout) and,
    with ``labels_csv``, ``labels.csv`` (``filename,label``) as well.

    ``per_class``: the first that many images of each class (default: all, about 180 per class); ``upscale``: write
    them ``8 * upscale`` pixels wide (nearest neighbour) -- the folder dataset resizes them anyway (option ``size``).
    """
    from sklearn.datasets import load_digits

    root = Path(root)
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    rows = ["filename,label"]
    for c in classes:
        members = np.flatnonzero(digits.target == c)[:per_class]
        for k in members:
            img = images[k].repeat(upscale, 0).repeat(upscale, 1) if upscale > 1 else images[k]
            name = f"{c}/{k:04d}.png"
            _save(root / name, img)
            rows.append(f"{name},{c}")
    if labels_csv:
        (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root
