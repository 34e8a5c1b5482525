"""A design task that is not about images: which noisy sensor to read next to identify a fault.

A machine has one of ``K`` fault classes.  Each of ``S`` binary sensors fires with a class-dependent probability.
Reading a sensor costs time, so we read ``T`` of them, each chosen greedily to minimise the expected posterior
entropy of the fault class given the readings so far -- the same loop (``greedy_sequence``) that designs glimpse
sequences for images.  The trick is only in how the task is posed:

- the "image" is the row of all ``S`` sensor readings, a (1, 1, S) tensor, and a location is one sensor
  (a ``Sensor`` of 1 x 1 glimpses on a 1 x S image);
- the prior is enumerable: every (class, readings) pair with its probability (``K * 2**S`` rows), so the exact
  posterior (``DatabasePosterior``) and exact completions (``DatabaseCompletion``) stand in for the AVP and the
  image sampler.

Run: ``python examples/new_design_task.py`` -- prints the sequence chosen for a few simulated machines and checks
each step's choice against the exact EPE computed by enumeration.
"""
from __future__ import annotations

import itertools

import torch

from ppl_attention.design import DesignProblem, DesignSettings, greedy_sequence
from ppl_attention.design.toy import DatabaseCompletion, DatabasePosterior, exact_epe
from ppl_attention.sensor import Sensor


def sensor_task(num_classes: int = 4, num_sensors: int = 6, seed: int = 0):
    """Fault classes, sensors with class-dependent firing rates, and the enumerated prior over readings."""
    g = torch.Generator().manual_seed(seed)
    fire = torch.rand(num_classes, num_sensors, generator=g) * 0.5 + 0.05  # mostly uninformative sensors
    fire[torch.arange(num_classes), torch.arange(num_classes) % num_sensors] = 0.95  # one telling sensor each
    prior = torch.full((num_classes,), 1.0 / num_classes)
    patterns = torch.tensor(list(itertools.product([0.0, 1.0], repeat=num_sensors)))  # (2^S, S)
    # p(class, readings) = p(class) * prod_s Bernoulli(reading_s; fire[class, s]), for every pair at once.
    lik = (patterns.unsqueeze(0) * fire.unsqueeze(1) + (1 - patterns.unsqueeze(0)) * (1 - fire.unsqueeze(1)))
    weights = (prior.view(-1, 1) * lik.prod(-1)).flatten().double()  # (K * 2^S,)
    images = patterns.repeat(num_classes, 1).view(-1, 1, 1, num_sensors)
    labels = torch.arange(num_classes).repeat_interleave(len(patterns))
    grid = Sensor((1, num_sensors), (1, 1), stride=1)
    return images, labels, weights, grid, fire


def build_problem(images, labels, weights, grid, num_classes):
    posterior = DatabasePosterior(images, labels, num_classes, weights)
    sampler = DatabaseCompletion(grid, images, labels, weights)
    return DesignProblem(posterior, sampler, grid, batch_size=4096)


def simulate(machine_class: int, fire: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """All sensor readings of one machine (we will only look at T of them)."""
    return (torch.rand(fire.shape[1], generator=generator) < fire[machine_class]).float().view(1, 1, -1)


def main(num_machines: int = 4, T: int = 3, num_samples: int = 400, seed: int = 0):
    num_classes = 4
    images, labels, weights, grid, fire = sensor_task(num_classes, seed=seed)
    problem = build_problem(images, labels, weights, grid, num_classes)
    settings = DesignSettings(T=T, num_samples=num_samples)
    g = torch.Generator().manual_seed(seed + 1)
    for m in range(num_machines):
        cls = m % num_classes
        readings = simulate(cls, fire, g)
        seq = greedy_sequence(problem, readings, settings, seed=seed + m)
        exact = [exact_epe(images, labels, num_classes, grid, readings, seq.locations[:t].tolist(), weights)
                 for t in range(T)]
        best = [int(torch.where(torch.isin(torch.arange(grid.num_locations), seq.locations[:t]),
                                torch.tensor(float("inf")), e).argmin()) for t, e in enumerate(exact)]
        print(f"machine {m} (fault {cls}): read sensors {seq.locations.tolist()} "
              f"(exact greedy choices {best}); readings {readings.flatten()[seq.locations].tolist()}")


if __name__ == "__main__":
    main()
