"""The interface every stochastic image completion keeps.

A completion draws images consistent with the glimpses seen so far -- samples of r(image | glimpses) -- for
the design stage to estimate expected posterior entropies with.  Implementations: importance sampling over a
PCA-indexed image database (:mod:`.importance`, the paper's method), NUTS in a VAE's latent space (:mod:`.nuts`)
and a conditional GAN (:mod:`.cgan`).

Contract: callers call :meth:`Completion.sample`, which checks its arguments (with the errors every sampler
raises, see :func:`check_observations`) and hands them to the hook a sampler implements::

    class MyCompletion(Completion):
        grid: Sensor                      # the glimpse grid the locations index into
        channels: int                     # image channels (the glimpses carry grid.scales times as many)
        def _sample(self, locations, glimpses, n, generator, true_image) -> CompletionSamples: ...

The arguments of :meth:`Completion.sample`:

- ``locations``: LongTensor ``(t,)`` of flat grid locations observed so far, in order (``t`` may be 0: then
  the samples are draws of the prior).
- ``glimpses``: float ``(t, C, h, w)`` in [0, 1], the pixels seen at those locations (``grid.extract`` of the
  true image).
- ``n``: the number of samples wanted.  Weighted samplers may return fewer, *unique* samples (duplicates'
  weights aggregated), never more.
- ``generator``: a ``torch.Generator`` for reproducibility (one per unit of work, see ``runtime.derive_seed``).
- ``true_image``: optional ``(C, H, W)`` float, the full image the glimpses came from; samplers may use it
  where the paper does (scoring against its PCA reconstruction), never to look at unobserved pixels directly.

The hook gets them checked: ``locations`` int64 ``(t,)``, ``glimpses`` float32, ``n`` a positive int and
``true_image`` float32 or None, on the devices they came on.

:class:`CompletionSamples` holds ``images`` ``(n, C, H, W)`` float in [0, 1], ``weights`` ``(n,)`` that sum
to 1 (uniform for unweighted samplers), ``labels`` ``(n,)`` (or None where the sampler does not know them) and
a ``diagnostics`` dict (e.g. ``{"ess": ..., "seconds": ...}``).

:func:`check_observations` validates ``(locations, glimpses)`` against a grid; samplers that take observations
through another public method call it too, so all of them refuse bad input the same way.
"""

from __future__ import annotations

import abc
import copy
from dataclasses import dataclass, field
from typing import Optional, TYPE_CHECKING

import torch

from ..checks import check_int
from ..sensor import Sensor

if TYPE_CHECKING:
    from typing import Callable, Sequence

__all__ = ["CompletionSamples", "Completion", "check_observations", "check_true_image", "pool_draws", "DEFAULT_K1"]

#: Proposal draws of the importance samplers per completion (the paper's K1): the one default of every sampler,
#: design setting and command that takes it.
DEFAULT_K1 = 1000


@dataclass
class CompletionSamples:
    """Weighted image samples from a completion.

    Attributes:
        images: ``(n, C, H, W)`` float in [0, 1].
        weights: ``(n,)`` non-negative, summing to 1.
        labels: ``(n,)`` int64 (or float ``(n, A)`` for multi-label data), or None when unknown.
        diagnostics: free-form figures about the draw (``ess``, ``seconds``, ...).
    """

    images: torch.Tensor
    weights: torch.Tensor
    labels: Optional[torch.Tensor] = None
    diagnostics: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.images, torch.Tensor) or self.images.dim() != 4:
            shape = tuple(self.images.shape) if isinstance(self.images, torch.Tensor) else type(self.images)
            raise ValueError(f"`images` must be a (n, C, H, W) tensor, got {shape}")
        n = self.images.shape[0]
        if not isinstance(self.weights, torch.Tensor) or tuple(self.weights.shape) != (n,):
            shape = tuple(self.weights.shape) if isinstance(self.weights, torch.Tensor) else type(self.weights)
            raise ValueError(f"`weights` must be a ({n},) tensor to match images, got {shape}")
        if n > 0:
            total = float(self.weights.double().sum())
            if not abs(total - 1.0) < 1e-4 or bool((self.weights < 0).any()):
                raise ValueError(f"`weights` must be non-negative and sum to 1, got sum {total}")
        if self.labels is not None and (not isinstance(self.labels, torch.Tensor) or self.labels.shape[0] != n):
            raise ValueError(f"`labels` must be None or a tensor with {n} rows to match images")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def ess(self) -> float:
        """Effective sample size of the weights, 1 / sum(w^2)."""
        return float(1.0 / self.weights.double().pow(2).sum()) if len(self) else 0.0

    def to(self, device: str | torch.device) -> "CompletionSamples":
        return CompletionSamples(
            self.images.to(device),
            self.weights.to(device),
            None if self.labels is None else self.labels.to(device),
            dict(self.diagnostics),
        )

    def label_posterior(self, num_classes: int, scored: bool = False) -> torch.Tensor:
        """The weighted label histogram ``(num_classes,)`` (categorical labels only): of the ``n`` completions, or
        with ``scored`` of every candidate the sampler weighted before resampling ``n`` of them
        (``diagnostics["scored"]``): the same importance posterior without the resampling's Monte-Carlo noise."""
        labels, weights = self.labels, self.weights
        if scored:
            if "scored" not in self.diagnostics:
                raise ValueError("`scored`: these samples' sampler did not record its scored candidates")
            labels, weights = self.diagnostics["scored"]["labels"], self.diagnostics["scored"]["weights"]
        if labels is None:
            raise ValueError("these samples carry no labels")
        if labels.dim() != 1:
            raise ValueError(f"label_posterior needs categorical labels (n,), got shape {tuple(labels.shape)}")
        return torch.zeros(num_classes, dtype=torch.float64).index_add_(0, labels.long().cpu(), weights.double().cpu())


def pool_draws(sample: Callable[[], CompletionSamples], draws: int) -> CompletionSamples:
    """``draws`` calls of ``sample`` (independent draws: each consumes the same generator in turn) pooled as an
    equal-weight mixture: each draw's weights are scaled to sum to ``1 / draws``.  One draw is returned as drawn.

    Self-normalised importance weights under a sharp likelihood collapse on one or two proposals per draw, and
    more completions or proposals in one draw do not spread them (the heaviest proposal stays heaviest).  The
    mixture caps any completion's weight at ``1 / draws``: every weighted average over it (an EPE, a label
    distribution) is the mean of the draws' own, so it keeps one draw's bias and divides its variance by
    ``draws``.  A draw is a call of the sampler, whatever its kind (hence a loop over the few draws, each one
    batched inside the sampler).  ``diagnostics``: the pooled ``ess`` and every draw's (``pooled_ess``)."""
    check_int("draws", draws)
    parts = [sample() for _ in range(draws)]
    if draws == 1:
        return parts[0]
    labels = [p.labels for p in parts]
    ess = [float(p.diagnostics.get("ess", p.ess)) for p in parts]
    out = CompletionSamples(
        torch.cat([p.images for p in parts]),
        torch.cat([p.weights / p.weights.sum() for p in parts]) / draws,
        None if any(lab is None for lab in labels) else torch.cat(labels),
    )
    out.diagnostics.update(ess=out.ess, pooled_ess=ess)
    scored = [p.diagnostics.get("scored") for p in parts]
    if all(sc is not None and sc["labels"] is not None for sc in scored):  # the draws' candidates, equally mixed
        out.diagnostics["scored"] = {
            "labels": torch.cat([sc["labels"] for sc in scored]),
            "weights": torch.cat([sc["weights"] / sc["weights"].sum() for sc in scored]) / draws,
        }
    return out


class Completion(abc.ABC):
    """A sampler of r(image | glimpses); see the module docstring for the contract."""

    grid: Sensor
    channels: int

    def sample(
        self,
        locations: torch.Tensor,
        glimpses: torch.Tensor,
        n: int,
        generator: Optional[torch.Generator] = None,
        true_image: Optional[torch.Tensor] = None,
    ) -> CompletionSamples:
        """Draw ``n`` (weighted) completions of the image whose ``glimpses`` were seen at ``locations``: the
        arguments are checked here, once for every sampler, then drawn by :meth:`_sample`."""
        check_int("n", n)
        loc, obs = check_observations(self.grid, locations, glimpses, self.channels)
        if true_image is not None:
            true_image = check_true_image(self.grid, true_image, self.channels)
        return self._sample(loc, obs, int(n), generator, true_image)

    @abc.abstractmethod
    def _sample(
        self,
        locations: torch.Tensor,
        glimpses: torch.Tensor,
        n: int,
        generator: Optional[torch.Generator],
        true_image: Optional[torch.Tensor],
    ) -> CompletionSamples:
        """The sampler's draw, given checked arguments (see the module docstring)."""

    #: The prior items this sampler never proposes (set by :meth:`excluding`; None: none).
    excluded: Optional[torch.Tensor] = None
    #: What :meth:`excluding` leaves out, in words (a sampler that supports it names its candidates).
    excludable_name = "items"

    def num_excludable(self) -> int:
        """How many prior items (digits, database rows) the sampler proposes from; see :meth:`excluding`."""
        raise NotImplementedError(f"{type(self).__name__} cannot leave prior items out")

    def excluding(self, ids: torch.Tensor | Sequence[int]) -> "Completion":
        """A copy that never proposes the prior items ``ids`` (what a design image is made of: no oracle); the
        sampler skips ``self.excluded`` when it proposes."""
        ids = torch.as_tensor(ids).long().reshape(-1).unique()
        n, what = self.num_excludable(), self.excludable_name
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
            raise ValueError(f"{what} must be indices in [0, {n - 1}], got {ids.tolist()[:8]}")
        if ids.numel() >= n:
            raise ValueError(f"{what} would leave none of the {n} {what} to propose")
        out = copy.copy(self)
        out.excluded = ids if ids.numel() else None
        return out


def check_observations(
    grid: Sensor, locations: torch.Tensor | Sequence[int], glimpses: torch.Tensor, channels: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and normalise ``locations`` (t,) and ``glimpses`` (t, k*C, h, w) against the sensor ``grid``
    (``k`` scales stacked along channels; ``k = 1``: the paper's (t, C, h, w) patches).

    Returns ``(locations int64 (t,), glimpses float32 (t, k*C, h, w))``.  Raises ``ValueError`` naming the
    argument for wrong shapes, locations off the grid, glimpse sizes that do not match the grid, a channel
    count other than ``channels``, and NaN / infinite / out-of-range pixel values.
    """
    loc = torch.as_tensor(locations)
    if loc.dtype.is_floating_point or loc.dtype == torch.bool:
        raise ValueError(f"`locations` must be integer flat grid indices, got dtype {loc.dtype}")
    loc = loc.long().reshape(-1) if loc.dim() == 0 else loc.long()
    if loc.dim() != 1:
        raise ValueError(f"`locations` must have shape (t,), got shape {tuple(loc.shape)}")
    if loc.numel() and (bool((loc < 0).any()) or bool((loc >= grid.num_locations).any())):
        bad = int(loc[(loc < 0) | (loc >= grid.num_locations)][0])
        raise ValueError(f"locations holds {bad}, outside the grid's locations [0, {grid.num_locations - 1}]")
    if not isinstance(glimpses, torch.Tensor):
        raise ValueError(f"`glimpses` must be a torch.Tensor of shape (t, k*C, h, w), got {type(glimpses).__name__}")
    t = loc.shape[0]
    h, w = grid.glimpse_size
    if glimpses.dim() != 4 or glimpses.shape[0] != t or tuple(glimpses.shape[-2:]) != (h, w):
        raise ValueError(
            f"`glimpses` must have shape ({t}, k*C, {h}, {w}) to match {t} locations and the grid's "
            f"{h} x {w} glimpses, got shape {tuple(glimpses.shape)}"
        )
    if channels is not None and glimpses.shape[1] != grid.glimpse_channels(channels):
        raise ValueError(
            f"`glimpses` must have {grid.glimpse_channels(channels)} channel(s) ({grid.scales} scale(s) x "
            f"{channels} image channel(s)), got {glimpses.shape[1]}"
        )
    g = glimpses.detach().float()
    if g.numel():
        if not bool(torch.isfinite(g).all()):
            raise ValueError("glimpses hold NaN or infinite values; expected pixels in [0, 1]")
        lo, hi = float(g.min()), float(g.max())
        if lo < -1e-4 or hi > 1 + 1e-4:
            raise ValueError(f"`glimpses` must hold pixels in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return loc, g


def check_true_image(grid: Sensor, true_image: torch.Tensor, channels: int) -> torch.Tensor:
    """Validate an optional full image ``(C, H, W)`` in [0, 1]; returns float32."""
    if not isinstance(true_image, torch.Tensor):
        raise ValueError(f"`true_image` must be a torch.Tensor of shape (C, H, W), got {type(true_image).__name__}")
    H, W = grid.image_size
    if tuple(true_image.shape) != (channels, H, W):
        raise ValueError(f"`true_image` must have shape {(channels, H, W)}, got {tuple(true_image.shape)}")
    img = true_image.detach().float()
    if not bool(torch.isfinite(img).all()):
        raise ValueError("true_image holds NaN or infinite values; expected pixels in [0, 1]")
    return img
