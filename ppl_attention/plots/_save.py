"""Saving figures atomically (a figure half-written by an interrupted run must not look complete)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..artifacts import atomic_write_bytes  # noqa: E402

if TYPE_CHECKING:
    import os
    from matplotlib.figure import Figure

__all__ = ["save_figure", "plt"]


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
