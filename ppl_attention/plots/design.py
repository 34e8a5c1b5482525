"""Design figures: EPE heatmaps of every step with the glimpses taken (the paper's Figure 2), accuracy curves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..sensor import Sensor
from ._save import plt, save_figure

if TYPE_CHECKING:
    import os

__all__ = ["plot_epe_steps", "plot_accuracy_by_glimpse", "plot_epe_calibration"]


def _show(ax, image: torch.Tensor):
    img = image.detach().cpu().float()
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def plot_epe_steps(
    epe: torch.Tensor,
    locations: torch.Tensor,
    grid: Sensor,
    path: str | os.PathLike,
    image: torch.Tensor | None = None,
    title: str | None = None,
) -> Path:
    """Top row (if ``image`` is given): the image with the glimpses taken before each step (red) and the one
    chosen (yellow); bottom row: the EPE of every candidate at that step with the chosen location marked."""
    epe = torch.as_tensor(epe, dtype=torch.float64)
    loc = torch.as_tensor(locations).long()
    T = len(loc)
    if epe.shape != (T, grid.num_locations):
        raise ValueError(f"`epe` must have shape ({T}, {grid.num_locations}), got {tuple(epe.shape)}")
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
                ax.add_patch(
                    plt.Rectangle((c - 0.5, r - 0.5), w, h, fill=False, lw=1.5, ec="yellow" if s == t else "red")
                )
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


def plot_accuracy_by_glimpse(curves: dict, path: str | os.PathLike, title: str = "Accuracy after t glimpses") -> Path:
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


def plot_epe_calibration(
    result: dict, path: str | os.PathLike, title: str = "Predicted EPE vs realised entropy"
) -> Path:
    """``result`` from :func:`ppl_attention.design.evaluate.epe_calibration`: per step, the mean predicted EPE of
    the chosen location, the mean realised posterior entropy and (when recorded) the chosen location's EPE on an
    independent draw, with 95 % intervals; right, every image's (predicted, realised) pair."""
    steps = result["steps"]
    t = [s["t"] for s in steps]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    labels = {
        "predicted": "predicted (EPE of the chosen location)",
        "realised": "realised (posterior entropy)",
        "independent": "chosen location on an independent draw",
    }
    for key, marker, dx in (("predicted", "o-", -0.05), ("realised", "s--", 0.05), ("independent", "^:", 0.0)):
        have = [s for s in steps if key in s]
        if not have:
            continue
        m = [s[key]["mean"] for s in have]
        err = [[s[key]["mean"] - s[key]["lo"] for s in have], [s[key]["hi"] - s[key]["mean"] for s in have]]
        ax.errorbar([s["t"] + dx for s in have], m, yerr=err, fmt=marker, capsize=3, label=labels[key])
    ax.set_xlabel("glimpses t")
    ax.set_ylabel("entropy (nats)")
    ax.set_xticks(t)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    pred = torch.tensor(result["rows"]["predicted"])
    real = torch.tensor(result["rows"]["realised"])
    for k in range(pred.shape[1]):
        ax2.scatter(pred[:, k], real[:, k], s=6, alpha=0.5, label=f"t = {k + 1}")
    hi = float(torch.cat([pred.flatten(), real.flatten()]).max())
    ax2.plot([0, hi], [0, hi], "k:", lw=1)
    ax2.set_xlabel("predicted EPE")
    ax2.set_ylabel("realised entropy")
    ax2.set_title("per image", fontsize=9)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
