"""How near-optimal the amortised and hybrid choices are: EPE regret against the exhaustive search, on held-out
images, with every search timed in the same run.

For every image the reference sequence is the exhaustive search's (the sequence ``generate --search exhaustive``
would write for it: the same per-image seed, so the same completions).  At every step after the first, the
completions are drawn once; the exhaustive map on them is the reference, and every other search runs on the same
completions with its OWN cache (no AVP evaluation is shared, so its time is its own).  A choice's regret is
``(EPE_ref(chosen) - min EPE_ref) / min EPE_ref`` over the allowed locations; ``agreement`` is the fraction of
steps where it is the reference's argmin; ``random_choice`` is the regret a uniformly random allowed location
would have on average (how flat the maps are: a regret is read against it).  The first step (nothing observed)
uses the cached first-glimpse map in ``generate``; the network's own first-step prediction is scored against it
too (``first_step``).

Seconds per sequence add, over the steps after the first, the search's time and (for the searches that read
completions) the time to draw them; the amortised search draws none.  ``exhaustive-independent`` is the
exhaustive search on an independent draw of the completions: its regret is the Monte-Carlo noise floor of the
estimator (the amortised network, which never sees the reference's completions, is compared with it).

``validity``: the AVP's accuracy after t = 1..T glimpses along the reference sequences and along the amortised
search's own sequences (a separate rollout: its choices, not the reference's, decide what it sees next); the
rollout of all the images in one batch is timed (``amortised-batched``).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from ..runtime import derive_seed, generator as make_generator
from .amortised import amortised_sequences
from .search_base import random_regret, relative_regret
from .search import NETWORK_SEARCHES, SearchResult, run_search
from .sequential import DesignProblem, image_seed

if TYPE_CHECKING:
    from typing import Callable, Iterable, Sequence
    from .store import SequenceStore

__all__ = ["evaluate_searches", "summarise", "INDEPENDENT"]

#: A pseudo-search: the exhaustive search on an independent draw of the completions (its regret against the
#: reference is the Monte-Carlo noise of the BOED estimator itself: what no method that does not read the
#: reference's own completions can beat on average).
INDEPENDENT = "exhaustive-independent"


def _reference_step(problem, reference, index, t: int, locs, images, weights, observed, sample_s: float):
    """The reference's choice and EPE map at step ``t``: the exhaustive search on the drawn completions (timed, with
    its row entry), or the stored sequence's (checked to start with ``locs``; no entry): (result, entry or None)."""
    if reference is None:
        t0 = time.perf_counter()
        ref = run_search("exhaustive", problem.score_fn(images, observed), weights, problem.grid, observed)
        return ref, {
            "seconds": time.perf_counter() - t0 + sample_s,
            "evaluations": ref.evaluations,
            "regret": 0.0,
            "regret_nats": 0.0,
            "agree": True,
        }
    rec = reference.record(index)
    if rec["locations"][:t] != locs:
        raise ValueError(
            f"the reference store's sequence of image {index} starts {rec['locations'][:t]}, "
            f"expected {locs}: it was not generated with these settings"
        )
    return SearchResult(rec["locations"][t], reference.epe_maps(index)[t], 0, {}), None


def _network_proposal(problem, image, observed):
    """The EPE-map network's map for this step (None without a network) and its seconds."""
    if problem.epe_net is None:
        return None, 0.0
    t0 = time.perf_counter()
    proposal = problem.epe_net(image.unsqueeze(0), observed.view(1, -1))[0].double().cpu()
    return proposal, time.perf_counter() - t0


def _score_search(problem, name, options, step: dict, ref, ref_map, gen) -> dict:
    """One search's choice at this step on its own cache, timed (its share of sampling and network time added),
    and its regret against the reference map."""
    image, observed, samples, images = step["image"], step["observed"], step["samples"], step["images"]
    asked = name
    t0 = time.perf_counter()
    weights = samples.weights
    if name == INDEPENDENT:  # the exhaustive search on other completions: the estimator's own noise
        other = problem.sample(observed, step["glimpses"], step["num_samples"], gen, image, step["pooled_draws"])
        name, weights = "exhaustive", other.weights
        score = problem.score_fn(other.images.to(image.device), observed)
    else:
        score = None if name == "amortised" else problem.score_fn(images, observed)
    result = run_search(name, score, weights, problem.grid, observed, gen, proposal=step["proposal"], **options)
    seconds = time.perf_counter() - t0
    if name in NETWORK_SEARCHES:
        seconds += step["net_s"]
    if asked not in ("amortised", INDEPENDENT):  # the independent one drew its own
        seconds += step["sample_s"]
    return {
        "seconds": seconds,
        "evaluations": result.evaluations,
        "regret": relative_regret(ref_map, result.location),
        "regret_nats": float(ref_map[result.location] - ref_map.min()),
        "agree": result.location == int(ref.location),
    }


def _evaluate_image(
    problem, image, index, locs, t: int, draw: tuple[int, int], g, seed: int, searches: dict, reference
) -> tuple:
    """Step ``t`` of one image: draw the completions (``draw``: completions per draw, pooled draws), take the
    reference, score every search; (row, location)."""
    num_samples, pooled_draws = draw
    observed = torch.tensor(locs, dtype=torch.long)
    glimpses = problem.grid.extract(image.unsqueeze(0), observed.view(1, -1))[0]
    t0 = time.perf_counter()
    samples = problem.sample(observed, glimpses, num_samples, g, image, pooled_draws)
    sample_s = time.perf_counter() - t0
    images = samples.images.to(image.device)
    draws = len(samples.diagnostics.get("pooled_ess", [None]))  # the draws pooled (pool_draws)
    row = {"index": int(index), "step": t + 1, "sample_seconds": sample_s, "ess": float(samples.ess), "draws": draws}
    ref, entry = _reference_step(problem, reference, index, t, locs, images, samples.weights, observed, sample_s)
    if entry is not None:
        row["exhaustive"] = entry
    ref_map = ref.epe.double().clone()
    ref_map[observed] = math.inf
    row["random_regret"] = random_regret(ref_map)
    proposal, net_s = _network_proposal(problem, image, observed)
    step = {
        "image": image,
        "observed": observed,
        "glimpses": glimpses,
        "samples": samples,
        "images": images,
        "num_samples": num_samples,
        "pooled_draws": pooled_draws,
        "proposal": proposal,
        "net_s": net_s,
        "sample_s": sample_s,
    }
    for label, (name, options) in searches.items():
        gen = make_generator(derive_seed(seed, "evaluate", label, int(index), t))
        row[label] = _score_search(problem, name, options, step, ref, ref_map, gen)
    return row, int(ref.location)


def evaluate_searches(
    problem: DesignProblem,
    image_fn: Callable[[int], torch.Tensor],
    indices: Sequence[int],
    T: int,
    num_samples: int,
    seed: int,
    first_epe: torch.Tensor,
    searches: dict,
    labels: Callable[[int], int] | None = None,
    progress: bool = True,
    reference: SequenceStore | None = None,
    pooled_draws: int = 1,
) -> dict:
    """Run the comparison on ``indices`` (``image_fn(i)`` -> (C, H, W)).  ``searches``: ``{label: (search name,
    options)}``, compared with the exhaustive reference.  Returns the raw per-step rows and the summary.

    ``reference``: a sequence store that ``generate --search exhaustive`` wrote for these images with the same seed,
    completions settings and precision: its maps and sequences are the reference (the completions are drawn again,
    identically, for the other searches), so the exhaustive search is not rerun (and not timed).  ``pooled_draws``:
    independent draws of ``num_samples`` completions pooled at every step, as ``generate --pooled-draws`` pools them
    (the independent search pools as many of its own)."""
    if problem.epe_net is None and any(name in NETWORK_SEARCHES for name, _ in searches.values()):
        raise ValueError("the amortised and hybrid searches need the problem's EPE-map network")
    first_epe = torch.as_tensor(first_epe, dtype=torch.float64).cpu()
    first = int(first_epe.argmin())
    rows, reference_sequences = [], []
    empty = torch.zeros((0,), dtype=torch.long)
    draw = (num_samples, pooled_draws)
    bar = tqdm(indices, desc="evaluate", unit="img", disable=not progress)
    for index in bar:
        image = image_fn(index)
        g = make_generator(image_seed(seed, index))  # what generate --search exhaustive draws for this image
        locs = [first]
        for t in range(1, T):
            row, location = _evaluate_image(problem, image, index, locs, t, draw, g, seed, searches, reference)
            rows.append(row)
            locs.append(location)
        reference_sequences.append(locs)
    out = {"rows": rows, "first_step": None, "validity": None}
    if problem.epe_net is not None and len(indices):
        net_first = problem.epe_net(image_fn(indices[0]).unsqueeze(0), empty.view(1, 0))[0].double().cpu()
        out["first_step"] = {
            "regret": relative_regret(first_epe, int(net_first.argmin())),
            "agree": int(net_first.argmin()) == first,
        }
        if labels is not None:
            out["validity"] = _validity(
                problem, image_fn, indices, torch.tensor(reference_sequences), first_epe, labels, T
            )
    return out


@torch.no_grad()
def _validity(problem, image_fn, indices, reference: torch.Tensor, first_epe, labels, T: int) -> dict:
    """AVP accuracy after t = 1..T glimpses along the reference and along the amortised rollout."""
    images = torch.stack([image_fn(i) for i in indices])
    y = torch.as_tensor([int(labels(i)) for i in indices])
    t0 = time.perf_counter()
    amortised, _ = amortised_sequences(problem.epe_net, images, T, first_epe)
    acc = {"batched_seconds_per_sequence": (time.perf_counter() - t0) / len(indices)}
    for name, seqs in (("exhaustive", reference), ("amortised", amortised)):
        curve = []
        for t in range(1, T + 1):
            logits = problem.posterior.predict(images, seqs[:, :t].to(images.device))
            curve.append(float((logits.argmax(-1).cpu() == y).double().mean()))
        acc[name] = curve
    acc["amortised_minus_exhaustive_points"] = [100 * (a - b) for a, b in zip(acc["amortised"], acc["exhaustive"])]
    acc["same_sequence"] = float((amortised == reference).all(1).double().mean())
    return acc


def summarise(result: dict, labels: Iterable[str]) -> dict:
    """Per search: mean / median / max relative regret (and the mean in nats: a relative regret explodes where the
    best EPE is near 0) and argmin agreement over all steps and per step, mean
    evaluations per step, seconds per sequence (the steps after the first), and speed-ups."""
    rows = result["rows"]
    if not rows:
        return {}
    steps = sorted({r["step"] for r in rows})
    images = len({r["index"] for r in rows})
    summary = {}
    timed = "exhaustive" in rows[0]
    for label in (["exhaustive"] if timed else []) + list(labels):
        reg = torch.tensor([r[label]["regret"] for r in rows], dtype=torch.float64)
        nats = torch.tensor([r[label]["regret_nats"] for r in rows], dtype=torch.float64)
        entry = {
            "mean_regret": float(reg.mean()),
            "median_regret": float(reg.median()),
            "mean_regret_nats": float(nats.mean()),
            "max_regret": float(reg.max()),
            "regret_se": float(reg.std() / math.sqrt(len(reg))) if len(reg) > 1 else 0.0,
            "agreement": sum(r[label]["agree"] for r in rows) / len(rows),
            "evaluations_per_step": sum(r[label]["evaluations"] for r in rows) / len(rows),
            "seconds_per_sequence": sum(r[label]["seconds"] for r in rows) / images,
            "per_step": {},
        }
        for s in steps:
            sel = [r for r in rows if r["step"] == s]
            entry["per_step"][str(s)] = {
                "mean_regret": sum(r[label]["regret"] for r in sel) / len(sel),
                "agreement": sum(r[label]["agree"] for r in sel) / len(sel),
            }
        summary[label] = entry
    validity = result.get("validity") or {}
    if "amortised" in summary and "batched_seconds_per_sequence" in validity:
        # the same sequences for all the images at once: one network pass per step for the whole batch
        summary["amortised-batched"] = {
            "seconds_per_sequence": validity["batched_seconds_per_sequence"],
            "images_per_batch": images,
        }
    for label, entry in summary.items():
        for base in ("exhaustive", "halving"):
            if base in summary and base != label:
                entry[f"speedup_vs_{base}"] = summary[base]["seconds_per_sequence"] / max(
                    entry["seconds_per_sequence"], 1e-12
                )
    return {
        "images": images,
        "steps_per_image": len(steps),
        "steps": len(rows),
        "random_choice": {
            "mean_regret": sum(r["random_regret"] for r in rows) / len(rows),
            "per_step": {
                str(s): sum(r["random_regret"] for r in rows if r["step"] == s) / sum(r["step"] == s for r in rows)
                for s in steps
            },
        },
        "searches": summary,
        "first_step": result.get("first_step"),
        "validity": result.get("validity"),
    }
