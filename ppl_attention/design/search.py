"""Candidate search: which location minimises the EPE.

Every strategy works on a *score* function ``score(candidates (l,), samples (n,)) -> (l, n)`` of posterior
entropies (one AVP pass per pair, see :func:`.epe.entropy_matrix`) and the samples' importance weights, so the
same search serves images and any other design task.  :class:`CachedScore` memoises pairs so that strategies
that revisit candidates (halving with shared samples, coarse-to-fine) never evaluate a pair twice.

- :func:`exhaustive_search`: the paper's grid search, every candidate on every sample (option ``stride``: only
  a sub-lattice of the grid, e.g. to make distillation maps on a fine grid at a coarse grid's cost).
- :func:`successive_halving`: every candidate on a few samples, keep the best fraction, evaluate the survivors
  on more samples of the SAME sequence (shared samples), until one survives or all samples are used.
- :func:`coarse_to_fine`: halving on a sub-lattice of the grid, then halving again among the neighbours of the
  best coarse locations (EPE maps are smooth: neighbouring glimpses overlap).
- :func:`pyramid_search`: exhaustive on a pyramid of lattices (stride 8, 4, 2, 1 on a 49 x 49 grid), each level
  around the best candidates of the coarser ones, every candidate on every sample.
- :func:`racing`: successive elimination on PAIRED differences with the current leader (shared samples), with a
  confidence bound that shrinks to zero as the samples run out (finite-population correction), so that with
  ``max_fraction=1`` the survivors are compared on exactly the exhaustive estimate; optionally restricted to the
  ``prior_top`` best candidates of a prior map (the previous step's EPE map).

- :func:`amortised_choice`: the argmin of a map predicted by an EPE-map network (:mod:`.amortised`): no AVP pass
  on completions at all.
- :func:`hybrid_search`: the network's ``top`` best candidates, raced (:func:`racing`) by the BOED estimator.
- :func:`dagger_search`: the exhaustive map with the network's choice: DAgger's labelling of the states the network
  itself reaches (its store trains the network again, :mod:`.distill`).

``forbidden`` locations (already observed, when repeating is not allowed) are never chosen; the exhaustive,
halving and coarse searches score them for the map, ``race`` fills their map value without scoring them.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, TYPE_CHECKING

import torch

from ..checks import check_int
from ..sensor import Sensor
from .search_base import CachedScore, SearchResult, prepare_weights, sample_order, weighted_map

if TYPE_CHECKING:
    from typing import Sequence

__all__ = [
    "SearchResult",
    "CachedScore",
    "lattice",
    "exhaustive_search",
    "successive_halving",
    "coarse_to_fine",
    "racing",
    "amortised_choice",
    "hybrid_search",
    "pyramid_search",
    "dagger_search",
    "SEARCH_FUNCTIONS",
    "SEARCHES",
    "NETWORK_SEARCHES",
    "MAP_SEARCHES",
    "run_search",
    "parse_search_options",
]


def lattice(grid: Sensor, stride: int) -> torch.Tensor:
    """(L,) bool: the locations on every ``stride``-th row and column of ``grid`` (and its last row and column),
    e.g. the 81 locations of the 9 x 9 stride-6 MNIST grid inside the 49 x 49 stride-1 one."""
    check_int("stride", stride)
    cells = grid.cell(torch.arange(grid.num_locations))
    last = torch.tensor([grid.n_rows - 1, grid.n_cols - 1])
    return ((cells % stride == 0) | (cells == last)).all(-1)


def exhaustive_search(
    score: Callable,
    weights: torch.Tensor,
    num_candidates: int,
    forbidden: torch.Tensor | Sequence[int] | None = None,
    grid: Sensor | None = None,
    stride: int = 1,
) -> SearchResult:
    """Evaluate every candidate on every sample (the paper's grid search).

    ``stride`` > 1 (needs ``grid``) scores only the sub-lattice :func:`lattice` (a fine grid's coarse locations,
    ``stride ** 2`` times cheaper) and chooses among them; every other location gets the value of its nearest
    scored one (``info["scored"]`` counts them; the distillation of :mod:`.distill` trains on the scored ones only)."""
    w, allowed = prepare_weights(weights, num_candidates, forbidden)
    cached = score if isinstance(score, CachedScore) else CachedScore(score, num_candidates, len(w))
    if stride == 1:
        H = cached(torch.arange(num_candidates), torch.arange(len(w)))
        epe = H @ w
        best = int(torch.where(allowed, epe, torch.full_like(epe, math.inf)).argmin())
        return SearchResult(best, epe, cached.evaluations, {"samples": len(w)})
    if grid is None or grid.num_locations != num_candidates:
        raise ValueError(f"the exhaustive search's stride {stride} needs the grid of the {num_candidates} candidates")
    scored = lattice(grid, stride)
    if not bool((scored & allowed).any()):
        raise ValueError(f"every location of the stride-{stride} lattice is forbidden")
    where = torch.nonzero(scored).flatten()
    values = cached(where, torch.arange(len(w))) @ w
    cells = grid.cell(torch.arange(num_candidates))
    nearest = (cells.unsqueeze(1) - cells[where].unsqueeze(0)).abs().sum(-1).argmin(1)  # (L,) into where
    epe = values[nearest]
    best = int(where[torch.where(allowed[where], values, torch.full_like(values, math.inf)).argmin()])
    return SearchResult(best, epe, cached.evaluations, {"samples": len(w), "scored": len(where)})


def successive_halving(
    score: Callable,
    weights: torch.Tensor,
    num_candidates: int,
    forbidden: torch.Tensor | Sequence[int] | None = None,
    candidates: torch.Tensor | Sequence[int] | None = None,
    initial_samples: int = 7,
    growth: int = 2,
    keep: float = 0.3,
    min_keep: int = 2,
    generator: torch.Generator | None = None,
    _cache: CachedScore | None = None,
) -> SearchResult:
    """Successive halving with shared, growing Monte Carlo samples.

    All candidates are scored on ``initial_samples`` samples; the best ``keep`` fraction (at least
    ``min_keep``) survives and is scored on ``growth`` times as many samples (the earlier ones reused), until one
    candidate is left or every sample is used, which then gives exactly the exhaustive estimate for the
    survivors.  Samples are visited in an order drawn by weight without replacement (``generator``), and each
    subset's estimate is self-normalised.

    The defaults were tuned on recorded entropy tables of training images (``benchmarks/search_regret.py``; see
    docs/RESULTS.md, section "Benchmarks"): a smaller first round or a faster growth saves few evaluations and
    sometimes drops the best location, judged on too few completions.
    """
    w, allowed = prepare_weights(weights, num_candidates, forbidden)
    if initial_samples < 1 or growth < 2 or not 0 < keep < 1 or min_keep < 1:
        raise ValueError(
            f"need initial_samples >= 1, growth >= 2, 0 < keep < 1, min_keep >= 1; got "
            f"{initial_samples}, {growth}, {keep}, {min_keep}"
        )
    cached = _cache or CachedScore(score, num_candidates, len(w))
    order = sample_order(w, generator)
    positive = len(order)
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


def coarse_to_fine(
    score: Callable,
    weights: torch.Tensor,
    grid: Sensor,
    forbidden: torch.Tensor | Sequence[int] | None = None,
    stride: int = 2,
    top: int = 2,
    generator: torch.Generator | None = None,
    **halving,
) -> SearchResult:
    """Halving over every ``stride``-th row and column of the grid, then halving over the neighbours (within
    ``stride - 1`` cells) of the ``top`` best coarse locations.  Evaluations are shared between the stages."""
    L = grid.num_locations
    w, allowed = prepare_weights(weights, L, forbidden)
    cached = CachedScore(score, L, len(w))
    cells = grid.cell(torch.arange(L))
    last = torch.tensor([grid.n_rows - 1, grid.n_cols - 1])
    coarse = ((cells % stride == 0) | (cells == last)).all(-1) & allowed
    if not bool(coarse.any()):
        coarse = allowed
    first = successive_halving(
        score,
        w,
        L,
        forbidden,
        torch.nonzero(coarse).flatten(),
        generator=generator,
        _cache=cached,
        **{**halving, "min_keep": max(top, halving.get("min_keep", 1))},
    )
    est = torch.where(coarse, first.epe, torch.full_like(first.epe, math.inf))
    centres = cells[est.nan_to_num(math.inf).argsort()[:top]]
    near = ((cells.unsqueeze(0) - centres.unsqueeze(1)).abs().amax(-1) < stride).any(0) & allowed
    second = successive_halving(
        score,
        w,
        L,
        forbidden,
        torch.nonzero(near).flatten(),
        generator=generator,
        _cache=cached,
        **{**halving, "min_keep": max(2, halving.get("min_keep", 1))},
    )
    epe = _fill_unscored(torch.where(torch.isnan(second.epe), first.epe, second.epe), cells)
    return SearchResult(
        second.location, epe, cached.evaluations, {"coarse": int(coarse.sum()), "fine": int(near.sum())}
    )


def pyramid_search(
    score: Callable,
    weights: torch.Tensor,
    grid: Sensor,
    forbidden: torch.Tensor | Sequence[int] | None = None,
    levels: int | None = None,
    top: int = 8,
) -> SearchResult:
    """Exhaustive search on a pyramid of lattices: every candidate of the coarsest lattice (stride
    ``2 ** (levels - 1)``), then at each finer stride every lattice point within the previous stride of the ``top``
    best candidates scored so far, down to stride 1.  Each candidate is scored on every sample (no pruning noise);
    evaluations are shared.  ``levels`` defaults to the largest stride that still leaves a 4 x 4 coarse lattice."""
    L = grid.num_locations
    w, allowed = prepare_weights(weights, L, forbidden)
    if levels is None:
        levels = max(1, int(math.log2(max(1, min(grid.n_rows, grid.n_cols) // 4))) + 1)
    check_int("levels", levels)
    check_int("top", top)
    cached = score if isinstance(score, CachedScore) else CachedScore(score, L, len(w))
    cells = grid.cell(torch.arange(L))
    samples = torch.arange(len(w))
    epe = torch.full((L,), math.nan, dtype=torch.float64)
    region = torch.ones(L, dtype=torch.bool)
    counts = []
    for level in range(levels - 1, -1, -1):
        stride = 2**level
        cand = lattice(grid, stride) & region & allowed & torch.isnan(epe)
        if level == levels - 1 and not bool(cand.any()):  # the whole coarse lattice forbidden: start from the rest
            cand = allowed.clone()
        where = torch.nonzero(cand).flatten()
        if len(where):
            epe[where] = cached(where, samples) @ w
        counts.append(len(where))
        scored = torch.where(allowed & ~torch.isnan(epe), epe, torch.full_like(epe, math.inf))
        best = scored.argsort()[: min(top, int(torch.isfinite(scored).sum()))]
        region = ((cells.unsqueeze(0) - cells[best].unsqueeze(1)).abs().amax(-1) < stride).any(0)
    location = int(torch.where(allowed & ~torch.isnan(epe), epe, torch.full_like(epe, math.inf)).argmin())
    return SearchResult(location, _fill_unscored(epe, cells), cached.evaluations, {"scored_per_level": counts})


def _fill_unscored(epe: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """``epe`` with every unscored (NaN) location given the value of its nearest scored one (for plots only)."""
    known = ~torch.isnan(epe)
    if bool(known.all()):
        return epe
    d = (cells.unsqueeze(1) - cells[known].unsqueeze(0)).abs().amax(-1)
    return torch.where(known, epe, epe[known][d.argmin(1)])


def _race_pool(num_candidates: int, allowed: torch.Tensor, candidates, prior, prior_top):
    """The allowed candidates that enter a race (the ``prior_top`` best by ``prior`` when both are given), and the
    prior as a float64 map (or None)."""
    pool = torch.arange(num_candidates) if candidates is None else torch.as_tensor(candidates).long().cpu()
    pool = pool[allowed[pool]]
    if not len(pool):
        raise ValueError("every candidate given to racing is forbidden")
    if prior is not None:
        prior = torch.as_tensor(prior, dtype=torch.float64).cpu()
        if prior.shape != (num_candidates,) or not bool(torch.isfinite(prior).all()):
            raise ValueError(f"`prior` must be a finite ({num_candidates},) map, got shape {tuple(prior.shape)}")
        if prior_top is not None:
            pool = pool[prior[pool].argsort(stable=True)[:prior_top]]
    return pool, prior


def _still_racing(
    H: torch.Tensor, ws: torch.Tensor, est: torch.Tensor, tolerance: float, z: float, finite_population: float
) -> torch.Tensor:
    """Which candidates (rows of ``H``, entropies on the shared samples weighted ``ws``) may still beat the
    leader by more than a ``tolerance`` fraction: the paired difference's weighted mean against ``z`` standard
    errors (Bessel-corrected, times the finite-population factor)."""
    lead = int(est.argmin())
    D = H - H[lead]
    d = D @ ws
    neff = 1.0 / float((ws**2).sum())
    var = ((D - d.unsqueeze(1)) ** 2) @ ws * (neff / max(neff - 1.0, 1e-12))  # unbiased (Bessel)
    se = ((var + var.mean()) / 2 / neff * max(0.0, finite_population)).sqrt()
    keep = d + tolerance * est[lead].abs() <= z * se
    keep[lead] = True
    return keep


def racing(
    score: Callable,
    weights: torch.Tensor,
    num_candidates: int,
    forbidden: torch.Tensor | Sequence[int] | None = None,
    candidates: torch.Tensor | Sequence[int] | None = None,
    prior: torch.Tensor | None = None,
    prior_top: int | None = None,
    initial_samples: int = 6,
    growth: float = 1.5,
    z: float = 2.0,
    tolerance: float = 0.01,
    max_fraction: float = 1.0,
    generator: torch.Generator | None = None,
    _cache: CachedScore | None = None,
) -> SearchResult:
    """Race the candidates on shared samples; drop those confidently worse than the leader.

    Every alive candidate is scored on the first ``n`` samples (an order drawn by weight), starting at
    ``initial_samples`` and growing by ``growth``.  After each round, with ``d_l`` the weighted mean of the paired
    difference ``H[l, s] - H[leader, s]`` and ``se_l`` its standard error (the candidate's and the pooled
    Bessel-corrected variance averaged, over the effective sample size, times the finite-population factor
    ``1 - n / N``), a candidate is dropped once ``d_l + tolerance * |EPE(leader)| > z * se_l``: it is unlikely to
    beat the leader by more than a ``tolerance`` fraction.  The bound reaches zero when every sample is used, so with
    ``max_fraction=1`` and ``tolerance=0`` the winner is the exhaustive argmin among the survivors.  The race
    stops when one candidate is left or ``max_fraction`` of the samples is used (the best estimate wins).

    ``prior`` (L,) is a map that ranks the candidates before any sample, e.g. the previous step's EPE map: only
    its ``prior_top`` best allowed candidates enter the race (all of them if ``prior`` or ``prior_top`` is None,
    the default): restricting the race to the previous map's best candidates trades regret for evaluations
    (``benchmarks/search_regret.py`` measures both; see docs/RESULTS.md, section "Benchmarks").  Forbidden and unraced
    candidates are not scored; their map value is the prior shifted by the median change of the raced ones
    (or, without a prior, the mean of the raced ones), so maps stay finite for plots.
    """
    w, allowed = prepare_weights(weights, num_candidates, forbidden)
    if (
        initial_samples < 1
        or growth <= 1
        or z < 0
        or tolerance < 0
        or not 0 < max_fraction <= 1
        or (prior_top is not None and prior_top < 1)
    ):
        raise ValueError(
            f"need initial_samples >= 1, growth > 1, z >= 0, tolerance >= 0, 0 < max_fraction <= 1, "
            f"prior_top >= 1 or None; got {initial_samples}, {growth}, {z}, {tolerance}, "
            f"{max_fraction}, {prior_top}"
        )
    cached = _cache or CachedScore(score, num_candidates, len(w))
    order = sample_order(w, generator)
    pool, prior = _race_pool(num_candidates, allowed, candidates, prior, prior_top)
    cap = max(1, min(len(order), math.ceil(max_fraction * len(order))))
    alive, est, n, rounds = _race(cached, w, order, pool, min(initial_samples, cap), cap, (growth, z, tolerance))
    best = int(alive[est.argmin()])
    epe = _filled_map(weighted_map(cached, w), prior)
    info = {"rounds": rounds, "samples_used": n, "raced": len(pool), "finalists": len(alive)}
    return SearchResult(best, epe, cached.evaluations, info)


def _race(
    cached: CachedScore,
    w: torch.Tensor,
    order: torch.Tensor,
    alive: torch.Tensor,
    n: int,
    cap: int,
    rule: tuple[float, float, float],
) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """The rounds of a race: score the ``alive`` candidates on the first ``n`` samples of ``order``, drop those
    confidently worse than the leader, grow ``n`` (``rule``: growth, z, tolerance) up to ``cap``.  Returns the
    survivors, their estimates, the samples used and the rounds."""
    growth, z, tolerance = rule
    rounds = 0
    while True:
        s = order[:n]
        ws = w[s] / w[s].sum()
        H = cached(alive, s)
        est = H @ ws
        rounds += 1
        if len(alive) == 1 or n >= cap:
            return alive, est, n, rounds
        keep = _still_racing(H, ws, est, tolerance, z, 1.0 - n / len(order))
        alive, est = alive[keep], est[keep]
        n = min(max(n + 1, math.ceil(n * growth)), cap)


def _filled_map(epe: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
    """A race's map with its unscored candidates filled: the prior shifted by the median change of the scored
    ones, or without a prior their mean."""
    missing = torch.isnan(epe)
    if not bool(missing.any()):
        return epe
    if prior is not None:
        fill = prior + (epe[~missing] - prior[~missing]).median()
    else:
        fill = torch.full_like(epe, float(epe[~missing].mean()))
    return torch.where(missing, fill, epe)


def _check_proposal(proposal, num_candidates: int, name: str) -> torch.Tensor:
    if proposal is None:
        raise ValueError(f"the {name} search needs an EPE-map network's prediction (generate `epe_net` DIR)")
    p = torch.as_tensor(proposal, dtype=torch.float64).cpu()
    if p.shape != (num_candidates,):
        raise ValueError(
            f"the predicted EPE map must have shape ({num_candidates},) (one value per location of the "
            f"grid), got {tuple(p.shape)}"
        )
    if not bool(torch.isfinite(p).all()):
        raise ValueError("the predicted EPE map holds NaN or infinite values")
    return p


def amortised_choice(
    proposal: torch.Tensor, num_candidates: int, forbidden: torch.Tensor | Sequence[int] | None = None
) -> SearchResult:
    """The argmin of a predicted EPE map ``proposal`` (L,) among the allowed locations (no AVP evaluation); the
    map is the prediction."""
    p = _check_proposal(proposal, num_candidates, "amortised")
    _, allowed = prepare_weights(torch.ones(1), num_candidates, forbidden)
    best = int(torch.where(allowed, p, torch.full_like(p, math.inf)).argmin())
    return SearchResult(best, p, 0, {})


def hybrid_search(
    score: Callable,
    weights: torch.Tensor,
    num_candidates: int,
    forbidden: torch.Tensor | Sequence[int] | None = None,
    proposal: torch.Tensor = None,
    top: int = 4,
    generator: torch.Generator | None = None,
    **race,
) -> SearchResult:
    """The ``top`` allowed candidates with the lowest predicted EPE (``proposal`` (L,), an EPE-map network's
    map), raced by the BOED estimator on the completions (:func:`racing`, its options in ``race``).  The others
    are not scored: their map value is the prediction shifted by the median change of the scored ones."""
    p = _check_proposal(proposal, num_candidates, "hybrid")
    check_int("top", top)
    result = racing(score, weights, num_candidates, forbidden, prior=p, prior_top=top, generator=generator, **race)
    result.info["proposed"] = result.info.pop("raced")
    return result


def dagger_search(
    score: Callable,
    weights: torch.Tensor,
    num_candidates: int,
    forbidden: torch.Tensor | Sequence[int] | None = None,
    grid: Sensor | None = None,
    proposal: torch.Tensor = None,
    stride: int = 1,
) -> SearchResult:
    """DAgger's labelling step: the exhaustive search's map (the expert's label of this state, ``stride`` as in
    :func:`exhaustive_search`) and the EPE-map network's choice (the argmin of ``proposal``) as the next location,
    so that the sequence goes where the network would go and the map says what it should have chosen there.
    ``info["expert"]`` is the exhaustive choice."""
    p = _check_proposal(proposal, num_candidates, "dagger")
    result = exhaustive_search(score, weights, num_candidates, forbidden, grid=grid, stride=stride)
    chosen = amortised_choice(p, num_candidates, forbidden).location
    return SearchResult(chosen, result.epe, result.evaluations, {**result.info, "expert": result.location})


def run_search(
    name: str,
    score: Callable,
    weights: torch.Tensor | None,
    grid: Sensor,
    forbidden: torch.Tensor | Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    prior: torch.Tensor | None = None,
    proposal: torch.Tensor | None = None,
    **options,
) -> SearchResult:
    """Dispatch by name (:data:`SEARCH_FUNCTIONS`).

    ``prior`` (an (L,) map, e.g. the previous step's EPE map) is used by ``race`` and ignored by the others;
    ``proposal`` (L,), an EPE-map network's prediction for this step, by ``amortised`` and ``hybrid``."""
    if name not in SEARCHES:
        raise ValueError(f"`search` must be one of {SEARCHES}, got {name!r}")
    fn = SEARCH_FUNCTIONS[name]
    context = {
        "score": score,
        "weights": weights,
        "num_candidates": grid.num_locations,
        "grid": grid,
        "forbidden": forbidden,
        "generator": generator,
        "prior": prior,
        "proposal": proposal,
    }
    return fn(**{k: v for k, v in context.items() if k in _parameters(fn)}, **options)


@functools.lru_cache(maxsize=None)
def _parameters(fn: Callable) -> frozenset[str]:
    """The named parameters of ``fn`` (not its ``**options``)."""
    import inspect

    return frozenset(n for n, p in inspect.signature(fn).parameters.items() if p.kind is not p.VAR_KEYWORD)


def _tunable(name: str) -> set[str]:
    """The keyword options a search takes (what ``run_search(name, ..., **options)`` accepts): its parameters
    other than what :func:`run_search` supplies, and those of the search it passes its other options on to."""
    fn = SEARCH_FUNCTIONS[name]
    params = _parameters(fn) - {
        "score",
        "weights",
        "num_candidates",
        "grid",
        "forbidden",
        "candidates",
        "prior",
        "generator",
        "_cache",
        "proposal",
    }
    if name == "coarse":  # coarse_to_fine passes its other options on to successive halving
        params |= _tunable("halving")
    if name == "hybrid":  # hybrid_search passes its other options on to racing (not its prior_top: that is top)
        params |= _tunable("race") - {"prior_top"}
    return params


def parse_search_options(name: str, items: Sequence[str] | None) -> dict:
    """``["initial_samples=4", "keep=0.25"]`` -> ``{"initial_samples": 4, "keep": 0.25}``, checked against the
    options that search ``name`` takes (numbers only: every tunable option is an int or a float)."""
    if name not in SEARCHES:
        raise ValueError(f"`search` must be one of {SEARCHES}, got {name!r}")
    allowed, options = _tunable(name), {}
    for item in items or ():
        key, sep, text = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"search options look like KEY=VALUE, got {item!r}")
        if key not in allowed:
            raise ValueError(f"the {name} search has no option {key!r}; it takes {sorted(allowed) or 'none'}")
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"search option {key} must be a number, got {text!r}") from None
        options[key] = value
    return options


#: The searches by name, the one registry :func:`run_search`, :func:`parse_search_options` and the CLI's choices
#: follow; each function is called with the keywords of :func:`run_search` it names.
SEARCH_FUNCTIONS: dict[str, Callable[..., SearchResult]] = {
    "exhaustive": exhaustive_search,
    "halving": successive_halving,
    "coarse": coarse_to_fine,
    "race": racing,
    "amortised": amortised_choice,
    "hybrid": hybrid_search,
    "pyramid": pyramid_search,
    "dagger": dagger_search,
}
SEARCHES = tuple(SEARCH_FUNCTIONS)
#: The searches whose stored maps are the exhaustive estimate at every (scored) location: what distillation trains on.
MAP_SEARCHES = ("exhaustive", "dagger")
#: The searches that read an EPE-map network's prediction (``proposal``): ``generate --epe-net DIR``.
NETWORK_SEARCHES = tuple(name for name, fn in SEARCH_FUNCTIONS.items() if "proposal" in _parameters(fn))
