"""Argument checks at the library's public boundary, in one style: a ``ValueError`` that names the argument (in
backticks, so the CLI can show the flag that sets it), says what was given and what is expected."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = ["check_int", "check_number", "check_choice", "check_out_dir", "check_out_file", "check_in_dir"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _named(name: str) -> str:
    """`name` for an argument's name; a flag or phrase (``--num-images``) as it is."""
    return f"`{name}`" if _IDENTIFIER.fullmatch(name) else name


def check_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None, optional: bool = False) -> Any:
    """``value`` if it is an int (not a bool; numpy ints too) in [minimum, maximum] (None too when ``optional``),
    else a ValueError naming ``name``."""
    if value is None and optional:
        return value
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{_named(name)} must be an int {bound}, got {value!r}")
    return value


def check_number(
    name: str,
    value: Any,
    minimum: float = 0.0,
    strict: bool = False,
    optional: bool = False,
    maximum: float | None = None,
) -> Any:
    """``value`` if it is a finite real number >= minimum (> when ``strict``) and <= maximum, (None too when
    ``optional``), else a ValueError naming ``name``."""
    if value is None and optional:
        return value
    ok = (
        not isinstance(value, (bool, np.bool_))
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(value)
        and (value > minimum if strict else value >= minimum)
        and (maximum is None or value <= maximum)
    )
    if not ok:
        bound = f"{'>' if strict else '>='} {minimum:g}" + ("" if maximum is None else f" and <= {maximum:g}")
        raise ValueError(f"{_named(name)} must be a finite number {bound}, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Iterable) -> Any:
    """``value`` if it is one of ``choices``, else a ValueError naming ``name`` and listing them."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{_named(name)} must be one of {choices}, got {value!r}")
    return value


# A stage refused on its arguments leaves its output as it was: these run before anything is loaded or written.


def _first_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p.parent != p:
        p = p.parent
    return p


def check_out_dir(path: str | os.PathLike, name: str = "out") -> Path:
    """``path`` may be created (or written into) as an output directory: not a file, under a writable folder."""
    path, named = Path(path), _named(name)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{named} {path} is a file, expected a directory (a new path or an earlier output folder)")
    base = _first_existing(path)
    if not base.is_dir():
        raise ValueError(f"{named} {path}: {base} is a file, expected a folder on the way to the output directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{named} {path}: the folder {base} is not writable (expected a folder this user may write)")
    return path


def check_out_file(path: str | os.PathLike, name: str = "out", suffixes: tuple[str, ...] = ()) -> Path:
    """``path`` may be written as an output file: not a directory, its folder creatable and writable."""
    path, named = Path(path), _named(name)
    if path.is_dir():
        raise ValueError(f"{named} {path} is a directory, expected a file path")
    if suffixes and path.suffix.lower() not in suffixes:
        raise ValueError(f"{named} {path} must end in {' or '.join(suffixes)}, got {path.suffix or 'no suffix'!r}")
    check_out_dir(path.parent, f"{named} {path}: its folder")
    return path


def check_in_dir(path: str | os.PathLike, name: str, what: str = "an artefact directory") -> Path:
    """``path`` is an existing directory (FileNotFoundError / ValueError naming ``name`` otherwise)."""
    path, named = Path(path), _named(name)
    if not path.exists():
        raise FileNotFoundError(f"{named} {path} does not exist (expected {what})")
    if not path.is_dir():
        raise ValueError(f"{named} {path} is a file, expected {what}")
    return path
