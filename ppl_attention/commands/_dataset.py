"""The dataset flags every command takes, and how a command turns them (and its artefacts) into a DatasetSpec.

    --dataset NAME  --root DIR  --data-seed N  --dataset-option KEY=VALUE (repeatable)  --dataset-from DIR

or the same keys in ``--config file.yaml`` (``dataset``, ``root``, ``data_seed``, ``dataset_options`` as a mapping,
``dataset_from``).  A command given artefacts (an AVP, a prior, a sequence store) reads the dataset from them, so
the flags are needed once, by the first command; a flag that contradicts an artefact is an error naming both.
Nothing here imports torch (the CLI starts without it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import load_yaml

__all__ = ["add_dataset_arguments", "dataset_flags", "resolve_dataset", "DATASET_HELP"]

DATASET_HELP = (
    "KEY=VALUE option of the dataset's class, repeatable; e.g. for folder: size=32 channels=1 "
    "glimpse_size=8 stride=4 noise_schedule=40,60,80 (see `ppl-attention datasets`); read back from "
    "the artefacts by later commands"
)


def add_dataset_arguments(
    parser: argparse.ArgumentParser, name: bool = True, default: str | None = None, reads: str | None = None
) -> None:
    """Add the dataset group.  ``default``: the dataset used when neither a flag nor an artefact names one;
    ``reads``: which artefacts of this command the dataset is read from (for the help)."""
    g = parser.add_argument_group("dataset (typed once: later commands read it from their artefacts)")
    origin = f"default: the one recorded by {reads}" if reads else f"default: {default}"
    if name:
        g.add_argument("--dataset", default=None, help=f"dataset name, see `ppl-attention datasets` ({origin})")
    g.add_argument(
        "--root",
        default=None,
        help="dataset folder, for datasets read from disk" + (f" (default: {reads}'s)" if reads else ""),
    )
    g.add_argument(
        "--data-seed",
        type=int,
        default=None,
        dest="data_seed",
        help="split seed of the dataset (the folder's train/valid/test split, the MNIST canvases); "
        + (f"default: {reads}'s" if reads else "default: --seed"),
    )
    g.add_argument(
        "--dataset-option",
        "--option",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        dest="dataset_option",
        help=DATASET_HELP,
    )
    g.add_argument(
        "--dataset-from",
        action="append",
        default=None,
        metavar="DIR",
        dest="dataset_from",
        help="read the dataset (name, root, split seed, options) from this artefact's manifest "
        "(an AVP, prior, sequence store or training run), repeatable",
    )


def dataset_flags(args, positional_name: str | None = None):
    """What the user typed: ``--config`` YAML keys, overridden by flags."""
    from ..data.spec import DatasetFlags, parse_options

    yaml = {
        k.replace("-", "_"): v for k, v in (load_yaml(args.config) if getattr(args, "config", None) else {}).items()
    }
    options = yaml.get("dataset_options") or {}
    if not isinstance(options, dict):
        raise ValueError(
            f"--config {args.config}: dataset_options must be a mapping of option names to values, got {options!r}"
        )
    options = {str(k).replace("-", "_"): v for k, v in options.items()}
    options.update(parse_options(getattr(args, "dataset_option", None) or ()))
    sources = yaml.get("dataset_from") or []
    sources = [sources] if isinstance(sources, str) else list(sources)
    sources += getattr(args, "dataset_from", None) or []
    for s in sources:
        if not (Path(s) / "manifest.json").is_file():
            raise FileNotFoundError(f"--dataset-from {s} is not an artefact directory (no manifest.json)")
    name = positional_name or getattr(args, "dataset", None) or yaml.get("dataset")
    root = getattr(args, "root", None) or yaml.get("root")
    seed = getattr(args, "data_seed", None)
    seed = yaml.get("data_seed") if seed is None else seed
    return DatasetFlags(
        name=name,
        root=None if root is None else str(root),
        seed=None if seed is None else int(seed),
        options=options,
        sources=tuple(sources),
    )


def resolve_dataset(
    args,
    artefacts=(),
    default: str | None = "cluttered-mnist",
    default_seed: int | None = None,
    positional_name: str | None = None,
):
    """The command's :class:`~ppl_attention.data.spec.DatasetSpec`: ``artefacts`` are directories (or
    ``(label, spec dict)`` pairs) whose recorded dataset the flags must agree with."""
    from ..data.spec import recorded_spec, resolve_spec

    records = []
    for a in artefacts:
        records.append(a if isinstance(a, tuple) else recorded_spec(a))
    seed = getattr(args, "seed", 0) if default_seed is None else default_seed
    return resolve_spec(dataset_flags(args, positional_name), records, default_name=default, default_seed=int(seed))
