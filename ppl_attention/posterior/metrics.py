"""Losses and calibration metrics of the AVP's heads, all computed from logits."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["head_loss", "correct", "confidences", "expected_calibration_error"]


def head_loss(logits: torch.Tensor, labels: torch.Tensor, head: str, num_classes: int = 0,
              attributes: torch.Tensor | None = None, aux_weight: float = 0.5, reduction: str = "mean"):
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
                logits[:, num_classes:], attributes.to(logits.dtype), reduction="none").sum(-1)
    return nll.mean() if reduction == "mean" else nll.sum() if reduction == "sum" else nll


def confidences(logits: torch.Tensor, labels: torch.Tensor, head: str, num_classes: int = 0):
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


def correct(logits, labels, head, num_classes=0) -> torch.Tensor:
    return confidences(logits, labels, head, num_classes)[1]


def expected_calibration_error(conf: torch.Tensor, hits: torch.Tensor, bins: int = 15) -> float:
    """ECE with ``bins`` equal-width confidence bins: sum_b |B_b|/n |acc(B_b) - conf(B_b)|."""
    if conf.numel() == 0:
        raise ValueError("cannot compute the ECE of zero predictions")
    idx = (conf.clamp(0, 1) * bins).long().clamp(max=bins - 1)
    count = torch.bincount(idx, minlength=bins).to(conf.dtype)
    acc = torch.bincount(idx, weights=hits.to(conf.dtype), minlength=bins)
    cf = torch.bincount(idx, weights=conf, minlength=bins)
    return float((acc - cf).abs().sum() / conf.numel())
