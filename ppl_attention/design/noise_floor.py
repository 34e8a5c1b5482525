"""The noise floor of the BOED estimator, measured: how much two exhaustive searches on independent completions
disagree, and how far each is from a search on many more completions.

For every image the states are those of the *reference* sequence: the greedy exhaustive search on
``reference_samples`` completions (the first location from the cached first-glimpse map).  At every step after
the first, three independent sets of completions are drawn (per-image seeds): A and B of ``num_samples`` each and
the reference's.  The exhaustive EPE maps on them give

- ``between``: the regret of A's argmin on B's map and of B's on A's (their mean): the estimator's own noise floor;
- ``vs_reference``: the regret of A's and of B's argmin on the reference map;
- ``optimism``: how far the EPE a draw predicts for its own choice lies below the EPE of that location on the other,
  independent draw, ``(EPE_other(chosen) - EPE_own(chosen)) / EPE_own(chosen)`` (the mean over A and B): the
  optimiser's curse of taking the smallest of many noisy estimates, which makes a predicted EPE look better than
  what the glimpse then delivers;

with a regret ``(EPE(chosen) - min EPE) / min EPE`` over the locations not yet observed.  Each row also holds the
ESS and the number of distinct completions of every draw.  The completions leave the image itself out
(``exclusions``, see :mod:`.honest`) unless the caller passes none.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import torch
from tqdm.auto import tqdm

from ..checks import check_choice, check_int, check_number
from ..completion.base import DEFAULT_K1
from ..config import GLIMPSES, setting

from ..runtime import derive_seed, generator as make_generator
from .honest import honest_problem
from .search_base import relative_regret
from .search import CachedScore, run_search
from .sequential import DesignProblem

if TYPE_CHECKING:
    from typing import Callable, Iterable

__all__ = ["NoiseFloorConfig", "noise_floor", "parse_searches", "summarise_noise_floor"]

DRAWS = ("a", "b", "reference")


def _optimism(own: torch.Tensor, other: torch.Tensor) -> float:
    """How much higher the other draw scores ``own``'s choice than ``own`` does, relative to ``own``'s score."""
    choice = int(own.argmin())
    low = float(own[choice])
    return (float(other[choice]) - low) / max(low, 1e-12)


def _compare(maps: dict) -> dict:
    """The regrets and optimism of the three draws' maps: A against B, each against the reference."""
    choice = {name: int(maps[name].argmin()) for name in DRAWS}
    return {
        "between": 0.5 * (relative_regret(maps["b"], choice["a"]) + relative_regret(maps["a"], choice["b"])),
        "vs_reference": {k: relative_regret(maps["reference"], choice[k]) for k in ("a", "b")},
        "optimism": 0.5 * (_optimism(maps["a"], maps["b"]) + _optimism(maps["b"], maps["a"])),
    }


def _exhaustive(problem: DesignProblem, image, observed, n: int, seed: int, pooled_draws: int = 1):
    """One draw of ``n`` completions (``pooled_draws`` of them pooled) and the exhaustive EPE map on them (observed
    locations at +inf), with the draw's diagnostics and its whole (candidate, sample) entropy table and weights
    (for replaying searches)."""
    glimpses = problem.grid.extract(image.unsqueeze(0), observed.view(1, -1))[0]
    samples = problem.sample(observed, glimpses, n, make_generator(seed), image, pooled_draws)
    table = CachedScore(
        problem.score_fn(samples.images.to(image.device), observed), problem.grid.num_locations, len(samples.weights)
    )
    result = run_search("exhaustive", table, samples.weights, problem.grid, observed)
    epe = result.epe.double().cpu().clone()
    epe[observed.cpu()] = math.inf
    ess = (samples.diagnostics or {}).get("ess", samples.ess)
    return epe, {"ess": float(ess), "distinct": int(samples.images.shape[0])}, (table.table, samples.weights)


def _replay(searches: dict, table, grid, observed, maps: dict, seed: int) -> dict:
    """Each search of ``searches`` (label -> (name, options)) run on draw A's recorded entropy table (a lookup
    replaces every AVP pass): its regret on A's exhaustive map (the same completions: the search's own error), on
    the reference map, and the share of the exhaustive search's (candidate, sample) evaluations it made."""
    H, weights = table
    full = H.numel()  # what the exhaustive search evaluated (observed locations too, for its map)
    out = {}
    for label, (name, options) in searches.items():
        lookup = CachedScore(lambda c, s: H[c][:, s], H.shape[0], H.shape[1])
        result = run_search(name, lookup, weights, grid, observed, generator=make_generator(seed), **options)
        out[label] = {
            "regret": relative_regret(maps["a"], result.location),
            "vs_reference": relative_regret(maps["reference"], result.location),
            "evaluations": lookup.evaluations / full,
        }
    return out


def noise_floor(
    problem: DesignProblem,
    image_fn: Callable[[int], torch.Tensor],
    indices: Iterable[int],
    T: int,
    num_samples: int,
    reference_samples: int,
    seed: int,
    first_epe: torch.Tensor,
    exclusions: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
    searches: dict[str, tuple[str, dict]] | None = None,
    pooled_draws: int = 1,
    done: dict[int, list[dict]] | None = None,
    on_image: Callable[[int, list[dict]], None] | None = None,
) -> list[dict]:
    """Rows ``{"index", "step", "between", "vs_reference": {"a", "b"}, "optimism", "draws": {name: {"ess",
    "distinct"}}}`` for steps 2..T of every image ``indices`` (``image_fn(i)`` -> (C, H, W)).

    ``exclusions(index, image)``: what the prior leaves out for that image (no oracle).  ``searches`` (label ->
    (search name, options)) adds ``"searches": {label: {"regret", "vs_reference", "evaluations"}}``: each search
    replayed on draw A's completions against the exhaustive search on them (:func:`_replay`).  ``pooled_draws``:
    every draw (A, B and the reference) pools that many independent draws (``DesignProblem.sample``).

    Every image's seeds derive from its index, so a measurement resumes: ``done`` (index -> its rows, from an
    earlier call with the same settings) is taken as it is, and ``on_image(index, rows)`` sees each new image's
    rows as soon as they are made (to save them)."""
    if reference_samples < num_samples:
        raise ValueError(f"`reference_samples` must be >= num_samples ({num_samples}), got {reference_samples}")
    sizes = {"a": num_samples, "b": num_samples, "reference": reference_samples}
    first, done, rows = int(torch.as_tensor(first_epe).argmin()), done or {}, []
    for index in tqdm(list(indices), desc="noise floor", unit="img", disable=not progress):
        if int(index) in done:
            rows.extend(done[int(index)])
            continue
        image = image_fn(index)
        honest = honest_problem(problem, exclusions, index, image)
        image_rows = _image_rows(honest, image, int(index), first, T, sizes, seed, searches, pooled_draws)
        rows.extend(image_rows)
        if on_image is not None:
            on_image(int(index), image_rows)
    return rows


def _image_rows(honest, image, index, first, T, sizes, seed, searches, pooled_draws) -> list[dict]:
    """One image's rows, steps 2..T along the reference's greedy sequence from the ``first`` location."""
    locs, rows = [first], []
    for t in range(1, T):
        observed = torch.tensor(locs, dtype=torch.long, device=image.device)
        maps, diagnostics, tables = {}, {}, {}
        for name in DRAWS:
            maps[name], diagnostics[name], tables[name] = _exhaustive(
                honest, image, observed, sizes[name], derive_seed(seed, "noise-floor", name, index, t), pooled_draws
            )
        row = {"index": index, "step": t + 1, **_compare(maps), "draws": diagnostics}
        if searches:
            seed_t = derive_seed(seed, "noise-floor-search", index, t)
            row["searches"] = _replay(searches, tables["a"], honest.grid, observed, maps, seed_t)
        rows.append(row)
        locs.append(int(maps["reference"].argmin()))
    return rows


def parse_searches(items: Iterable[str]) -> dict[str, tuple[str, dict]]:
    """``["pyramid", "pyramid:top=8"]`` -> ``{"pyramid": ("pyramid", {}), "pyramid:top=8": ("pyramid", {"top":
    8})}``; the searches that need an EPE-map network's prediction are refused (the replay has none)."""
    from .search import NETWORK_SEARCHES, parse_search_options

    out = {}
    for item in items:
        name, _, options = str(item).partition(":")
        if name in NETWORK_SEARCHES:
            raise ValueError(
                f"`searches`: {name!r} needs an EPE-map network; replay the searches of the BOED "
                f"estimator only, got {item!r}"
            )
        out[str(item)] = (name, parse_search_options(name, [o for o in options.split(",") if o]))
    return out


def _stats(values) -> dict:
    values = list(values)
    return {"mean": statistics.fmean(values), "median": statistics.median(values), "n": len(values)}


def summarise_noise_floor(rows: list[dict]) -> dict:
    """Mean / median regrets over every step and per step, and the median ESS / distinct completions per draw."""

    def block(rs):
        return {
            "between": _stats(r["between"] for r in rs),
            "vs_reference": _stats(v for r in rs for v in r["vs_reference"].values()),
            "optimism": _stats(r["optimism"] for r in rs),
            "ess": {k: statistics.median(r["draws"][k]["ess"] for r in rs) for k in DRAWS},
            "distinct": {k: statistics.median(r["draws"][k]["distinct"] for r in rs) for k in DRAWS},
            "searches": {
                label: {
                    key: _stats(r["searches"][label][key] for r in rs)
                    for key in ("regret", "vs_reference", "evaluations")
                }
                for label in rs[0].get("searches", {})
            },
        }

    if not rows:
        raise ValueError("rows is empty: no step after the first was evaluated (T must be >= 2)")
    steps = sorted({r["step"] for r in rows})
    return {
        "all": block(rows),
        "per_step": {str(s): block([r for r in rows if r["step"] == s]) for s in steps},
        "images": len({r["index"] for r in rows}),
    }


@dataclass(frozen=True)
class NoiseFloorConfig:
    """Settings of a noise-floor measurement (``ppl-attention evaluate-design``), checked when built."""

    split: str = setting("test", "the images' split", choices=["train", "valid", "test"])
    num_images: int = setting(50, "images")
    glimpses: int = setting(GLIMPSES, "steps (>= 2: the first is the cached prior map)", old_flags=("-T",))
    num_samples: int = setting(40, "completions of each compared search")
    pooled_draws: int = setting(
        1, "independent draws of --num-samples (--reference-samples) completions pooled for every search's map"
    )
    reference_samples: int = setting(400, "completions of the reference search")
    first_num_samples: Optional[int] = setting(
        None, "prior samples of the first-glimpse map (default: reference_samples)"
    )
    k1: int = setting(DEFAULT_K1, "proposal draws of the importance sampler")
    sigma: Optional[tuple[float, ...]] = setting(
        None, "noise schedule (0..255 after 1, 2, ... glimpses; default: the prior's or the dataset's)"
    )
    batch_size: int = setting(128, "(candidate, sample) pairs per AVP pass")
    searches: tuple[str, ...] = setting(
        (),
        "searches to replay on the compared completions against the exhaustive search on them: NAME or "
        "NAME:KEY=VALUE,KEY=VALUE (e.g. pyramid pyramid:top=8 coarse halving)",
    )

    def __post_init__(self):
        parse_searches(self.searches)
        check_choice("split", self.split, ("train", "valid", "test"))
        for name in ("num_images", "num_samples", "pooled_draws", "reference_samples", "k1", "batch_size"):
            check_int(name, getattr(self, name))
        check_int("glimpses", self.glimpses, minimum=2)
        check_int("first_num_samples", self.first_num_samples, optional=True)
        if self.reference_samples < self.num_samples:
            raise ValueError(
                f"`reference_samples` must be >= `num_samples` ({self.num_samples}), got {self.reference_samples}"
            )
        for v in self.sigma or ():
            check_number("sigma", v, strict=True)
