"""What every candidate search shares: its result, the memoised score table and the checked weights.

The strategies and their registry are :mod:`.search`, which re-exports :class:`SearchResult` and
:class:`CachedScore`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from typing import Sequence

__all__ = [
    "SearchResult",
    "CachedScore",
    "prepare_weights",
    "sample_order",
    "weighted_map",
    "relative_regret",
    "relative_regrets",
    "random_regret",
]


@dataclass
class SearchResult:
    """The chosen location, the EPE estimate of every candidate (survivors of a pruning search are estimated on
    more samples than the candidates pruned early), and the number of (candidate, sample) pairs evaluated."""

    location: int
    epe: torch.Tensor
    evaluations: int
    info: dict = field(default_factory=dict)


class CachedScore:
    """Memoise ``score(candidates, samples)`` in a dense ``(L, N)`` table; only missing pairs are evaluated."""

    def __init__(self, score: Callable, num_candidates: int, num_samples: int) -> None:
        self.score = score
        self.table = torch.full((num_candidates, num_samples), math.nan, dtype=torch.float64)
        self.evaluations = 0

    def __call__(self, cands: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        cands, samples = cands.cpu(), samples.cpu()
        sub = self.table[cands][:, samples]
        missing = torch.isnan(sub)
        if bool(missing.any()):
            rows, cols = missing.any(1), missing.any(0)
            values = self.score(cands[rows], samples[cols]).double().cpu()
            if values.shape != (int(rows.sum()), int(cols.sum())):
                raise ValueError(
                    f"score returned shape {tuple(values.shape)}, expected "
                    f"{(int(rows.sum()), int(cols.sum()))} (candidates, samples)"
                )
            r, c = cands[rows], samples[cols]
            self.table[r.unsqueeze(1), c.unsqueeze(0)] = values
            self.evaluations += values.numel()
            sub = self.table[cands][:, samples]
        return sub


def prepare_weights(
    weights: torch.Tensor | Sequence[float], num_candidates: int, forbidden: torch.Tensor | Sequence[int] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weights normalised (checked: non-negative, finite, not all zero) and the (L,) bool of allowed locations."""
    w = torch.as_tensor(weights, dtype=torch.float64).cpu()
    if (
        w.dim() != 1
        or w.numel() == 0
        or not bool(torch.isfinite(w).all())
        or bool((w < 0).any())
        or float(w.sum()) <= 0
    ):
        raise ValueError(
            f"`weights` must be a non-empty (N,) tensor of non-negative finite values, not all zero; "
            f"got shape {tuple(w.shape)}"
        )
    allowed = torch.ones(num_candidates, dtype=torch.bool)
    if forbidden is not None:
        f = torch.as_tensor(forbidden, dtype=torch.long).flatten().cpu()
        if f.numel() and (int(f.min()) < 0 or int(f.max()) >= num_candidates):
            raise ValueError(f"forbidden holds locations outside [0, {num_candidates - 1}]: {f.tolist()}")
        allowed[f] = False
    if not bool(allowed.any()):
        raise ValueError("every candidate is forbidden (no location left to choose; T > number of locations?)")
    return w / w.sum(), allowed


def sample_order(w: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Samples with positive weight, in an order drawn by weight without replacement (float32, like multinomial)."""
    wf = w.float()
    return torch.multinomial(wf, int((wf > 0).sum()), replacement=False, generator=generator)


def weighted_map(cached: CachedScore, w: torch.Tensor) -> torch.Tensor:
    """Each evaluated candidate's self-normalised estimate on the samples it was scored on (NaN if none)."""
    seen = ~torch.isnan(cached.table)
    num = torch.where(seen, cached.table, torch.zeros_like(cached.table)) @ w
    den = seen.double() @ w
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, math.nan))


def relative_regrets(epe: torch.Tensor) -> torch.Tensor:
    """``(EPE - min EPE) / min EPE`` of every location of one map, float64; the minimum is over the finite
    (allowed) locations, and a location that is not finite stays so."""
    epe = epe.double()
    low = float(epe[torch.isfinite(epe)].min())
    return (epe - low) / max(low, 1e-12)


def relative_regret(epe: torch.Tensor, choice: int) -> float:
    """How much worse ``choice`` is than the map's best (:func:`relative_regrets` at ``choice``)."""
    return float(relative_regrets(epe)[choice])


def random_regret(epe: torch.Tensor) -> float:
    """The mean relative regret of a uniformly random choice among the finite (allowed) locations of one map: how
    flat the map is, the baseline a search's regret is read against."""
    regrets = relative_regrets(epe)
    return float(regrets[torch.isfinite(regrets)].mean())
