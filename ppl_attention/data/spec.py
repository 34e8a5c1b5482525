"""One dataset config -- name, root, split seed and options -- that every command accepts and every artefact records.

A :class:`DatasetSpec` is what a manifest stores under ``config["data"]``::

    {"name": "folder", "root": "/data/digits", "seed": 1, "options": {"size": 32, "grayscale": true, ...}}

``seed`` is the split seed (the folder's train / valid / test permutation, the MNIST canvases); ``options`` are the
keyword arguments of the dataset's class, *validated by that class's signature* (see :func:`option_defaults`), so
an option a dataset gains (e.g. a sensor's ``scales``) flows through every command without a change here.  The
recorded options are complete: every constructor default is filled in, so two specs compare equal exactly when
they build the same data.

Later commands read the spec from the artefacts they are given (:func:`recorded_spec`) and merge it with what the
user typed (:func:`resolve_spec`); any disagreement -- between two artefacts, or between a flag and an artefact --
is an error that names both.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping, TYPE_CHECKING

if TYPE_CHECKING:
    import os
    from torch.utils.data import Dataset

__all__ = [
    "DatasetSpec",
    "DatasetFlags",
    "default_prior",
    "option_defaults",
    "check_options",
    "recorded_spec",
    "resolve_spec",
    "parse_option",
    "parse_options",
    "SpecConflict",
]

log = logging.getLogger(__name__)

#: Constructor arguments that are not options: they are the spec's other fields, or fixed by the dataset's name.
_NOT_OPTIONS = {"self", "root", "split", "seed", "cluttered", "kwargs", "args"}


class SpecConflict(ValueError):
    """Two sources (flags, artefacts) disagree about the dataset."""


def _json_value(v):
    """Options as they are written to JSON: tuples -> lists, paths -> str, numpy scalars -> Python."""
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if hasattr(v, "item") and callable(v.item):
        return v.item()
    return v


def _frozen(v):
    if isinstance(v, list):
        return tuple(_frozen(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _frozen(x)) for k, x in v.items()))
    return v


def dataset_class(name: str):
    """The class that builds dataset ``name`` (imported on demand)."""
    from . import _class_of

    return _class_of(name)


def default_prior(name: str) -> str:
    """Which image prior ``build-prior`` makes for dataset ``name`` unless ``--kind`` says: its class's
    ``default_prior`` (``generative`` for the MNIST canvases), else the paper's ``database``."""
    return getattr(dataset_class(name), "default_prior", "database")


def option_defaults(name: str) -> dict[str, Any]:
    """The options dataset ``name`` accepts, with their defaults: its class's keyword arguments (not ``root``,
    ``split``, ``seed``, nor private ``_*`` ones), with the defaults its registry entry changes."""
    from . import _changed_defaults

    params = inspect.signature(dataset_class(name).__init__).parameters
    defaults = {
        k: p.default
        for k, p in params.items()
        if k not in _NOT_OPTIONS
        and not k.startswith("_")
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.default is not inspect.Parameter.empty
    }
    return {k: _json_value(v) for k, v in {**defaults, **_changed_defaults(name)}.items()}


def check_options(name: str, options: Mapping[str, Any] | None, where: str = "`dataset_option`") -> dict:
    """``options`` with every default of dataset ``name`` filled in; an unknown key is refused, naming it."""
    defaults = option_defaults(name)
    options = {str(k).replace("-", "_"): _json_value(v) for k, v in (options or {}).items()}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"{where}: dataset {name!r} takes no option(s) {unknown}; its options are {sorted(defaults)}")
    return {**defaults, **options}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset fully specified: ``load(split)`` builds the same images wherever it runs."""

    name: str
    root: str | None = None
    seed: int = 0
    options: tuple = ()  # sorted (key, value) pairs, values frozen (lists -> tuples): hashable and picklable

    @classmethod
    def make(
        cls,
        name: str,
        root: str | os.PathLike | None = None,
        seed: int = 0,
        options: Mapping[str, Any] | None = None,
        where: str = "`dataset_option`",
    ) -> "DatasetSpec":
        from . import dataset_names

        if name not in dataset_names():
            raise ValueError(f"`dataset` must be one of {dataset_names()}, got {name!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"the dataset's split seed must be an int, got {seed!r}")
        full = check_options(name, options, where)
        root = None if root is None else str(Path(root).expanduser().resolve())
        return cls(name, root, int(seed), tuple(sorted((k, _frozen(v)) for k, v in full.items())))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "the artefact") -> "DatasetSpec":
        return cls.make(
            data["name"], data.get("root"), int(data.get("seed") or 0), data.get("options") or {}, where=where
        )

    @property
    def kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments of the dataset's class."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.options}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "root": self.root, "seed": self.seed, "options": _json_value(self.kwargs)}

    def describe(self) -> str:
        given = {k: v for k, v in self.kwargs.items() if option_defaults(self.name).get(k) != _json_value(v)}
        text = self.name + (f" at {self.root}" if self.root else "") + f", split seed {self.seed}"
        return text + (f", options {json.dumps(given)}" if given else "")

    def load(self, split: str = "train", **overrides) -> Dataset:
        """The dataset's ``split``; ``overrides`` (e.g. MNIST's per-split ``size``) apply to this split only.

        The returned dataset carries ``data_spec`` (:meth:`to_dict`), which the trainers write to their manifests.
        """
        from . import load_dataset

        ds = load_dataset(self.name, root=self.root, split=split, seed=self.seed, **{**self.kwargs, **overrides})
        try:
            ds.data_spec = self.to_dict()
        except AttributeError:  # a dataset that refuses attributes: the spec is then not recorded by the trainers
            pass
        return ds


@dataclasses.dataclass
class DatasetFlags:
    """What the user typed about the dataset (``None`` = not given): flags over ``--config`` YAML keys."""

    name: str | None = None
    root: str | None = None
    seed: int | None = None
    options: dict = dataclasses.field(default_factory=dict)
    sources: tuple = ()  # artefact directories given with --dataset-from


def parse_value(text: str):
    """A ``KEY=VALUE`` value: int, float, true/false/none, a comma-separated list of those, or a string."""
    text = text.strip()
    if "," in text:
        return [parse_value(t) for t in text.split(",") if t.strip()]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None, "null": None}.get(text.lower(), text)


def parse_option(spec: str, flag: str = "`dataset_option`") -> tuple[str, Any]:
    if "=" not in spec:
        raise ValueError(f"{flag} takes KEY=VALUE, got {spec!r}")
    key, value = spec.split("=", 1)
    key = key.strip().replace("-", "_")
    if not key:
        raise ValueError(f"{flag} takes KEY=VALUE, got {spec!r}")
    return key, parse_value(value)


def parse_options(specs: Iterable[str], flag: str = "`dataset_option`") -> dict[str, Any]:
    return dict(parse_option(s, flag) for s in specs or ())


def recorded_spec(directory: str | os.PathLike) -> tuple[str, dict | None]:
    """``(label, spec dict or None)`` of an artefact directory (any kind): its ``config["data"]`` (missing keys
    mean "not recorded"), its dataset's name alone where the data had no spec, or None for an artefact of no
    dataset; a manifest without ``config["data"]`` (an older format) is refused, naming the command that migrates
    it."""
    from ..artifacts import ArtifactError, read_manifest
    from ..migrate import legacy_spec

    directory = Path(directory)
    manifest = read_manifest(directory)
    label = f"{manifest.get('kind', 'artefact')} {directory}"
    if legacy_spec(manifest) is not None:
        raise ArtifactError(
            f"{label} records no dataset spec (an older format); run `ppl-attention migrate {directory}`"
        )
    config = manifest.get("config", {})
    if isinstance(config.get("data"), dict) and config["data"].get("name"):
        return label, dict(config["data"])
    name = config.get("dataset") or (config.get("run") or {}).get("dataset")  # data without a spec: its name
    return label, {"name": name} if name and name != "toy" else None


def _same_root(a, b) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _recorded(records: list) -> tuple[str | None, dict[str, tuple[str, Any]]]:
    """The dataset name and ``key -> (label, value)`` of the first artefact that records each key; artefacts that
    disagree with each other are refused, naming both."""
    known: dict[str, tuple[str, Any]] = {}

    def agree(key, label, value, shown=None):
        if key not in known:
            known[key] = (label, value)
            return
        other, prev = known[key]
        same = _same_root(prev, value) if key == "root" and prev and value else prev == value
        if not same:
            raise SpecConflict(f"{label} records dataset {shown or key} {value!r}, but {other} records {prev!r}")

    name = None
    for label, spec in records:
        agree("name", label, spec["name"], "name")
        name = spec["name"]
    for label, spec in records:
        if spec.get("root") is not None:
            agree("root", label, spec["root"])
        if spec.get("seed") is not None:
            agree("seed", label, int(spec["seed"]), "split seed")
        if spec.get("options") is not None:
            agree("options", label, check_options(name, spec["options"], where=label), "options")
    return name, known


def _resolve_root(flags: DatasetFlags, known: dict):
    root = known.get("root", (None, None))[1]
    if flags.root is None:
        return root
    if root is not None and not _same_root(root, flags.root):
        if Path(root).exists():
            raise SpecConflict(f"`root` {flags.root} contradicts {known['root'][0]}, which records root {root}")
        log.warning("%s records root %s, which does not exist; using root %s", known["root"][0], root, flags.root)
    return flags.root


def _resolve_seed(flags: DatasetFlags, known: dict, default_seed: int) -> int:
    seed = known.get("seed", (None, None))[1]
    if flags.seed is not None:
        if seed is not None and int(flags.seed) != seed:
            raise SpecConflict(
                f"`data_seed` {flags.seed} contradicts {known['seed'][0]}, which records split seed "
                f"{seed} (another seed splits the images differently, so held-out images would "
                f"leak into training): leave `data_seed` out, or pass `data_seed` {seed}"
            )
        seed = int(flags.seed)
    return default_seed if seed is None else seed


def _resolve_options(flags: DatasetFlags, known: dict, name: str) -> dict:
    options = known.get("options", (None, None))[1]
    if options is None:
        return check_options(name, flags.options)
    given = check_options(name, {}, "")
    for key, value in flags.options.items():
        key = key.replace("-", "_")
        if key not in given:
            check_options(name, {key: value})  # raises, naming the key
        if _json_value(value) != options[key]:
            raise SpecConflict(
                f"`dataset_option` {key}={value!r} contradicts {known['options'][0]}, which "
                f"records {key}={options[key]!r}"
            )
    return options


def resolve_spec(
    flags: DatasetFlags,
    artefacts: Iterable[tuple[str, dict | None]] = (),
    default_name: str | None = "cluttered-mnist",
    default_seed: int = 0,
) -> DatasetSpec:
    """Merge what the artefacts record with what the user typed; refuse any contradiction, naming both sides.

    ``artefacts``: ``(label, spec dict)`` pairs, e.g. from :func:`recorded_spec`; a spec dict may lack keys (not
    recorded).  Flags fill what the artefacts leave open; ``default_name`` / ``default_seed`` what is left.
    A recorded root that no longer exists is replaced by the given ``root`` (the data moved), with a warning.
    """
    records = [(label, spec) for label, spec in artefacts if spec]
    records += [r for r in (recorded_spec(path) for path in flags.sources) if r[1]]
    name, known = _recorded(records)
    if flags.name is not None and name is not None and flags.name != name:
        raise SpecConflict(f"`dataset` {flags.name!r} contradicts {known['name'][0]}, which records dataset {name!r}")
    name = name or flags.name or default_name
    if name is None:
        raise ValueError("`dataset` is required (no artefact given records one)")
    return DatasetSpec.make(
        name,
        _resolve_root(flags, known),
        _resolve_seed(flags, known, default_seed),
        _resolve_options(flags, known, name),
    )
