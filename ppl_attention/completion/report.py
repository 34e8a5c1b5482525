"""The written report of a completion comparison: CSV, JSON, a Markdown table with its legend, figures."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Optional

from ..artifacts import atomic_write_json, atomic_write_text, write_manifest
from ..sensor import Sensor
from .compare import Comparison
from .metrics import METRICS, R_HAT_OK

__all__ = ["markdown_table", "write_comparison"]


def _fmt(v, sem=None, digits=3):
    if v is None:
        return "-"
    text = f"{v:.{digits}g}" if abs(v) < 1e-2 and v != 0 else f"{v:.{digits}f}"
    return text + (f" ± {sem:.{digits}f}" if sem is not None else "")


def _ci(r: dict, m: str, digits: int = 3) -> str:
    if r.get(m) is None:
        return "-"
    if r.get(m + "_lo") is None:
        return _fmt(r[m], None, digits)
    return f"{r[m]:.{digits}f} [{r[m + '_lo']:.{digits}f}, {r[m + '_hi']:.{digits}f}]"


def markdown_table(table: list) -> str:
    """The comparison table: P(true label) with 95 % intervals against the reference, then the sample metrics."""
    head = [
        "sequences",
        "method",
        "t",
        "images",
        "P(true label)",
        "AVP P(true label)",
        "method - AVP",
        "log-lik / pixel",
        "glimpse RMSE",
        "diversity",
        "label agreement (classifier)",
        "ESS",
        "R-hat (mean; worst; share < 1.05)",
        "MCMC ESS (min dim)",
        "seconds / sample",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        r_hat = (
            "-"
            if r.get("r_hat_max") is None
            else (f"{r['r_hat_max']:.3f}; {r['r_hat_max_worst']:.3f}; {r['r_hat_ok']:.2f}")
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    r.get("sequences", "drawn"),
                    r["method"],
                    str(r["glimpses"]),
                    str(r["images"]),
                    _ci(r, "p_true_label"),
                    _ci(r, "p_true_avp"),
                    _ci(r, "p_true_minus_avp"),
                    _fmt(r["loglik_per_pixel"], r["loglik_per_pixel_sem"]),
                    _fmt(r["glimpse_rmse"], r["glimpse_rmse_sem"]),
                    _fmt(r["diversity"], r["diversity_sem"]),
                    _fmt(r["label_agreement"], r["label_agreement_sem"], 2),
                    _fmt(r["ess"], None, 1),
                    r_hat,
                    _fmt(r.get("mcmc_ess_min"), None, 1),
                    _fmt(r["seconds_per_sample"], None, 4),
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def write_comparison(
    result: Comparison, out_dir: str | os.PathLike, grid: Sensor, inputs: Optional[dict] = None, note: str = ""
) -> dict:
    """Write ``comparison.csv`` / ``.json`` / ``.md``, ``rows.json``, the figures and a manifest; returns paths."""
    from ..plots.completion import plot_completion_grid, plot_comparison_metrics

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    fields = (
        ["sequences", "method", "glimpses", "images"]
        + [k for m in METRICS for k in (m, m + "_sem", m + "_lo", m + "_hi")]
        + ["r_hat_max_worst", "r_hat_ok"]
    )
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(result.table)
    paths = {
        "csv": atomic_write_text(out_dir / "comparison.csv", buf.getvalue()),
        "json": atomic_write_json(out_dir / "comparison.json", {"config": result.config, "table": result.table}),
        "rows": atomic_write_json(out_dir / "rows.json", result.rows),
    }
    kernel = (
        f"Gaussian kernel, std {result.config['kernel_sigma']}"
        if result.config["kernel"] == "gaussian"
        else "Bernoulli kernel"
    )
    md = (
        f"# Image completion: comparison on held-out images\n\n"
        f"Log-likelihood: of the true unobserved pixels under a mixture over the weighted samples ({kernel}), "
        f"nats per unobserved pixel. Glimpse RMSE: weighted mean over samples of the RMS difference between "
        f"the sample's patches at the observed locations and the observed glimpses (pixels in [0, 1]; 0 when a "
        f"sampler pastes the glimpses in). Diversity: mean pairwise RMS pixel distance between samples in the "
        f"unobserved region. Label agreement: weighted fraction of samples classified as the true label by the "
        f"classifier. P(true label): the weighted histogram of the samples' own labels where the sampler knows "
        f"them (importance sampling), the classifier's label agreement otherwise; AVP P(true label): the posterior "
        f"network's, given the same glimpses; method - AVP: the paired difference. Means with 95 % intervals "
        f"[1.96 standard errors] or ± one standard error over images. R-hat: the largest split R-hat over the "
        f"latent dimensions (Pyro's, over the chains), its mean and worst over images and the share below "
        f"{R_HAT_OK}. {note}\n\n" + markdown_table(result.table)
    )
    paths["markdown"] = atomic_write_text(out_dir / "comparison.md", md)
    paths["metrics_figure"] = plot_comparison_metrics(result.table, out_dir / "comparison_metrics.png")
    by_key: dict = {}
    for e in result.examples:
        by_key.setdefault((e.get("sequences", "drawn"), e["image"], e["glimpses"]), {})[e["method"]] = e
    panels = [
        {
            "true_image": next(iter(ms.values()))["true_image"],
            "locations": next(iter(ms.values()))["locations"],
            "samples": {m: e["samples"] for m, e in ms.items()},
            "title": f"held-out image {i}, {t} glimpse{'s' if t > 1 else ''}"
            + ("" if seq == "drawn" else f" ({seq} sequence)"),
        }
        for (seq, i, t), ms in sorted(by_key.items())
    ]
    if panels:  # none when cfg.figure_images is 0
        paths["samples_figure"] = plot_completion_grid(panels, grid, out_dir / "completion_samples.png")
    write_manifest(out_dir, "completion-comparison", result.config, inputs or {})
    return {k: str(v) for k, v in paths.items()}
