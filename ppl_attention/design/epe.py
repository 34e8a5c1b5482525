"""Expected posterior entropy (EPE) estimators: the paper's eq. (6), and Pyro's OED estimators.

The paper's estimator, for every candidate location ``l`` at once::

    EPE(l) = sum_n w_n H[ g(label | f(I_n, l_1..t-1, l)) ]

over completions ``(I_n, w_n)`` of the image given the glimpses so far.  Every (candidate, sample) pair is one
row of a large batch: what completion ``I_n`` shows through the observed glimpses plus the candidate, built by
the sensor (``grid.observe``: one canvas and mask per scale of the retina), so there is no Python loop over
candidates or samples, only over batches.

``posterior`` is any callable mapping the AVP's input (``cat(canvas * mask, mask)``; an AVP normalises the
canvas first through its ``make_input``) to logits, so an exact posterior can be plugged in for testing.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, TYPE_CHECKING

import torch

from ..model import entropy_from_logits
from ..runtime import DEFAULT_PRECISION, PRECISIONS, check_precision, default_precision
from ..sensor import Sensor, checked_locations

if TYPE_CHECKING:
    from typing import Sequence
    from ..posterior.network import AVP

__all__ = [
    "expected_posterior_entropy",
    "entropy_matrix",
    "PairScorer",
    "entropy_from_logits",
    "default_make_input",
    "resolve_make_input",
    "avp_guide",
    "pyro_posterior_epe",
    "pyro_nmc_epe",
    "PRECISIONS",
    "DEFAULT_PRECISION",
    "check_precision",
    "default_precision",
]

log = logging.getLogger(__name__)

# (candidate, sample) pairs per forward pass: on a CPU a small conv net is fastest on batches that fit the cache
# (``benchmarks/bench_design.py`` measures the throughput; see docs/RESULTS.md, section "Benchmarks").
DEFAULT_BATCH_SIZE = 128


def default_make_input(canvas: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``cat(canvas * mask, mask)`` without normalisation (for plain callables): canvas (B, k*C, H, W), mask
    (B, k, H, W) from ``grid.observe`` (``k = 1``: ``cat(image * mask, mask)``)."""
    k = mask.shape[1]
    mask = mask.expand(canvas.shape[0], k, *canvas.shape[2:])
    per_channel = mask.repeat_interleave(canvas.shape[1] // k, dim=1) if k > 1 else mask
    return torch.cat([canvas * per_channel, mask], dim=1)


def resolve_make_input(
    posterior: Callable[[torch.Tensor], torch.Tensor], make_input: Callable | None = None
) -> Callable:
    """The input builder: ``make_input`` if given, else ``posterior.make_input``, else :func:`default_make_input`."""
    if make_input is not None:
        return make_input
    return getattr(posterior, "make_input", default_make_input)


def _entropy_fn(posterior, kind: str | None) -> Callable[[torch.Tensor], torch.Tensor]:
    if kind is not None:
        return lambda logits: entropy_from_logits(logits, kind)
    if hasattr(posterior, "entropy") and callable(posterior.entropy):  # an AVP knows its head
        return posterior.entropy
    return lambda logits: entropy_from_logits(
        logits, "binary" if logits.dim() == 1 or logits.shape[-1] == 1 else "categorical"
    )


def _check_inputs(images, observed, candidates, grid: Sensor):
    if not isinstance(grid, Sensor):
        raise ValueError(f"`grid` must be a Sensor, got {type(grid).__name__}")
    images = grid._check_images(images)
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images holds NaN or infinite values")
    observed = torch.as_tensor([] if observed is None else observed, dtype=torch.long, device=images.device)
    if observed.dim() != 1:
        raise ValueError(f"`observed` must be a (t,) tensor of locations, got shape {tuple(observed.shape)}")
    grid._check_locations(observed, "observed")
    if candidates is None:
        candidates = grid.all_locations(images.device)
    candidates = torch.as_tensor(candidates, device=images.device)
    if candidates.dim() != 1 or candidates.numel() == 0:
        raise ValueError(
            f"`candidates` must be a non-empty (L,) tensor of locations, got shape {tuple(candidates.shape)}"
        )
    candidates = grid._check_locations(candidates, "candidates")
    return images, observed, candidates


def _is_conv_net(posterior) -> bool:
    """An ``nn.Module`` with 2-D convolutions: it runs faster on channels-last inputs (plain callables may
    ``view`` their input, so they get it as built)."""
    return isinstance(posterior, torch.nn.Module) and any(isinstance(m, torch.nn.Conv2d) for m in posterior.modules())


class PairScorer:
    """Posterior entropies of (candidate, sample) pairs on fixed completions after fixed observations.

    Validates the inputs once, so that searches calling it many times on small subsets (successive halving) pay
    only for the sensor's canvases (cheap) and the AVP passes.
    ``scorer(candidates (l,), samples (n,)) -> (l, n)`` (or ``(l, n, A)`` for a multi-attribute posterior).

    ``precision="bfloat16"`` runs the posterior under ``torch.autocast`` in bfloat16 (entropies are still computed
    in float32 from the logits).  On CPUs with AMX or AVX512-BF16 and on recent GPUs this is several times faster;
    the EPE changes by a few thousandths of a nat (``benchmarks/bench_design.py`` measures the regret it causes).
    A convolutional posterior gets channels-last inputs, the faster layout for oneDNN and cuDNN convolutions.
    A pass that runs out of device memory is retried in halves, and the smaller size is kept for later calls.
    """

    def __init__(
        self,
        posterior: Callable[[torch.Tensor], torch.Tensor],
        images: torch.Tensor,
        observed: torch.Tensor | Sequence[int],
        grid: Sensor,
        batch_size: int = DEFAULT_BATCH_SIZE,
        make_input: Callable | None = None,
        kind: str | None = None,
        precision: str = DEFAULT_PRECISION,
    ) -> None:
        self.images, self.observed, _ = _check_inputs(images, observed, None, grid)
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
        self.posterior, self.grid, self.batch_size = posterior, grid, batch_size
        self.precision = check_precision(precision)
        self.channels_last = _is_conv_net(posterior)
        self.make_input = resolve_make_input(posterior, make_input)
        self.entropy = _entropy_fn(posterior, kind)
        self.observed = self.observed.to(self.images.device)

    @torch.no_grad()
    def __call__(self, candidates: torch.Tensor, samples: torch.Tensor | None = None) -> torch.Tensor:
        device = self.images.device
        candidates = candidates.to(device)
        images = self.images if samples is None else self.images[samples.to(device)]
        L, N = candidates.numel(), images.shape[0]
        out, total = None, L * N
        self.grid._check_locations(candidates, "candidates")  # once a call, not once a pass
        start = 0
        while start < total:
            # Equal batches of at most batch_size: a small remainder batch runs at a fraction of the throughput.
            size = math.ceil(total / math.ceil(total / self.batch_size))
            pair = torch.arange(start, min(start + size, total), device=device)
            try:
                h = self._entropies(images, candidates, pair, N)
            except torch.OutOfMemoryError:
                if self.batch_size == 1:
                    raise
                self.batch_size = max(1, self.batch_size // 2)
                log.warning("out of device memory: AVP passes of %d pairs from now on", self.batch_size)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            if out is None:
                out = torch.empty((total,) + tuple(h.shape[1:]), dtype=h.dtype, device=device)
            out[start : start + len(pair)] = h
            start += len(pair)
        return out.reshape((L, N) + tuple(out.shape[1:]))

    def _entropies(self, images: torch.Tensor, candidates: torch.Tensor, pair: torch.Tensor, N: int) -> torch.Tensor:
        """The posterior entropies of the (candidate, sample) pairs numbered ``pair`` (candidate-major: a batch
        shares few candidates, many samples)."""
        c, s = candidates[pair // N], pair % N
        seen = torch.cat([self.observed.view(1, -1).expand(len(pair), -1), c.view(-1, 1)], dim=1)
        with checked_locations():  # observed and candidates are checked once per call: no sync per pass
            return self.entropy(self._logits(self.make_input(*self.grid.observe(images[s], seen))))

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
            logits = self.posterior(x)
        return logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits


def entropy_matrix(
    posterior: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    observed: torch.Tensor | Sequence[int],
    candidates: torch.Tensor | Sequence[int] | None,
    grid: Sensor,
    batch_size: int = DEFAULT_BATCH_SIZE,
    make_input: Callable | None = None,
    kind: str | None = None,
    sample_index: torch.Tensor | None = None,
    precision: str = DEFAULT_PRECISION,
) -> torch.Tensor:
    """Posterior entropy after observing ``observed`` plus each candidate, on each sample.

    Args:
        posterior: callable mapping ``make_input(*grid.observe(images, locations))`` to logits: an AVP, or any
            exact posterior.
        images: completions ``(N, C, H, W)`` of the image given the glimpses so far.
        observed: ``(t,)`` locations seen so far (empty at the first step).
        candidates: ``(L,)`` locations to score (None: the whole grid).
        grid: the :class:`Sensor`.
        batch_size: (candidate, sample) pairs per forward pass.
        make_input: input builder; default ``posterior.make_input`` or ``cat(canvas * mask, mask)``.
        kind: ``categorical`` / ``binary`` / ``multilabel``; default ``posterior.entropy`` if it has one
            (an AVP knows its head), else categorical (binary for one logit).
        sample_index: optional ``(n,)`` rows of ``images`` to use (default all).
        precision: ``float32`` (default) or ``bfloat16`` (autocast; see :class:`PairScorer`).

    Returns:
        ``(L, n)`` entropies, or ``(L, n, A)`` for a multi-attribute posterior.
    """
    _, _, candidates = _check_inputs(images, observed, candidates, grid)
    return PairScorer(posterior, images, observed, grid, batch_size, make_input, kind, precision)(
        candidates, sample_index
    )


def _check_weights(weights, n: int, like: torch.Tensor) -> torch.Tensor:
    if weights is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64, device=like.device)
    w = torch.as_tensor(weights, device=like.device).double()
    if w.shape != (n,):
        raise ValueError(f"`weights` must have shape ({n},) to match images, got {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError("`weights` must be finite, non-negative and not all zero")
    return w / w.sum()


def expected_posterior_entropy(
    posterior: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    weights: torch.Tensor | None,
    observed: torch.Tensor | Sequence[int],
    candidates: torch.Tensor | Sequence[int] | None,
    grid: Sensor,
    **options: Any,
) -> torch.Tensor:
    """The paper's EPE estimator (eq. 6) for every candidate at once: the ``weights``-mean over the completions of
    :func:`entropy_matrix`, which takes the same arguments but ``weights``.

    Args:
        weights: ``(N,)`` importance weights of ``images`` (normalised here) or None for uniform.
        options: :func:`entropy_matrix`'s ``batch_size``, ``make_input``, ``kind`` and ``precision``.

    Returns:
        ``(L,)`` float64 EPE per candidate, or ``(L, A)`` for a multi-attribute posterior (every attribute from
        one AVP pass).
    """
    H = entropy_matrix(posterior, images, observed, candidates, grid, **options)
    w = _check_weights(weights, images.shape[0], H)
    return torch.einsum("ln...,n->l...", H.double(), w)


# ----------------------------------------------------------------------------- Pyro's OED estimators
def avp_guide(
    posterior: AVP | Callable[[torch.Tensor], torch.Tensor],
    grid: Sensor,
    observed: tuple[torch.Tensor, torch.Tensor] | None = None,
    make_input: Callable | None = None,
    target: str = "label",
    observation: str = "y",
    attribute: int | None = None,
) -> Callable[..., None]:
    """A ``pyro.contrib.oed`` guide ``guide(y_dict, design, observation_labels, target_labels)`` built from an AVP.

    The design's glimpses ``y`` (``batch + (t, k*C, h, w)``) are pasted, together with the past glimpses
    ``observed = (locations (t0,), glimpses (t0, k*C, h, w))``, into blank canvases (one per scale); the masks
    cover all of them.
    The AVP's logits parameterise ``Categorical`` (or ``Bernoulli`` for one logit / ``attribute`` of a
    multi-label AVP) on the target site.
    """
    import pyro
    import pyro.distributions as dist

    make_input = resolve_make_input(posterior, make_input)
    past_loc, past_y = (None, None) if observed is None else observed

    def guide(y_dict, design, observation_labels, target_labels):
        y = y_dict[observation]
        batch = design.shape[:-1]
        B, t = int(torch.tensor(batch).prod()) if len(batch) else 1, design.shape[-1]
        loc = design.reshape(B, t)
        glimpses = y.reshape(B, t, *y.shape[-3:])
        if past_loc is not None and len(past_loc):
            pl = torch.as_tensor(past_loc, device=loc.device).long()
            loc = torch.cat([pl.expand(B, -1), loc], dim=1)
            glimpses = torch.cat([past_y.to(glimpses).expand(B, *past_y.shape), glimpses], dim=1)
        canvas = grid.paste(glimpses, loc)
        mask = grid.mask(loc, dtype=canvas.dtype, device=canvas.device)
        logits = posterior(make_input(canvas, mask))
        if hasattr(posterior, "label_logits"):
            logits = posterior.label_logits(logits)
        if attribute is not None:
            logits = logits[..., attribute]
        with pyro.plate_stack("design", batch):
            if logits.dim() == 1 or logits.shape[-1] == 1:
                pyro.sample(target, dist.Bernoulli(logits=logits.reshape(batch)))
            else:
                pyro.sample(target, dist.Categorical(logits=logits.reshape(batch + logits.shape[-1:])))

    return guide


def _design(candidates, grid: Sensor) -> torch.Tensor:
    cand = grid._check_locations(torch.as_tensor(candidates), "candidates")
    if cand.dim() != 1:
        raise ValueError(f"`candidates` must be a (L,) tensor of locations, got shape {tuple(cand.shape)}")
    return cand.view(-1, 1)


def pyro_posterior_epe(
    model: Callable[[torch.Tensor], object],
    candidates: torch.Tensor | Sequence[int] | None,
    guide: Callable[..., None],
    grid: Sensor,
    num_samples: int = 100,
    analytic_entropy: bool = True,
    observation: str = "y",
    target: str = "label",
) -> torch.Tensor:
    """EPE of each candidate through ``pyro.contrib.oed.eig.posterior_eig`` with a fixed (pre-trained) guide.

    ``model(design)`` is a Pyro glimpse model vectorised over ``design.shape[:-1]`` (past glimpses folded into
    its prior); ``guide`` e.g. :func:`avp_guide`.  ``analytic_entropy=True`` gives ``E_y H[q(label | y, l)]``
    (the paper's EPE); False gives the cross-entropy ``E[-log q(label | y, l)]`` (an upper bound on the true EPE).
    Returns ``(L,)``.
    """
    import pyro
    from pyro.contrib.oed.eig import posterior_eig

    design = _design(candidates, grid)
    with torch.no_grad():
        out = posterior_eig(
            model,
            design,
            observation,
            target,
            num_samples=num_samples,
            num_steps=0,
            guide=guide,
            optim=pyro.optim.Adam({"lr": 0.0}),
            eig=False,
            analytic_entropy=analytic_entropy,
        )
    return out.detach().double().reshape(-1)


def pyro_nmc_epe(
    model: Callable[[torch.Tensor], object],
    candidates: torch.Tensor | Sequence[int] | None,
    grid: Sensor,
    prior_entropy: float,
    N: int = 200,
    M: int = 50,
    M_prime: int = 50,
    observation: str = "y",
    target: str = "label",
) -> torch.Tensor:
    """EPE of each candidate by nested Monte Carlo (``nmc_eig``): ``H[p(label)] - EIG(l)``.

    The image is a nuisance latent, so ``M_prime`` inner samples estimate ``p(y | label, l)``; without it the
    values exceed log K.  For small problems only (cost N * (M + M_prime) model evaluations per candidate).
    """
    from pyro.contrib.oed.eig import nmc_eig

    design = _design(candidates, grid)
    with torch.no_grad():
        eig = nmc_eig(model, design, observation, target, N=N, M=M, M_prime=M_prime)
    return float(prior_entropy) - eig.detach().double().reshape(-1)
