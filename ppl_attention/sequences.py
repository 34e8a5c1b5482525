"""Glimpse sequences in the paper's released text format, so the published sequences can be reused.

Two layouts (documented in docs/INTERFACES.md, "Paper sequence files"; samples in tests/fixtures/paper-sequences):

- ``celebhq/{attr}/{img}.txt``: one ``r, c`` line per glimpse (top-left pixel in 224 x 224 space), every line
  ending in a newline;
- ``birds/{k}.txt``: the ``r, c`` lines, then a last line with the image path and *no* trailing newline.

Reading maps each ``r, c`` to a flat location with ``grid.index`` (coordinates off the grid are refused, naming
the file and line); writing is atomic and byte-identical to the released files.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, TYPE_CHECKING

import torch

from .artifacts import atomic_write_bytes
from .sensor import Sensor

if TYPE_CHECKING:
    import os
    from typing import Sequence

__all__ = [
    "PaperSequence",
    "read_paper_sequence_file",
    "read_paper_sequences",
    "write_paper_sequences",
    "format_paper_sequence",
    "stack_sequences",
]

log = logging.getLogger(__name__)
_COORD = re.compile(r"^\s*(-?\d+)\s*,\s*(-?\d+)\s*$")


@dataclass(frozen=True)
class PaperSequence:
    """One released sequence: its image index (the file's number, or None), flat locations (T,), image path."""

    index: int | None
    locations: torch.Tensor
    image_path: str | None = None


def _check_grid(grid) -> Sensor:
    if not isinstance(grid, Sensor):
        raise ValueError(f"`grid` must be a Sensor, got {type(grid).__name__}")
    return grid


def read_paper_sequence_file(path: str | os.PathLike, grid: Sensor) -> PaperSequence:
    """Parse one sequence file; its index is the file name's number (``17.txt`` -> 17) or None."""
    path, grid = Path(path), _check_grid(grid)
    if not path.is_file():
        raise FileNotFoundError(f"sequence file {path} does not exist")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text: {e}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]  # the trailing newline of the celebhq files
    rows, cols, image_path = [], [], None
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        m = _COORD.match(line)
        if m:
            if image_path is not None:
                raise ValueError(f"{path}, line {number}: a glimpse line follows the image path line")
            r, c = int(m.group(1)), int(m.group(2))
            if r not in grid.rows or c not in grid.cols:
                raise ValueError(
                    f"{path}, line {number}: glimpse ({r}, {c}) is not on the grid "
                    f"(rows {list(grid.rows)}, cols {list(grid.cols)})"
                )
            rows.append(r)
            cols.append(c)
        elif number == len(lines) and line.strip() and "," not in line:
            image_path = line
        else:
            raise ValueError(f"{path}, line {number}: expected 'r, c' (two integers), got {line[:80]!r}")
    if not rows:
        raise ValueError(f"{path} holds no glimpse lines ('r, c')")
    locations = grid.index(torch.tensor(rows), torch.tensor(cols))
    index = int(path.stem) if path.stem.isdigit() else None
    return PaperSequence(index, locations, image_path)


def read_paper_sequences(path: str | os.PathLike, grid: Sensor) -> dict[int, PaperSequence]:
    """Every sequence of a folder of ``{index}.txt`` files (or one such file), as ``{index: PaperSequence}``
    sorted by index.  Files whose name is not a number are skipped (and logged)."""
    path, grid = Path(path), _check_grid(grid)
    if path.is_file():
        seq = read_paper_sequence_file(path, grid)
        if seq.index is None:
            raise ValueError(f"sequence file name must be the image index ({{index}}.txt), got {path.name!r}")
        return {seq.index: seq}
    if not path.is_dir():
        raise FileNotFoundError(f"sequence folder {path} does not exist")
    files = {}
    for f in path.iterdir():
        if f.suffix == ".txt" and f.stem.isdigit() and f.is_file():
            files[int(f.stem)] = f
        else:
            log.debug("skipping %s: not an {index}.txt sequence file", f)
    if not files:
        raise ValueError(f"sequence folder {path} holds no {{index}}.txt files")
    return {i: read_paper_sequence_file(files[i], grid) for i in sorted(files)}


def format_paper_sequence(
    locations: torch.Tensor | Sequence[int], grid: Sensor, image_path: str | None = None
) -> bytes:
    """The exact bytes of a released file: ``r, c`` lines (newline-terminated when there is no image path),
    then the image path without a trailing newline."""
    grid = _check_grid(grid)
    loc = torch.as_tensor(locations)
    if loc.dim() != 1 or loc.numel() == 0:
        raise ValueError(
            f"`locations` must be a non-empty 1-D sequence of flat grid indices, got shape {tuple(loc.shape)}"
        )
    pixels = grid.pixels(loc).tolist()
    lines = [f"{r}, {c}" for r, c in pixels]
    if image_path is None:
        return ("\n".join(lines) + "\n").encode("utf-8")
    image_path = str(image_path)
    if not image_path.strip() or "\n" in image_path or "," in image_path:
        raise ValueError(f"`image_path` must be a non-empty single line without commas, got {image_path!r}")
    return "\n".join(lines + [image_path]).encode("utf-8")


def write_paper_sequences(
    path: str | os.PathLike,
    locations: torch.Tensor | Sequence[int] | Mapping[int, torch.Tensor | Sequence[int]],
    grid: Sensor,
    image_path: str | os.PathLike | Mapping[int, str] | None = None,
) -> list[Path]:
    """Write sequences in the released format, atomically.

    ``locations`` is either one sequence (T,) written to the file ``path`` (with ``image_path`` a string or
    None), or a mapping ``{index: (T,)}`` written as ``path/{index}.txt`` (``image_path`` then None or a
    mapping ``{index: str}``).  Returns the files written.
    """
    path = Path(path)
    if isinstance(locations, Mapping):
        if image_path is not None and not isinstance(image_path, Mapping):
            raise ValueError(
                f"`image_path` must be a mapping {{index: path}} when locations is a mapping, "
                f"got {type(image_path).__name__}"
            )
        written = []
        for index in sorted(locations):
            if not isinstance(index, int) or index < 0:
                raise ValueError(f"sequence indices must be non-negative ints, got {index!r}")
            img = None if image_path is None else image_path.get(index)
            written.append(
                atomic_write_bytes(path / f"{index}.txt", format_paper_sequence(locations[index], grid, img))
            )
        return written
    if image_path is not None and not isinstance(image_path, (str, Path)):
        raise ValueError(f"`image_path` must be a string for a single sequence, got {type(image_path).__name__}")
    return [atomic_write_bytes(path, format_paper_sequence(locations, grid, image_path))]


def stack_sequences(sequences: Mapping[int, PaperSequence]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(indices (N,), locations (N, T))`` of sequences that all have the same length T."""
    if not sequences:
        raise ValueError("sequences is empty")
    lengths = {len(s.locations) for s in sequences.values()}
    if len(lengths) != 1:
        raise ValueError(f"sequences have different lengths {sorted(lengths)}; cannot stack them")
    keys = sorted(sequences)
    return torch.tensor(keys, dtype=torch.long), torch.stack([sequences[k].locations for k in keys])
