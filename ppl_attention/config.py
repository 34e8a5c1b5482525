"""Configs are dataclasses; CLI flags map onto their fields; ``--config file.yaml`` loads one.

Precedence: dataclass defaults < YAML file < flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

if TYPE_CHECKING:
    import os

__all__ = [
    "setting",
    "add_config_arguments",
    "build_config",
    "load_yaml",
    "config_to_dict",
    "config_from_dict",
    "presets",
    "preset_summary",
    "GLIMPSES",
]

#: T, glimpses per image: the paper's sequence length, the one default of every command that takes it.
GLIMPSES = 5

T = TypeVar("T")


def setting(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = None, **metadata: Any) -> Any:
    """A config field in one line: its default (or a ``factory`` of it), the help text its flag shows, and the rest
    of its flag's metadata (``choices``, ``cli=False``, ``flag``, ``old_flags``), read by :func:`add_config_arguments`.
    """
    metadata = {"help": help, **metadata} if help else metadata
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(tp):
    """Unwrap Optional[X] -> (X, optional)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _parse_bool(text: str) -> bool:
    low = str(text).lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """Add one flag per field of dataclass ``cls`` (``field_name`` -> ``--field-name``); defaults stay unset."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} fields")
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init or f.metadata.get("cli") is False:
            continue
        tp, _ = _base_type(hints[f.name])
        help_text = f.metadata.get("help", "")
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        help_text = f"{help_text} (default: {default})".strip()
        kwargs: dict[str, Any] = dict(dest=f.name, default=None, help=help_text)
        origin = typing.get_origin(tp)
        if tp is bool:  # --flag turns it on, --no-flag off (--flag BOOL is read too)
            kwargs.update(
                nargs="?",
                const=True,
                type=_parse_bool,
                metavar="BOOL",
                help=f"{help_text}; --no-{f.metadata.get('flag', f.name).replace('_', '-')} turns it off",
            )
        elif origin in (list, tuple) or tp in (list, tuple):
            args = typing.get_args(tp)
            item = args[0] if args else str
            kwargs.update(nargs="+", type=item if item in (int, float, str) else str)
        elif tp in (int, float, str):
            kwargs.update(type=tp)
        elif isinstance(tp, type) and issubclass(tp, Path):
            kwargs.update(type=Path)
        else:
            kwargs.update(type=str)
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        group.add_argument(_flag(f.metadata.get("flag", f.name)), **kwargs)
        for old in f.metadata.get("old_flags", ()):  # earlier spellings, still read but not shown
            group.add_argument(old, **{**kwargs, "help": argparse.SUPPRESS})
        if tp is bool:
            group.add_argument(
                "--no-" + _flag(f.metadata.get("flag", f.name))[2:],
                dest=f.name,
                action="store_const",
                const=False,
                help=argparse.SUPPRESS,
            )


#: Where the named presets live: ``presets/NAME.yaml`` in the package (shipped as package data).
PRESETS_DIR = Path(__file__).parent / "presets"


def presets() -> dict[str, Path]:
    """The named ``--config`` presets: name -> the packaged YAML file (e.g. ``cluttered-mnist-fine``)."""
    return {p.stem: p for p in sorted(PRESETS_DIR.glob("*.yaml"))}


def preset_summary(name: str) -> str:
    """The first comment line of preset ``name``'s YAML file (what it is)."""
    for line in presets()[name].read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def load_yaml(path: str | os.PathLike) -> dict:
    """The mapping in a YAML file; ``path`` may also name a packaged preset (:func:`presets`) when no such file
    exists (a file of that name wins)."""
    path = Path(path)
    if not path.is_file() and str(path) in presets():
        path = presets()[str(path)]
    if not path.is_file():
        raise ValueError(f"`config` file {path} does not exist (nor is it a preset: {sorted(presets())})")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ValueError(
            f"`config` file {path} is not a YAML text file (expected UTF-8, found byte "
            f"{e.object[e.start]:#04x} at offset {e.start})"
        ) from None
    except yaml.YAMLError as e:
        raise ValueError(f"`config` file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"`config` file {path} must hold a mapping of field names to values, got {type(data).__name__}"
        )
    return data


def config_from_dict(cls: type[T], data: dict, strict: bool = True) -> T:
    names = {f.name for f in dataclasses.fields(cls)}
    data = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = set(data) - names
    if unknown and strict:
        raise ValueError(f"unknown {cls.__name__} field(s) {sorted(unknown)}; known fields are {sorted(names)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for k, v in data.items():
        if k not in names:
            continue
        tp, _ = _base_type(hints[k])
        if v is not None and typing.get_origin(tp) is tuple and isinstance(v, list):
            v = tuple(v)
        kwargs[k] = v
    return cls(**kwargs)


#: YAML keys every command's ``--config`` may hold besides its config's fields: the dataset config, read by
#: ``commands._dataset.dataset_flags`` (dataset, root, data_seed, dataset_options, dataset_from).
DATASET_KEYS = ("dataset", "root", "data_seed", "dataset_options", "dataset_from")


def build_config(
    cls: type[T], args: argparse.Namespace | None = None, yaml_path: str | os.PathLike | None = None, **overrides
) -> T:
    """Defaults < YAML (``yaml_path`` or ``args.config``) < flags that were given < ``overrides``.

    The dataset keys of :data:`DATASET_KEYS` in the YAML file are left to the dataset config (unless ``cls`` has
    such a field)."""
    data: dict[str, Any] = {}
    path = yaml_path or (getattr(args, "config", None) if args is not None else None)
    if path:
        fields = {f.name for f in dataclasses.fields(cls)}
        data.update(
            {
                k: v
                for k, v in load_yaml(path).items()
                if k.replace("-", "_") in fields or k.replace("-", "_") not in DATASET_KEYS
            }
        )
    names = {f.name for f in dataclasses.fields(cls)}
    if args is not None:
        for name in names:
            value = getattr(args, name, None)
            if value is not None:
                data[name] = value
    data.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(cls, {k: v for k, v in data.items() if k in names} if not path else data, strict=True)


def config_to_dict(cfg: Any) -> dict:
    def convert(v):
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple):
            return [convert(x) for x in v]
        if isinstance(v, list):
            return [convert(x) for x in v]
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        return v

    return {k: convert(v) for k, v in dataclasses.asdict(cfg).items()}
