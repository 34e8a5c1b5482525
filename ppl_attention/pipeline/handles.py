"""Handles to the artefacts the stages write, and the datasets the stages accept."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Union

if TYPE_CHECKING:
    import torch

    from ..attention.network import HardAttentionNet
    from ..completion.base import Completion
    from ..design.amortised import AmortisedMap
    from ..design.store import SequenceStore
    from ..posterior.network import AVP
    from ..sensor import Sensor

#: A path to read or write: ``str``, :class:`~pathlib.Path` or a handle.
PathArg = Union[str, os.PathLike]

__all__ = [
    "PathArg",
    "AVPHandle",
    "PriorHandle",
    "SequencesHandle",
    "RunHandle",
    "EPENetHandle",
    "Dataset",
    "DatasetArg",
    "tensor_dataset",
]


# --------------------------------------------------------------------------- handles


@dataclass(frozen=True)
class _Handle:
    """A finished artefact directory; ``summary`` is what its stage reported."""

    path: Path
    summary: dict = field(default_factory=dict, repr=False, compare=False)

    def __fspath__(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class AVPHandle(_Handle):
    """A trained AVP (``train_avp``); :meth:`load` gives the :class:`~ppl_attention.posterior.network.AVP`."""

    def load(self, device: str = "cpu") -> AVP:
        from ..posterior import load_avp

        return load_avp(self.path, device)


@dataclass(frozen=True)
class PriorHandle(_Handle):
    """An image prior (``build_prior``); :meth:`load` opens its completion sampler r(image | glimpses)."""

    def load(self, grid: Sensor | None = None, **kw) -> Completion:
        from ..completion.prior import open_completion

        return open_completion(self.path, grid, **kw)


@dataclass(frozen=True)
class SequencesHandle(_Handle):
    """A sequence store (``design_sequences``); :meth:`load` opens the
    :class:`~ppl_attention.design.store.SequenceStore`, :meth:`sequences` maps image index -> locations."""

    def load(self) -> SequenceStore:
        from ..design.store import SequenceStore

        return SequenceStore.open(self.path)

    def sequences(self) -> dict[int, list[int]]:
        return {i: [int(x) for x in locs] for i, locs in self.load().sequences().items()}


@dataclass(frozen=True)
class RunHandle(_Handle):
    """A hard-attention training run (``train_attention``); :meth:`load` rebuilds its best network."""

    def load(self) -> HardAttentionNet:
        from ..attention.run import load_run_network

        return load_run_network(self.path)


@dataclass(frozen=True)
class EPENetHandle(_Handle):
    """A trained EPE-map network (``train_epe_net``); :meth:`load` rebuilds it."""

    def load(self, device: str | None = None) -> AmortisedMap:
        from ..design.amortised import load_epe_net

        return load_epe_net(self.path, device)


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Dataset:
    """A dataset as every stage records it: a registered name, its folder, and options of its class."""

    name: str
    root: str | None = None
    options: dict = field(default_factory=dict)

    def load(self, split: str = "train", seed: int = 0) -> torch.utils.data.Dataset:
        from ..data import load_dataset

        return load_dataset(self.name, self.root, split=split, seed=seed, **self.options)


#: A dataset for a stage: a registered name, a :class:`Dataset`, or None (read from the artefacts given).
DatasetArg = Union[str, Dataset, None]


def tensor_dataset(
    images: torch.Tensor, labels: torch.Tensor, root: PathArg, class_names: Iterable[str] | None = None, **options
) -> Dataset:
    """Plain tensors as a dataset: ``images`` (N, C, H, W) floats in [0, 1] (C = 1 or 3, H = W) and integer
    ``labels`` (N,) are written to ``root`` as PNGs with a ``labels.csv`` (the ``folder`` dataset), so every
    artefact can record where its data came from.  ``options`` are the folder's (``glimpse_size``, ``stride``,
    ``noise_schedule``...); ``class_names`` name the labels (default: their numbers)."""
    import numpy as np
    import torch
    from PIL import Image

    images, labels = torch.as_tensor(images), torch.as_tensor(labels)
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[2] != images.shape[3]:
        raise ValueError(f"`images` must be (N, C, H, W) with C 1 or 3 and H == W, got shape {tuple(images.shape)}")
    if labels.shape != (images.shape[0],) or labels.dtype.is_floating_point:
        raise ValueError(f"`labels` must be N = {images.shape[0]} integers, got {labels.dtype} {tuple(labels.shape)}")
    if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise ValueError("`images` must be finite floats in [0, 1]")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    pixels = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    names = [str(c) for c in (class_names if class_names is not None else range(int(labels.max()) + 1))]
    rows = ["filename,label"]
    for i, (array, label) in enumerate(zip(pixels, labels.tolist())):
        name = f"{i:06d}.png"
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else np.ascontiguousarray(array)).save(root / name)
        rows.append(f"{name},{names[label]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    options = {"size": int(images.shape[-1]), "channels": int(images.shape[1]), **options}
    return Dataset("folder", str(root), options)
