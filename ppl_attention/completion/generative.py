"""The data's own generative process as the image prior of translated and cluttered MNIST: inference.

A database of rendered canvases (:mod:`.importance`) almost never holds one that matches what a glimpse saw: 4,000
digits x 1,089 offsets is 4.4 M canvases before clutter.  This module does inference in the process itself
(:mod:`.canvas`, with the observation model of :mod:`.clutter_noise`).

Inference (:class:`GenerativeCompletion`) is importance sampling over (digit, offset) pairs, vectorised:

1. an offset proposal ``q(o)``: the Gaussian likelihood of the observed glimpses (every scale) under each of ``P``
   prototype digits (faiss k-means centroids of the pool) at every offset, computed for all offsets at once by
   FFT correlations (exact sensor geometry, zero padding included; :meth:`GenerativeCompletion.prototype_sse`),
   mixed over prototypes by cluster size, tempered to an ESS of at least ``offset_ess`` offsets and mixed with
   ``uniform_mix`` of the uniform distribution (so every offset keeps q > 0);
2. ``offset_draws`` offsets from ``q(o)`` (residual resampling); for each distinct offset drawn a digit proposal
   ``q(d | o)`` over the WHOLE pool: the Gaussian likelihood of the glimpses under each digit's PCA reconstruction
   (faiss PCA, the paper's index) at that offset, ``||y - a_o - B_o z_d||^2`` expanded so that one (N, k) x (k, k)
   product scores all digits, tempered to an ESS of at least ``digit_ess``;
3. ``k1`` (digit, offset) draws in all; each distinct pair is rendered, seen through the sensor and scored with the
   exact likelihood above; weights ``p(y | d, o) / q(d, o)`` (the prior is uniform), aggregated per distinct pair;
4. adaptive size: while the ESS is below ``min_ess``, another ``k1`` draws are added (up to ``max_k1``);
5. up to ``n`` distinct pairs are returned (residual resampling), each completed as a canvas: the digit at its
   offset, max-combined with fresh clutter from the dataset's process, and (``paste_observed``) the observed
   foveae's pixels written back where they were seen (they are noise-free pixels of the true canvas).

When the whole candidate set is no larger than ``k1`` (tiny pools) every pair is scored: the weights are then the
exact posterior over (digit, offset).  An observation that no candidate explains still gets finite weights (all
terms are computed in log space with ``log_ndtr``): the weight falls on the least-bad pairs, ``ess`` drops towards
1 and ``log_evidence`` is very low; NaN or infinite log-weights raise a ``ValueError``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Optional, TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..checks import check_int
from ..model import NoiseSchedule
from .base import DEFAULT_K1, Completion, CompletionSamples
from .importance import _schedule, _sigma, ess, residual_resample

from .canvas import DIGIT, CanvasPrior, DigitIndex
from .clutter_noise import ClutterNoise, clutter_log_likelihood
from .generative_prior import DEFAULT_SIGMA, GENERATIVE, build_generative_prior, open_generative_prior

if TYPE_CHECKING:
    from typing import Callable, Sequence

__all__ = ["GenerativeCompletion", "build_generative_prior", "open_generative_prior", "GENERATIVE", "DEFAULT_SIGMA"]

log = logging.getLogger(__name__)


def _smooth(n: int) -> bool:
    """Whether ``n`` has no prime factor above 5 (a fast FFT size)."""
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


def _temper_rows(logits: torch.Tensor, min_ess: float, iters: int = 16) -> torch.Tensor:
    """Per row of ``logits`` (U, N), a temperature tau >= 1 such that softmax(logits / tau) has ESS >= min_ess
    (bisection on log tau for all rows at once; rows already above keep tau = 1)."""

    def row_ess(lw):
        wt = torch.exp(lw - lw.amax(-1, keepdim=True))
        return wt.sum(-1).square() / wt.square().sum(-1)

    U, N = logits.shape
    target = min(float(min_ess), N * (1 - 1e-6))
    tau = torch.ones(U, dtype=torch.float64)
    low = torch.nonzero(row_ess(logits) < target).flatten()  # only these rows need tempering
    if len(low) == 0:
        return tau
    x = logits[low].float()
    lo = torch.zeros(len(low))
    hi = torch.full((len(low),), 24.0)
    for _ in range(iters):  # bisection steps on log tau, every row at once
        mid = 0.5 * (lo + hi)
        e = row_ess(x / mid.exp().unsqueeze(1))
        hi = torch.where(e >= target, mid, hi)
        lo = torch.where(e >= target, lo, mid)
    tau[low] = hi.double().exp()
    return tau


class GenerativeCompletion(Completion):
    """Importance sampling over (digit, offset) in the data's generative process (module docstring).

    Devices: works on the CPU (FFTs of a few small canvases and an (offsets x digits) proposal); :meth:`sample` takes
    observations on any device, moves them to the CPU and returns CPU tensors.

    Args:
        prior: the :class:`CanvasPrior`; index: its :class:`DigitIndex`; noise: the :class:`ClutterNoise`.
        k1: (digit, offset) draws per round; max_k1: cap of the adaptive growth (default ``k1``: no growth);
        min_ess: grow until the ESS of the distinct pairs reaches this (None: one round).
        sigma: observation noise schedule (0..255 after 1, 2, ... glimpses); sigma_q: the proposals' (default 2x).
        offset_draws, uniform_mix, offset_ess, digit_ess: the proposal's settings (module docstring).
        paste_observed: write the observed foveae back into the completions.
    """

    def __init__(
        self,
        prior: CanvasPrior,
        index: DigitIndex,
        noise: Optional[ClutterNoise] = None,
        k1: int = DEFAULT_K1,
        sigma: float | Sequence[float] | NoiseSchedule | Callable[[int], float] | None = None,
        sigma_q: float | Sequence[float] | NoiseSchedule | Callable[[int], float] | None = None,
        offset_draws: int = 32,
        uniform_mix: float = 0.05,
        offset_ess: float = 4.0,
        digit_ess: float = 4.0,
        min_ess: Optional[float] = None,
        max_k1: Optional[int] = None,
        paste_observed: bool = True,
    ) -> None:
        for name, v in (("k1", k1), ("offset_draws", offset_draws)):
            check_int(name, v)
        if max_k1 is not None and (not isinstance(max_k1, (int, np.integer)) or max_k1 < k1):
            raise ValueError(f"`max_k1` must be an int >= k1 ({k1}), got {max_k1!r}")
        if min_ess is not None and not (isinstance(min_ess, (int, float)) and min_ess >= 1):
            raise ValueError(f"`min_ess` must be a number >= 1, got {min_ess!r}")
        if not 0 < uniform_mix < 1:
            raise ValueError(f"`uniform_mix` must lie in (0, 1), got {uniform_mix!r}")
        if index.mean.numel() != DIGIT * DIGIT:
            raise ValueError("the digit index must be a PCA of 28 x 28 digits")
        if index.codes.shape[0] != prior.num_digits:
            raise ValueError(f"the digit index has {index.codes.shape[0]} codes, the pool {prior.num_digits} digits")
        self.prior, self.index = prior, index
        self.grid = prior.grid
        self.noise = noise or ClutterNoise.none(self.grid.scales)
        if len(self.noise.rho) != self.grid.scales:
            raise ValueError(f"the clutter model has {len(self.noise.rho)} scales, the sensor {self.grid.scales}")
        self.k1, self.max_k1, self.min_ess = int(k1), int(max_k1 or k1), min_ess
        self.sigma = _schedule(DEFAULT_SIGMA if sigma is None else sigma)
        self.sigma_q = _schedule(sigma_q) if sigma_q is not None else None
        self.offset_draws, self.uniform_mix = int(offset_draws), float(uniform_mix)
        self.offset_ess, self.digit_ess = float(offset_ess), float(digit_ess)
        self.paste_observed = bool(paste_observed)
        self.channels = 1
        # Basis of the digit PCA as 28 x 28 patterns: the mean, then the components.
        self._basis = torch.cat([index.mean.view(1, -1), index.components]).view(-1, DIGIT, DIGIT)
        self._basis_filtered = prior.box_filtered(self._basis)
        self._proto_logw = torch.log(index.sizes.double() / index.sizes.sum())
        self._fft_setup()

    # ------------------------------------------------------------------ sizes
    @property
    def num_candidates(self) -> int:
        return self.prior.num_digits * self.prior.num_offsets

    def _sigma_q(self, t: int, sigma_p: float) -> float:
        return 2.0 * sigma_p if self.sigma_q is None else _sigma(self.sigma_q, t)

    # ------------------------------------------------------------------ likelihoods
    def log_likelihood(
        self,
        digit: torch.Tensor,
        offsets: torch.Tensor,
        locations: torch.Tensor,
        glimpses: torch.Tensor,
        sigma: float,
        chunk: int = 4096,
    ) -> torch.Tensor:
        """``log p(y | digit, offset)`` (M,) float64 of pairs (M,), every pooled value of every glimpse."""
        out = []
        y = glimpses.reshape(1, glimpses.shape[0], self.grid.scales, -1)
        for s in range(0, digit.shape[0], chunk):  # memory bound only: chunks of candidates, each one batch
            pred = self.prior.predict(digit[s : s + chunk], offsets[s : s + chunk], locations)
            out.append(clutter_log_likelihood(y - pred, sigma, self.noise).double().sum((-1, -2, -3)))
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)

    def _fft_setup(self) -> None:
        """Fourier transforms of the prototypes and of their squared block means (one per scale), once: the offset
        proposal is then a few transforms of the observation and one inverse transform per call."""
        grid, S = self.grid, self.prior.canvas_size
        protos = self.index.prototypes  # (P, 28, 28)
        self._pad0 = int(max(-int(v) for v in grid._offsets().flatten()) if grid.scales > 1 else 0)
        # frame: pixel p at p + pad0; block top-left a of scale j at a + pad0 + b - 1; correlations read indices up to
        # (side - 1 + pad0) + (kernel side - 1) -- no wrap-around if the frame holds both
        h, w = grid.glimpse_size
        tops = grid.footprints(grid.all_locations())  # (L, k, 2)
        b = torch.tensor([grid.scale_factor**j for j in range(grid.scales)])
        last_block = int((tops.amax(0) + (torch.tensor([h, w]) - 1) * b[:, None] + self._pad0 + b[:, None] - 1).max())
        n = max(last_block + 1, S + self._pad0, self.prior.side + self._pad0 + DIGIT + int(b[-1]))
        self._nf = next(m for m in range(n, 4 * n) if _smooth(m))
        nf = self._nf

        def rfft(x):  # (P, a, b) zero-padded to (nf, nf)
            return torch.fft.rfft2(F.pad(x, (0, nf - x.shape[-1], 0, nf - x.shape[-2])))

        self._proto_hat = rfft(protos).conj()
        self._block_hat = [rfft(Fb.square()).conj() for Fb in self.prior.box_filtered(protos)]

    def prototype_sse(self, locations: torch.Tensor, glimpses: torch.Tensor) -> torch.Tensor:
        """``||y - sensor(prototype p at offset o)||^2`` (P, side, side) for every prototype and offset, every scale of
        every glimpse: the cross term is the correlation of the prototypes with the glimpses back-projected onto the
        canvas (each pooled value spread over its block, / b^2), the quadratic term the correlation of the squared
        block means with the count of observed blocks -- all in one frequency-domain sum and one inverse FFT."""
        grid, S, nf, pad0 = self.grid, self.prior.canvas_size, self._nf, self._pad0
        h, w = grid.glimpse_size
        t = locations.shape[0]
        y = glimpses.reshape(t, grid.scales, h, w).float()
        tops = grid.footprints(locations)  # (t, k, 2)
        back = torch.zeros(nf, nf)
        total = None
        for j in range(grid.scales):  # k scales
            b = grid.scale_factor**j
            # back-projection: every in-canvas pixel of block (u, v) receives y[u, v] / b^2
            rows = tops[:, j, 0, None] + torch.arange(h * b)  # (t, h b)
            cols = tops[:, j, 1, None] + torch.arange(w * b)
            vals = (y[:, j] / (b * b)).repeat_interleave(b, 1).repeat_interleave(b, 2)  # (t, h b, w b)
            inside = ((rows >= 0) & (rows < S)).unsqueeze(-1) & ((cols >= 0) & (cols < S)).unsqueeze(-2)
            rr = (rows + pad0).unsqueeze(-1).expand_as(vals)
            cc = (cols + pad0).unsqueeze(-2).expand_as(vals)
            back.index_put_((rr[inside], cc[inside]), vals[inside], accumulate=True)
            # observed blocks: a count at each block's top-left, framed so that result index = offset + pad0
            br = (tops[:, j, 0, None] + b * torch.arange(h) + pad0 + b - 1).unsqueeze(-1).expand(t, h, w)
            bc = (tops[:, j, 1, None] + b * torch.arange(w) + pad0 + b - 1).unsqueeze(-2).expand(t, h, w)
            count = torch.zeros(nf, nf).index_put_(
                (br.reshape(-1), bc.reshape(-1)), torch.ones(t * h * w), accumulate=True
            )
            term = self._block_hat[j] * torch.fft.rfft2(count)
            total = term if total is None else total + term
        total = total - 2 * self._proto_hat * torch.fft.rfft2(back)
        out = torch.fft.irfft2(total, s=(nf, nf))[:, pad0 : pad0 + self.prior.side, pad0 : pad0 + self.prior.side]
        return out.double() + float(y.double().square().sum())

    def offset_log_proposal(self, locations: torch.Tensor, glimpses: torch.Tensor, sigma_q: float) -> torch.Tensor:
        """``log q(o)`` (O,), normalised: prototype-mixture Gaussian likelihood of every offset (all scales,
        :meth:`prototype_sse`); tempered to ESS >= offset_ess, mixed with the uniform."""
        sse = self.prototype_sse(locations, glimpses)
        P = sse.shape[0]
        ll = -sse / (2 * sigma_q**2)  # (P, side, side)
        lq = torch.logsumexp(ll.reshape(P, -1) + self._proto_logw.unsqueeze(1), 0)  # (O,)
        tau = _temper_rows(lq.unsqueeze(0), self.offset_ess)[0]
        lq = torch.log_softmax(lq / tau, 0)
        return torch.logaddexp(
            lq + math.log1p(-self.uniform_mix), torch.full_like(lq, math.log(self.uniform_mix / lq.numel()))
        )

    def digit_log_proposal(
        self, offsets: torch.Tensor, locations: torch.Tensor, glimpses: torch.Tensor, sigma_q: float
    ) -> torch.Tensor:
        """``log q(d | o)`` (U, N), normalised, for distinct ``offsets`` (U,): Gaussian likelihood of the glimpses
        under each digit's PCA reconstruction at that offset, tempered to ESS >= digit_ess."""
        U, kb = offsets.shape[0], self._basis.shape[0]
        pred = (
            self.prior.predict(
                torch.arange(kb).repeat(U), offsets.repeat_interleave(kb), locations, self._basis_filtered
            )
            .reshape(U, kb, -1)
            .double()
        )
        a, B = pred[:, 0], pred[:, 1:]  # (U, D), (U, k, D)
        r0 = glimpses.reshape(1, -1).double() - a  # (U, D)
        lin = (B @ r0.unsqueeze(-1))[..., 0]  # (U, k)
        G = B @ B.transpose(1, 2)  # (U, k, k)
        Z = self.index.codes  # (N, k)
        quad = (torch.matmul(Z.unsqueeze(0), G.float()) * Z).sum(-1).double()  # (U, N): z^T G z
        sse = r0.square().sum(1, keepdim=True) - 2 * (lin.float() @ Z.T).double() + quad  # (U, N)
        ll = -sse / (2 * sigma_q**2)
        tau = _temper_rows(ll, self.digit_ess)
        return torch.log_softmax(ll / tau.unsqueeze(1), 1)

    # ------------------------------------------------------------------ drawing
    def _draw(self, count: int, log_qo: torch.Tensor, loc, y, sigma_q, generator):
        """``count`` (digit, offset) draws from q(o) q(d | o): digits, offsets, log q of each draw."""
        per = max(1, -(-count // self.offset_draws))
        oc = residual_resample(log_qo.exp(), self.offset_draws, generator)
        offs = torch.nonzero(oc).flatten()
        reps = oc[offs] * per  # digit draws at each distinct offset
        log_qd = self.digit_log_proposal(offs, loc, y, sigma_q)  # (U, N)
        if self.excluded is not None:  # the design image's own digits (no oracle): q(d | o) = 0
            log_qd = torch.log_softmax(log_qd.index_fill(1, self.excluded, -math.inf), 1)
        idx = torch.multinomial(log_qd.exp().float(), int(reps.max()), replacement=True, generator=generator)
        keep = torch.arange(idx.shape[1]).unsqueeze(0) < reps.unsqueeze(1)  # (U, max reps)
        u = torch.arange(len(offs)).unsqueeze(1).expand_as(idx)[keep]
        digit = idx[keep]
        return digit, offs[u], log_qo[offs[u]] + log_qd[u, digit]

    excludable_name = "pool digits"

    def num_excludable(self) -> int:
        """The pool digits :meth:`excluding` may leave out (those a design image is made of)."""
        return self.prior.num_digits

    def _enumerated_pairs(self):
        """Every candidate pair (less excluded digits) with a uniform q: the exact posterior when k1 covers them."""
        pairs = torch.arange(self.num_candidates)
        if self.excluded is not None:
            pairs = pairs[~torch.isin(pairs // self.prior.num_offsets, self.excluded)]
        counts = torch.ones(len(pairs), dtype=torch.float64)
        log_q = torch.full((len(pairs),), -math.log(len(pairs)), dtype=torch.float64)
        return pairs, counts, log_q, len(pairs)

    def _importance_pairs(self, loc, y, sigma_p, sigma_q, generator):
        """Adaptive rounds of k1 draws from q until the ESS target or the cap: the distinct pairs, their counts,
        log q, log p (None when not yet scored), the draws, the rounds and the ESS of q(o)."""
        num_offsets = self.prior.num_offsets
        log_qo = self.offset_log_proposal(loc, y, sigma_q)
        offset_ess = ess(log_qo)
        parts_d, parts_o, parts_q = [], [], []
        draws, rounds = 0, 0
        while True:
            d, o, q = self._draw(self.k1, log_qo, loc, y, sigma_q, generator)
            parts_d.append(d), parts_o.append(o), parts_q.append(q)
            draws += len(d)
            rounds += 1
            key = torch.cat(parts_d) * num_offsets + torch.cat(parts_o)
            pairs, inverse, cnt = torch.unique(key, return_inverse=True, return_counts=True)
            log_q = torch.zeros(len(pairs), dtype=torch.float64).scatter_(0, inverse, torch.cat(parts_q))
            counts = cnt.double()
            if self.min_ess is None or draws + self.k1 > self.max_k1:
                log_p = None
                break
            log_p = self.log_likelihood(pairs // num_offsets, pairs % num_offsets, loc, y, sigma_p)
            if ess(log_p - log_q + counts.log()) >= self.min_ess:
                break
        return pairs, counts, log_q, log_p, draws, rounds, offset_ess

    def _weight_summary(self, mode, log_p, log_q, counts, draws, t, sigma_p):
        """Per-pair log weights of all draws (checked finite), the pair and draw ESS and the log evidence."""
        log_wc = log_p - log_q + counts.log()  # all draws of each distinct pair (the uniform prior cancels)
        if not bool(torch.isfinite(log_wc).any()) or bool(torch.isnan(log_wc).any()):
            raise ValueError(
                f"the generative prior's importance weights are not finite for these {t} glimpse(s) "
                f"(sigma {sigma_p * 255:.3g}/255): the observation has no finite likelihood under any "
                "candidate; check the glimpses and the noise schedule"
            )
        log_w_draw = log_p - log_q
        final_ess = ess(log_wc)
        draw_ess = float(torch.exp(2 * torch.logsumexp(log_wc, 0) - torch.logsumexp(2 * log_w_draw + counts.log(), 0)))
        log_evidence = (
            float(torch.logsumexp(log_wc, 0) - math.log(draws) - math.log(self.num_candidates))
            if mode == "importance"
            else float(torch.logsumexp(log_p, 0) - math.log(self.num_candidates))
        )
        return log_wc, final_ess, draw_ess, log_evidence

    def _select(self, log_wc, n: int, generator):
        """At most ``n`` pairs by residual resampling of the weights (all when fewer): indices and weights."""
        w = torch.softmax(log_wc, 0)
        sel = torch.arange(len(log_wc))
        if len(log_wc) > n:
            keep = residual_resample(w, n, generator)
            sel = torch.nonzero(keep).flatten()
            w = keep[sel].double() / n
        return sel, (w / w.sum()).float()

    def _render(self, d_sel, o_sel, loc, y, generator):
        """Canvases of the selected pairs with clutter, the observed foveae pasted in when paste_observed."""
        prior = self.prior
        images = prior.add_clutter(prior.render(prior.digits[d_sel], o_sel), d_sel, generator)
        if self.paste_observed:
            fovea = self.grid.with_scales(1)  # the full-resolution patches alone
            seen = fovea.mask(loc.view(1, -1)).bool()  # (1, 1, H, W): pixels some fovea saw
            truth = fovea.paste(y[:, :1].unsqueeze(0), loc.view(1, -1))  # (1, 1, H, W) the observed foveae
            images = torch.where(seen, truth, images)
        return images

    def _sample(self, loc, y, n, generator, true_image) -> CompletionSamples:
        """Up to ``n`` distinct weighted (digit, offset) completions given the glimpses (the prior when t = 0).

        ``diagnostics``: ``t``, ``mode`` ("prior", "enumerate" or "importance"), ``ess`` (1 / sum W^2 over distinct
        pairs), ``draw_ess``, ``draws`` (k1 used, after adaptive growth), ``rounds``, ``unique_pairs``,
        ``offset_ess`` (of q(o)), ``sigma_p`` / ``sigma_q`` (0..255), ``log_evidence``, ``digit`` / ``offset`` of the
        returned samples, ``candidates`` (every distinct pair scored: digit, offset, counts, log_q, log_p) and
        ``seconds``.  ``true_image`` is not used."""
        t0 = time.perf_counter()
        loc, y = loc.cpu(), y.cpu()
        t = loc.shape[0]
        prior = self.prior
        if t == 0:
            images, labels, digit, offs = prior.sample(n, generator)
            diagnostics = {"t": 0, "mode": "prior", "ess": float(n), "digit": digit, "offset": offs}
            return CompletionSamples(
                images, torch.full((n,), 1.0 / n), labels, {**diagnostics, "seconds": time.perf_counter() - t0}
            )
        sigma_p = _sigma(self.sigma, t)
        sigma_q = self._sigma_q(t, sigma_p)
        mode, pairs, counts, log_q, log_p, draws, rounds, offset_ess = self._candidates(
            loc, y, sigma_p, sigma_q, generator
        )
        digit, offs = pairs // prior.num_offsets, pairs % prior.num_offsets
        if log_p is None:
            log_p = self.log_likelihood(digit, offs, loc, y, sigma_p)
        log_wc, final_ess, draw_ess, log_evidence = self._weight_summary(mode, log_p, log_q, counts, draws, t, sigma_p)
        candidates = {"digit": digit, "offset": offs, "counts": counts, "log_q": log_q, "log_p": log_p}
        sel, w = self._select(log_wc, n, generator)
        d_sel, o_sel = digit[sel], offs[sel]
        images = self._render(d_sel, o_sel, loc, y, generator)
        diagnostics = dict(t=t, mode=mode, ess=final_ess, draw_ess=draw_ess, draws=int(draws), rounds=rounds)
        diagnostics.update(
            unique_pairs=int(len(pairs)),
            offset_ess=offset_ess,
            sigma_p=sigma_p * 255.0,
            sigma_q=sigma_q * 255.0,
            log_evidence=log_evidence,
        )
        scored = {"labels": prior.labels[digit], "weights": torch.softmax(log_wc, 0)}
        diagnostics.update(digit=d_sel, offset=o_sel, candidates=candidates, scored=scored)
        diagnostics["seconds"] = time.perf_counter() - t0
        return CompletionSamples(images.clamp_(0, 1), w, prior.labels[d_sel], diagnostics)

    def _candidates(self, loc, y, sigma_p, sigma_q, generator):
        """The distinct (digit, offset) pairs scored: every pair when there are at most ``k1`` (the exact posterior),
        else the importance draws.  ``(mode, pairs, counts, log_q, log_p or None, draws, rounds, offset_ess)``."""
        if self.num_candidates <= self.k1:
            pairs, counts, log_q, draws = self._enumerated_pairs()
            return "enumerate", pairs, counts, log_q, None, draws, 0, None
        return ("importance", *self._importance_pairs(loc, y, sigma_p, sigma_q, generator))
