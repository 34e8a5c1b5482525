"""Losses and calibration metrics of the AVP's heads, all computed from logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "head_loss",
    "correct",
    "confidences",
    "expected_calibration_error",
    "ece_bootstrap_interval",
    "ece_noise_floor",
]


def head_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    head: str,
    num_classes: int = 0,
    attributes: torch.Tensor | None = None,
    aux_weight: float = 0.5,
    reduction: str = "mean",
) -> torch.Tensor:
    """Negative log-likelihood of the targets: cross-entropy (categorical), summed binary cross-entropies over
    attributes (multilabel), or class cross-entropy + ``aux_weight`` x attribute BCE (class_attributes)."""
    if head == "categorical":
        return F.cross_entropy(logits, labels.long(), reduction=reduction)
    if head == "multilabel":
        nll = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none").sum(-1)
    else:
        nll = F.cross_entropy(logits[:, :num_classes], labels.long(), reduction="none")
        if attributes is not None:
            nll = nll + aux_weight * F.binary_cross_entropy_with_logits(
                logits[:, num_classes:], attributes.to(logits.dtype), reduction="none"
            ).sum(-1)
    return nll.mean() if reduction == "mean" else nll.sum() if reduction == "sum" else nll


def confidences(
    logits: torch.Tensor, labels: torch.Tensor, head: str, num_classes: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(confidence, correct) pairs for calibration: the top class (categorical / class part) or one pair per
    attribute (multilabel: confidence of the predicted value of each attribute)."""
    if head == "multilabel":
        p = torch.sigmoid(logits)
        pred = p > 0.5
        conf = torch.where(pred, p, 1 - p)
        return conf.flatten(), (pred == labels.bool()).flatten().to(conf.dtype)
    if head == "class_attributes":
        logits = logits[:, :num_classes]
    p = torch.softmax(logits, -1)
    conf, pred = p.max(-1)
    return conf, (pred == labels.long()).to(conf.dtype)


def correct(logits: torch.Tensor, labels: torch.Tensor, head: str, num_classes: int = 0) -> torch.Tensor:
    return confidences(logits, labels, head, num_classes)[1]


def _bin_index(conf: torch.Tensor, bins: int) -> torch.Tensor:
    if conf.numel() == 0:
        raise ValueError("cannot compute the ECE of zero predictions")
    if bins < 1:
        raise ValueError(f"`bins` must be >= 1, got {bins}")
    return (conf.clamp(0, 1) * bins).long().clamp(max=bins - 1)


def expected_calibration_error(conf: torch.Tensor, hits: torch.Tensor, bins: int = 15) -> float:
    """ECE with ``bins`` equal-width confidence bins: sum_b |B_b|/n |acc(B_b) - conf(B_b)|."""
    idx = _bin_index(conf, bins)
    acc = torch.bincount(idx, weights=hits.to(conf.dtype), minlength=bins)
    cf = torch.bincount(idx, weights=conf, minlength=bins)
    return float((acc - cf).abs().sum() / conf.numel())


def ece_bootstrap_interval(
    conf: torch.Tensor,
    hits: torch.Tensor,
    groups: torch.Tensor,
    bins: int = 15,
    resamples: int = 1000,
    level: float = 0.95,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the ECE, resampling whole ``groups`` (e.g. images, each seen under several
    random glimpse draws, whose predictions are not independent) with replacement.

    ``groups``: (n,) integer group of every (conf, hit) pair.  Vectorised: per-group bin sums (G, bins) are
    combined with the (resamples, G) multiplicities of every bootstrap sample in one matrix product.
    """
    if groups.shape != conf.shape or hits.shape != conf.shape:
        raise ValueError(
            f"conf, hits and groups must have the same shape, got {tuple(conf.shape)}, "
            f"{tuple(hits.shape)}, {tuple(groups.shape)}"
        )
    if not 0 < level < 1 or resamples < 1:
        raise ValueError(f"`level` must lie in (0, 1) and resamples be >= 1, got {level}, {resamples}")
    idx = _bin_index(conf, bins)
    _, g = torch.unique(groups, return_inverse=True)
    G = int(g.max()) + 1
    conf, hits = conf.double(), hits.double()
    cell = g * bins + idx  # per-group, per-bin sums of count, hits and confidence
    sums = torch.zeros(3, G * bins, dtype=torch.float64)
    sums[0].index_add_(0, cell, torch.ones_like(conf))
    sums[1].index_add_(0, cell, hits)
    sums[2].index_add_(0, cell, conf)
    sums = sums.view(3, G, bins)
    pick = torch.randint(G, (resamples, G), generator=generator)
    mult = torch.zeros(resamples, G, dtype=torch.float64).scatter_add_(
        1, pick, torch.ones(resamples, G, dtype=torch.float64)
    )
    count, acc, cf = (mult @ sums[k] for k in range(3))  # (resamples, bins)
    ece = (acc - cf).abs().sum(1) / count.sum(1)
    lo, hi = torch.quantile(ece, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return float(lo), float(hi)


def ece_noise_floor(
    conf: torch.Tensor, bins: int = 15, simulations: int = 20, generator: torch.Generator | None = None
) -> tuple[float, float]:
    """(mean, std) of the ECE of a perfectly calibrated predictor with the same confidences: every hit is drawn
    as Bernoulli(conf), ``simulations`` times.  An ECE measured on this many predictions is not distinguishable
    from perfect calibration unless it clearly exceeds this floor (the binned estimator is biased upwards).

    The simulated hits are independent per prediction; predictions that share an image (several glimpse draws)
    are in truth correlated, so with many draws per image this floor is a lower bound."""
    if simulations < 1:
        raise ValueError(f"`simulations` must be >= 1, got {simulations}")
    idx = _bin_index(conf, bins)
    conf = conf.double()
    hits = (torch.rand((simulations,) + conf.shape, generator=generator, dtype=torch.float64) < conf).double()
    cell = (torch.arange(simulations).unsqueeze(1) * bins + idx.flatten()).flatten()
    acc = torch.zeros(simulations * bins, dtype=torch.float64).index_add_(0, cell, hits.flatten(1).flatten())
    cf = torch.bincount(idx.flatten(), weights=conf.flatten(), minlength=bins)
    ece = (acc.view(simulations, bins) - cf).abs().sum(1) / conf.numel()
    return float(ece.mean()), float(ece.std()) if simulations > 1 else 0.0
