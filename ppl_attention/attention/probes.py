"""Probes of why partial supervision helps or hurts: can a head imitate the sequences, and how scattered are they?

- :func:`forced_states`: walk a network along given sequences (teacher-forced) and record, before every glimpse,
  the hidden state its policy reads and the policy's greedy choice there.
- :func:`behaviour_clone`: a fresh policy head of any kind trained by ``-log pi(target)`` alone on a frozen
  trained trunk (imitability: what the head can learn from N sequences, with nothing else moving).
- :func:`agreement`: how often the greedy choice is the target (exactly, or within a tolerance in grid cells).
- :func:`dispersion`: for each state, how scattered the targets of its nearest neighbours in hidden space are,
  against random states' targets, and whether the greedy choice sits on one of them or between them.
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from ..runtime import derive_seed, generator
from ..sensor import Sensor
from .network import HardAttentionNet
from .policy import LocationPolicy

__all__ = ["agreement", "behaviour_clone", "cell_distance", "dispersion", "forced_states"]


def forced_states(
    net: HardAttentionNet, images: torch.Tensor, sequences: torch.Tensor, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hidden states (N, T, hidden) before each glimpse, greedy choices (N, T) and ``log pi(target)`` (N, T)
    of ``net`` walked along ``sequences`` (N, T) on ``images`` (N, C, H, W); no gradient."""
    device = net.h0.device
    hs, modes, logps = [], [], []
    with torch.no_grad():
        for s in range(0, len(images), batch_size):
            x, seq = images[s : s + batch_size].to(device), sequences[s : s + batch_size].to(device)
            state = net.initial_state(len(x))
            h_t, m_t, l_t = [], [], []
            for t in range(seq.shape[1]):  # over glimpses, the batch at once
                h = net.hidden(state)
                dist = net.policy.distribution(h)
                h_t.append(h)
                m_t.append(dist.mode())
                l_t.append(dist.log_prob(seq[:, t]))
                state = net.glimpse_step(x, seq[:, t], state)
            hs.append(torch.stack(h_t, 1).cpu())
            modes.append(torch.stack(m_t, 1).cpu())
            logps.append(torch.stack(l_t, 1).cpu())
    return torch.cat(hs), torch.cat(modes), torch.cat(logps)


def behaviour_clone(
    net: HardAttentionNet,
    kind: str,
    images: torch.Tensor,
    sequences: torch.Tensor,
    iterations: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    std: float | None = None,
) -> HardAttentionNet:
    """A copy of ``net`` whose policy is a fresh ``kind`` head trained by behaviour cloning (``-mean sum log
    pi(target)`` along ``sequences`` (N, T) of ``images``); the trunk is frozen, so only the head learns."""
    if iterations < 1 or batch_size < 1:
        raise ValueError(f"iterations and batch_size must be >= 1, got {iterations} and {batch_size}")
    clone = copy.deepcopy(net)
    for p in clone.parameters():
        p.requires_grad_(False)
    torch.manual_seed(derive_seed(seed, "behaviour-clone", kind))
    c = clone.cfg
    clone.policy = LocationPolicy(clone.grid, c.hidden, c.policy_hidden, kind, c.policy_std if std is None else std).to(
        clone.h0.device
    )
    clone.cfg = dataclasses.replace(c, policy=kind)
    hidden, _, _ = forced_states(clone, images, sequences)  # the trunk is frozen: its states never change
    hidden, targets = hidden.flatten(0, 1).to(clone.h0.device), sequences.flatten().to(clone.h0.device)
    opt = torch.optim.Adam(clone.policy.parameters(), lr=lr)
    g = generator(derive_seed(seed, "behaviour-clone-order", kind))
    per_batch = batch_size * sequences.shape[1]  # a batch of images = all their glimpses
    for _ in range(iterations):
        pick = torch.randint(0, len(targets), (min(per_batch, len(targets)),), generator=g).to(targets.device)
        loss = -clone.policy.distribution(hidden[pick]).log_prob(targets[pick]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return clone


def cell_distance(a: torch.Tensor, b: torch.Tensor, grid: Sensor) -> torch.Tensor:
    """Chebyshev distance in grid cells between flat locations ``a`` and ``b`` (broadcast)."""
    return torch.maximum((a // grid.n_cols - b // grid.n_cols).abs(), (a % grid.n_cols - b % grid.n_cols).abs())


def agreement(choices: torch.Tensor, targets: torch.Tensor, grid: Sensor, tolerance: int = 0) -> float:
    """Fraction of glimpses whose choice lies within ``tolerance`` cells of the target."""
    return float((cell_distance(choices, targets, grid) <= tolerance).float().mean())


def dispersion(
    hidden: torch.Tensor, targets: torch.Tensor, greedy: torch.Tensor, grid: Sensor, k: int = 10, seed: int = 0
) -> dict:
    """How scattered the targets of neighbouring hidden states are, per glimpse step.

    ``hidden`` (N, T, H), ``targets`` and ``greedy`` (N, T).  For each state, its ``k`` nearest other states of
    the same step (Euclidean): the mean cell distance between its target and theirs (``neighbour_spread``)
    against that between random pairs of the step (``random_spread``); the greedy choice's distance to the nearest
    neighbour target (``greedy_to_nearest_target``) and to the neighbours' mean cell (``greedy_to_centroid``),
    and the fraction of greedy choices within one cell of some neighbour's target (``greedy_on_a_target``).
    A greedy choice near the centroid but far from every target lands between candidates."""
    N, T, _ = hidden.shape
    if not 1 <= k < N:
        raise ValueError(f"`k` must be in [1, {N - 1}] (the states of one step, less one), got {k}")
    g = generator(derive_seed(seed, "dispersion"))
    rows = []
    for t in range(T):  # a handful of steps; every state of a step at once
        d = torch.cdist(hidden[:, t], hidden[:, t])
        d.fill_diagonal_(float("inf"))
        nn_idx = d.topk(k, largest=False).indices  # (N, k)
        tgt, nb = targets[:, t], targets[:, t][nn_idx]  # (N,), (N, k)
        rand = tgt[torch.randint(0, N, (N, k), generator=g)]
        rc = torch.stack([nb // grid.n_cols, nb % grid.n_cols], -1).float()  # (N, k, 2)
        centre = rc.mean(1)
        gr = torch.stack([greedy[:, t] // grid.n_cols, greedy[:, t] % grid.n_cols], -1).float()
        to_targets = cell_distance(greedy[:, t, None], nb, grid)
        rows.append(
            {
                "step": t + 1,
                "neighbour_spread": float(cell_distance(tgt[:, None], nb, grid).float().mean()),
                "random_spread": float(cell_distance(tgt[:, None], rand, grid).float().mean()),
                "greedy_to_nearest_target": float(to_targets.min(1).values.float().mean()),
                "greedy_to_centroid": float((gr - centre).abs().amax(-1).mean()),
                "greedy_on_a_target": float((to_targets.min(1).values <= 1).float().mean()),
            }
        )
    return {"k": k, "steps": rows}
