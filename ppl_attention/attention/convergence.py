""" "Iterations to convergence", as the paper measures it (validation every K iterations).

- by loss (CelebA-HQ): the first validation point whose cross-entropy is within ``tol`` (0.01) of the run's best;
- by accuracy (CUB): the first validation point whose accuracy is within ``tol`` (0.01 = 1 %) of the run's best.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from typing import Sequence

__all__ = ["iterations_to_convergence", "convergence_summary"]


def iterations_to_convergence(
    iterations: Sequence[float] | torch.Tensor,
    values: Sequence[float] | torch.Tensor,
    mode: str = "loss",
    tol: float = 0.01,
) -> int:
    """First iteration whose value is within ``tol`` of the best (lowest loss / highest accuracy)."""
    it = torch.as_tensor(iterations, dtype=torch.float64).flatten()
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    if it.numel() != v.numel() or it.numel() == 0:
        raise ValueError(
            f"iterations and values must be non-empty and of equal length, got {it.numel()} and {v.numel()}"
        )
    if not bool(torch.isfinite(v).all()):
        raise ValueError("values hold NaN or infinite entries; expected finite validation metrics")
    if mode == "loss":
        ok = v <= v.min() + tol
    elif mode == "accuracy":
        ok = v >= v.max() - tol
    else:
        raise ValueError(f"`mode` must be 'loss' or 'accuracy', got {mode!r}")
    return int(it[ok.nonzero()[0, 0]])


def convergence_summary(history: list[dict], prefix: str = "val_greedy") -> dict:
    """Both criteria, and the best values, from a validation history (rows with ``iteration``, ``{prefix}_ce``,
    ``{prefix}_acc``)."""
    if not history:
        return {}
    its = [r["iteration"] for r in history]
    ce = [r[f"{prefix}_ce"] for r in history]
    acc = [r[f"{prefix}_acc"] for r in history]
    return {
        "iterations_to_convergence_loss": iterations_to_convergence(its, ce, "loss", 0.01),
        "iterations_to_convergence_accuracy": iterations_to_convergence(its, acc, "accuracy", 0.01),
        "best_val_ce": min(ce),
        "best_val_acc": max(acc),
    }
