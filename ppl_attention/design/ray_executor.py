"""The Ray executor of :func:`.executors.generate_sequences`: long-lived design actors on a Ray cluster.

Each actor loads the problem (AVP, prior, dataset) once, when it starts, and is then handed batches of image
indices; the driver writes the records they send back.  The first-glimpse map is computed once, by one actor.
The actors' GPUs are a setting of their own (``gpus_per_worker``), not the driver's device: a CPU head node can
drive a GPU cluster.  A failing image comes back as a failure record; an actor that dies (its process killed,
say by the OOM killer) fails the images it held, the other actors go on.

Connecting: ``address`` (``"auto"``, ``"HOST:PORT"`` of a ``ray start --head``, ``"ray://HOST:10001"``), else
``$RAY_ADDRESS``, joins that cluster with its own resources; neither starts a private local Ray instance.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import deque
from typing import Callable, TYPE_CHECKING

import torch

from .executors import _load, design_batch, failure
from .sequential import DesignSettings, first_glimpse_epe

if TYPE_CHECKING:
    from types import ModuleType
    from .sequential import DesignProblem

__all__ = ["connect", "DesignWorker", "run_on_ray", "worker_factory"]

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost")


def connect(address: str | None = None, num_cpus: int | None = None) -> ModuleType:
    """Ray, initialised: joined to the cluster at ``address`` / ``$RAY_ADDRESS`` (with no ``num_cpus``: the
    cluster's resources are its own), else a new local instance with ``num_cpus`` CPUs (default: all)."""
    import ray

    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"ignore_reinit_error": True, "log_to_driver": False}
    if address is None:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)
        return ray
    host = address.split("://")[-1].rsplit(":", 1)[0]
    if host in LOOPBACK:  # a cluster on the loopback address: the driver is on that machine, at that address
        kwargs["_node_ip_address"] = "127.0.0.1"
    ray.init(address=address, **kwargs)
    return ray


class DesignWorker:
    """A Ray actor that loads the design problem once and designs batches of images with it."""

    def __init__(
        self, factory: Callable[[], tuple[DesignProblem, Callable[[int], torch.Tensor]]], threads: int = 1
    ) -> None:
        torch.set_num_threads(max(1, int(threads)))
        self.factory = factory
        _load(factory)

    def first_glimpse(self, num_samples: int, seed: int) -> torch.Tensor:
        problem, _ = _load(self.factory)
        return first_glimpse_epe(problem, num_samples, seed).cpu()

    def design(self, indices: list[int], settings: DesignSettings, seed: int, first_epe: torch.Tensor) -> list[dict]:
        return list(design_batch(self.factory, indices, settings, seed, first_epe))


def worker_factory(
    factory: Callable[[], tuple[DesignProblem, Callable[[int], torch.Tensor]]], gpus_per_worker: float
) -> Callable[[], tuple[DesignProblem, Callable[[int], torch.Tensor]]]:
    """``factory`` with its ``device`` set for the actors: ``cuda`` with GPUs, ``cpu`` without (a factory
    without a ``device`` field is returned as it is)."""
    names = {f.name for f in dataclasses.fields(factory)} if dataclasses.is_dataclass(factory) else set()
    if "device" not in names:
        return factory
    return dataclasses.replace(factory, device="cuda" if gpus_per_worker > 0 else "cpu")


def _plan(ray, gpus_per_worker: float | None, workers: int | None, cpus_per_worker: float) -> tuple[float, int]:
    """GPUs per actor (default: 1 when the cluster has GPUs, else 0) and the number of actors (default: as many
    as the cluster's GPUs, else its CPUs, hold)."""
    if cpus_per_worker <= 0:
        raise ValueError(f"`cpus_per_worker` must be > 0, got {cpus_per_worker}")
    resources = ray.cluster_resources()
    gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 0))
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if gpus >= 1 else 0.0
    if gpus_per_worker < 0:
        raise ValueError(f"`gpus_per_worker` must be >= 0, got {gpus_per_worker}")
    if gpus_per_worker > 0 and gpus < gpus_per_worker:
        raise ValueError(
            f"gpus_per_worker={gpus_per_worker} but the Ray cluster has {gpus:g} GPUs (resources {resources})"
        )
    if workers is None:
        workers = int(gpus // gpus_per_worker) if gpus_per_worker > 0 else int(cpus // cpus_per_worker)
    if workers < 1:
        raise ValueError(f"`workers` must be >= 1, got {workers} (the Ray cluster has {cpus:g} CPUs, {gpus:g} GPUs)")
    return float(gpus_per_worker), int(workers)


def run_on_ray(
    factory: Callable[[], tuple[DesignProblem, Callable[[int], torch.Tensor]]],
    batches: list[list[int]],
    settings: DesignSettings,
    seed: int,
    write: Callable[[dict], None],
    first_glimpse: Callable,
    num_first: int,
    address: str | None = None,
    gpus_per_worker: float | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
) -> None:
    """Design ``batches`` on the actors, calling ``write(record)`` for every record (or failure) as it arrives.

    ``first_glimpse(compute)`` returns the cached first-glimpse map, calling ``compute()`` when there is none:
    here ``compute`` asks one actor.
    """
    ray = connect(address)
    gpus, n = _plan(ray, gpus_per_worker, workers, cpus_per_worker)
    n = max(1, min(n, len(batches)))
    actor_class = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus)(DesignWorker)
    threads = max(1, int(cpus_per_worker))
    actors = [actor_class.remote(worker_factory(factory, gpus), threads) for _ in range(n)]
    log.info("designing %d batches on %d Ray actors (%g GPUs, %g CPUs each)", len(batches), n, gpus, cpus_per_worker)
    try:
        first = first_glimpse(lambda: ray.get(actors[0].first_glimpse.remote(num_first, seed)))
        _dispatch(ray, actors, deque(batches), settings, seed, ray.put(first), write)  # sent once, not per batch
    finally:
        for actor in actors:
            ray.kill(actor)


def _dispatch(ray, actors, queue: deque, settings, seed, first, write) -> None:
    """Keep every live actor busy with one batch until the queue is empty; a dead actor's batch fails."""
    from ray.exceptions import RayActorError, RayError

    running = {}

    def submit(actor) -> None:
        if queue:
            batch = queue.popleft()
            running[actor.design.remote(batch, settings, seed, first)] = (actor, batch)

    for actor in actors:
        submit(actor)
    alive = len(actors)
    while running:
        (ref,), _ = ray.wait(list(running), num_returns=1)
        actor, batch = running.pop(ref)
        try:
            records = ray.get(ref)
        except RayActorError as e:  # the actor is gone: fail its batch, the others take the rest
            records, alive = [failure(i, f"the Ray worker died: {e}") for i in batch], alive - 1
            log.warning("a Ray design worker died (%d left): %s", alive, e)
            if alive == 0:
                records += [failure(i, f"no Ray worker left (the last died: {e})") for rest in queue for i in rest]
                queue.clear()
        except RayError as e:
            records = [failure(i, e) for i in batch]
            submit(actor)
        else:
            submit(actor)
        for rec in records:
            write(rec)
