"""The Python face of the library: one function per stage, each returning a handle to the artefact it wrote.

    avp = train_avp("runs/avp", epochs=2)                       # AVP g(label | glimpses)
    prior = build_prior("runs/prior")                           # the image prior of the completions
    seqs = design_sequences("runs/seqs", avp, prior, num_images=4)  # greedy EPE minimisation, a sequence store
    run = train_attention("runs/ps", sequences=seqs)            # PS-NOGS (or RAM without sequences)
    evaluate(avp)                                               # accuracy / NLL / ECE against t

Each function runs the stage exactly as the ``ppl-attention`` subcommand of the same stage does (same
validation, same artefacts, same resumption): keyword arguments are that subcommand's options with ``_`` for
``-`` (``num_images=`` for ``--num-images``), and paths may be ``str`` or :class:`~pathlib.Path`.  A later
stage reads the dataset from the artefacts it is given, so it is named once, by the first stage.  Handles are
accepted wherever a directory is.  :func:`tensor_dataset` turns plain tensors into a dataset the stages accept.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["AVPHandle", "PriorHandle", "SequencesHandle", "RunHandle", "Dataset", "tensor_dataset", "train_avp",
           "build_prior", "design_sequences", "train_attention", "evaluate"]


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

    def load(self, device="cpu"):
        from .posterior import load_avp

        return load_avp(self.path, device)


@dataclass(frozen=True)
class PriorHandle(_Handle):
    """An image prior (``build_prior``); :meth:`load` opens its completion sampler r(image | glimpses)."""

    def load(self, grid=None, **kw):
        from .completion.prior import open_completion

        return open_completion(self.path, grid, **kw)


@dataclass(frozen=True)
class SequencesHandle(_Handle):
    """A sequence store (``design_sequences``); :meth:`load` opens the
    :class:`~ppl_attention.design.store.SequenceStore`, :meth:`sequences` maps image index -> locations."""

    def load(self):
        from .design.store import SequenceStore

        return SequenceStore.open(self.path)

    def sequences(self) -> dict[int, list[int]]:
        return {i: [int(x) for x in locs] for i, locs in self.load().sequences().items()}


@dataclass(frozen=True)
class RunHandle(_Handle):
    """A hard-attention training run (``train_attention``); :meth:`load` rebuilds its best network."""

    def load(self):
        from .attention.run import load_run_network

        return load_run_network(self.path)


# --------------------------------------------------------------------------- datasets

@dataclass(frozen=True)
class Dataset:
    """A dataset as every stage records it: a registered name, its folder, and options of its class."""

    name: str
    root: str | None = None
    options: dict = field(default_factory=dict)

    def load(self, split: str = "train", seed: int = 0):
        from .data import load_dataset

        return load_dataset(self.name, self.root, split=split, seed=seed, **self.options)


def tensor_dataset(images, labels, root, class_names=None, **options) -> Dataset:
    """Plain tensors as a dataset: ``images`` (N, C, H, W) floats in [0, 1] (C = 1 or 3, H = W) and integer
    ``labels`` (N,) are written to ``root`` as PNGs with a ``labels.csv`` (the ``folder`` dataset), so every
    artefact can record where its data came from.  ``options`` are the folder's (``glimpse_size``, ``stride``,
    ``noise_schedule``...); ``class_names`` name the labels (default: their numbers)."""
    import numpy as np
    import torch
    from PIL import Image

    images, labels = torch.as_tensor(images), torch.as_tensor(labels)
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[2] != images.shape[3]:
        raise ValueError(f"images must be (N, C, H, W) with C 1 or 3 and H == W, got shape {tuple(images.shape)}")
    if labels.shape != (images.shape[0],) or labels.dtype.is_floating_point:
        raise ValueError(f"labels must be N = {images.shape[0]} integers, got {labels.dtype} {tuple(labels.shape)}")
    if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise ValueError("images must be finite floats in [0, 1]")
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


# --------------------------------------------------------------------------- running a stage

def _subparser(command: str) -> argparse.ArgumentParser:
    from .cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _namespace(command: str, options: dict[str, Any]) -> argparse.Namespace:
    """The subcommand's parsed defaults, with ``options`` set as if typed (unknown names are refused)."""
    parser = _subparser(command)
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", argparse.SUPPRESS)}
    ns = argparse.Namespace(**{d: a.default for d, a in actions.items()})
    for a in parser._actions:  # the flags' names too: glimpses= for --glimpses, whatever its dest
        for flag in a.option_strings:
            if flag.startswith("--") and a.help != argparse.SUPPRESS:
                actions.setdefault(flag[2:].replace("-", "_"), a)
    ns.func = parser.get_default("func")
    ns.command = command
    for name, value in options.items():
        if name not in actions:
            raise TypeError(f"{command}: unknown option {name!r}; expected one of {sorted(actions)}")
        action = actions[name]
        name = action.dest
        if isinstance(value, os.PathLike):
            value = Path(value) if action.type is Path else str(Path(value))
        elif isinstance(value, str) and action.type is Path:
            value = Path(value)
        many = action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction)  # a list, as typed
        if many and isinstance(value, (str, Path)):
            value = [value]
        elif many and value is not None:
            value = [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
        setattr(ns, name, value)
    return ns


def _dataset_options(dataset) -> dict[str, Any]:
    if dataset is None:
        return {}
    if isinstance(dataset, str):
        return {"dataset": dataset}
    if isinstance(dataset, Dataset):
        return {"dataset": dataset.name, "root": dataset.root,
                "dataset_option": [f"{k}={_option_text(v)}" for k, v in dataset.options.items()] or None}
    raise TypeError(f"dataset must be a dataset name or a Dataset (tensor_dataset), got {type(dataset).__name__}")


def _option_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _run(command: str, where, quiet: bool, **options) -> dict:
    """Run subcommand ``command``; returns the summary it wrote into ``where`` (``where/summary.json``)."""
    import torch

    from .artifacts import read_json
    from .cli import _progress_bars

    ns = _namespace(command, {k: v for k, v in options.items() if v is not None})
    threads = torch.get_num_threads()  # a stage's --threads is its own, as in the CLI's process per command
    try:
        with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext(), \
                _progress_bars(not getattr(ns, "no_progress", False)):
            ns.func(ns)
    finally:
        torch.set_num_threads(threads)
    summary = Path(where) / "summary.json"
    return read_json(summary) if summary.is_file() else {}


# --------------------------------------------------------------------------- the stages

def train_avp(out, dataset="cluttered-mnist", *, seed: int = 0, device: str = "auto", quiet: bool = False,
              **options) -> AVPHandle:
    """Train the AVP g(label | masked image, mask) on random glimpses into ``out`` (``ppl-attention train-avp``;
    options such as ``epochs``, ``glimpses``, ``train_size``)."""
    summary = _run("train-avp", out, quiet, out=out, seed=seed, device=device, **_dataset_options(dataset),
                   **options)
    return AVPHandle(Path(out), summary)


def build_prior(out, dataset=None, *, avp=None, seed: int = 0, device: str = "auto", quiet: bool = False,
                **options) -> PriorHandle:
    """Build the image prior of the completions into ``out`` (``ppl-attention build-prior``): the dataset's own
    (generative for the MNIST canvases, a PCA-indexed database elsewhere); ``avp`` lends its dataset."""
    dataset_from = [avp] if avp is not None and dataset is None else None
    summary = _run("build-prior", out, quiet, out=out, seed=seed, device=device, dataset_from=dataset_from,
                   **_dataset_options(dataset), **options)
    return PriorHandle(Path(out), summary)


def design_sequences(out, avp, prior, *, seed: int = 0, device: str = "auto", quiet: bool = False,
                     **options) -> SequencesHandle:
    """Near-optimal glimpse sequences by greedy EPE minimisation for the first ``num_images`` training images,
    into a resumable sequence store ``out`` (``ppl-attention generate``; options such as ``num_images``,
    ``glimpses``, ``num_samples``, ``search``)."""
    summary = _run("generate", out, quiet, out=str(out), avp=str(Path(avp)), prior=str(Path(prior)), seed=seed,
                   device=device, **options)
    return SequencesHandle(Path(out), summary)


def train_attention(out, dataset=None, *, sequences=None, seed: int = 0, device: str = "auto",
                    quiet: bool = False, **options) -> RunHandle:
    """Train a hard-attention network into ``out`` (``ppl-attention train``): PS-NOGS when ``sequences`` are
    given (partial supervision by the store's sequences), RAM otherwise unless ``supervision`` says."""
    if sequences is not None:
        options = {"supervision": "nogs", **options, "sequences": Path(sequences)}
    summary = _run("train", out, quiet, out=out, seed=seed, device=device, **_dataset_options(dataset), **options)
    return RunHandle(Path(out), summary)


def evaluate(avp, *, seed: int = 0, device: str = "auto", quiet: bool = False, **options) -> dict:
    """Accuracy, NLL and calibration of an AVP against the number of random glimpses on its test split
    (``ppl-attention evaluate-avp``): the summary, and ``avp/evaluation.json`` in full."""
    _run("evaluate-avp", avp, quiet, dir=Path(avp), seed=seed, device=device, **options)
    from .artifacts import read_json

    return read_json(Path(avp) / "evaluation_summary.json")
