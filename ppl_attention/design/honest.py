"""No oracle: the completions for an image never propose it, and the AVP that designs for it was not trained on it.

An image's *sources* are what it is made of: for MNIST canvases the digit it shows (an index among the split's
digits, ``MnistCanvases.source_digits``), for any other dataset the item itself.  Three pieces keep a design honest:

- :class:`HeldOut`: a training split without the sources of the images to be designed (the paper's exclusion of
  the supervised images from the AVP's training, appendix B.1); the AVP records them (``held_out`` in its config).
- :func:`check_avp`: refuses an AVP whose training set holds a design image (no ``held_out`` record covering it).
- :func:`prior_exclusions`: per design image, what the prior must leave out -- the generative prior's own digit
  and clutter digits, a database's own rows (and mirrors) and every exact duplicate; a prior that holds design
  images it cannot identify is refused.  The samplers apply it through their ``excluding(ids)``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import os
    from typing import Callable, Iterable
    from torch.utils.data import Dataset
    from ..completion.base import Completion
    from .sequential import DesignProblem

__all__ = [
    "HeldOut",
    "design_sources",
    "check_avp",
    "check_prior",
    "prior_exclusions",
    "held_out_record",
    "honest_problem",
]

#: The split every AVP and prior is trained or built on.
TRAIN = "train"


def design_sources(data: Dataset, indices: Iterable[int] | torch.Tensor) -> torch.Tensor:
    """The source id (n,) of each image ``indices`` of ``data``: the digit of an MNIST canvas, else the index."""
    idx = torch.as_tensor(list(indices) if not isinstance(indices, torch.Tensor) else indices).long().reshape(-1)
    if hasattr(data, "source_digits"):
        return data.source_digits(idx)[:, 0]
    return idx


def _source_kind(data) -> str:
    return "digit" if hasattr(data, "source_digits") else "item"


def held_out_record(data: Dataset, indices: Iterable[int]) -> dict:
    """What an AVP records about the design images left out of its training: split, kind and source ids."""
    ids = sorted({int(i) for i in design_sources(data, indices)})
    return {
        "split": getattr(data, "split", TRAIN),
        "kind": _source_kind(data),
        "images": len(list(indices)),
        "ids": ids,
    }


class HeldOut(torch.utils.data.Dataset):
    """``dataset`` without every item whose source is that of one of the first ``exclude`` items of ``design``
    (default: ``dataset``; or of the items ``exclude`` lists): the training set of an AVP that may design for them.
    Attributes not defined here (grid, channels, set_epoch, ...) are the dataset's; ``images`` / ``labels`` are
    gathered once per epoch."""

    def __init__(self, dataset: Dataset, exclude: int | Iterable[int], design: Dataset | None = None) -> None:
        design_set = dataset if design is None else design
        if isinstance(exclude, (int, np.integer)) and not 0 <= exclude <= len(design_set):
            raise ValueError(f"`exclude` must be a count of design images in [0, {len(design_set)}], got {exclude}")
        chosen = range(int(exclude)) if isinstance(exclude, (int, np.integer)) else [int(i) for i in exclude]
        self.dataset = dataset
        self.held_out = held_out_record(design_set, chosen)
        every = design_sources(dataset, torch.arange(len(dataset)))
        self.keep = torch.nonzero(~torch.isin(every, torch.tensor(self.held_out["ids"], dtype=torch.long))).flatten()
        if len(self.keep) == 0:
            raise ValueError(f"exclude leaves none of the {len(dataset)} training items to train on")
        self._cache = (None, None)

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, i: int) -> dict:
        return self.dataset[int(self.keep[i])]

    def __getattr__(self, name):
        if name in ("images", "labels"):
            source = getattr(self.dataset, name)
            if not isinstance(source, torch.Tensor):
                return source
            key, value = self.__dict__["_cache"] if name == "images" else (None, None)
            if key is source:
                return value
            value = source[self.keep]
            if name == "images":
                self.__dict__["_cache"] = (source, value)
            return value
        if name in ("dataset", "keep", "held_out", "_cache"):
            raise AttributeError(name)
        return getattr(self.__dict__["dataset"], name)


def check_avp(avp_dir: str | os.PathLike, data: Dataset, split: str, indices: Iterable[int]) -> None:
    """Refuse (``ValueError`` naming the AVP and the image) an AVP trained on a design image ``indices`` of ``split``:
    it must record them as ``held_out`` (``train-avp --exclude-design N``) unless the design is on another split."""
    from ..artifacts import read_manifest

    if split != TRAIN:
        return
    held = read_manifest(Path(avp_dir)).get("config", {}).get("held_out") or {}
    idx = [int(i) for i in indices]
    ids = design_sources(data, idx)
    kind = _source_kind(data)
    ok = held.get("kind") == kind and held.get("split") == TRAIN
    bad = [i for i, s in zip(idx, ids.tolist()) if not ok or s not in set(held.get("ids", ()))]
    if bad:
        what = f"digit {int(ids[idx.index(bad[0])])} of " if kind == "digit" else ""
        raise ValueError(
            f"`avp` {avp_dir} was trained on {what}design image {bad[0]} of the {split} split "
            f"({len(bad)} of the {len(idx)} design images): an oracle. Train it without them "
            "(`exclude_design` N, e.g. the first N training images), design for held-out images, or "
            "set `allow_oracle` for a diagnosis"
        )


def check_prior(prior_dir: str | os.PathLike, split: str) -> None:
    """Refuse (``ValueError`` naming the prior and the split) a prior that holds the design images of ``split`` in
    a form no exclusion can remove: a database of canvases rendered from the very digits the design images show."""
    from ..completion.prior import prior_kind

    kind = prior_kind(prior_dir)
    if kind.check is not None:
        kind.check(prior_dir, split)


def prior_exclusions(
    sampler: Completion, prior_dir: str | os.PathLike, data: Dataset, split: str
) -> Callable[[int, torch.Tensor], torch.Tensor] | None:
    """``fn(index, image) -> ids`` the prior must leave out for design image ``index`` of ``split`` (the sampler's
    ``excluding`` takes them), or None when the prior holds nothing of that split or cannot tell it apart
    (:func:`check_prior` refuses the latter)."""
    from ..completion.prior import prior_kind

    return prior_kind(prior_dir).exclusions(sampler, prior_dir, data, split)


def honest_problem(
    problem: DesignProblem,
    exclusions: Callable[[int, torch.Tensor], torch.Tensor] | None,
    index: int,
    image: torch.Tensor,
) -> DesignProblem:
    """``problem`` whose sampler leaves out what design image ``index`` is made of (``exclusions``, from
    :func:`prior_exclusions`; None: nothing to leave out)."""
    if exclusions is None:
        return problem
    return dataclasses.replace(problem, sampler=problem.sampler.excluding(exclusions(index, image)))
