"""Helpers shared by the CLI subcommands."""
from __future__ import annotations

import json
from pathlib import Path

from ..artifacts import atomic_write_json

__all__ = ["write_summary", "print_summary"]


def write_summary(out_dir, summary: dict, name: str = "summary.json") -> Path:
    """Write ``summary.json`` (or ``name``) next to a command's outputs and print a short version."""
    path = atomic_write_json(Path(out_dir) / name, summary)
    print_summary(summary)
    print(f"summary written to {path}")
    return path


def print_summary(summary: dict) -> None:
    for key, value in summary.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
            if len(value) > 120:
                value = value[:117] + "..."
        print(f"  {key}: {value}")
