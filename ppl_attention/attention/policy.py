"""The location policy: the hidden state -> a distribution over the sensor's grid of flat locations.

Three kinds (``NetworkConfig.policy``), all an MLP with one hidden layer on the detached hidden state; they
differ in what its output means:

- ``dense`` (the default, the paper's): one logit per location, a categorical over all ``L = R x C`` locations
  (``policy_hidden x L`` output weights).
- ``gaussian`` (Mnih et al. 2014): the output is a mean ``mu = (row, col)`` in normalised coordinates ([-1, 1]
  across the grid, the same coordinates as the ``mlp`` location embedding); with a fixed standard deviation
  ``policy_std`` (same units) the categorical over cells is the discretised Gaussian,
  ``log pi(l) = -||x_l - mu||^2 / (2 sd^2) - log Z``, normalised over the grid.  O(1) parameters in ``L``;
  ``-log pi(target)`` (partial supervision) pulls the mean towards the target, and REINFORCE moves it towards
  rewarded locations.
- ``factorised``: independent row and column categoricals, ``log pi(r, c) = log pi_r(r) + log pi_c(c)``
  (``policy_hidden x (R + C)`` output weights).

The Gaussian's squared distance splits into a row and a column term, so it *is* a product of a row and a column
categorical too: both ``gaussian`` and ``factorised`` are :class:`GridLocations`, which samples, scores and
takes the mode in O(R + C) per image and never builds the (B, L) table (``log_probs()`` does, for tests and
figures).

Which to use on fine grids (thousands of locations): a dense head learns each of its 2,401 logits on its own, from
the few updates that hit that cell, whereas the gaussian (through its mean) and the factorised head (through
shared rows and columns) move the probability of every neighbour of a rewarded or supervised cell at once.  But
with a fixed width, the gaussian's ``-log pi(target)`` is an L2 regression of its mean: where the supervision
targets of one state are split between two places, its mode lands between them, on nothing, while the dense and
factorised heads keep both modes (``examples/policy_bandit.py``).  The dense head is the paper's and the
default.  ``benchmarks/bench_policy_heads.py`` measures the cost of each head and sampler.
"""

from __future__ import annotations


import torch
from torch import nn
from torch.distributions import Categorical
import torch.nn.functional as F

from ..checks import check_number
from ..sensor import Sensor

__all__ = [
    "POLICIES",
    "SAMPLERS",
    "sample_categorical",
    "LocationPolicy",
    "DenseLocations",
    "GridLocations",
    "grid_coordinates",
    "check_policy",
]

POLICIES = ("dense", "gaussian", "factorised")


def check_policy(kind: str, std: float) -> None:
    """Refuse an unknown policy kind or a standard deviation that is not a finite number > 0."""
    if kind not in POLICIES:
        raise ValueError(f"`policy` must be one of {list(POLICIES)}, got {kind!r}")
    check_number("policy_std", std, strict=True)  # in normalised grid coordinates, [-1, 1] across the grid


def grid_coordinates(grid: Sensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised coordinates of the grid's rows (R,) and columns (C,): cell index scaled to [-1, 1]."""
    rows = torch.arange(grid.n_rows, dtype=torch.float32) / max(grid.n_rows - 1, 1) * 2 - 1
    cols = torch.arange(grid.n_cols, dtype=torch.float32) / max(grid.n_cols - 1, 1) * 2 - 1
    return rows, cols


SAMPLERS = ("inverse_cdf", "multinomial")


def sample_categorical(
    probs: torch.Tensor, generator: torch.Generator | None = None, method: str = "inverse_cdf"
) -> torch.Tensor:
    """One draw per row of ``probs`` (B, L) (rows need not sum to 1): indices (B,).

    ``inverse_cdf``: one uniform per row, located in the row's cumulative sum by binary search (``cumsum`` +
    ``searchsorted``), O(L) work and one random number per row; ``multinomial``: ``torch.multinomial``, which
    draws one exponential per location.  ``searchsorted(..., right=True)`` never returns a zero-probability
    location (its cumulative sum equals its predecessor's)."""
    if method == "multinomial":
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)
    if method != "inverse_cdf":
        raise ValueError(f"`method` must be one of {list(SAMPLERS)}, got {method!r}")
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=cdf.dtype) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=probs.shape[-1] - 1)


class DenseLocations:
    """A categorical over the ``L`` flat locations from logits (B, L).

    Hand-written rather than ``torch.distributions.Categorical``: its ``sample`` takes no generator (the runs'
    draws are seeded per iteration); it samples by inverse CDF (:func:`sample_categorical`), one uniform per
    image rather than one exponential per location, which matters on grids of thousands of locations."""

    def __init__(self, logits: torch.Tensor):
        self.log_pi = F.log_softmax(logits, dim=-1)

    def log_probs(self) -> torch.Tensor:
        """(B, L) log pi of every location."""
        return self.log_pi

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return sample_categorical(self.log_pi.exp(), generator)

    def mode(self) -> torch.Tensor:
        return self.log_pi.argmax(-1)

    def log_prob(self, loc: torch.Tensor) -> torch.Tensor:
        return self.log_pi.gather(1, loc.unsqueeze(1)).squeeze(1)

    def entropy(self) -> torch.Tensor:
        return -(self.log_pi.exp() * self.log_pi).sum(-1)


class GridLocations:
    """Independent row (B, R) and column (B, C) categoricals; flat location = ``row * C + col``.

    Log-probability and entropy are the sums of the two factors' (``torch.distributions.Categorical``); sampling
    is hand-written with ``torch.multinomial`` because ``Categorical.sample`` takes no generator."""

    def __init__(self, row_logits: torch.Tensor, col_logits: torch.Tensor):
        self.rows, self.cols = Categorical(logits=row_logits), Categorical(logits=col_logits)
        self.n_cols = col_logits.shape[-1]

    def log_probs(self) -> torch.Tensor:
        """(B, R * C) log pi of every location (row-major, the grid's flat order)."""
        return (self.rows.logits.unsqueeze(-1) + self.cols.logits.unsqueeze(-2)).flatten(-2)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        r = torch.multinomial(self.rows.probs, 1, generator=generator).squeeze(1)
        c = torch.multinomial(self.cols.probs, 1, generator=generator).squeeze(1)
        return r * self.n_cols + c

    def mode(self) -> torch.Tensor:
        return self.rows.logits.argmax(-1) * self.n_cols + self.cols.logits.argmax(-1)

    def log_prob(self, loc: torch.Tensor) -> torch.Tensor:
        return self.rows.log_prob(loc // self.n_cols) + self.cols.log_prob(loc % self.n_cols)

    def entropy(self) -> torch.Tensor:
        return self.rows.entropy() + self.cols.entropy()


class LocationPolicy(nn.Sequential):
    """Hidden state (B, hidden) -> :meth:`distribution` over the grid's flat locations.

    The module itself is the MLP ``Linear(hidden, policy_hidden) - ReLU - Linear(policy_hidden, out)`` with
    ``out`` = L (dense), 2 (gaussian: the mean) or R + C (factorised); a ``dense`` policy's parameter names are
    those of a plain ``nn.Sequential`` MLP, as its checkpoints store them."""

    def __init__(self, grid: Sensor, hidden: int, policy_hidden: int, kind: str = "dense", std: float = 0.2):
        check_policy(kind, std)
        out = {"dense": grid.num_locations, "gaussian": 2, "factorised": grid.n_rows + grid.n_cols}[kind]
        super().__init__(nn.Linear(hidden, policy_hidden), nn.ReLU(), nn.Linear(policy_hidden, out))
        self.kind, self.std, self.n_rows = kind, float(std), grid.n_rows
        rows, cols = grid_coordinates(grid)
        self.register_buffer("row_coords", rows, persistent=False)
        self.register_buffer("col_coords", cols, persistent=False)

    def distribution(self, h: torch.Tensor) -> DenseLocations | GridLocations:
        """The policy's distribution given the hidden state ``h`` (B, hidden)."""
        out = self(h)
        if self.kind == "dense":
            return DenseLocations(out)
        if self.kind == "factorised":
            return GridLocations(out[:, : self.n_rows], out[:, self.n_rows :])
        # gaussian: -(x - mu)^2 / (2 sd^2) per axis; the rest of the normalisation is Categorical's logsumexp
        scale = -0.5 / self.std**2
        return GridLocations(scale * (self.row_coords - out[:, :1]) ** 2, scale * (self.col_coords - out[:, 1:]) ** 2)

    def mean(self, h: torch.Tensor) -> torch.Tensor:
        """The gaussian policy's mean (B, 2) = normalised (row, col)."""
        if self.kind != "gaussian":
            raise ValueError(f"only the gaussian policy has a mean, this one is {self.kind!r}")
        return self(h)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}" + (f", std={self.std}" if self.kind == "gaussian" else "")
