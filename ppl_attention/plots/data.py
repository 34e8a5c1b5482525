"""Figures of the datasets: sample images with their labels, boxes, parts, and the candidate glimpse grid."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..data._files import stratified_indices
from ._save import plt, save_figure

if TYPE_CHECKING:
    import os
    from typing import Sequence
    from matplotlib.axes import Axes
    from torch.utils.data import Dataset
    from ..sensor import Sensor

__all__ = ["draw_glimpse_grid", "plot_samples", "label_text"]


def label_text(dataset: Dataset, label: int | torch.Tensor) -> str:
    """A short title for a label: the class name, or the positive attributes of a multilabel item."""
    names = getattr(dataset, "class_names", None)
    label = torch.as_tensor(label)
    if label.dim() == 0:
        k = int(label)
        return names[k] if names is not None and k < len(names) else str(k)
    on = torch.nonzero(label > 0.5).flatten().tolist()
    if not on:
        return "(no attribute)"
    shown = [names[k] if names else str(k) for k in on[:2]]
    return ", ".join(shown) + (f" +{len(on) - 2}" if len(on) > 2 else "")


def _show(ax, image: torch.Tensor) -> None:
    x = image.detach().float().cpu().clamp(0, 1)
    if x.shape[0] == 1:
        ax.imshow(x[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(x.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


RECTANGLE_COLOURS = ("tab:orange", "lime", "magenta", "yellow", "tab:red", "white")


def draw_glimpse_grid(ax: Axes, grid: Sensor, n_rectangles: int = 4, color: str = "#00e5ff") -> None:
    """Every candidate glimpse's top-left pixel as a dot, and ``n_rectangles`` glimpses spread over the grid
    (first, last and evenly spaced locations between them) as rectangles."""
    from matplotlib.patches import Rectangle

    px = grid.pixels(grid.all_locations()).float()
    # imshow puts pixel centres at integers, so a pixel's top-left corner is at -0.5.
    size = 7.0 if grid.num_locations <= 200 else max(0.5, 1500.0 / grid.num_locations)
    alpha = 1.0 if grid.num_locations <= 1000 else 0.4  # fine grids (a dot per pixel): the image shows through
    ax.scatter(px[:, 1] - 0.5, px[:, 0] - 0.5, s=size, c=color, marker="o", linewidths=0, zorder=3, alpha=alpha)
    h, w = grid.glimpse_size
    if n_rectangles > 0:
        n_rows, n_cols = grid.shape
        cells = [
            (round(k * (n_rows - 1) / max(1, n_rectangles - 1)), round(k * (n_cols - 1) / max(1, n_rectangles - 1)))
            for k in range(n_rectangles)
        ]
        if n_rectangles >= 4:  # one off the diagonal too, so rows and columns both show
            cells[-2] = (0, n_cols - 1)
        for k, (ri, ci) in enumerate(dict.fromkeys(cells)):
            r, c = grid.rows[ri], grid.cols[ci]
            ax.add_patch(
                Rectangle(
                    (c - 0.5, r - 0.5),
                    w,
                    h,
                    fill=False,
                    lw=1.8,
                    ec=RECTANGLE_COLOURS[k % len(RECTANGLE_COLOURS)],
                    zorder=4,
                )
            )


def plot_samples(
    dataset: Dataset,
    path: str | os.PathLike,
    n: int = 8,
    indices: Sequence[int] | None = None,
    grid_on: int = 0,
    n_rectangles: int = 4,
    title: str | None = None,
    columns: int = 4,
) -> Path:
    """A grid of ``n`` samples titled with their labels; sample ``grid_on`` also shows the glimpse grid.

    Without ``indices`` the samples are drawn across classes (the first of each class, then the second, ...).

    Digit boxes (``bbox``) are drawn as dashed rectangles and visible bird parts (``parts``) as dots.
    """
    from matplotlib.patches import Rectangle

    if len(dataset) == 0:
        raise ValueError("dataset is empty; nothing to plot")
    if indices is None:
        labels = getattr(dataset, "labels", None)
        indices = (
            stratified_indices(labels, n).tolist()
            if labels is not None and len(labels) == len(dataset)
            else list(range(min(n, len(dataset))))
        )
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError("indices is empty; nothing to plot")
    bad = [i for i in indices if not 0 <= i < len(dataset)]
    if bad:
        raise ValueError(f"`indices` must be in [0, {len(dataset) - 1}], got {bad[0]}")
    cols = min(columns, len(indices))
    rows = math.ceil(len(indices) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(indices) :]:
        ax.axis("off")
    grid = getattr(dataset, "grid", None)
    for k, (ax, i) in enumerate(zip(axes.flat, indices)):
        item = dataset[i]
        _show(ax, item["image"])
        text = f"#{int(item['index'])}: {label_text(dataset, item['label'])}"
        if "bbox" in item:
            t, l, h, w = (float(v) for v in item["bbox"])
            ax.add_patch(Rectangle((l - 0.5, t - 0.5), w, h, fill=False, ls="--", lw=1, ec="tab:cyan"))
        if "parts" in item:
            p = item["parts"]
            vis = p[:, 2] > 0
            ax.scatter(p[vis, 1] - 0.5, p[vis, 0] - 0.5, s=14, c="yellow", edgecolors="black", linewidths=0.6, zorder=3)
        if k == grid_on and grid is not None:
            draw_glimpse_grid(ax, grid, n_rectangles)
            text += f"\n{grid.n_rows}x{grid.n_cols} grid, {grid.glimpse_size[0]}px glimpses"
        ax.set_title(text, fontsize=8)
    fig.suptitle(title or f"{getattr(dataset, 'name', 'dataset')} ({getattr(dataset, 'split', '')})", fontsize=10)
    return save_figure(fig, path)
