"""Run the greedy loop over many images, locally or on a Ray cluster, into a resumable sequence store.

A *factory* is a picklable, hashable callable (a frozen dataclass) that builds ``(DesignProblem, image_fn)`` in
whatever process runs it, so Ray workers load the AVP and prior themselves; ``image_fn(index)`` returns the true
image ``(C, H, W)``.  Every image has its own seed (``sequential.image_seed``), so the sequences do not depend
on sharding, batching or the number of workers.  Records are written by the driver, one atomic file per image,
as soon as they arrive: a killed run loses only the images in flight.

An image whose design raises is recorded with its error in the store's ``failures.json`` and skipped; the others
are kept, and a rerun designs the missing images (the failed ones included) and rewrites that file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable, Iterator, TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from .honest import honest_problem
from .sequential import DesignSettings, first_glimpse_epe, greedy_sequence, image_seed
from .store import SequenceStore

if TYPE_CHECKING:
    from .sequential import DesignProblem

__all__ = [
    "EXECUTORS",
    "FAILURES",
    "parse_shard",
    "shard_indices",
    "design_batch",
    "generate_sequences",
    "read_failures",
]

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
#: The file of a sequence store that names the images whose design failed, with their errors.
FAILURES = "failures.json"
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
        raise ValueError(f"`shard` must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"`shard` i/n needs 0 <= i < n, got {text!r}")
    return i, n


def shard_indices(indices: Iterable[int], shard: tuple[int, int]) -> list[int]:
    """The images of one shard: every n-th image of the sorted list, starting at i."""
    i, n = shard
    return sorted(int(x) for x in indices)[i::n]


def failure(index: int, error: BaseException | str) -> dict:
    """The record of an image whose design failed: its index and the error, as text."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return {"index": int(index), "error": text}


def design_batch(
    factory: Callable[[], tuple[DesignProblem, Callable[[int], torch.Tensor]]],
    indices: list[int],
    settings: DesignSettings,
    seed: int,
    first_epe: torch.Tensor,
) -> Iterator[dict]:
    """Generate the sequences of some images (in this process), yielding one record per image; an image whose
    design raises yields :func:`failure` instead, and the others go on."""
    problem, image_fn = _load(factory)
    if settings.search == "amortised" and problem.epe_net is not None and indices:
        # one network pass per step for the whole batch (the same sequences as greedy_sequence, image by image)
        from .amortised import amortised_sequences

        try:
            images = torch.stack([image_fn(i) for i in indices])
            locations, maps = amortised_sequences(problem.epe_net, images, settings.T, first_epe, settings.allow_repeat)
        except Exception as e:
            if len(indices) == 1:
                log.warning("image %d failed: %s", indices[0], e)
                yield failure(indices[0], e)
            else:  # find the failing image(s): one image per batch
                for index in indices:
                    yield from design_batch(factory, [index], settings, seed, first_epe)
            return
        for k, index in enumerate(indices):
            yield {
                "index": int(index),
                "seed": image_seed(seed, index),
                "locations": locations[k].tolist(),
                "epe": maps[k].tolist(),
                "evaluations": [0] * settings.T,
            }
        return
    exclusions = getattr(image_fn, "exclusions", None)
    for index in indices:
        s = image_seed(seed, index)
        try:
            image = image_fn(index)
            honest = honest_problem(problem, exclusions, index, image)  # completions never propose the image
            result = greedy_sequence(honest, image, settings, s, first_epe)
        except Exception as e:
            log.warning("image %d failed: %s", index, e)
            yield failure(index, e)
            continue
        yield {
            "index": int(index),
            "seed": s,
            "locations": result.locations.tolist(),
            "epe": result.epe.tolist(),
            "evaluations": [int(i.get("evaluations", 0)) for i in result.info],
            # effective sample size of the completions at steps 2..T (step 1 is the cached prior's)
            "ess": [i.get("ess") for i in result.info[1:]],
            "distinct": [i.get("samples") for i in result.info[1:]],  # distinct completions per step
            **(
                {"independent_epe": [i.get("independent_epe") for i in result.info[1:]]}
                if settings.independent_draw
                else {}
            ),
        }


def read_failures(store: SequenceStore) -> dict[int, str]:
    """``{image index: error}`` of the images whose design failed in the store's last runs (empty when none)."""
    import json

    path = Path(store.directory) / FAILURES
    if not path.is_file():
        return {}
    return {int(f["index"]): str(f["error"]) for f in json.loads(path.read_text())["failures"]}


def _write_failures(store: SequenceStore, failed: dict[int, str]) -> Path | None:
    """Rewrite ``failures.json``: this run's failures, and the earlier ones of images still not stored."""
    from ..artifacts import atomic_write_json

    keep = {i: e for i, e in read_failures(store).items() if not store.has(i)}
    every = dict(sorted({**keep, **failed}.items()))
    path = Path(store.directory) / FAILURES
    if not every:
        path.unlink(missing_ok=True)
        return None
    return atomic_write_json(path, {"failures": [{"index": i, "error": e} for i, e in every.items()]})


def _write(store: SequenceStore, rec: dict, failed: dict[int, str]) -> None:
    """Store a record, or note a failure in ``failed``."""
    if "error" in rec:
        failed[int(rec["index"])] = rec["error"]
        return
    store.write_record(
        rec["index"],
        rec["seed"],
        rec["locations"],
        rec["epe"],
        evaluations=rec["evaluations"],
        ess=rec.get("ess"),
        **{k: rec[k] for k in ("distinct", "independent_epe") if k in rec},
    )


def generate_sequences(
    store: SequenceStore,
    factory: Callable,
    indices: Iterable[int],
    settings: DesignSettings,
    seed: int = 0,
    executor: str = "local",
    images_per_task: int = 4,
    num_gpus: float | None = None,
    first_num_samples: int | None = None,
    progress: bool = True,
    ray_address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
) -> dict:
    """Fill ``store`` with the sequences of ``indices`` (those already there are skipped: resume).

    The first-glimpse EPE is computed once (exhaustive, ``first_num_samples`` prior samples, default
    ``settings.num_samples``) and cached in ``first_glimpse.json``.  ``executor="ray"`` runs on a Ray cluster
    (:mod:`.ray_executor`: ``ray_address`` or ``$RAY_ADDRESS``, else a local one): ``workers`` long-lived actors,
    each with ``num_gpus`` GPUs (default: one each when the cluster has GPUs) and ``cpus_per_worker`` CPUs, are
    handed ``images_per_task`` images at a time.  An image that fails is named in ``failures.json`` and skipped.
    Returns counts, with ``failed`` (the indices that failed in this run) and ``failures`` (index -> error).
    """
    indices = _check_request(executor, images_per_task, indices)
    todo = [i for i in indices if not store.has(i)]
    done = len(indices) - len(todo)
    batches = _batches(todo, images_per_task, settings, executor, store)
    n_first = first_num_samples or settings.num_samples
    failed: dict[int, str] = {}
    bar = tqdm(total=len(indices), initial=done, desc="sequences", unit="img", disable=not progress)

    def write(rec: dict) -> None:
        _write(store, rec, failed)
        bar.update(1)

    def first_map(compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        return _first_glimpse(store, compute, seed, n_first)

    try:
        if executor == "local":
            first = first_map(lambda: first_glimpse_epe(_load(factory)[0], n_first, seed))
            for batch in batches:
                for rec in design_batch(factory, batch, settings, seed, first):
                    write(rec)
        elif batches or not store.has_first_glimpse():
            from .ray_executor import run_on_ray

            ray = dict(address=ray_address, gpus_per_worker=num_gpus, workers=workers, cpus_per_worker=cpus_per_worker)
            run_on_ray(factory, batches, settings, seed, write, first_map, n_first, **ray)
    finally:
        bar.close()
        _write_failures(store, failed)
    counts = {"requested": len(indices), "skipped": done, "generated": len(todo) - len(failed), "stored": len(store)}
    return {**counts, "failed": sorted(failed), "failures": {str(i): e for i, e in sorted(failed.items())}}


def _check_request(executor: str, images_per_task: int, indices: Iterable[int]) -> list[int]:
    """Refuse an unknown executor or a bad batch size; the distinct, non-negative image indices, sorted."""
    if executor not in EXECUTORS:
        raise ValueError(f"`executor` must be one of {EXECUTORS}, got {executor!r}")
    if images_per_task < 1:
        raise ValueError(f"`images_per_task` must be >= 1, got {images_per_task}")
    indices = sorted({int(i) for i in indices})
    if any(i < 0 for i in indices):
        raise ValueError(f"image indices must be >= 0, got {indices[:5]}...")
    return indices


def _batches(
    todo: list[int], images_per_task: int, settings: DesignSettings, executor: str, store: SequenceStore
) -> list[list[int]]:
    """The images to design, ``images_per_task`` at a time (more for the amortised search run here, whose network
    passes are batched over images)."""
    per_batch = images_per_task
    if settings.search == "amortised" and executor == "local":
        per_batch = max(images_per_task, min(AMORTISED_BATCH, AMORTISED_PAIRS // store.grid.num_locations))
    return [todo[k : k + per_batch] for k in range(0, len(todo), per_batch)]


def _first_glimpse(store: SequenceStore, compute: Callable[[], torch.Tensor], seed: int, n: int) -> torch.Tensor:
    """The store's cached first-glimpse map, computed by ``compute()`` and cached if it is missing."""
    if not store.has_first_glimpse():
        epe = compute()
        store.write_first_glimpse(epe, seed=seed, num_samples=n)
        log.info("first glimpse: location %d (EPE %.4f)", int(epe.argmin()), float(epe.min()))
    return store.first_glimpse_epe()
