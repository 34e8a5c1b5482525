"""Figures of the attention stage: where networks look, how fast they train, what they see.

- :func:`plot_glimpse_frequency`: per time step, a heat image of how often each pixel was observed on a set of
  images (the paper's Figures 4, 6, 9-11);
- :func:`plot_validation_curves`: validation accuracy of several runs (mean and spread per method) over
  iterations (Figures 5, 6, 12);
- :func:`plot_glimpse_strip`: one network's glimpses on a few images, step by step;
- :func:`animate_glimpses`: the same as a GIF, one glimpse per frame;
- :func:`plot_stopping_curve`: accuracy against average glimpses and FLOPs under adaptive stopping.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..geometry import GlimpseGrid
from ._save import plt, save_figure

__all__ = ["glimpse_frequency", "plot_glimpse_frequency", "plot_validation_curves", "plot_glimpse_strip",
           "plot_stopping_curve", "animate_glimpses"]


def glimpse_frequency(grid: GlimpseGrid, locations) -> torch.Tensor:
    """(T, H, W): the fraction of images whose t-th glimpse covered each pixel; ``locations`` (N, T)."""
    loc = torch.as_tensor(locations).long()
    if loc.dim() != 2 or loc.shape[0] == 0:
        raise ValueError(f"locations must have shape (N, T) with N > 0, got {tuple(loc.shape)}")
    counts = torch.bincount(loc.T.reshape(-1) + grid.num_locations * torch.arange(loc.shape[1]).repeat_interleave(
        loc.shape[0]), minlength=grid.num_locations * loc.shape[1]).view(loc.shape[1], -1).float()
    masks = grid.mask(grid.all_locations().unsqueeze(1))[:, 0]  # (L, H, W) footprint of each location
    return torch.einsum("tl,lhw->thw", counts, masks) / loc.shape[0]


def plot_glimpse_frequency(grid: GlimpseGrid, locations, path, title: str | None = None,
                           background=None) -> Path:
    """One panel per time step; ``background`` (H, W) (e.g. a mean image) is drawn faintly underneath."""
    freq = glimpse_frequency(grid, locations).numpy()
    T = freq.shape[0]
    fig, axes = plt.subplots(1, T, figsize=(2.2 * T, 2.5), squeeze=False)
    for t, ax in enumerate(axes[0]):
        if background is not None:
            ax.imshow(np.asarray(background), cmap="gray", alpha=0.5)
        im = ax.imshow(freq[t], cmap="magma", vmin=0, vmax=1, alpha=0.85 if background is not None else 1.0)
        ax.set_title(f"t = {t + 1}")
        ax.axis("off")
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.02, label="fraction of images observed")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_validation_curves(runs: dict, path, metric: str = "val_greedy_acc", ylabel: str = "validation accuracy",
                           title: str | None = None) -> Path:
    """``runs``: {label: history (rows with ``iteration`` and ``metric``) or a list of histories (seeds)}.

    A list of histories is drawn as its mean with a band of +- one standard deviation.
    """
    if not runs:
        raise ValueError("runs must hold at least one history")
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, hist in runs.items():
        hists = hist if hist and isinstance(hist[0], list) else [hist]
        hists = [h for h in hists if h]
        if not hists:
            continue
        n = min(len(h) for h in hists)
        its = np.array([r["iteration"] for r in hists[0][:n]])
        vals = np.array([[r[metric] for r in h[:n]] for h in hists], dtype=float)
        line, = ax.plot(its, vals.mean(0), label=f"{label} (n={len(hists)})" if len(hists) > 1 else label)
        if len(hists) > 1:
            ax.fill_between(its, vals.mean(0) - vals.std(0), vals.mean(0) + vals.std(0), alpha=0.2,
                            color=line.get_color())
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def plot_glimpse_strip(images, locations, grid: GlimpseGrid, path, labels=None, predictions=None) -> Path:
    """Rows: images; columns: the image with glimpse boxes 1..t drawn (the newest in red), then what was seen."""
    images = torch.as_tensor(images).float()
    loc = torch.as_tensor(locations).long()
    N, T = loc.shape
    px = grid.pixels(loc).numpy()
    h, w = grid.glimpse_size
    seen = grid.mask(loc).numpy()[:, 0]
    fig, axes = plt.subplots(N, T + 1, figsize=(1.6 * (T + 1), 1.6 * N), squeeze=False)
    for i in range(N):
        img = images[i].permute(1, 2, 0).numpy()
        img = img[..., 0] if img.shape[-1] == 1 else img.clip(0, 1)
        for t in range(T):
            ax = axes[i, t]
            ax.imshow(img, cmap="gray")
            for s in range(t + 1):
                r, c = px[i, s]
                ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), w, h, fill=False, lw=1.5,
                                           edgecolor="red" if s == t else "yellow"))
            ax.axis("off")
            if i == 0:
                ax.set_title(f"t = {t + 1}", fontsize=8)
        ax = axes[i, T]
        ax.imshow(img * (seen[i] if img.ndim == 2 else seen[i][..., None]), cmap="gray")
        ax.axis("off")
        text = []
        if labels is not None:
            text.append(f"y={labels[i]}")
        if predictions is not None:
            text.append(f"pred={predictions[i]}")
        if text:
            ax.set_title(" ".join(text), fontsize=8)
    return save_figure(fig, path)


def plot_stopping_curve(curves: dict, path, x: str = "flops") -> Path:
    """``curves``: {label: rows with ``accuracy`` and ``x`` (``flops`` or ``mean_glimpses``)}."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, rows in curves.items():
        rows = sorted(rows, key=lambda r: r[x])
        ax.plot([r[x] / (1e6 if x == "flops" else 1) for r in rows], [r["accuracy"] for r in rows], "o-", label=label)
    ax.set_xlabel("MFLOPs per image" if x == "flops" else "average glimpses")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def animate_glimpses(images, locations, grid: GlimpseGrid, path, fps: int = 2) -> Path:
    """A GIF: each frame adds one glimpse (what the network has seen so far) for up to 8 images side by side."""
    import os
    import tempfile

    from matplotlib.animation import FuncAnimation, PillowWriter

    images = torch.as_tensor(images).float()[:8]
    loc = torch.as_tensor(locations).long()[:8]
    N, T = loc.shape
    seen = [grid.mask(loc[:, : t + 1]).numpy()[:, 0] for t in range(T)]
    fig, axes = plt.subplots(1, N, figsize=(1.6 * N, 1.8), squeeze=False)
    arts = []
    for i, ax in enumerate(axes[0]):
        img = images[i].permute(1, 2, 0).numpy()
        img = img[..., 0] if img.shape[-1] == 1 else img.clip(0, 1)
        arts.append(ax.imshow(np.zeros_like(img), cmap="gray", vmin=0, vmax=1))
        ax.axis("off")

    def frame(t):
        for i, art in enumerate(arts):
            img = images[i].permute(1, 2, 0).numpy()
            img = img[..., 0] if img.shape[-1] == 1 else img.clip(0, 1)
            art.set_data(img * (seen[t][i] if img.ndim == 2 else seen[t][i][..., None]))
        fig.suptitle(f"after {t + 1} glimpse{'s' if t else ''}")
        return arts

    anim = FuncAnimation(fig, frame, frames=T, blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".gif")
    os.close(fd)
    try:
        anim.save(tmp, writer=PillowWriter(fps=fps))
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
