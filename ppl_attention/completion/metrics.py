"""Metrics of weighted image completions against the true image (the columns of a completion comparison).

- ``loglik_per_pixel``: log-likelihood of the true *unobserved* pixels under a kernel mixture over the weighted
  samples, ``log sum_k w_k prod_p K(x_p | s_kp)``, divided by the number of unobserved pixels (nats / pixel).
- ``glimpse_rmse``: the weighted mean RMS difference between each sample's patches at the observed locations and the
  observed glimpses (0 for a sampler that pastes the glimpses in).
- ``diversity``: the weighted mean pairwise RMS distance between samples in the unobserved region.
- ``label_agreement``: the weighted fraction of samples whose label is the true label.

:func:`summarise` aggregates per-draw rows into the mean, standard error and 95 % normal interval per
(sequences, method, t).
"""

from __future__ import annotations

import math

import torch

from ..sensor import Sensor

__all__ = [
    "METRICS",
    "R_HAT_OK",
    "unobserved_region",
    "mixture_log_likelihood",
    "glimpse_rmse",
    "pairwise_diversity",
    "label_agreement",
    "summarise",
]

METRICS = (
    "loglik_per_pixel",
    "glimpse_rmse",
    "diversity",
    "label_agreement",
    "label_agreement_db",
    "p_true_label",
    "p_true_avp",
    "p_true_minus_avp",
    "ess",
    "r_hat_max",
    "mcmc_ess_min",
    "seconds_per_sample",
)

#: R-hat below which chains count as mixed (Vehtari et al.'s threshold).
R_HAT_OK = 1.05


def unobserved_region(mask: torch.Tensor) -> torch.Tensor:
    """Boolean (H, W) of the unobserved pixels from a (1, H, W) or (1, 1, H, W) mask."""
    return mask.reshape(mask.shape[-2:]) < 0.5


def mixture_log_likelihood(
    images: torch.Tensor,
    weights: torch.Tensor,
    target: torch.Tensor,
    region: torch.Tensor,
    kernel: str = "gaussian",
    sigma: float = 0.2,
) -> float:
    """Per-pixel log-likelihood of ``target`` (C, H, W) in ``region`` (H, W) bool under the mixture
    ``sum_k w_k prod_p K(target_p | images_kp)``; nan when the region is empty."""
    P = int(region.sum()) * target.shape[0]
    if P == 0:
        return float("nan")
    s = images.double()[:, :, region].flatten(1)  # (n, P)
    x = target.double()[:, region].flatten().unsqueeze(0)  # (1, P)
    if kernel == "gaussian":
        per = -0.5 * ((x - s) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)
    elif kernel == "bernoulli":
        s = s.clamp(1e-4, 1 - 1e-4)
        per = x * s.log() + (1 - x) * (1 - s).log()
    else:
        raise ValueError(f"`kernel` must be 'gaussian' or 'bernoulli', got {kernel!r}")
    w = weights.double()
    keep = w > 0
    total = torch.logsumexp(w[keep].log() + per[keep].sum(-1), dim=0)
    return float(total) / P


def glimpse_rmse(
    images: torch.Tensor, weights: torch.Tensor, grid: Sensor, locations: torch.Tensor, glimpses: torch.Tensor
) -> float:
    """``sum_k w_k RMS(glimpses(images_k, locations) - glimpses)``: how far the samples (n, C, H, W) are from the
    observed ``glimpses`` (t, k*C, h, w) at ``locations`` (t,), every scale; nan when nothing was observed."""
    if locations.numel() == 0:
        return float("nan")
    patches = grid.extract(images.float(), locations.reshape(1, -1).expand(images.shape[0], -1))  # (n, t, kC, h, w)
    rmse = (patches - glimpses.to(patches).unsqueeze(0)).double().square().flatten(1).mean(1).sqrt()
    return float(weights.double().to(rmse.device) @ rmse)


def pairwise_diversity(images: torch.Tensor, weights: torch.Tensor, region: torch.Tensor) -> float:
    """``sum_{k != l} w_k w_l d_kl / sum_{k != l} w_k w_l`` with ``d`` the RMS pixel distance in ``region``
    (the plain mean over distinct pairs for equal weights); 0 for a single sample or an empty region."""
    P = int(region.sum()) * images.shape[1]
    w = weights.double()
    off = 1.0 - float(w.pow(2).sum())
    if P == 0 or images.shape[0] < 2 or off <= 1e-12:
        return 0.0
    x = images.double()[:, :, region].flatten(1)
    d = torch.cdist(x, x) / math.sqrt(P)
    return float(w @ d @ w) / off


def label_agreement(labels: torch.Tensor, weights: torch.Tensor, true_label: int) -> float:
    """Weighted fraction of samples whose label is ``true_label``."""
    return float((weights.double() * (labels.long().cpu() == int(true_label)).double().to(weights.device)).sum())


def summarise(rows: list) -> list:
    """Mean, standard error and 95 % interval of every metric per (sequences, method, t)."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r.get("sequences", "drawn"), r["method"], r["glimpses"]), []).append(r)
    table = []
    for (sequences, method, t), rs in sorted(groups.items()):
        entry = {"sequences": sequences, "method": method, "glimpses": t, "images": len(rs)}
        for m in METRICS:
            vals = torch.tensor(
                [r[m] for r in rs if r.get(m) is not None and not math.isnan(r[m])], dtype=torch.float64
            )
            entry[m] = float(vals.mean()) if len(vals) else None
            sem = float(vals.std() / math.sqrt(len(vals))) if len(vals) > 1 else None
            entry[m + "_sem"] = sem
            entry[m + "_lo"] = entry[m] - 1.96 * sem if sem is not None else None
            entry[m + "_hi"] = entry[m] + 1.96 * sem if sem is not None else None
        r_hat = [r["r_hat_max"] for r in rs if r.get("r_hat_max") is not None]
        entry["r_hat_max_worst"] = max(r_hat) if r_hat else None
        entry["r_hat_ok"] = sum(v < R_HAT_OK for v in r_hat) / len(r_hat) if r_hat else None
        table.append(entry)
    return table
