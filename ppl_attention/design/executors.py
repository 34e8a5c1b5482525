"""Run the greedy loop over many images, locally or on a Ray cluster, into a resumable sequence store.

A *factory* is a picklable, hashable callable (a frozen dataclass) that builds ``(DesignProblem, image_fn)`` in
whatever process runs it, so Ray workers load the AVP and prior themselves; ``image_fn(index)`` returns the true
image ``(C, H, W)``.  Every image has its own seed (``sequential.image_seed``), so the sequences do not depend
on sharding, batching or the number of workers.  Records are written by the driver, one atomic file per image,
as soon as they arrive: a killed run loses only the images in flight.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Iterable, Iterator

import torch
from tqdm.auto import tqdm

from .sequential import DesignSettings, first_glimpse_epe, greedy_sequence, image_seed
from .store import SequenceStore

__all__ = ["EXECUTORS", "parse_shard", "shard_indices", "design_batch", "generate_sequences"]

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
#: Images per batch of the amortised search in the local executor (one network pass per step for all of them),
#: at most: a batch holds at most ``AMORTISED_PAIRS`` (image, location) pairs (the network's per-location MLP
#: runs on all of them at once: 256 images of the 81-location grid, 27 of the 2,401-location one).
AMORTISED_BATCH = 256
AMORTISED_PAIRS = 1 << 16
_LOADED: dict = {}


def _load(factory):
    """Build a factory's problem once per process."""
    if factory not in _LOADED:
        _LOADED.clear()
        _LOADED[factory] = factory()
    return _LOADED[factory]


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n; None -> (0, 1)."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def shard_indices(indices: Iterable[int], shard: tuple[int, int]) -> list[int]:
    """The images of one shard: every n-th image of the sorted list, starting at i."""
    i, n = shard
    return sorted(int(x) for x in indices)[i::n]


def design_batch(factory, indices: list[int], settings: DesignSettings, seed: int, first_epe) -> Iterator[dict]:
    """Generate the sequences of some images (in this process), yielding one record per image."""
    problem, image_fn = _load(factory)
    if settings.search == "amortised" and problem.epe_net is not None and indices:
        # one network pass per step for the whole batch (the same sequences as greedy_sequence, image by image)
        from .amortised import amortised_sequences

        images = torch.stack([image_fn(i) for i in indices])
        locations, maps = amortised_sequences(problem.epe_net, images, settings.T, first_epe, settings.allow_repeat)
        for k, index in enumerate(indices):
            yield {"index": int(index), "seed": image_seed(seed, index), "locations": locations[k].tolist(),
                   "epe": maps[k].tolist(), "evaluations": [0] * settings.T}
        return
    exclusions = getattr(image_fn, "exclusions", None)
    for index in indices:
        s = image_seed(seed, index)
        image = image_fn(index)
        honest = problem
        if exclusions is not None:  # the completions never propose the image itself (no oracle)
            honest = dataclasses.replace(problem, sampler=problem.sampler.excluding(exclusions(index, image)))
        result = greedy_sequence(honest, image, settings, s, first_epe)
        yield {"index": int(index), "seed": s, "locations": result.locations.tolist(),
               "epe": result.epe.tolist(),
               "evaluations": [int(i.get("evaluations", 0)) for i in result.info],
               # effective sample size of the completions at steps 2..T (step 1 is the cached prior's)
               "ess": [i.get("ess") for i in result.info[1:]],
               "distinct": [i.get("samples") for i in result.info[1:]]}  # distinct completions per step


def _design_batch_list(factory, indices, settings, seed, first_epe) -> list[dict]:
    torch.set_num_threads(1)  # one Ray task per CPU; the cluster parallelises over tasks
    return list(design_batch(factory, indices, settings, seed, first_epe))


def _write(store: SequenceStore, rec: dict) -> None:
    store.write_record(rec["index"], rec["seed"], rec["locations"], rec["epe"], evaluations=rec["evaluations"],
                       ess=rec.get("ess"), **({"distinct": rec["distinct"]} if "distinct" in rec else {}))


def generate_sequences(store: SequenceStore, factory: Callable, indices: Iterable[int], settings: DesignSettings,
                       seed: int = 0, executor: str = "local", images_per_task: int = 4, num_gpus: float = 0.0,
                       first_num_samples: int | None = None, progress: bool = True) -> dict:
    """Fill ``store`` with the sequences of ``indices`` (those already there are skipped: resume).

    The first-glimpse EPE is computed once (exhaustive, ``first_num_samples`` prior samples, default
    ``settings.num_samples``) and cached in ``first_glimpse.json``.  ``executor="ray"`` submits one Ray task per
    ``images_per_task`` images (connecting to the running cluster, or starting a local one), each asking for
    ``num_gpus`` GPUs.  Returns counts.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if images_per_task < 1:
        raise ValueError(f"images_per_task must be >= 1, got {images_per_task}")
    indices = sorted({int(i) for i in indices})
    if any(i < 0 for i in indices):
        raise ValueError(f"image indices must be >= 0, got {indices[:5]}...")
    if not store.has_first_glimpse():
        problem, _ = _load(factory)
        n = first_num_samples or settings.num_samples
        epe = first_glimpse_epe(problem, n, seed)
        store.write_first_glimpse(epe, seed=seed, num_samples=n)
        log.info("first glimpse: location %d (EPE %.4f)", int(epe.argmin()), float(epe.min()))
    first = store.first_glimpse_epe()
    todo = [i for i in indices if not store.has(i)]
    done = len(indices) - len(todo)
    bar = tqdm(total=len(indices), initial=done, desc="sequences", unit="img", disable=not progress)
    per_batch = images_per_task
    if settings.search == "amortised" and executor == "local":
        # the network's passes are batched over images
        per_batch = max(images_per_task, min(AMORTISED_BATCH, AMORTISED_PAIRS // store.grid.num_locations))
    batches = [todo[k:k + per_batch] for k in range(0, len(todo), per_batch)]
    try:
        if executor == "local":
            for batch in batches:
                for rec in design_batch(factory, batch, settings, seed, first):
                    _write(store, rec)
                    bar.update(1)
        else:
            import ray

            if not ray.is_initialized():
                ray.init(include_dashboard=False, ignore_reinit_error=True)
            remote = ray.remote(num_gpus=num_gpus, num_cpus=1)(_design_batch_list)
            pending = [remote.remote(factory, b, settings, seed, first) for b in batches]
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for rec in ray.get(ready[0]):
                    _write(store, rec)
                    bar.update(1)
    finally:
        bar.close()
    return {"requested": len(indices), "skipped": done, "generated": len(todo), "stored": len(store)}
