"""Argument checks at the library's public boundary, in one style: a ``ValueError`` that names the argument (in
backticks, so the CLI can show the flag that sets it), says what was given and what is expected."""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

import numpy as np

__all__ = ["check_int", "check_number", "check_choice"]

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
