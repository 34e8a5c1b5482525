"""A design task that is not about images, written as a Pyro model: which noisy sensor to read next.

A machine has one of ``K`` faults.  Each of ``S`` binary sensors fires with a fault-dependent probability; one
sensor fires at the same rate whatever the fault (it tells nothing).  Reading a sensor costs time, so we read ``T``
of them, each chosen greedily to minimise the expected posterior entropy (EPE) of the fault given the readings
so far -- the same loop (``greedy_sequence``) that designs glimpse sequences for images.  The task is
:meth:`FaultTask.model`; everything the loop needs comes from it:

- the "image" is the row of all ``S`` readings, a (1, 1, S) tensor, and a location is one sensor;
- the posterior the loop scores with is the model's exact fault posterior, by Pyro's parallel enumeration
  (``poutine.enum``) of the model conditioned on the unmasked readings;
- the completions are draws of the model itself, with the fault's prior replaced by its posterior given the
  readings so far (or, with ``enumerate=True``, every reading pattern weighted by its enumerated probability).

Each step is then checked against ``pyro.contrib.oed.eig.nmc_eig`` (nested Monte Carlo) on the same model posed
with the history folded into the fault's prior: ``EIG(l) = H(fault | history) - EPE(l)``, so the loop's argmin
EPE should be Pyro's argmax EIG, and the values should agree within Monte-Carlo error.  The exact EIG, by
enumerating the fault and the candidate's reading, is the third column.

Run: ``python examples/new_design_task.py`` -- prints, for a few simulated machines, a table per step.
"""

from __future__ import annotations

import functools
import math

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.contrib.oed.eig import nmc_eig
from pyro.infer import config_enumerate

from ppl_attention.completion.base import CompletionSamples
from ppl_attention.design import DesignProblem, DesignSettings, greedy_sequence
from ppl_attention.sensor import Sensor


class FaultTask:
    """``K`` faults, ``S`` binary sensors (the last one uninformative), and the Pyro model over them."""

    def __init__(self, num_classes: int = 4, num_sensors: int = 7, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        fire = torch.rand(num_classes, num_sensors, generator=g) * 0.5 + 0.05  # mostly weak sensors
        fire[torch.arange(num_classes), torch.arange(num_classes) % (num_sensors - 1)] = 0.95  # a telling one each
        fire[:, -1] = 0.5  # fires at the same rate whatever the fault
        self.fire, self.prior = fire, torch.full((num_classes,), 1.0 / num_classes)
        self.grid = Sensor((1, num_sensors), (1, 1), stride=1)
        self.uninformative = num_sensors - 1

    def model(self, design, prior=None, mask=None):
        """``fault ~ Categorical(prior)``; the readings ``y`` at the sensors ``design`` (batch + (t,)) are
        Bernoulli given the fault.  ``mask`` (like ``design``) leaves readings out of the likelihood."""
        fault = pyro.sample("fault", dist.Categorical(self.prior if prior is None else prior).expand(design.shape[:-1]))
        readings = dist.Bernoulli(self.fire[fault.unsqueeze(-1), design])
        return pyro.sample("y", (readings if mask is None else readings.mask(mask)).to_event(1))

    def log_joint(self, design, readings, prior=None, mask=None) -> torch.Tensor:
        """``log p(fault, y = readings)`` for every fault by Pyro's parallel enumeration: ``(K,) + batch``."""
        conditioned = poutine.condition(self.model, data={"y": readings})
        enumerated = poutine.enum(config_enumerate(conditioned), first_available_dim=-design.dim())
        trace = poutine.trace(enumerated).get_trace(design, prior, mask)
        trace.compute_log_prob()
        return trace.nodes["fault"]["log_prob"] + trace.nodes["y"]["log_prob"]

    def fault_posterior(self, sensors, readings) -> torch.Tensor:
        """``p(fault | readings at sensors)``, ``(K,)``."""
        lj = self.log_joint(torch.as_tensor(sensors).long(), readings.float())
        return (lj - lj.logsumexp(0)).exp()

    def posterior(self, x: torch.Tensor) -> torch.Tensor:
        """The loop's posterior: fault log-probabilities given ``x = cat(readings * mask, mask)`` (B, 2, 1, S)."""
        readings, mask = x[:, 0, 0], x[:, 1, 0] > 0.5
        design = torch.arange(readings.shape[1]).expand_as(readings)
        lj = self.log_joint(design, readings, mask=mask)  # (K, B)
        return (lj - lj.logsumexp(0)).T

    def exact_eig(self, prior, candidates):
        """``I(fault; y_l)`` under ``prior`` for each candidate, enumerating the fault and the reading, and the
        standard deviations of one sample's term in the library's EPE (``H(fault | y_l)``) and in ``nmc_eig``
        (``log p(y_l | fault) / p(y_l)``), which set their Monte-Carlo errors: three ``(L,)``."""
        design = candidates.view(1, -1, 1).expand(2, -1, 1)
        y = torch.tensor([0.0, 1.0]).view(2, 1, 1).expand_as(design)
        lj = self.log_joint(design, y, prior=prior).double()  # (K, 2, L)
        log_py = lj.logsumexp(0)
        H_y = -((lj - log_py).exp() * (lj - log_py)).sum(0)  # (2, L)
        epe = (log_py.exp() * H_y).sum(0)
        eig = -(prior * prior.log()).sum().double() - epe
        log_ratio = lj - log_py - prior.double().log().view(-1, 1, 1)
        return (
            eig,
            (log_py.exp() * (H_y - epe) ** 2).sum(0).sqrt(),
            (lj.exp() * (log_ratio - eig) ** 2).sum((0, 1)).sqrt(),
        )

    def pyro_eig(self, prior, candidates, N: int, M: int) -> torch.Tensor:
        """``nmc_eig`` (``N`` outer, ``M`` inner samples) of each candidate on the model with ``prior`` as the
        fault's prior (the posterior given the readings so far): ``(L,)``."""
        model = functools.partial(self.model, prior=prior)  # nmc_eig calls model(design)
        return nmc_eig(model, candidates.view(-1, 1), "y", "fault", N=N, M=M).double()


class ModelCompletion:
    """Completions drawn from the task's Pyro model given the readings so far (see the module docstring)."""

    def __init__(self, task: FaultTask, enumerate: bool = False):
        self.task, self.grid, self.enumerate = task, task.grid, enumerate

    def sample(self, locations, glimpses, n: int, generator=None, true_image=None) -> CompletionSamples:
        S, seen = self.grid.num_locations, glimpses.flatten().float()
        if self.enumerate:  # every pattern that agrees with the readings, weighted by p(pattern)
            rows = torch.cartesian_prod(*[torch.tensor([0.0, 1.0])] * S)
            rows = rows[(rows[:, locations] == seen).all(1)]
            w = self.task.log_joint(torch.arange(S).expand_as(rows), rows).logsumexp(0).double().softmax(0)
            return CompletionSamples(rows.view(-1, 1, 1, S), w, None)
        post = self.task.fault_posterior(locations, seen)
        with torch.random.fork_rng():  # the model draws from torch's global generator
            torch.manual_seed(int(torch.randint(2**62, (), generator=generator)))
            trace = poutine.trace(self.task.model).get_trace(torch.arange(S).expand(n, S), prior=post)
        rows = trace.nodes["y"]["value"].clone()
        rows[:, locations] = seen  # the readings are independent given the fault: keep the observed ones
        return CompletionSamples(
            rows.view(n, 1, 1, S), torch.full((n,), 1.0 / n, dtype=torch.float64), trace.nodes["fault"]["value"]
        )


def check_step(task, seq, readings, t, n: int, N: int, M: int) -> dict:
    """Step ``t`` of a designed sequence against Pyro's EIG: the candidates' figures and whether they agree.
    ``n``: the library's completions per step (``math.inf`` where they were enumerated)."""
    seen = seq.locations[:t]
    post = task.fault_posterior(seen, readings.flatten()[seen])
    H = float(-(post * post.log()).sum())
    free = torch.ones(task.grid.num_locations, dtype=torch.bool)
    free[seen] = False
    cand = free.nonzero().flatten()
    epe = seq.epe[t][cand]
    eig = task.pyro_eig(post, cand, N, M)
    exact, sd_epe, sd_nmc = task.exact_eig(post, cand)
    se = sd_nmc / math.sqrt(N)
    tol = 4 * (se**2 + sd_epe**2 / n).sqrt() + 1e-4  # 4 standard errors of the difference of the two means
    step = {
        "t": t,
        "H": H,
        "candidates": cand,
        "epe": epe,
        "pyro_eig": eig,
        "pyro_se": se,
        "exact_eig": exact,
        "tol": tol,
        "chosen": int(seq.locations[t]),
        "pyro_argmax": int(cand[eig.argmax()]),
        "exact_argmax": int(cand[exact.argmax()]),
    }
    return {**step, "agree": near_best(step, step["chosen"])}


def near_best(step: dict, sensor: int) -> bool:
    """Whether Pyro's EIG of ``sensor`` is within the Monte-Carlo error of Pyro's best (a tie at this step)."""
    i, best = int((step["candidates"] == sensor).nonzero()), int(step["pyro_eig"].argmax())
    gap = step["pyro_eig"][best] - step["pyro_eig"][i]
    return bool(gap <= (step["tol"][i] ** 2 + step["tol"][best] ** 2).sqrt())


def print_step(machine: int, step: dict):
    print(f"machine {machine}, step {step['t'] + 1}: H(fault | readings so far) = {step['H']:.3f}")
    print("  sensor  library EPE  Pyro EIG (+- se)   H - EPE  exact EIG")
    for i, s in enumerate(step["candidates"].tolist()):
        print(
            f"  {s:6d}  {step['epe'][i]:11.4f}  {step['pyro_eig'][i]:8.4f} +- {step['pyro_se'][i]:.4f}  "
            f"{step['H'] - step['epe'][i]:8.4f}  {step['exact_eig'][i]:9.4f}"
        )
    print(
        f"  library argmin EPE: {step['chosen']}, Pyro argmax EIG: {step['pyro_argmax']} "
        f"(exact: {step['exact_argmax']}), agree (within MC error): {step['agree']}"
    )


def main(
    num_machines: int = 4,
    T: int = 3,
    num_samples: int = 2000,
    N: int = 4000,
    M: int = 400,
    seed: int = 0,
    enumerate: bool = False,
    verbose: bool = True,
) -> list:
    """Design ``T`` readings for each simulated machine and check every step against Pyro; the steps' records."""
    task = FaultTask(seed=seed)
    problem = DesignProblem(task.posterior, ModelCompletion(task, enumerate), task.grid, batch_size=4096)
    settings = DesignSettings(T=T, num_samples=num_samples)
    steps, n = [], math.inf if enumerate else num_samples
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for m in range(num_machines):
            fault = torch.tensor(m % len(task.prior))
            readings = (
                poutine.trace(poutine.condition(task.model, data={"fault": fault}))
                .get_trace(torch.arange(task.grid.num_locations))
                .nodes["y"]["value"]
                .view(1, 1, -1)
            )
            seq = greedy_sequence(problem, readings, settings, seed=seed + m)
            if verbose:
                print(
                    f"machine {m} (fault {int(fault)}): read sensors {seq.locations.tolist()}, "
                    f"readings {readings.flatten()[seq.locations].tolist()}"
                )
            for t in range(T):
                steps.append({"machine": m, **check_step(task, seq, readings, t, n, N, M)})
                if verbose:
                    print_step(m, steps[-1])
    gap = torch.stack([(s["pyro_eig"] - (s["H"] - s["epe"])).abs().max() for s in steps])
    ratio = torch.stack([((s["pyro_eig"] - (s["H"] - s["epe"])).abs() / s["tol"]).max() for s in steps])
    if verbose:
        print(
            f"max |EIG_pyro - (H - EPE)| = {gap.max():.4f} ({ratio.max():.2f} of its 4-standard-error tolerance) "
            f"over {len(steps)} steps (library: {num_samples} completions{', enumerated' if enumerate else ''}; "
            f"nmc_eig: N={N}, M={M}); choices agree: {all(s['agree'] for s in steps)}"
        )
    return steps


if __name__ == "__main__":
    main()
