"""Candidate search: which location minimises the EPE.

Every strategy works on a *score* function ``score(candidates (l,), samples (n,)) -> (l, n)`` of posterior
entropies (one AVP pass per pair, see :func:`.epe.entropy_matrix`) and the samples' importance weights, so the
same search serves images and any other design task.  :class:`CachedScore` memoises pairs so that strategies
that revisit candidates (halving with shared samples, coarse-to-fine) never evaluate a pair twice.

- :func:`exhaustive_search`: the paper's grid search, every candidate on every sample.
- :func:`successive_halving`: every candidate on a few samples, keep the best fraction, evaluate the survivors
  on more samples of the SAME sequence (shared samples), until one survives or all samples are used.
- :func:`coarse_to_fine`: halving on a sub-lattice of the grid, then halving again among the neighbours of the
  best coarse locations (EPE maps are smooth: neighbouring glimpses overlap).

``forbidden`` locations (already observed, when repeating is not allowed) are scored for the map but never
chosen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..geometry import GlimpseGrid

__all__ = ["SearchResult", "CachedScore", "exhaustive_search", "successive_halving", "coarse_to_fine",
           "SEARCHES", "run_search"]

SEARCHES = ("exhaustive", "halving", "coarse")


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

    def __init__(self, score: Callable, num_candidates: int, num_samples: int):
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
                raise ValueError(f"score returned shape {tuple(values.shape)}, expected "
                                 f"{(int(rows.sum()), int(cols.sum()))} (candidates, samples)")
            r, c = cands[rows], samples[cols]
            self.table[r.unsqueeze(1), c.unsqueeze(0)] = values
            self.evaluations += values.numel()
            sub = self.table[cands][:, samples]
        return sub


def _prepare(weights, num_candidates: int, forbidden):
    w = torch.as_tensor(weights, dtype=torch.float64).cpu()
    if w.dim() != 1 or w.numel() == 0 or not bool(torch.isfinite(w).all()) or bool((w < 0).any()) \
            or float(w.sum()) <= 0:
        raise ValueError(f"weights must be a non-empty (N,) tensor of non-negative finite values, not all zero; "
                         f"got shape {tuple(w.shape)}")
    allowed = torch.ones(num_candidates, dtype=torch.bool)
    if forbidden is not None:
        f = torch.as_tensor(forbidden, dtype=torch.long).flatten().cpu()
        if f.numel() and (int(f.min()) < 0 or int(f.max()) >= num_candidates):
            raise ValueError(f"forbidden holds locations outside [0, {num_candidates - 1}]: {f.tolist()}")
        allowed[f] = False
    if not bool(allowed.any()):
        raise ValueError("every candidate is forbidden (no location left to choose; T > number of locations?)")
    return w / w.sum(), allowed


def exhaustive_search(score: Callable, weights, num_candidates: int, forbidden=None) -> SearchResult:
    """Evaluate every candidate on every sample (the paper's grid search)."""
    w, allowed = _prepare(weights, num_candidates, forbidden)
    cached = score if isinstance(score, CachedScore) else CachedScore(score, num_candidates, len(w))
    H = cached(torch.arange(num_candidates), torch.arange(len(w)))
    epe = H @ w
    best = int(torch.where(allowed, epe, torch.full_like(epe, math.inf)).argmin())
    return SearchResult(best, epe, cached.evaluations, {"samples": len(w)})


def successive_halving(score: Callable, weights, num_candidates: int, forbidden=None, candidates=None,
                       initial_samples: int = 4, growth: int = 4, keep: float = 0.25, min_keep: int = 1,
                       generator: torch.Generator | None = None, _cache: CachedScore | None = None
                       ) -> SearchResult:
    """Successive halving with shared, growing Monte Carlo samples.

    All candidates are scored on ``initial_samples`` samples; the best ``keep`` fraction (at least
    ``min_keep``) survives and is scored on ``growth`` times as many samples (the earlier ones reused), until one
    candidate is left or every sample is used, which then gives exactly the exhaustive estimate for the
    survivors.  Samples are visited in an order drawn by weight without replacement (``generator``), and each
    subset's estimate is self-normalised.
    """
    w, allowed = _prepare(weights, num_candidates, forbidden)
    if initial_samples < 1 or growth < 2 or not 0 < keep < 1 or min_keep < 1:
        raise ValueError(f"need initial_samples >= 1, growth >= 2, 0 < keep < 1, min_keep >= 1; got "
                         f"{initial_samples}, {growth}, {keep}, {min_keep}")
    cached = _cache or CachedScore(score, num_candidates, len(w))
    wf = w.float()  # multinomial works in float32: count what stays positive there
    positive = int((wf > 0).sum())
    order = torch.multinomial(wf, positive, replacement=False, generator=generator)
    pool = torch.arange(num_candidates) if candidates is None else torch.as_tensor(candidates).long().cpu()
    num = torch.zeros(num_candidates, dtype=torch.float64)
    den = torch.zeros(num_candidates, dtype=torch.float64)
    alive, n, done, rounds = pool, min(initial_samples, positive), 0, 0
    while True:
        new = order[done:n]
        if len(new):
            H = cached(alive, new)
            num[alive] += H @ w[new]
            den[alive] += w[new].sum()
        done = n
        rounds += 1
        alive = alive[allowed[alive]] if rounds == 1 else alive  # forbidden ones only get a map value
        est = num[alive] / den[alive]
        if n >= positive or len(alive) <= 1:
            break
        k = max(min_keep, math.ceil(keep * len(alive)))
        alive = alive[est.argsort()[:k]]
        n = min(n * growth, positive)
    epe = torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, math.nan))
    best = int(alive[(num[alive] / den[alive]).argmin()])
    return SearchResult(best, epe, cached.evaluations, {"rounds": rounds, "samples_used": done})


def coarse_to_fine(score: Callable, weights, grid: GlimpseGrid, forbidden=None, stride: int = 2,
                   top: int = 2, generator: torch.Generator | None = None, **halving) -> SearchResult:
    """Halving over every ``stride``-th row and column of the grid, then halving over the neighbours (within
    ``stride - 1`` cells) of the ``top`` best coarse locations.  Evaluations are shared between the stages."""
    L = grid.num_locations
    w, allowed = _prepare(weights, L, forbidden)
    cached = CachedScore(score, L, len(w))
    cells = grid.cell(torch.arange(L))
    last = torch.tensor([grid.n_rows - 1, grid.n_cols - 1])
    coarse = ((cells % stride == 0) | (cells == last)).all(-1) & allowed
    if not bool(coarse.any()):
        coarse = allowed
    first = successive_halving(score, w, L, forbidden, torch.nonzero(coarse).flatten(), generator=generator,
                               _cache=cached, **{**halving, "min_keep": max(top, halving.get("min_keep", 1))})
    est = torch.where(coarse, first.epe, torch.full_like(first.epe, math.inf))
    centres = cells[est.nan_to_num(math.inf).argsort()[:top]]
    near = ((cells.unsqueeze(0) - centres.unsqueeze(1)).abs().amax(-1) < stride).any(0) & allowed
    second = successive_halving(score, w, L, forbidden, torch.nonzero(near).flatten(), generator=generator,
                                _cache=cached, **{**halving, "min_keep": max(2, halving.get("min_keep", 1))})
    epe = torch.where(torch.isnan(second.epe), first.epe, second.epe)
    # The unevaluated locations get the map value of their nearest evaluated coarse neighbour (for plots only).
    known = ~torch.isnan(epe)
    if not bool(known.all()):
        d = (cells.unsqueeze(1) - cells[known].unsqueeze(0)).abs().amax(-1)
        epe = torch.where(known, epe, epe[known][d.argmin(1)])
    return SearchResult(second.location, epe, cached.evaluations, {"coarse": int(coarse.sum()),
                                                                   "fine": int(near.sum())})


def run_search(name: str, score: Callable, weights, grid: GlimpseGrid, forbidden=None,
               generator: torch.Generator | None = None, **options) -> SearchResult:
    """Dispatch by name: ``exhaustive``, ``halving`` or ``coarse``."""
    L = grid.num_locations
    if name == "exhaustive":
        return exhaustive_search(score, weights, L, forbidden)
    if name == "halving":
        return successive_halving(score, weights, L, forbidden, generator=generator, **options)
    if name == "coarse":
        return coarse_to_fine(score, weights, grid, forbidden, generator=generator, **options)
    raise ValueError(f"search must be one of {SEARCHES}, got {name!r}")
