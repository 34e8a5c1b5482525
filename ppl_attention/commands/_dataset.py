"""The dataset flags every command takes, and how a command turns them (and its artefacts) into a DatasetSpec.

    --dataset NAME  --root DIR  --data-seed N  --dataset-option KEY=VALUE (repeatable)  --dataset-from DIR

or the same keys in ``--config file.yaml`` (``dataset``, ``root``, ``data_seed``, ``dataset_options`` as a mapping,
``dataset_from``).  A command given artefacts (an AVP, a prior, a sequence store) reads the dataset from them, so
the flags are needed once, by the first command; a flag that contradicts an artefact is an error naming both.
Nothing here imports torch (the CLI starts without it).
"""

from __future__ import annotations

import argparse

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
    """What the user typed: ``--config`` YAML keys, overridden by flags (the stages' own reading of them)."""
    from ..pipeline._stage import dataset_flags as flags

    return flags(
        positional_name or getattr(args, "dataset", None),
        getattr(args, "root", None),
        getattr(args, "data_seed", None),
        getattr(args, "dataset_option", None),
        getattr(args, "dataset_from", None),
        getattr(args, "config", None),
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
