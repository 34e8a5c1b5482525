"""The Pyro glimpse model: p(label, image) x prod_t Normal(y_t | sensor(image, l_t), sigma_t^2).

This is the paper's relaxed likelihood: each glimpse is observed with Gaussian noise whose standard deviation
``sigma_t`` grows with the number of glimpses ``t`` (:class:`NoiseSchedule`), so that a posterior over images
does not collapse onto the few database images that match every pixel exactly.

What is observed is exactly what the :class:`~ppl_attention.sensor.Sensor` returns: with a ``k``-scale retina,
one relaxed-Gaussian observation per scale, of the ``h x w`` pooled values of that scale (stacked along the
channel axis, ``(k*C, h, w)`` per glimpse).  The noise scale depends on ``t`` only, not on the scale: every
pooled value, fine or coarse, is one observation with standard deviation ``sigma_t`` (so each scale weighs as
much as the fovea in the likelihood; the coarse values are averages of ``s^(2j)`` pixels, so ``sigma_t`` is
generous for them -- the relaxation, not a physical noise model).

Sites (what Pyro's OED estimators are given):

* ``"label"`` -- the target: a class index, shape ``batch``;
* the nuisance: ``"image_index"`` (a row of an :class:`EmpiricalPrior`) or ``"z"`` (a :class:`DecoderPrior`
  latent), shape ``batch`` / ``batch + (d,)``;
* ``"y"`` -- the observation: ALL ``t`` glimpses of the design as ONE site of shape
  ``batch + (t, k*C, h, w)`` (event dims ``(t, k*C, h, w)``; ``k`` = the sensor's scales), so a guide sees every
  glimpse at once and ``nmc_eig``'s per-site log-likelihoods need no bookkeeping over a variable number of sites;
* ``"y_past"`` -- optional observed glimpses from earlier steps (``observed=(locations, glimpses)``).

``batch = design.shape[:-1]``: the model is vectorised over every leading design dimension with
``pyro.plate_stack``, which is what ``pyro.contrib.oed.eig`` expects (it prepends sample dimensions to the
design).  The design is a LongTensor of flat grid locations whose last dimension is the number of glimpses.

Sequential design: Pyro's estimators sample the prior, they do not weight by observed sites, so for them the
past is folded into the prior: :meth:`GlimpseModel.condition` returns the same program with an
:class:`EmpiricalPrior` reweighted by exact Bayes.  ``observed=`` adds the past glimpses as an observed site
instead, which is what inference algorithms that weight by observations (importance sampling, HMC) need.
``nmc_eig`` requires a prior that samples the label first (:class:`EmpiricalPrior`); with a
:class:`DecoderPrior` the label is drawn after the image, which ``posterior_eig`` handles but ``nmc_eig``'s
``M_prime`` conditioning does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F

from .sensor import Sensor

if TYPE_CHECKING:
    from typing import Callable, Sequence

__all__ = ["NoiseSchedule", "EmpiricalPrior", "DecoderPrior", "GlimpseModel", "label_entropy"]


@dataclass(frozen=True)
class NoiseSchedule:
    """Standard deviation of the glimpse noise after ``t`` glimpses, in pixel units of ``pixel_range``.

    ``sigmas[t - 1]`` applies after ``t`` glimpses (the last value holds beyond the end); images in [0, 1] get
    ``sigma / pixel_range``.  The paper's CelebA-HQ preset is ``(5, 10, 20, 40)`` on 0..255 pixels
    (sigma_p = sigma_q = 5 * 2^(t-1)).
    """

    sigmas: tuple = (5.0, 10.0, 20.0, 40.0)
    pixel_range: float = 255.0

    def __post_init__(self):
        sig = tuple(float(s) for s in self.sigmas)
        if not sig or min(sig) <= 0 or not all(math.isfinite(s) for s in sig):
            raise ValueError(f"`sigmas` must be positive finite numbers, got {self.sigmas!r}")
        if not self.pixel_range > 0:
            raise ValueError(f"`pixel_range` must be positive, got {self.pixel_range!r}")
        object.__setattr__(self, "sigmas", sig)

    @classmethod
    def celeba(cls) -> "NoiseSchedule":
        """The paper's CelebA-HQ schedule: 5, 10, 20, 40 (0..255) after 1, 2, 3, 4 glimpses."""
        return cls((5.0, 10.0, 20.0, 40.0), 255.0)

    @classmethod
    def geometric(
        cls, base: float = 5.0, ratio: float = 2.0, steps: int = 4, pixel_range: float = 255.0
    ) -> NoiseSchedule:
        """``base * ratio ** (t - 1)`` for t = 1..steps."""
        return cls(tuple(base * ratio**k for k in range(steps)), pixel_range)

    @classmethod
    def constant(cls, sigma: float, pixel_range: float = 255.0) -> "NoiseSchedule":
        return cls((sigma,), pixel_range)

    def sigma(self, t: int) -> float:
        """Noise std (image units) after ``t`` glimpses (``t`` >= 1; ``t = 0`` gets the first value)."""
        if t < 0:
            raise ValueError(f"number of glimpses t must be >= 0, got {t}")
        return self.sigmas[min(max(t, 1), len(self.sigmas)) - 1] / self.pixel_range

    def to_dict(self) -> dict:
        return {"sigmas": list(self.sigmas), "pixel_range": self.pixel_range}


def _check_design(design, grid: Sensor, name: str = "design") -> torch.Tensor:
    if not isinstance(design, torch.Tensor) or design.dtype.is_floating_point or design.dtype == torch.bool:
        raise ValueError(
            f"`{name}` must be a LongTensor of grid locations with last dim = number of glimpses, "
            f"got {design.dtype if isinstance(design, torch.Tensor) else type(design).__name__}"
        )
    if design.dim() < 1:
        raise ValueError(f"`{name}` must have at least one dim (the glimpses), got a scalar")
    if design.numel() and (int(design.min()) < 0 or int(design.max()) >= grid.num_locations):
        raise ValueError(
            f"{name} holds locations outside [0, {grid.num_locations - 1}]: "
            f"min {int(design.min())}, max {int(design.max())}"
        )
    return design.long()


def _patches(images: torch.Tensor, design: torch.Tensor, grid: Sensor) -> torch.Tensor:
    """What the sensor returns for ``images`` (batch + (C, H, W)) at ``design`` (batch' + (t,)), broadcasting
    the batches: batch + (t, k*C, h, w)."""
    batch = torch.broadcast_shapes(images.shape[:-3], design.shape[:-1])
    imgs = images.expand(batch + images.shape[-3:]).reshape(-1, *images.shape[-3:])
    loc = design.expand(batch + design.shape[-1:]).reshape(-1, design.shape[-1])
    out = grid.extract(imgs, loc)  # (B, t, k*C, h, w)
    return out.reshape(batch + out.shape[1:])


class EmpiricalPrior:
    """p(label, image): a categorical over the rows of a labelled image database, label first.

    ``label ~ Categorical(class weights)``, ``image_index | label ~ Categorical(row weights of that class)``;
    the image is ``images[image_index]``.  ``weights`` (N,) default to uniform.
    """

    nuisance = "image_index"

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int | None = None,
        weights: torch.Tensor | None = None,
    ):
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.dtype.is_floating_point:
            raise ValueError(
                f"`images` must be a float tensor (N, C, H, W), got "
                f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}"
            )
        labels = torch.as_tensor(labels)
        if labels.shape != images.shape[:1] or labels.dtype.is_floating_point:
            raise ValueError(
                f"`labels` must be integer class indices of shape ({images.shape[0]},), got "
                f"{labels.dtype} {tuple(labels.shape)}"
            )
        num_classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
        if labels.numel() == 0 or int(labels.min()) < 0 or int(labels.max()) >= num_classes:
            raise ValueError(
                f"`labels` must lie in [0, {num_classes - 1}], got range "
                f"[{int(labels.min()) if labels.numel() else None}, "
                f"{int(labels.max()) if labels.numel() else None}]"
            )
        if weights is None:
            weights = torch.full((len(images),), 1.0 / len(images), dtype=images.dtype, device=images.device)
        weights = torch.as_tensor(weights, dtype=images.dtype, device=images.device)
        if (
            weights.shape != labels.shape
            or not bool(torch.isfinite(weights).all())
            or bool((weights < 0).any())
            or float(weights.sum()) <= 0
        ):
            raise ValueError(f"`weights` must be finite, non-negative, not all zero, shape ({len(images)},)")
        self.images, self.labels, self.num_classes = images, labels.long().to(images.device), num_classes
        self.weights = weights / weights.sum()
        onehot = torch.nn.functional.one_hot(self.labels, num_classes).to(images.dtype)  # (N, K)
        self.class_weights = self.weights @ onehot  # (K,)
        # log p(row | label) for every (label, row): -inf for rows of other classes.
        with torch.no_grad():
            lw = self.weights.log().unsqueeze(0) + onehot.T.log() - self.class_weights.log().unsqueeze(1)
        self.row_logits = torch.where(torch.isnan(lw), torch.full_like(lw, -math.inf), lw)

    def sample(self, batch_shape: tuple[int, ...] | torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
        """Inside the model's plates: ``pyro.sample`` the label then the row; returns (label, image)."""
        label = pyro.sample("label", dist.Categorical(probs=self.class_weights).expand(batch_shape))
        index = pyro.sample("image_index", dist.Categorical(logits=self.row_logits[label]))
        return label, self.images[index]

    def log_likelihoods(self, design: torch.Tensor, y: torch.Tensor, sigma: float, grid: Sensor) -> torch.Tensor:
        """log N(y | glimpses of every row, sigma^2) summed over glimpses and scales: ``batch + (N,)``."""
        batch = design.shape[:-1]
        rows = _patches(
            self.images.view((len(self.images),) + (1,) * len(batch) + self.images.shape[1:]), design.unsqueeze(0), grid
        )  # (N,) + batch + (t, C, h, w)
        ll = dist.Normal(rows, sigma).log_prob(y.unsqueeze(0)).flatten(len(batch) + 1).sum(-1)
        return ll.movedim(0, -1)

    def label_posterior_logits(self, design: torch.Tensor, y: torch.Tensor, sigma: float, grid: Sensor) -> torch.Tensor:
        """Exact log p(label | y, design) by enumerating rows: ``batch + (K,)`` (normalised log-probs)."""
        lj = self.log_likelihoods(design, y, sigma, grid) + self.weights.log()
        onehot = torch.nn.functional.one_hot(self.labels, self.num_classes).to(lj.dtype)
        per_class = torch.logsumexp(lj.unsqueeze(-1) + onehot.log(), dim=-2)  # batch + (K,)
        return per_class - per_class.logsumexp(-1, keepdim=True)

    def condition(
        self, locations: torch.Tensor, glimpses: torch.Tensor, sigma: float, grid: Sensor
    ) -> "EmpiricalPrior":
        """The posterior over rows after observing ``glimpses`` (t, k*C, h, w) at ``locations`` (t,): exact Bayes."""
        ll = self.log_likelihoods(locations, glimpses, sigma, grid)  # (N,)
        logw = self.weights.log() + ll
        return EmpiricalPrior(self.images, self.labels, self.num_classes, (logw - logw.max()).exp())


class DecoderPrior:
    """p(label, image) from a generative decoder and a classifier: z ~ N(0, I), image = decoder(z),
    label ~ Categorical(logits=classifier(image)).

    ``decoder`` maps (B, latent_dim) -> (B, C, H, W); ``classifier`` maps (B, C, H, W) -> (B, K) logits.  Both
    are fixed (not trained here), so they are not registered with ``pyro.module``.
    """

    nuisance = "z"

    def __init__(self, decoder: torch.nn.Module, latent_dim: int, classifier: torch.nn.Module, num_classes: int):
        if latent_dim <= 0 or num_classes < 2:
            raise ValueError(f"`latent_dim` must be positive and num_classes >= 2, got {latent_dim}, {num_classes}")
        self.decoder, self.classifier = decoder, classifier
        self.latent_dim, self.num_classes = int(latent_dim), int(num_classes)

    def sample(self, batch_shape: tuple[int, ...] | torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
        p = next(self.decoder.parameters(), torch.zeros(()))
        zero = torch.zeros((), dtype=p.dtype, device=p.device)
        z = pyro.sample("z", dist.Normal(zero, 1.0).expand(tuple(batch_shape) + (self.latent_dim,)).to_event(1))
        image = self.decoder(z.reshape(-1, self.latent_dim))
        image = image.reshape(tuple(z.shape[:-1]) + image.shape[1:])
        logits = self.classifier(image.reshape((-1,) + image.shape[-3:])).reshape(tuple(z.shape[:-1]) + (-1,))
        label = pyro.sample("label", dist.Categorical(logits=logits))
        return label, image


class GlimpseModel:
    """The glimpse model as a callable Pyro program ``model(design)`` for ``pyro.contrib.oed.eig``.

    Args:
        prior: an :class:`EmpiricalPrior` or :class:`DecoderPrior`.
        grid: the :class:`Sensor` the design's locations refer to.
        noise: the :class:`NoiseSchedule`.  One noise per glimpse history: the ``t0`` past glimpses are scored with
            ``sigma(t0)`` (``observed=`` and :meth:`condition` alike, and so do the completion samplers, which
            draw r(image | past) at ``sigma(t0)``); the ``t_new`` designed glimpses ``y`` with
            ``sigma(t0 + t_new)``, the noise of the history they complete.
        observed: optional ``(locations (t0,), glimpses (t0, k*C, h, w))`` seen before, as the observed site
            ``"y_past"``.
    """

    def __init__(
        self,
        prior: EmpiricalPrior | DecoderPrior,
        grid: Sensor,
        noise: NoiseSchedule | None = None,
        observed: tuple[torch.Tensor | Sequence[int], torch.Tensor] | None = None,
    ) -> None:
        self.prior, self.grid = prior, grid
        self.noise = noise or NoiseSchedule.celeba()
        self.observed = None
        # Past glimpses already folded into ``prior`` by condition(), and the prior before them.
        self.folded, self.base_prior = None, prior
        if observed is not None:
            loc, glimpses = observed
            loc = _check_design(torch.as_tensor(loc), grid, "observed locations")
            if loc.dim() != 1:
                raise ValueError(f"observed locations must have shape (t0,), got {tuple(loc.shape)}")
            C = getattr(prior, "images", torch.zeros(1, 1)).shape[1] if hasattr(prior, "images") else glimpses.shape[1]
            if not isinstance(glimpses, torch.Tensor) or tuple(glimpses.shape) != (len(loc),) + grid.glimpse_shape(C):
                raise ValueError(
                    f"observed glimpses must have shape {(len(loc),) + grid.glimpse_shape(C)}, got "
                    f"{tuple(glimpses.shape) if isinstance(glimpses, torch.Tensor) else glimpses!r}"
                )
            self.observed = (loc, glimpses)

    @property
    def num_past(self) -> int:
        return sum(len(p[0]) for p in (self.observed, self.folded) if p is not None)

    def sigma(self, t_new: int) -> float:
        return self.noise.sigma(self.num_past + t_new)

    def __call__(self, design: torch.Tensor):
        design = _check_design(design, self.grid)
        batch = design.shape[:-1]
        sigma = self.sigma(design.shape[-1])
        with pyro.plate_stack("design", batch):
            label, image = self.prior.sample(batch)
            mean = _patches(image, design, self.grid)
            y = pyro.sample("y", dist.Normal(mean, sigma).to_event(4))
            if self.observed is not None:  # the past at sigma(t0), as condition() and the samplers score it
                loc, glimpses = self.observed
                past = _patches(image, loc.expand(batch + loc.shape), self.grid)
                pyro.sample(
                    "y_past",
                    dist.Normal(past, self.noise.sigma(len(loc))).to_event(4),
                    obs=glimpses.to(past).expand(past.shape),
                )
        return label, y

    def condition(self, locations: torch.Tensor | Sequence[int], glimpses: torch.Tensor) -> "GlimpseModel":
        """The same program after observing ``glimpses`` (t0, k*C, h, w) at ``locations`` (t0,), with the past
        folded into the prior by exact Bayes over the database rows, so Pyro's OED estimators score the NEXT
        glimpse correctly.  The past is scored with sigma(t0), t0 = all glimpses folded so far (see the class
        docstring); a later design's ``y`` with sigma(t0 + t_new)."""
        if not isinstance(self.prior, EmpiricalPrior):
            raise ValueError("condition() folds the past into an EmpiricalPrior; for other priors pass observed=")
        if self.observed is not None:
            raise ValueError("condition() cannot be combined with observed=; use one or the other")
        loc = _check_design(torch.as_tensor(locations), self.grid, "locations")
        C = self.prior.images.shape[1]
        if (
            loc.dim() != 1
            or not isinstance(glimpses, torch.Tensor)
            or tuple(glimpses.shape) != (len(loc),) + self.grid.glimpse_shape(C)
        ):
            raise ValueError(
                f"`locations` must be (t0,) and glimpses "
                f"(t0, {', '.join(map(str, self.grid.glimpse_shape(C)))}); "
                f"got {tuple(loc.shape)} and "
                f"{tuple(glimpses.shape) if isinstance(glimpses, torch.Tensor) else glimpses!r}"
            )
        if self.folded is not None:
            loc, glimpses = torch.cat([self.folded[0], loc]), torch.cat([self.folded[1], glimpses])
        prior = (
            self.base_prior.condition(loc, glimpses, self.noise.sigma(len(loc)), self.grid)
            if len(loc)
            else self.base_prior
        )
        model = GlimpseModel(prior, self.grid, self.noise)
        model.folded, model.base_prior = (loc, glimpses), self.base_prior
        return model

    def exact_guide(self) -> Callable[..., None]:
        """A ``posterior_eig`` guide computing the exact label posterior (EmpiricalPrior only)."""
        if not isinstance(self.prior, EmpiricalPrior):
            raise ValueError("the exact guide needs an EmpiricalPrior")

        def guide(y_dict, design, observation_labels, target_labels):
            batch = design.shape[:-1]
            logits = self.prior.label_posterior_logits(design, y_dict["y"], self.sigma(design.shape[-1]), self.grid)
            with pyro.plate_stack("design", batch):
                pyro.sample("label", dist.Categorical(logits=logits))

        return guide


def label_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of categorical probabilities along the last dim (0 log 0 = 0)."""
    return -torch.special.xlogy(probs, probs).sum(-1)


#: The kinds of label posterior :func:`entropy_from_logits` reads: one categorical, one Bernoulli, independent
#: Bernoullis per attribute, or a categorical class part followed by auxiliary attributes.
ENTROPY_KINDS = ("categorical", "binary", "multilabel", "class_attributes")


def entropy_from_logits(
    logits: torch.Tensor, kind: str = "categorical", num_classes: int | None = None
) -> torch.Tensor:
    """Entropy (nats) of the label posterior given by ``logits``, finite even for saturated logits.

    ``categorical``: H of softmax(logits), shape ``logits.shape[:-1]``; ``binary``: one Bernoulli logit (shape
    (B,) or (B, 1)), returns (B,); ``multilabel``: per-attribute binary entropies, shape ``logits.shape``;
    ``class_attributes``: H of the class part (the first ``num_classes`` logits).  Computed from log_softmax /
    logsigmoid, which stay finite for finite logits, so p log p -> 0 as p -> 0.
    """
    if kind not in ENTROPY_KINDS:
        raise ValueError(f"`kind` must be one of {ENTROPY_KINDS}, got {kind!r}")
    if kind == "class_attributes":
        if num_classes is None:
            raise ValueError("num_classes is needed for a class_attributes head")
        logits, kind = logits[..., :num_classes], "categorical"
    if kind == "categorical":
        logp = F.log_softmax(logits, dim=-1)
        return -(logp.exp() * logp).sum(-1)
    if kind == "binary" and logits.dim() > 1:
        if logits.shape[-1] != 1:
            raise ValueError(f"binary logits must have shape (B,) or (B, 1), got {tuple(logits.shape)}")
        logits = logits[..., 0]
    logits = logits.clamp(-1e4, 1e4)  # a certain posterior (infinite logit) has entropy 0, not NaN
    log_p, log_q = F.logsigmoid(logits), F.logsigmoid(-logits)
    return -(log_p.exp() * log_p + log_q.exp() * log_q)
