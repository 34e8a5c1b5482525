"""Figures of the image-completion comparison: sample grids (the paper's Figures 3 and 8), metric curves, and the
completions' label reliability."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..sensor import Sensor
from ._save import plt, save_figure

if TYPE_CHECKING:
    import os
    from ..completion.vae import VAE

__all__ = ["plot_completion_grid", "plot_comparison_metrics", "plot_label_reliability", "plot_vae_diagnostics"]


def _show(ax, image: torch.Tensor):
    img = image.detach().float().cpu().clamp(0, 1)
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def _mark_glimpses(ax, grid: Sensor, locations: torch.Tensor):
    from matplotlib.patches import Rectangle

    h, w = grid.glimpse_size
    for r, c in grid.pixels(locations.reshape(-1)).tolist():
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), w, h, fill=False, edgecolor="red", linewidth=1.2))


def plot_completion_grid(panels: list, grid: Sensor, path: str | os.PathLike, cell: float = 0.9) -> Path:
    """One block per panel: a row per method with the true image (glimpses as red squares) then its samples.

    ``panels``: dicts with ``true_image`` (C, H, W), ``locations`` (t,), ``samples`` {method: (k, C, H, W)} and
    an optional ``title``.
    """
    if not panels:
        raise ValueError("`panels` must hold at least one panel to draw")
    n_rows = sum(len(p["samples"]) for p in panels)
    n_cols = 1 + max(s.shape[0] for p in panels for s in p["samples"].values())
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(cell * n_cols + 1.2, cell * n_rows + 0.3 * len(panels)), squeeze=False
    )
    row = 0
    for p in panels:
        for k, (method, samples) in enumerate(p["samples"].items()):
            ax = axes[row, 0]
            _show(ax, p["true_image"])
            _mark_glimpses(ax, grid, p["locations"])
            ax.set_ylabel(method, rotation=0, ha="right", va="center", fontsize=8)
            if k == 0 and p.get("title"):
                ax.set_title(p["title"], fontsize=8, loc="left")
            for j in range(1, n_cols):
                if j - 1 < samples.shape[0]:
                    _show(axes[row, j], samples[j - 1])
                else:
                    axes[row, j].axis("off")
            row += 1
    fig.subplots_adjust(wspace=0.05, hspace=0.3)
    return save_figure(fig, path, dpi=80)


def plot_comparison_metrics(table: list, path: str | os.PathLike) -> Path:
    """P(true label) (with the reference's, dashed), log-likelihood, glimpse RMSE, diversity and seconds per sample
    against the number of glimpses; one line per (method, sequences)."""
    metrics = [
        ("p_true_label", "P(true label)"),
        ("loglik_per_pixel", "log-lik / unobserved pixel"),
        ("glimpse_rmse", "glimpse RMSE (observed pixels)"),
        ("diversity", "sample diversity (RMS)"),
        ("seconds_per_sample", "seconds / sample"),
    ]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.2))
    kinds = sorted({(r.get("sequences", "drawn"), r["method"]) for r in table})
    several = len({k[0] for k in kinds}) > 1
    for ax, (key, title) in zip(axes, metrics):
        for seq, m in kinds:
            rs = sorted(
                (
                    r
                    for r in table
                    if r["method"] == m and r.get("sequences", "drawn") == seq and r.get(key) is not None
                ),
                key=lambda r: r["glimpses"],
            )
            if not rs:
                continue
            ax.errorbar(
                [r["glimpses"] for r in rs],
                [r[key] for r in rs],
                yerr=[r.get(key + "_sem") or 0.0 for r in rs],
                marker="o",
                capsize=2,
                label=f"{m} ({seq})" if several else m,
            )
        if key == "p_true_label":  # the reference, once per sequence kind
            for seq, style in zip(sorted({k[0] for k in kinds}), ("--", ":", "-.") * 3):
                ref = {
                    r["glimpses"]: r["p_true_avp"]
                    for r in table
                    if r.get("sequences", "drawn") == seq and r.get("p_true_avp") is not None
                }
                if ref:
                    ax.plot(
                        sorted(ref),
                        [ref[t] for t in sorted(ref)],
                        "k" + style,
                        lw=1,
                        label=f"AVP ({seq})" if several else "AVP",
                    )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("glimpses")
        if key == "seconds_per_sample":
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def plot_vae_diagnostics(
    vae: VAE,
    images: torch.Tensor,
    kl_per_dim: torch.Tensor,
    path: str | os.PathLike,
    generator: torch.Generator | None = None,
) -> Path:
    """Is the VAE using its latent?  Held-out ``images`` (k, C, H, W), their reconstructions ``decode(E_q[z])``
    and ``k`` prior draws ``decode(z), z ~ N(0, I)``, beside the KL of each latent dimension (all near 0 for a
    collapsed VAE, whose reconstructions are one blurry mean image)."""
    k = images.shape[0]
    if k == 0:
        raise ValueError("`images` must hold at least one image to reconstruct")
    device = next(vae.parameters()).device
    with torch.no_grad():
        x = images.float().to(device)
        recon = vae.decode(vae.encode(x, torch.ones(k, 1, *x.shape[-2:], device=device))[0]).cpu()
        prior = vae.decode(torch.randn(k, vae.latent_dim, generator=generator).to(device)).cpu()
    fig = plt.figure(figsize=(1.0 * k + 3.6, 3.3))
    gs = fig.add_gridspec(3, k + 4, wspace=0.05, hspace=0.1)
    for row, (name, batch) in enumerate((("held-out", images), ("reconstruction", recon), ("prior draw", prior))):
        for j in range(k):
            ax = fig.add_subplot(gs[row, j])
            _show(ax, batch[j])
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    ax = fig.add_subplot(gs[:, k + 1 :])
    kl = kl_per_dim.detach().cpu().double()
    ax.bar(range(len(kl)), kl.numpy(), color="tab:blue")
    ax.set_xlabel("latent dimension", fontsize=8)
    ax.set_title("KL(q(z_j | x) || N(0, 1)), nats", fontsize=8)
    ax.tick_params(labelsize=7)
    return save_figure(fig, path, dpi=90)


def plot_label_reliability(steps: list[dict], path: str | os.PathLike, title: str = "") -> Path:
    """Reliability curves of the completions' label distribution, one panel per step: each bin's accuracy against
    its mean top-label confidence (marker area by count), the diagonal of perfect calibration, the ECE and its floor
    in the panel title.  ``steps``: dicts with ``t``, ``curve`` (``confidence``, ``accuracy``, ``count`` per bin),
    ``ece`` and optionally ``ece_floor``, as :func:`~ppl_attention.completion.noise_calibration.label_calibration`
    gives them."""
    if not steps:
        raise ValueError("`steps` must hold at least one step's reliability curve")
    fig, axes = plt.subplots(1, len(steps), figsize=(2.6 * len(steps), 2.9), squeeze=False)
    for ax, step in zip(axes[0], steps):
        curve = step["curve"]
        total = sum(c["count"] for c in curve)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.scatter(
            [c["confidence"] for c in curve],
            [c["accuracy"] for c in curve],
            s=[8 + 400 * c["count"] / total for c in curve],
            alpha=0.7,
        )
        floor = f" (floor {step['ece_floor']:.3f})" if step.get("ece_floor") is not None else ""
        ax.set_title(f"t = {step['t']}: ECE {step['ece']:.3f}{floor}", fontsize=8)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="top-label confidence")
    axes[0][0].set_ylabel("accuracy")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)
