"""AVP figures: accuracy and expected calibration error against the number of random glimpses."""
from __future__ import annotations

from pathlib import Path

from ._save import plt, save_figure

__all__ = ["plot_avp_evaluation"]


def plot_avp_evaluation(evaluation: dict, path, title: str = "AVP: accuracy and calibration") -> Path:
    """``evaluation``: the dict of :func:`ppl_attention.posterior.evaluate_avp` (per_glimpses, full_image)."""
    rows = evaluation["per_glimpses"]
    t = [r["t"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    ax1.plot(t, [100 * r["accuracy"] for r in rows], "o-", label="random glimpses")
    full = evaluation.get("full_image")
    if full:
        ax1.axhline(100 * full["accuracy"], color="grey", ls="--", label=f"full image ({100 * full['accuracy']:.1f} %)")
    ax1.set_xlabel("number of random glimpses t")
    ax1.set_ylabel("accuracy (%)")
    ax1.set_xticks(t)
    ax1.grid(alpha=0.3)
    ax1.legend(loc="center right", fontsize=8)
    ax2.bar(t, [r["ece"] for r in rows], color="tab:orange", alpha=0.8)
    ax2.set_xlabel("number of random glimpses t")
    ax2.set_ylabel(f"ECE ({evaluation.get('bins', 15)} bins)")
    ax2.set_xticks(t)
    ax2.grid(alpha=0.3, axis="y")
    fig.suptitle(title + f" (temperature {evaluation.get('temperature', 1.0):.2f})")
    fig.tight_layout()
    return save_figure(fig, path)
