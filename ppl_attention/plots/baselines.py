"""Accuracy against FLOPs: CNN baselines and hard-attention curves (the workshop paper's Figure 7)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.ticker import FuncFormatter

from ._save import plt, save_figure

if TYPE_CHECKING:
    import os

__all__ = ["plot_accuracy_vs_flops", "pareto_front"]


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (flops, accuracy) points that no cheaper point beats, sorted by FLOPs."""
    front, best = [], -1.0
    for flops, acc in sorted(points):
        if acc > best:
            front.append((flops, acc))
            best = acc
    return front


def plot_accuracy_vs_flops(
    baselines: list[dict],
    path: str | os.PathLike,
    attention_curves: dict[str, list[dict]] | None = None,
    title: str = "Accuracy against computation",
    attention_points: dict[str, list[dict]] | None = None,
) -> Path:
    """``baselines``: results of ``sweep_baselines``; ``attention_curves``: name -> [{"flops", "accuracy"}], a line
    each (an adaptive-stopping curve); ``attention_points``: name -> one {"flops", "accuracy"} per seed, drawn as
    the seeds' dots and their mean ± sd, each method shifted a little sideways so that methods of one cost (every
    network with the same sensor and T) stay apart."""
    fig, ax = plt.subplots(figsize=(9.5, 4.5))
    # enough distinct colours for many runs (the default cycle repeats after 10 lines)
    ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)
    _baseline_fronts(ax, baselines)
    for name, curve in (attention_curves or {}).items():
        pts = sorted((c["flops"] / 1e6, 100 * c["accuracy"]) for c in curve)
        ax.plot(*zip(*pts), "o-", ms=3, lw=2, label=name)
    _seed_points(ax, attention_points or {})
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    if hi / lo < 10:  # methods of one cost alone: a decade around them, so the sideways shift does not read as cost
        mid = (lo * hi) ** 0.5
        ax.set_xlim(mid / 10**0.5, mid * 10**0.5)
    plain = FuncFormatter(lambda x, _: f"{x:g}")  # 4, 6, 10 rather than 4 x 10^0
    ax.xaxis.set_major_formatter(plain)
    if ax.get_xlim()[1] / ax.get_xlim()[0] <= 30:  # within a decade or so, label the minor ticks too
        ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("MFLOPs per image (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: many runs, keep data visible
    return save_figure(fig, path)


def _baseline_fronts(ax, baselines: list[dict]) -> None:
    """Every baseline as a dot, and per architecture its Pareto front (annotated with its width and resolution)."""
    by_arch: dict[str, list] = {}
    for r in baselines:
        by_arch.setdefault(r["config"]["arch"], []).append(r)
    for arch, rows in sorted(by_arch.items()):
        pts = [(r["flops"] / 1e6, 100 * r["test_accuracy"]) for r in rows]
        sc = ax.scatter(*zip(*pts), s=18, alpha=0.5)
        front = pareto_front(pts)
        ax.plot(*zip(*front), "-", color=sc.get_facecolor()[0], label=f"{arch} (best c, r)")
        for r in rows:
            if (r["flops"] / 1e6, 100 * r["test_accuracy"]) in front:
                ax.annotate(
                    f"c={r['config']['width']:g}, r={r['config']['resolution']}",
                    (r["flops"] / 1e6, 100 * r["test_accuracy"]),
                    fontsize=7,
                    alpha=0.7,
                    xytext=(3, -8),
                    textcoords="offset points",
                )


def _seed_points(ax, points: dict[str, list[dict]]) -> None:
    """Each method's seeds as dots and their mean ± sd, shifted a little sideways per method."""
    for k, (name, seeds) in enumerate(points.items()):
        shift = 10 ** (0.012 * (k - (len(points) - 1) / 2))  # a fraction of a decade on the log axis
        flops = [shift * c["flops"] / 1e6 for c in seeds]
        acc = [100 * c["accuracy"] for c in seeds]
        # distinct hues (tab20's pairs of one hue would read as one method); blue is left to the CNNs
        colour = plt.get_cmap("tab10")((1, 2, 3, 4, 5, 6, 8, 9)[k % 8])
        ax.scatter(flops, acc, s=14, alpha=0.6, zorder=3, color=colour)
        mean = statistics.mean(acc)
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        label = (
            f"{name}: {mean:.1f} ± {sd:.1f} % ({len(acc)} seeds)" if len(acc) > 1 else f"{name}: {mean:.1f} % (1 seed)"
        )
        ax.errorbar(
            statistics.mean(flops), mean, yerr=sd, fmt="D", ms=6, capsize=4, zorder=4, color=colour, label=label
        )
