"""Enumerable design problems: a small database of labelled "images" is the whole prior.

With such a prior every quantity of the design stage is exact: the label posterior given any glimpses
(:class:`DatabasePosterior`, a drop-in for the AVP), the completion distribution (:class:`DatabaseCompletion`,
a drop-in for the importance sampler) and the EPE itself (:func:`exact_epe`).  The tests check the estimators,
searches and the greedy loop against them.  :class:`ToyFactory` builds a problem in any process (the executors
pickle it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..completion.base import Completion, CompletionSamples
from ..sensor import Sensor
from .sequential import DesignProblem

if TYPE_CHECKING:
    from typing import Sequence

__all__ = ["DatabasePosterior", "DatabaseCompletion", "exact_epe", "random_database", "ToyFactory"]

_TOL = 1e-6
_NEG = -1e30  # stands for log 0 in logits (exp gives exactly 0; entropy stays finite)


def _check_database(images, labels, weights):
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(
            f"`images` must be a (K, C, H, W) tensor, got "
            f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}"
        )
    labels = torch.as_tensor(labels).long()
    if labels.shape != images.shape[:1]:
        raise ValueError(f"`labels` must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    w = (
        torch.full((len(images),), 1.0 / len(images), dtype=torch.float64)
        if weights is None
        else torch.as_tensor(weights, dtype=torch.float64)
    )
    if w.shape != labels.shape or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError(f"`weights` must be non-negative, not all zero, shape ({len(images)},)")
    return images, labels, w / w.sum()


class DatabasePosterior:
    """Exact ``p(label | observed pixels)`` under a database prior, as a callable on ``cat(image * mask, mask)``.

    ``sigma=None``: noise-free glimpses (a row is consistent iff it matches every observed pixel); otherwise a
    Gaussian likelihood with that standard deviation per observed pixel.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        weights: torch.Tensor | None = None,
        sigma: float | None = None,
    ) -> None:
        self.images, self.labels, self.weights = _check_database(images, labels, weights)
        self.num_classes, self.sigma = int(num_classes), sigma
        self.flat = self.images.flatten(1).double()  # (K, C*H*W)
        self.onehot = torch.nn.functional.one_hot(self.labels, self.num_classes).double()  # (K, classes)

    def row_log_posterior(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised log p(row | observed pixels), (B, K)."""
        C = self.images.shape[1]
        xm, m = x[:, :C].double(), x[:, C:].double().expand(-1, C, -1, -1)
        xm, m = xm.flatten(1), m.flatten(1)
        d = (xm * xm).sum(1, keepdim=True) - 2 * xm @ self.flat.T + m @ (self.flat**2).T  # (B, K)
        if self.sigma is None:
            ll = torch.where(d <= _TOL, torch.zeros_like(d), torch.full_like(d, -math.inf))
        else:
            ll = -d.clamp_min(0) / (2 * self.sigma**2)
        return ll + self.weights.log()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        lr = self.row_log_posterior(x)  # (B, K)
        per_class = torch.logsumexp(lr.unsqueeze(-1) + self.onehot.log(), dim=1)  # (B, classes)
        return (per_class - per_class.logsumexp(-1, keepdim=True)).clamp_min(_NEG).float()


class DatabaseCompletion(Completion):
    """Exact completions: rows of the database drawn from their posterior given the glimpses.

    ``enumerate=True`` returns every row with positive posterior weight (the exact expectation) instead of ``n``
    draws.
    """

    def __init__(
        self,
        grid: Sensor,
        images: torch.Tensor,
        labels: torch.Tensor,
        weights: torch.Tensor | None = None,
        sigma: float | None = None,
        enumerate: bool = False,
    ) -> None:
        self.grid = grid
        self.images, self.labels, self.weights = _check_database(images, labels, weights)
        self.channels = self.images.shape[1]
        self.sigma, self.enumerate = sigma, enumerate
        self.exact = DatabasePosterior(self.images, self.labels, int(self.labels.max()) + 1, self.weights, sigma)

    def row_posterior(self, locations: torch.Tensor | Sequence[int], glimpses: torch.Tensor) -> torch.Tensor:
        loc = torch.as_tensor(locations, dtype=torch.long)
        if len(loc) == 0:
            return self.weights.clone()
        canvas = self.grid.paste(glimpses.unsqueeze(0).float(), loc.view(1, -1))
        mask = self.grid.mask(loc.view(1, -1))
        lp = self.exact.row_log_posterior(torch.cat([canvas * mask, mask], 1))[0]
        if not bool(torch.isfinite(lp).any()):
            raise ValueError("the glimpses match no database row (they are not from this database)")
        return (lp - lp.logsumexp(0)).exp()

    def _sample(self, loc, glimpses, n, generator, true_image) -> CompletionSamples:
        """``n`` rows drawn from their posterior, or every row it keeps when ``enumerate``; ``diagnostics["scored"]``:
        every row of positive posterior weight with that weight (the exact posterior)."""
        p = self.row_posterior(loc, glimpses)
        kept = torch.nonzero(p > 0).flatten()
        scored = {"labels": self.labels[kept], "weights": p[kept] / p[kept].sum()}
        if self.enumerate:
            rows, w = kept, scored["weights"]
        else:
            rows = torch.multinomial(p.float(), n, replacement=True, generator=generator)
            w = torch.full((n,), 1.0 / n, dtype=torch.float64)
        return CompletionSamples(self.images[rows].float(), w, self.labels[rows], {"scored": scored})


def exact_epe(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    grid: Sensor,
    observed_image: torch.Tensor | None = None,
    observed: Sequence[int] | torch.Tensor = (),
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact noise-free EPE of every location by enumeration, written independently of the estimators:
    group the rows consistent with the observations by what they show at ``observed + [l]`` and sum
    ``P(group) * H(label | group)``.  ``(L,)`` float64."""
    images, labels, w = _check_database(images, labels, weights)
    observed = [int(x) for x in observed]
    if observed:
        ref = grid.extract(observed_image.unsqueeze(0), torch.tensor([observed]))[0]
        rows_obs = grid.extract(images, torch.tensor([observed]).expand(len(images), -1))
        keep = (rows_obs - ref).abs().flatten(1).amax(1) <= _TOL
        w = torch.where(keep, w, torch.zeros_like(w))
        w = w / w.sum()
    out = []
    for l in range(grid.num_locations):  # enumeration by design: it is the reference answer
        patches = grid.extract(images, torch.full((len(images),), l)).flatten(1)
        groups: dict[bytes, torch.Tensor] = {}
        for k in range(len(images)):
            if w[k] > 0:
                key = patches[k].numpy().round(6).tobytes()
                groups.setdefault(key, torch.zeros(num_classes, dtype=torch.float64))[labels[k]] += w[k]
        h = 0.0
        for mass in groups.values():
            total = float(mass.sum())
            p = mass / total
            h += total * float(-(torch.special.xlogy(p, p)).sum())
        out.append(h)
    return torch.tensor(out, dtype=torch.float64)


def random_database(
    num_images: int = 24, num_classes: int = 3, size: int = 4, glimpse: int = 2, seed: int = 0, informative: bool = True
) -> tuple[torch.Tensor, torch.Tensor, Sensor]:
    """A tiny binary-image database and its non-overlapping grid (``size`` x ``size``, ``glimpse`` stride).

    With ``informative=True`` one location (the bottom-right glimpse) reveals the label and the rest is
    noise, so good designs are clearly better than bad ones.
    """
    g = torch.Generator().manual_seed(seed)
    images = (torch.rand(num_images, 1, size, size, generator=g) < 0.5).float()
    labels = torch.arange(num_images) % num_classes
    if informative:
        code = torch.nn.functional.one_hot(labels, max(num_classes, glimpse * glimpse)).float()
        images[:, 0, -glimpse:, -glimpse:] = code[:, : glimpse * glimpse].view(-1, glimpse, glimpse)
    return images, labels, Sensor(size, glimpse, stride=glimpse)


@dataclass(frozen=True)
class ToyFactory:
    """Builds the toy database problem in any process: ``factory() -> (DesignProblem, image(index))``."""

    num_images: int = 24
    num_classes: int = 3
    size: int = 4
    glimpse: int = 2
    seed: int = 0
    enumerate: bool = False
    fail_on: tuple = ()  # images whose reading raises (as an unreadable file would): the executors' failure path

    def __call__(self):
        images, labels, grid = random_database(self.num_images, self.num_classes, self.size, self.glimpse, self.seed)
        posterior = DatabasePosterior(images, labels, self.num_classes)
        sampler = DatabaseCompletion(grid, images, labels, enumerate=self.enumerate)
        problem = DesignProblem(posterior, sampler, grid, batch_size=64)
        fail_on = frozenset(int(i) for i in self.fail_on)

        def image(index):
            if int(index) in fail_on:
                raise OSError(f"image {int(index)} cannot be read (ToyFactory fail_on)")
            return images[int(index) % len(images)]

        return problem, image

    def describe(self) -> dict:
        return {"problem": "toy-database", **{k: v for k, v in self.__dict__.items() if k != "fail_on" or v}}
