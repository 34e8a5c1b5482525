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
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..checks import check_int
from ..sensor import Sensor
from ._save import plt, save_figure

if TYPE_CHECKING:
    import os
    from typing import Sequence
    from matplotlib.axes import Axes

__all__ = [
    "glimpse_frequency",
    "plot_glimpse_frequency",
    "plot_validation_curves",
    "trailing_mean",
    "plot_glimpse_strip",
    "plot_stopping_curve",
    "animate_glimpses",
    "sensor_view",
    "draw_glimpse_boxes",
]


def sensor_view(grid: Sensor, images: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W): what glimpses at ``locations`` (N, T) showed of ``images``, at each pixel the finest scale
    that saw it (the fovea's pixels, else the pooled blocks of the next scale, ...), 0 where nothing was seen."""
    images = torch.as_tensor(images).float()
    canvas, mask = grid.observe(images, torch.as_tensor(locations).long())
    N, k, H, W = mask.shape
    finest = mask.argmax(1, keepdim=True)  # first (finest) scale that covers each pixel
    C = canvas.shape[1] // k
    view = canvas.view(N, k, C, H, W).gather(1, finest.unsqueeze(2).expand(N, 1, C, H, W))[:, 0]
    return view * mask.amax(1, keepdim=True)


def _box_rectangles(grid: Sensor, location: int, color: str, lw: float = 1.5) -> list:
    """One rectangle per scale of the glimpse at ``location``: the fovea solid, the coarser scales dashed."""
    tops = grid.footprints(torch.tensor([location]))[0].tolist()  # (k, 2)
    rects = []
    for j, ((r, c), (h, w)) in enumerate(zip(tops, grid.patch_sizes)):
        rects.append(
            plt.Rectangle(
                (c - 0.5, r - 0.5),
                w,
                h,
                fill=False,
                lw=lw if j == 0 else lw * 0.8,
                edgecolor=color,
                linestyle="-" if j == 0 else "--",
                alpha=1.0 if j == 0 else 0.75,
            )
        )
    return rects


def draw_glimpse_boxes(ax: Axes, grid: Sensor, location: int, color: str = "red", lw: float = 1.5) -> list:
    """Draw the nested boxes of every scale of one glimpse on ``ax`` (clipped to the image); returns them."""
    rects = _box_rectangles(grid, int(location), color, lw)
    for rect in rects:
        ax.add_patch(rect)
    H, W = grid.image_size
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    return rects


def glimpse_frequency(grid: Sensor, locations: torch.Tensor) -> torch.Tensor:
    """(T, H, W): the fraction of images whose t-th glimpse covered each pixel; ``locations`` (N, T)."""
    loc = torch.as_tensor(locations).long()
    if loc.dim() != 2 or loc.shape[0] == 0:
        raise ValueError(f"`locations` must have shape (N, T) with N > 0, got {tuple(loc.shape)}")
    counts = (
        torch.bincount(
            loc.T.reshape(-1) + grid.num_locations * torch.arange(loc.shape[1]).repeat_interleave(loc.shape[0]),
            minlength=grid.num_locations * loc.shape[1],
        )
        .view(loc.shape[1], -1)
        .float()
    )
    masks = grid.mask(grid.all_locations().unsqueeze(1))[:, 0]  # (L, H, W) footprint of each location
    return torch.einsum("tl,lhw->thw", counts, masks) / loc.shape[0]


def plot_glimpse_frequency(
    grid: Sensor,
    locations: torch.Tensor,
    path: str | os.PathLike,
    title: str | None = None,
    background: torch.Tensor | np.ndarray | None = None,
) -> Path:
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


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """The running mean of each row of ``values`` (R, n) over its last ``window`` entries (fewer at the start)."""
    csum = np.cumsum(np.asarray(values, dtype=float), axis=1)
    csum[:, window:] = csum[:, window:] - csum[:, :-window]
    return csum / np.minimum(np.arange(1, csum.shape[1] + 1), window)


def plot_validation_curves(
    runs: dict,
    path: str | os.PathLike,
    metric: str = "val_greedy_acc",
    ylabel: str = "validation accuracy",
    title: str | None = None,
    levels: dict[str, float] | None = None,
    smooth: int = 1,
    colors: dict[str, str] | None = None,
) -> Path:
    """``runs``: {label: history (rows with ``iteration`` and ``metric``) or a list of histories (seeds)}.

    A list of histories is drawn as its mean with a band of +- one standard deviation.  ``levels``: {label: value}
    drawn as dashed horizontal lines (e.g. a baseline's final accuracy); ``smooth``: each history's running mean over
    that many validations (trailing), so that noisy curves can be compared; ``colors``: {label: matplotlib colour},
    so that one method keeps its colour across figures (the others take the default cycle).
    """
    if not runs:
        raise ValueError("`runs` must hold at least one history")
    check_int("smooth", smooth)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, hist in runs.items():
        hists = hist if hist and isinstance(hist[0], list) else [hist]
        hists = [h for h in hists if h]
        if not hists:
            continue
        n = min(len(h) for h in hists)
        its = np.array([r["iteration"] for r in hists[0][:n]])
        vals = np.array([[r[metric] for r in h[:n]] for h in hists], dtype=float)
        vals = trailing_mean(vals, smooth)
        name = f"{label} (n={len(hists)})" if len(hists) > 1 else label
        (line,) = ax.plot(its, vals.mean(0), label=name, color=(colors or {}).get(label))
        if len(hists) > 1:
            ax.fill_between(
                its, vals.mean(0) - vals.std(0), vals.mean(0) + vals.std(0), alpha=0.2, color=line.get_color()
            )
    for name, value in (levels or {}).items():
        ax.axhline(value, color="black", linestyle="--", linewidth=1, label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def plot_glimpse_strip(
    images: torch.Tensor,
    locations: torch.Tensor,
    grid: Sensor,
    path: str | os.PathLike,
    labels: Sequence[object] | torch.Tensor | None = None,
    predictions: Sequence[object] | torch.Tensor | None = None,
) -> Path:
    """Rows: images; columns: the image with glimpses 1..t drawn (the newest in red, earlier foveae in yellow;
    with a multi-scale sensor the newest glimpse's coarser scales are the dashed boxes around it), then what the
    sensor showed (:func:`sensor_view`: the pooled coarse scales where no fovea looked)."""
    images = torch.as_tensor(images).float()
    loc = torch.as_tensor(locations).long()
    N, T = loc.shape
    view = sensor_view(grid, images, loc).permute(0, 2, 3, 1).numpy()
    fig, axes = plt.subplots(N, T + 1, figsize=(1.6 * (T + 1), 1.6 * N), squeeze=False)
    for i in range(N):
        img = images[i].permute(1, 2, 0).numpy()
        img = img[..., 0] if img.shape[-1] == 1 else img.clip(0, 1)
        for t in range(T):
            ax = axes[i, t]
            ax.imshow(img, cmap="gray")
            for s in range(t):
                for rect in _box_rectangles(grid, int(loc[i, s]), "yellow")[:1]:  # earlier glimpses: their foveae
                    ax.add_patch(rect)
            draw_glimpse_boxes(ax, grid, int(loc[i, t]), "red")
            ax.axis("off")
            if i == 0:
                ax.set_title(f"t = {t + 1}", fontsize=8)
        ax = axes[i, T]
        seen = view[i][..., 0] if view.shape[-1] == 1 else view[i].clip(0, 1)
        ax.imshow(seen, cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
        if i == 0:
            ax.set_title("seen", fontsize=8)
        text = []
        if labels is not None:
            text.append(f"y={labels[i]}")
        if predictions is not None:
            text.append(f"pred={predictions[i]}")
        if text:
            ax.set_title(" ".join(text), fontsize=8)
    return save_figure(fig, path)


def plot_stopping_curve(curves: dict, path: str | os.PathLike, x: str = "flops") -> Path:
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


def animate_glimpses(
    images: torch.Tensor, locations: torch.Tensor, grid: Sensor, path: str | os.PathLike, fps: int = 2
) -> Path:
    """A GIF: each frame adds one glimpse for up to 8 images side by side: what the sensor has shown so far
    (:func:`sensor_view`) and the newest glimpse's nested boxes, one per scale."""
    import os
    import tempfile

    from matplotlib.animation import FuncAnimation, PillowWriter

    images = torch.as_tensor(images).float()[:8]
    loc = torch.as_tensor(locations).long()[:8]
    N, T = loc.shape
    # Frames t = 0..T-1: the view after t + 1 glimpses (one batched sensor call per frame).
    views = [sensor_view(grid, images, loc[:, : t + 1]).permute(0, 2, 3, 1).numpy() for t in range(T)]
    fig, axes = plt.subplots(1, N, figsize=(1.6 * N, 1.8), squeeze=False)
    arts, boxes = [], []
    for i, ax in enumerate(axes[0]):
        img = images[i].permute(1, 2, 0).numpy()
        img = img[..., 0] if img.shape[-1] == 1 else img.clip(0, 1)
        arts.append(ax.imshow(np.zeros_like(img), cmap="gray", vmin=0, vmax=1))
        boxes.append(draw_glimpse_boxes(ax, grid, int(loc[i, 0]), "red"))
        ax.axis("off")

    def frame(t):
        for i, art in enumerate(arts):
            v = views[t][i]
            art.set_data(v[..., 0] if v.shape[-1] == 1 else v.clip(0, 1))
            for rect, (r, c) in zip(boxes[i], grid.footprints(loc[i, t : t + 1])[0].tolist()):
                rect.set_xy((c - 0.5, r - 0.5))
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
