"""The sequential BOED loop (the paper's Algorithm 1, repeated for t = 1..T).

At each step: draw N completions of the image given the glimpses so far (from the true image at the chosen
locations), estimate the EPE of every candidate location, choose the argmin, observe it.  The first location
(nothing observed) does not depend on the image, so it is computed once (:func:`first_glimpse_epe`) and cached
by the caller (``first_glimpse.json`` of a sequence store).

The loop is generic: a :class:`DesignProblem` is a posterior (callable on ``make_input(images, mask)``), a
completion sampler (``sample(locations, glimpses, n, generator, true_image)``) and a grid.  Anything that can be
written as "observe some cells of an array" fits, e.g. examples/new_design_task.py reads noisy sensors.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, TYPE_CHECKING

import torch

from ..checks import check_choice, check_int
from ..config import GLIMPSES
from ..sensor import Sensor
from ..runtime import derive_seed, generator as make_generator
from .epe import DEFAULT_BATCH_SIZE, DEFAULT_PRECISION, PairScorer, check_precision, expected_posterior_entropy
from .search import NETWORK_SEARCHES, SEARCHES, run_search

if TYPE_CHECKING:
    from ..completion.base import CompletionSamples

__all__ = [
    "DesignProblem",
    "DesignSettings",
    "SequenceResult",
    "first_glimpse_epe",
    "select_location",
    "independent_epe",
    "greedy_sequence",
    "image_seed",
]

log = logging.getLogger(__name__)


@dataclass
class DesignProblem:
    """What the loop needs: ``posterior(make_input(images, mask)) -> logits``, a completion ``sampler`` with
    ``sample(locations (t,), glimpses (t, C, h, w), n, generator=None, true_image=None)`` returning an object with
    ``images`` (n, C, H, W) and ``weights`` (n,), and the ``grid``.  ``attribute`` picks one column of a
    multi-attribute posterior's entropies; ``batch_size`` is the number of (candidate, sample) pairs per pass;
    ``precision`` (``float32`` or ``bfloat16``) is that of the posterior's forward passes (see ``epe.PairScorer``).
    ``epe_net``: ``(images (B, C, H, W), observed (B, t)) -> (B, L)`` predicted EPE maps (``amortised.AmortisedMap``),
    which the ``amortised`` and ``hybrid`` searches read."""

    posterior: Callable
    sampler: object
    grid: Sensor
    make_input: Callable | None = None
    kind: str | None = None
    attribute: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    channels: int = 1
    precision: str = DEFAULT_PRECISION
    epe_net: Callable | None = None

    def __post_init__(self):
        check_precision(self.precision)  # fail at construction, not at the first step

    def sample(
        self,
        locations: torch.Tensor,
        glimpses: torch.Tensor,
        n: int,
        generator: torch.Generator | None,
        true_image: torch.Tensor | None,
        pooled_draws: int = 1,
    ) -> CompletionSamples:
        """``n`` completions given the glimpses; ``pooled_draws`` > 1 pools that many independent draws of ``n``
        (:func:`~ppl_attention.completion.base.pool_draws`)."""
        from ..completion.base import pool_draws

        fn = self.sampler.sample if hasattr(self.sampler, "sample") else self.sampler
        return pool_draws(lambda: fn(locations, glimpses, n, generator=generator, true_image=true_image), pooled_draws)

    @property
    def scorer_options(self) -> dict:
        """How the posterior's passes are made: the keyword arguments of :class:`~.epe.PairScorer` and the EPE."""
        return dict(batch_size=self.batch_size, make_input=self.make_input, kind=self.kind, precision=self.precision)

    def score_fn(self, images: torch.Tensor, observed: torch.Tensor) -> Callable:
        """``score(candidates, samples) -> (l, n)`` entropies on these completions after ``observed``."""
        scorer = PairScorer(self.posterior, images, observed, self.grid, **self.scorer_options)

        def score(cands, samples):
            H = scorer(cands, samples)
            if H.dim() == 3:
                if self.attribute is None:
                    raise ValueError("the posterior returns one entropy per attribute; set attribute= to choose")
                H = H[..., self.attribute]
            return H

        return score


@dataclass
class DesignSettings:
    """Settings of the greedy loop (what a sequence store's manifest records).  ``pooled_draws``: independent draws of
    ``num_samples`` completions pooled at each step (``DesignProblem.sample``).  ``independent_draw``: also score
    each chosen location on a second draw of completions (:func:`independent_epe`)."""

    T: int = GLIMPSES
    num_samples: int = 100
    pooled_draws: int = 1
    search: str = "exhaustive"
    allow_repeat: bool = False
    search_options: dict = field(default_factory=dict)
    independent_draw: bool = False

    def __post_init__(self):
        check_int("T", self.T)
        check_int("num_samples", self.num_samples)
        check_int("pooled_draws", self.pooled_draws)
        check_choice("search", self.search, SEARCHES)


@dataclass
class SequenceResult:
    """A greedy sequence: ``locations`` (T,), the EPE map of every step ``epe`` (T, L) and per-step info."""

    locations: torch.Tensor
    epe: torch.Tensor
    info: list


def image_seed(run_seed: int, index: int) -> int:
    """The seed of one image's sequence: independent of sharding and of the number of workers."""
    return derive_seed(int(run_seed), "generate", int(index))


def posterior_device(posterior) -> torch.device:
    """The device of a posterior network's parameters (the CPU for a parameterless callable)."""
    params = getattr(posterior, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    return first.device if first is not None else torch.device("cpu")


def first_glimpse_epe(problem: DesignProblem, num_samples: int, seed: int) -> torch.Tensor:
    """EPE of every first location (nothing observed): exhaustive, on prior samples.  ``(L,)`` float64.

    The sampler draws on its own device; its completions are moved to the posterior's."""
    g = make_generator(derive_seed(int(seed), "first-glimpse"))
    device = posterior_device(problem.posterior)
    empty = torch.zeros((0,), dtype=torch.long)
    samples = problem.sample(
        empty, torch.zeros((0,) + problem.grid.glimpse_shape(problem.channels)), num_samples, g, None
    )
    epe = expected_posterior_entropy(
        problem.posterior,
        samples.images.to(device),
        samples.weights,
        empty.to(device),
        None,
        problem.grid,
        **problem.scorer_options,
    )
    if epe.dim() == 2:
        if problem.attribute is None:
            raise ValueError("the posterior returns one entropy per attribute; set attribute= to choose")
        epe = epe[:, problem.attribute]
    return epe


def select_location(
    problem: DesignProblem,
    true_image: torch.Tensor,
    observed: torch.Tensor,
    settings: DesignSettings,
    generator: torch.Generator,
    prior: torch.Tensor | None = None,
    independent: torch.Generator | None = None,
) -> tuple[int, torch.Tensor, dict]:
    """One step of Algorithm 1: sample completions, score candidates, return (location, EPE map, info).

    ``prior`` (L,), the previous step's EPE map, lets the ``race`` search start from the candidates that were
    good one glimpse ago (the other searches ignore it).  The ``amortised`` search takes the argmin of the
    problem's EPE-map network's prediction (no completions are drawn), ``hybrid`` races the prediction's best
    candidates on the completions.  ``independent``, a generator of its own: ``info["independent_epe"]`` is the
    chosen location's EPE on a second draw of completions (:func:`independent_epe`)."""
    location, epe, info = _search_step(problem, true_image, observed, settings, generator, prior)
    if independent is not None:
        info["independent_epe"] = independent_epe(
            problem, true_image, observed, location, settings.num_samples, independent, settings.pooled_draws
        )
    return location, epe, info


def _observed_glimpses(grid: Sensor, true_image: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """The true image's glimpses at ``observed`` (t, C, h, w); an empty stack before the first glimpse."""
    if len(observed):
        return grid.extract(true_image.unsqueeze(0), observed.view(1, -1))[0]
    return true_image.new_zeros((0,) + grid.glimpse_shape(true_image.shape[0]))


def independent_epe(
    problem: DesignProblem,
    true_image: torch.Tensor,
    observed: torch.Tensor,
    location: int,
    num_samples: int,
    generator: torch.Generator,
    pooled_draws: int = 1,
) -> float:
    """The EPE of ``location`` after ``observed``, on ``num_samples`` completions drawn with ``generator``
    (``pooled_draws`` of them pooled, as the design pools them).

    The draw that chose a location scores it optimistically: the argmin of noisy estimates is biased low (the
    optimiser's curse).  Scored on a draw that played no part in the choice, the estimate is unbiased for that
    location, so its gap to the realised entropy measures the completions, not the search."""
    glimpses = _observed_glimpses(problem.grid, true_image, observed)
    samples = problem.sample(observed, glimpses, num_samples, generator, true_image, pooled_draws)
    score = problem.score_fn(samples.images.to(true_image.device), observed)
    H = score(torch.tensor([int(location)]), torch.arange(len(samples.weights)))[0].double().cpu()
    w = torch.as_tensor(samples.weights, dtype=torch.float64).cpu()
    return float((H * w).sum() / w.sum())


def _search_step(
    problem: DesignProblem,
    true_image: torch.Tensor,
    observed: torch.Tensor,
    settings: DesignSettings,
    generator: torch.Generator,
    prior: torch.Tensor | None,
) -> tuple[int, torch.Tensor, dict]:
    """:func:`select_location` without the independent draw."""
    grid = problem.grid
    forbidden = None if settings.allow_repeat else observed
    proposal = None
    if settings.search in NETWORK_SEARCHES:
        if problem.epe_net is None:
            raise ValueError(f"the {settings.search} search needs an EPE-map network (generate `epe_net` DIR)")
        t0 = time.perf_counter()
        proposal = problem.epe_net(true_image.unsqueeze(0), observed.view(1, -1))[0].double().cpu()
        net_seconds = time.perf_counter() - t0
        if settings.search == "amortised":  # no completions: the network's map is the step
            result = run_search("amortised", None, None, grid, forbidden, proposal=proposal)
            return result.location, result.epe, {"evaluations": 0, "net_seconds": net_seconds}
    glimpses = _observed_glimpses(grid, true_image, observed)
    t0 = time.perf_counter()
    samples = problem.sample(observed, glimpses, settings.num_samples, generator, true_image, settings.pooled_draws)
    images = samples.images.to(true_image.device)
    t1 = time.perf_counter()
    score = problem.score_fn(images, observed)
    result = run_search(
        settings.search,
        score,
        samples.weights,
        grid,
        forbidden,
        generator,
        prior=prior,
        proposal=proposal,
        **settings.search_options,
    )
    t2 = time.perf_counter()
    diag = getattr(samples, "diagnostics", None) or {}
    ess = diag.get("ess", getattr(samples, "ess", None))  # the sampler's, else CompletionSamples' 1 / sum w^2
    ess = None if ess is None else float(ess)
    info = {"evaluations": result.evaluations, "samples": int(images.shape[0]), "ess": ess, "draws": diag.get("draws")}
    info = {**info, "sample_seconds": t1 - t0, "search_seconds": t2 - t1, **result.info}
    if proposal is not None:
        info["net_seconds"] = net_seconds
    return result.location, result.epe, info


def greedy_sequence(
    problem: DesignProblem,
    true_image: torch.Tensor,
    settings: DesignSettings,
    seed: int,
    first_epe: torch.Tensor | None = None,
) -> SequenceResult:
    """The near-optimal sequence of one image: greedy EPE argmin for t = 1..T.

    ``true_image`` (C, H, W) supplies the glimpses at the chosen locations; ``seed`` (one per image, see
    :func:`image_seed`) drives the completions; ``first_epe`` (L,) is the cached first-step EPE (computed here
    with :func:`first_glimpse_epe` if None).
    """
    grid = problem.grid
    if (
        not isinstance(true_image, torch.Tensor)
        or true_image.dim() != 3
        or tuple(true_image.shape[-2:]) != grid.image_size
    ):
        raise ValueError(
            f"`true_image` must be a (C, {grid.image_size[0]}, {grid.image_size[1]}) tensor, got "
            f"{tuple(true_image.shape) if isinstance(true_image, torch.Tensor) else true_image!r}"
        )
    if settings.T > grid.num_locations and not settings.allow_repeat:
        raise ValueError(f"T={settings.T} exceeds the {grid.num_locations} locations and repeats are not allowed")
    g = make_generator(seed)
    # a stream of its own, so the sequence is the same with or without the independent draws
    independent = make_generator(derive_seed(int(seed), "independent-draw")) if settings.independent_draw else None
    if first_epe is None:
        first_epe = first_glimpse_epe(problem, settings.num_samples, seed)
    first_epe = torch.as_tensor(first_epe, dtype=torch.float64).cpu()
    if first_epe.shape != (grid.num_locations,):
        raise ValueError(f"`first_epe` must have shape ({grid.num_locations},), got {tuple(first_epe.shape)}")
    locations = [int(first_epe.argmin())]
    maps, infos = [first_epe], [{"cached": True}]
    for _ in range(1, settings.T):
        observed = torch.tensor(locations, dtype=torch.long, device=true_image.device)
        loc, epe, info = select_location(
            problem, true_image, observed, settings, g, prior=maps[-1], independent=independent
        )
        locations.append(loc)
        maps.append(epe.double().cpu())
        infos.append(info)
    return SequenceResult(torch.tensor(locations, dtype=torch.long), torch.stack(maps), infos)
