"""AVP figures: accuracy and expected calibration error against the number of random glimpses."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ._save import plt, save_figure

if TYPE_CHECKING:
    import os

__all__ = ["plot_avp_evaluation"]


def _calibration_label(evaluation: dict) -> str:
    cal = evaluation.get("calibration") or {}
    if cal.get("fraction_temperatures"):
        return "temperature per observed fraction"
    return f"temperature {evaluation.get('temperature', cal.get('temperature', 1.0)):.2f}"


def plot_avp_evaluation(
    evaluation: dict,
    path: str | os.PathLike,
    title: str = "AVP: accuracy and calibration",
    target_ece: float | None = 0.03,
) -> Path:
    """``evaluation``: the dict of :func:`ppl_attention.posterior.evaluate_avp` (per_glimpses, full_image).

    Left: accuracy against t (and the full image).  Right: the ECE per t with its bootstrap 95 % interval over
    images, the ECE without calibration, the noise floor of a perfectly calibrated predictor and the target.
    An evaluation without intervals plots without them.
    """
    rows = evaluation["per_glimpses"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
    _accuracy_panel(ax1, rows, evaluation.get("full_image"))
    _ece_panel(ax2, rows, target_ece, evaluation.get("bins", 15))
    draws = evaluation.get("draws")
    n = f", {rows[0]['images']} images x {draws} glimpse draws" if draws and "images" in rows[0] else ""
    fig.suptitle(f"{title} ({_calibration_label(evaluation)}{n})")
    fig.tight_layout()
    return save_figure(fig, path)


def _accuracy_panel(ax1, rows: list[dict], full: dict | None) -> None:
    """Accuracy (and mean confidence) against t, and the full image's accuracy."""
    t = [r["t"] for r in rows]
    ax1.plot(t, [100 * r["accuracy"] for r in rows], "o-", label="random glimpses")
    if all("confidence" in r for r in rows):
        ax1.plot(t, [100 * r["confidence"] for r in rows], "x:", color="tab:orange", label="mean confidence")
    if full:
        ece = f", ECE {full['ece']:.3f}" if "ece" in full else ""
        ax1.axhline(
            100 * full["accuracy"], color="grey", ls="--", label=f"full image ({100 * full['accuracy']:.1f} %{ece})"
        )
    ax1.set_xlabel("number of random glimpses t")
    ax1.set_ylabel("accuracy / confidence (%)")
    ax1.set_xticks(t)
    ax1.grid(alpha=0.3)
    ax1.legend(loc="center right", fontsize=8)


def _ece_panel(ax2, rows: list[dict], target_ece: float | None, bins: int) -> None:
    """The ECE per t with its interval, without calibration, the noise floor and the target."""
    t = [r["t"] for r in rows]
    ece = [r["ece"] for r in rows]
    if all("ece_low" in r for r in rows):  # a percentile interval: the ECE's upward bias can put it above the ECE
        ax2.vlines(
            t,
            [r["ece_low"] for r in rows],
            [r["ece_high"] for r in rows],
            color="tab:orange",
            lw=2,
            alpha=0.5,
            label="95 % bootstrap over images",
        )
    ax2.plot(t, ece, "o", color="tab:orange", label="ECE")
    if all("uncalibrated" in r for r in rows):
        ax2.plot(
            t,
            [r["uncalibrated"]["ece"] for r in rows],
            "s",
            mfc="none",
            color="tab:blue",
            label="ECE without calibration",
        )
    if all("ece_noise_floor" in r for r in rows):
        ax2.plot(
            t,
            [r["ece_noise_floor"] for r in rows],
            "_",
            ms=18,
            mew=2,
            color="grey",
            label="noise floor (perfect calibration)",
        )
    if target_ece is not None:
        ax2.axhline(target_ece, color="tab:red", ls="--", lw=1, label=f"target {target_ece}")
    ax2.set_xlabel("number of random glimpses t")
    ax2.set_ylabel(f"ECE ({bins} bins)")
    ax2.set_xticks(t)
    ax2.set_ylim(bottom=0)
    ax2.grid(alpha=0.3, axis="y")
    ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the intervals fill the axes
