"""Design figures: EPE heatmaps of every step with the glimpses taken (the paper's Figure 2), accuracy curves."""
from __future__ import annotations

from pathlib import Path

import torch

from ..sensor import GlimpseGrid
from ._save import plt, save_figure

__all__ = ["plot_epe_steps", "plot_accuracy_by_glimpse"]


def _show(ax, image: torch.Tensor):
    img = image.detach().cpu().float()
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def plot_epe_steps(epe: torch.Tensor, locations: torch.Tensor, grid: GlimpseGrid, path, image=None,
                   title: str | None = None) -> Path:
    """Top row (if ``image`` is given): the image with the glimpses taken before each step (red) and the one
    chosen (yellow); bottom row: the EPE of every candidate at that step with the chosen location marked."""
    epe = torch.as_tensor(epe, dtype=torch.float64)
    loc = torch.as_tensor(locations).long()
    T = len(loc)
    if epe.shape != (T, grid.num_locations):
        raise ValueError(f"epe must have shape ({T}, {grid.num_locations}), got {tuple(epe.shape)}")
    rows = 2 if image is not None else 1
    # constrained layout gives each colorbar its own room, so tick labels never run into the next panel
    fig, axes = plt.subplots(rows, T, figsize=(2.9 * T, 2.6 * rows), squeeze=False, layout="constrained")
    h, w = grid.glimpse_size
    px = grid.pixels(loc)
    cells = grid.cell(loc)
    for t in range(T):
        if image is not None:
            ax = axes[0, t]
            _show(ax, image)
            for s in range(t + 1):
                r, c = px[s].tolist()
                ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), w, h, fill=False, lw=1.5,
                                           ec="yellow" if s == t else "red"))
            ax.set_title(f"glimpse {t + 1}", fontsize=9)
        ax = axes[rows - 1, t]
        im = ax.imshow(grid.location_heatmap(epe[t]).numpy(), cmap="viridis")
        ax.plot(cells[t, 1], cells[t, 0], "r*", ms=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"EPE, t={t + 1} (min {float(epe[t].min()):.3f})", fontsize=8)
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        bar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_accuracy_by_glimpse(curves: dict, path, title: str = "Accuracy after t glimpses") -> Path:
    """``curves``: name -> accuracy after t = 1..T glimpses."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, acc in curves.items():
        ax.plot(range(1, len(acc) + 1), [100 * a for a in acc], "o-", label=name)
    ax.set_xlabel("glimpses t")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
