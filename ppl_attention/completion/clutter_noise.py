"""The observation model of a glimpse of a cluttered MNIST canvas, given the digit-only prediction.

Clutter can only *raise* a pooled value under max-combination, so each pooled value ``v`` of the sensor with
digit-only prediction ``mu`` is the mixture::

    (1 - rho_j) N(v | mu, sigma^2)  +  rho_j EMG(v | mu, sigma, rate_j)

where ``EMG`` is the Gaussian convolved with an exponential increment (``mu + N(0, sigma^2) + Exp(rate)``): the
one-sided, clutter-tolerant term.  ``rho_j`` (the fraction of scale-``j`` pooled values that clutter raises) and
``rate_j`` (one over their mean increase) are measured on rendered training canvases (:func:`measure_clutter`);
translated MNIST has ``rho = 0`` (a plain Gaussian).  The pooled values are taken as independent given the digit
and its offset (the clutter sites are marginalised value by value, not jointly).  :func:`ClutterObservation` is the
same likelihood as a Pyro distribution, for :mod:`..model`'s and NUTS's programs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from pyro.distributions import TorchDistribution

    from ..data.mnist import MnistCanvases


__all__ = ["ClutterNoise", "ClutterObservation", "clutter_log_likelihood", "measure_clutter"]


@dataclass(frozen=True)
class ClutterNoise:
    """Per-scale clutter of the observation model: ``rho[j]`` the probability that clutter raises a scale-``j``
    pooled value, ``rate[j]`` the rate of the exponential increase (pixels in [0, 1])."""

    rho: tuple
    rate: tuple

    def __post_init__(self):
        rho, rate = tuple(float(r) for r in self.rho), tuple(float(r) for r in self.rate)
        if len(rho) != len(rate) or not rho:
            raise ValueError(f"rho and rate need one value per scale, got {rho} and {rate}")
        if not all(0.0 <= r < 1.0 for r in rho):
            raise ValueError(f"`rho` must lie in [0, 1), got {rho}")
        if not all(r > 0 and math.isfinite(r) for r in rate):
            raise ValueError(f"`rate` must be positive, got {rate}")
        object.__setattr__(self, "rho", rho)
        object.__setattr__(self, "rate", rate)

    @classmethod
    def none(cls, scales: int) -> "ClutterNoise":
        return cls((0.0,) * scales, (1.0,) * scales)

    def to_dict(self) -> dict:
        return {"rho": list(self.rho), "rate": list(self.rate)}


def clutter_log_likelihood(residual: torch.Tensor, sigma: float, noise: ClutterNoise) -> torch.Tensor:
    """Per-value log density of ``residual = y - mu`` ``(..., k, D)`` (scale axis second to last) under
    ``(1 - rho) N(0, sigma^2) + rho EMG(sigma, rate)``; float32, same shape (sum it in float64)."""
    r = residual.float()
    k = r.shape[-2]
    if k != len(noise.rho):
        raise ValueError(f"residual has {k} scales, the clutter model {len(noise.rho)}")
    rho = torch.tensor(noise.rho, dtype=r.dtype, device=r.device).view(k, 1)
    lam = torch.tensor(noise.rate, dtype=r.dtype, device=r.device).view(k, 1)
    s = float(sigma)
    gauss = -0.5 * (r / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
    if not any(noise.rho):  # no clutter (translated MNIST): the plain Gaussian
        return gauss
    emg = torch.log(lam) + 0.5 * (lam * s) ** 2 - lam * r + torch.special.log_ndtr(r / s - lam * s)
    return torch.logaddexp(torch.log1p(-rho) + gauss, torch.log(rho) + emg)


@functools.lru_cache(maxsize=1)
def _pyro_observation():
    """The Pyro distribution of the glimpses (built lazily: pyro is imported only when the program is used)."""
    import pyro.distributions as dist
    from torch.distributions import constraints

    class ClutterObservation(dist.TorchDistribution):
        """Every pooled value of every glimpse, independent given the digit-only prediction ``mean``
        ``(..., t, k*C, h, w)``: Gaussian noise plus, with probability ``rho_j``, an exponential rise (clutter)."""

        arg_constraints = {}
        support = constraints.real

        def __init__(self, mean, sigma: float, noise: ClutterNoise, scales: int, validate_args=None):
            self.mean_ = mean
            self.sigma = float(sigma)
            self.noise = noise
            self.scales = int(scales)
            super().__init__(mean.shape[:-4], mean.shape[-4:], validate_args=validate_args)

        def expand(self, batch_shape, _instance=None):
            return ClutterObservation(
                self.mean_.expand(tuple(batch_shape) + self.event_shape), self.sigma, self.noise, self.scales
            )

        def _per_scale(self, x):
            return x.reshape(*x.shape[:-3], self.scales, -1)  # (..., t, k, C*h*w)

        def sample(self, sample_shape=torch.Size()):
            shape = tuple(sample_shape) + tuple(self.mean_.shape)
            mu = self.mean_.expand(shape)
            eps = torch.randn(shape, dtype=mu.dtype) * self.sigma
            rho = torch.tensor(self.noise.rho, dtype=mu.dtype).view(self.scales, 1)
            lam = torch.tensor(self.noise.rate, dtype=mu.dtype).view(self.scales, 1)
            u = self._per_scale(torch.rand(shape, dtype=mu.dtype))
            rise = torch.where(u < rho, -torch.log(self._per_scale(torch.rand(shape, dtype=mu.dtype))) / lam, 0.0)
            return mu + eps + rise.reshape(shape)

        def log_prob(self, value):
            r = self._per_scale(value - self.mean_)
            return clutter_log_likelihood(r, self.sigma, self.noise).double().sum((-1, -2, -3))

    return ClutterObservation


def ClutterObservation(
    mean: torch.Tensor,
    sigma: float,
    noise: ClutterNoise,  # noqa: N802 -- a constructor
    scales: int,
) -> TorchDistribution:
    """``pyro`` distribution of the glimpses given the digit-only prediction (see :func:`_pyro_observation`)."""
    return _pyro_observation()(mean, sigma, noise, scales)


def measure_clutter(dataset: MnistCanvases, n: int = 2000, seed: int = 0) -> ClutterNoise:
    """``rho`` and ``rate`` per scale from ``n`` training canvases rendered twice from one generator (with and
    without clutter: the digit and offset draws come first, so they agree) and seen at random locations."""
    from ..data.mnist import load_digits, render_canvases
    from ..runtime import derive_seed, generator as make_generator

    grid = dataset.grid
    if not dataset.cluttered or dataset.n_clutter == 0:
        return ClutterNoise.none(grid.scales)
    digits, labels = load_digits("train")
    kw = dict(canvas_size=dataset.canvas_size, n_clutter=dataset.n_clutter, clutter_size=dataset.clutter_size)
    s = derive_seed(seed, "measure-clutter")
    clut, _, _ = render_canvases(digits, labels, n, make_generator(s), cluttered=True, **kw)
    clean, _, _ = render_canvases(digits, labels, n, make_generator(s), cluttered=False, **kw)
    loc = torch.randint(grid.num_locations, (n, 4), generator=make_generator(derive_seed(s, "locations")))
    a = grid.extract(clut.float() / 255, loc).reshape(n, 4, grid.scales, -1)
    b = grid.extract(clean.float() / 255, loc).reshape(n, 4, grid.scales, -1)
    rise = (a - b).transpose(0, 2).reshape(grid.scales, -1)  # (k, values)
    up = rise > 1e-6
    rho = up.double().mean(1).clamp(max=0.99)
    mean_rise = torch.where(up, rise, 0.0).sum(1).double() / up.sum(1).clamp(min=1)
    rate = torch.where(up.any(1), 1.0 / mean_rise.clamp(min=1e-3), torch.ones_like(mean_rise))
    return ClutterNoise(tuple(round(float(r), 5) for r in rho), tuple(round(float(r), 4) for r in rate))
