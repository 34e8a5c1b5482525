"""Adaptive stopping: stop glimpsing when one more glimpse is not expected to help enough.

The network's ``stop_head`` reads the (detached) hidden state after ``t`` glimpses and predicts the gain of a
prediction made after glimpse ``t + 1`` over one made now.  It is trained by regression on the observed gain.
Two targets are offered; the default is the gain in the probability given to the true class,
``p_{t+1}(y) - p_t(y)``: its expectation is the gain in expected accuracy of a prediction *sampled* from the
classifier, and it is far less noisy than the 0/1 difference ``correct_{t+1} - correct_t`` (also available),
whose expectation is the gain in accuracy of the argmax prediction.

At test time the network stops after the first glimpse whose predicted gain falls below a threshold (or after
``T``).  Since later glimpses never change earlier outputs, one full rollout gives the result of every
threshold; sweeping it traces accuracy against the average number of glimpses and against FLOPs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .network import HardAttentionNet, classifier_flops, flops_per_glimpse

if TYPE_CHECKING:
    from typing import Iterable

__all__ = ["gain_targets", "stopping_times", "stopping_curve", "STOP_TARGETS"]

STOP_TARGETS = ("probability", "correct")


def gain_targets(logits: torch.Tensor, labels: torch.Tensor, target: str = "probability") -> torch.Tensor:
    """Observed gains (B, T-1) of predicting after glimpse t+1 instead of t, from per-step logits (B, T, K)."""
    if target == "probability":
        score = F.softmax(logits, -1).gather(-1, labels.view(-1, 1, 1).expand(-1, logits.shape[1], 1)).squeeze(-1)
    elif target == "correct":
        score = (logits.argmax(-1) == labels.view(-1, 1)).float()
    else:
        raise ValueError(f"stop target must be one of {list(STOP_TARGETS)}, got {target!r}")
    return (score[:, 1:] - score[:, :-1]).detach()


def stopping_times(gains: torch.Tensor, threshold: float) -> torch.Tensor:
    """Number of glimpses taken (B,) in 1..T: the first t whose predicted gain is below ``threshold``."""
    T = gains.shape[1]
    below = gains[:, : T - 1] < threshold
    below = torch.cat([below, torch.ones_like(below[:, :1])], 1)  # always stop after T
    return below.float().argmax(1) + 1


@torch.no_grad()
def stopping_curve(
    net: HardAttentionNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    glimpses: int,
    thresholds: Iterable[float],
    batch_size: int = 500,
) -> list[dict]:
    """Accuracy, average glimpses and average FLOPs per image for each threshold (greedy policy)."""
    net.eval()
    logits, gains = [], []
    for start in range(0, len(images), batch_size):
        ro = net(images[start : start + batch_size], glimpses, policy="greedy")
        logits.append(ro.logits)
        gains.append(ro.gains)
    logits, gains = torch.cat(logits), torch.cat(gains)
    labels = labels.to(logits.device)
    per_glimpse, per_class = flops_per_glimpse(net), classifier_flops(net)
    rows = []
    for thr in thresholds:
        n = stopping_times(gains, float(thr))
        pred = logits[torch.arange(len(n)), n - 1].argmax(-1)
        rows.append(
            {
                "threshold": float(thr),
                "accuracy": float((pred == labels).float().mean()),
                "mean_glimpses": float(n.float().mean()),
                "flops": float(n.float().mean() * per_glimpse + per_class),
            }
        )
    return rows
