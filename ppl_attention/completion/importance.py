"""The paper's stochastic image completion: importance sampling over a PCA-indexed image database.

Inference in the glimpse model with the empirical prior ``I ~ Uniform(database rows)`` and the relaxed
likelihood ``p(y_1:t | I, l_1:t) = prod_j N(y_j | patch(I, l_j), sigma_p^2)`` (Algorithm 2, appendix A.3):

1. proposal ``q(i) ∝ prod_j N(y_j | mu_j + W_j^T z_i, sigma_q^2)`` over ALL N rows, from the PCA codes
   (:mod:`.pca_index` explains the one-matmul form), optionally scored against the PCA reconstruction of the
   true image's glimpses (``yhat = mu_j + W_j^T W (I - mu)``, which the paper found better), optionally
   tempered so that its ESS is a target fraction of K1 (the paper's CUB setting);
2. K1 draws from q by residual resampling, the K1 images loaded from the memmap;
3. exact likelihoods on those images, weights ``w2 = p(y | I_i) / q(i)`` (self-normalised);
4. up to K2 unique weighted samples (duplicates' weights aggregated).

With a multi-scale sensor (Mnih's retina) the exact stage scores exactly what the sensor returned: every scale's
pooled values, each with noise ``sigma_p`` (:mod:`ppl_attention.model`).  The proposal scores the fovea (scale 0,
full-resolution pixels) alone against the PCA codes -- the PCA index stores per-position energies of
full-resolution patches -- so ``q`` is broader than the posterior but remains a valid proposal: the weights
``p / q`` correct for what it leaves out (the coarse scales), at the price of a lower ESS.

Optional shift marginalisation (the paper's CelebA setting): each glimpse's likelihood is the mean over a
window of positions centred on the observed one, ``(1/|S|) sum_s N(y_j | patch(I, l_j + s), sigma^2)``
(positions outside the image dropped), and the glimpses multiply -- the same in the proposal and the exact
stage.  Everything is computed in log space.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Callable, Optional, TYPE_CHECKING

import numpy as np
import torch

from ..artifacts import ArtifactError, read_manifest
from ..sensor import Sensor, check_sensor
from ..model import NoiseSchedule
from ..runtime import resolve_device
from .base import DEFAULT_K1, Completion, CompletionSamples, check_observations, check_true_image
from .database import ImageDatabase
from .pca_index import PCAIndex, pixel_grid, shift_positions

if TYPE_CHECKING:
    import os
    from typing import Sequence

__all__ = [
    "ImportanceCompletion",
    "residual_resample",
    "ess",
    "temper_to_ess",
    "default_mnist_schedule",
    "open_prior",
    "PRIOR_KIND",
    "MNIST_SIGMA_SCALE",
]

log = logging.getLogger(__name__)

PRIOR_KIND = "prior"


#: Scale of the default MNIST noise schedule, ``MNIST_SIGMA_SCALE * sqrt(t)`` on 0..255 pixels.
MNIST_SIGMA_SCALE = 192.0


def default_mnist_schedule() -> NoiseSchedule:
    """Noise std (0..255 pixels) after t glimpses for 60 x 60 MNIST canvases: ``192 * sqrt(t)``.

    MNIST glimpses are nearly binary 12 x 12 patches, so the Gaussian posterior over database rows is very
    peaked.  Growing sigma as sqrt(t) holds the total precision t / sigma_t^2 constant, so the posterior does
    not collapse onto one row as glimpses accumulate (the paper's CelebA schedule 5 * 2^(t-1) grows for the same
    reason; a constant sigma collapses the ESS within a few glimpses).  A smaller scale brings the samples closer
    to their glimpses and raises the weight of the true label, but leaves fewer effective samples, and the EPE -- a
    weighted average over the completions -- needs several; 192 keeps a median ESS in the tens.  Smaller scales
    stay an option (``generate --sigma``).  docs/figures/completion/sigma_sweep.md has the sweep behind the choice.
    """
    return NoiseSchedule(tuple(round(MNIST_SIGMA_SCALE * math.sqrt(t), 1) for t in range(1, 6)), 255.0)


def _schedule(value) -> NoiseSchedule | Callable[[int], float]:
    if value is None:
        return default_mnist_schedule()
    if isinstance(value, NoiseSchedule):
        return value
    if isinstance(value, (int, float)):
        return NoiseSchedule.constant(float(value))
    if callable(value):
        return value
    return NoiseSchedule(tuple(float(v) for v in value))


def _sigma(schedule, t: int) -> float:
    """Noise std in image units ([0, 1] pixels) after t glimpses."""
    s = schedule.sigma(t) if isinstance(schedule, NoiseSchedule) else float(schedule(t)) / 255.0
    if not (s > 0 and math.isfinite(s)):
        raise ValueError(f"the noise schedule gave sigma={s!r} for t={t}; expected a positive number")
    return s


def ess(log_weights: torch.Tensor) -> float:
    """Effective sample size ``(sum w)^2 / sum w^2`` of unnormalised log weights."""
    lw = log_weights.double()
    return float(torch.exp(2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0)))


def temper_to_ess(log_lik: torch.Tensor, target: float, tol: float = 0.1, iters: int = 40) -> float:
    """Temperature ``tau`` such that ``softmax(log_lik / tau)`` has ESS within ``target * (1 ± tol)``.

    Bisection on ``log tau`` (ESS grows as the distribution flattens); ``tau > 1`` flattens, ``< 1`` sharpens.
    """
    if not target > 0:
        raise ValueError(f"target ESS must be positive, got {target}")
    n = log_lik.numel()
    target = min(target, n * (1 - 1e-6))
    lo, hi = -20.0, 30.0
    mid = 0.0
    for _ in range(iters):
        e = ess(log_lik / math.exp(mid))
        if abs(e - target) <= tol * target:
            break
        if e < target:
            lo = mid
        else:
            hi = mid
        mid = 0.5 * (lo + hi)
    return math.exp(mid)


def residual_resample(probs: torch.Tensor, k: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Counts ``(N,)`` of ``k`` draws from ``probs`` by residual resampling (lower variance than multinomial).

    Each category gets ``floor(k p_i)`` draws deterministically and the rest are multinomial on the residuals.
    Written here because Pyro has only a private systematic resampler that takes no generator.
    """
    p = probs.double()
    p = p / p.sum()
    expected = p * k
    counts = (expected + 1e-6).floor()  # +1e-6: float32 probabilities make 0.5 * 10 come out as 4.9999999
    rest = int(round(k - counts.sum().item()))
    if rest < 0:
        counts = expected.floor()
        rest = int(round(k - counts.sum().item()))
    if rest > 0:
        resid = (expected - counts).clamp_(min=0)
        if float(resid.sum()) <= 0:
            resid = p
        extra = torch.multinomial(
            resid.float() if resid.numel() < 2**24 else resid, rest, replacement=True, generator=generator
        )
        counts.index_add_(0, extra, torch.ones(rest, dtype=counts.dtype))
    return counts.long()


def open_prior(directory: str | os.PathLike) -> tuple[ImageDatabase, PCAIndex]:
    """Open a prior directory (kind "prior": ``database/`` + ``pca/``) built by :func:`build_prior`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"prior directory {directory} does not exist")
    manifest = read_manifest(directory, PRIOR_KIND)
    database = ImageDatabase(directory / "database")
    index = PCAIndex(directory / "pca", database)
    inputs = manifest.get("inputs", {})
    if inputs.get("database") != database.checksum or inputs.get("index") != index.checksum:
        raise ArtifactError(f"prior {directory}: its manifest does not match the database / index it holds")
    return database, index


class ImportanceCompletion(Completion):
    """Algorithm 2 of the paper over a database + PCA index.

    Devices: the index and the bookkeeping stay on the CPU; the proposal's chunked distance matmuls and the exact
    likelihoods of the K1 loaded images run on ``device``.  :meth:`sample` takes observations on any device, moves
    them to the CPU, and returns CPU tensors (the caller moves the completions to its network's device).

    Args:
        database, index: the prior (see :func:`open_prior` / :meth:`from_prior`).
        grid: the glimpse grid (default: the index's).
        k1: proposal draws loaded and scored exactly.
        sigma: exact-stage noise schedule (``NoiseSchedule``, list of 0..255 stds per t, a constant, or a
            callable t -> std in 0..255); default :func:`default_mnist_schedule`.
        sigma_q: proposal noise schedule (default: ``sigma``, the paper's CelebA choice).
        target_ess: if set, temper the proposal so its ESS is ``target_ess * k1`` (the paper's CUB choice).
        shift: marginalise each glimpse over positions shifted by up to this many pixels (<= index shift).
        use_true_image: score the proposal against the true image's PCA reconstruction when it is given.
        chunk_size: database rows per proposal chunk (bounds memory).
    """

    def __init__(
        self,
        database: ImageDatabase,
        index: PCAIndex,
        grid: Sensor | None = None,
        k1: int = DEFAULT_K1,
        sigma: float | Sequence[float] | NoiseSchedule | Callable[[int], float] | None = None,
        sigma_q: float | Sequence[float] | NoiseSchedule | Callable[[int], float] | None = None,
        target_ess: float | None = None,
        shift: int = 0,
        use_true_image: bool = True,
        chunk_size: int = 1 << 17,
        device: str | torch.device = "cpu",
    ) -> None:
        if not isinstance(database, ImageDatabase):
            raise ValueError(f"`database` must be an ImageDatabase, got {type(database).__name__}")
        if not isinstance(index, PCAIndex):
            raise ValueError(f"`index` must be a PCAIndex, got {type(index).__name__}")
        if index.database.checksum != database.checksum:
            raise ArtifactError("index was built for another database (checksums differ)")
        self.grid = grid or index.grid
        if tuple(self.grid.image_size) != tuple(database.image_shape[1:]):
            raise ValueError(
                f"grid is for {self.grid.image_size} images, the database holds {tuple(database.image_shape[1:])}"
            )
        if tuple(self.grid.glimpse_size) != tuple(index.grid.glimpse_size):
            raise ValueError(
                f"grid has {self.grid.glimpse_size} glimpses, the index was built for {index.grid.glimpse_size}"
            )
        check_sensor(index.grid, self.grid, f"the prior's PCA index {index.directory}", "the completion's sensor")
        if not isinstance(k1, (int, np.integer)) or k1 <= 0:
            raise ValueError(f"`k1` must be a positive int, got {k1!r}")
        if not isinstance(shift, (int, np.integer)) or not 0 <= shift <= index.shift:
            raise ValueError(f"`shift` must be an int in [0, {index.shift}] (the index's shift), got {shift!r}")
        if target_ess is not None and not 0 < target_ess <= 1:
            raise ValueError(f"`target_ess` must be a fraction of k1 in (0, 1], got {target_ess!r}")
        self.database, self.index = database, index
        self.k1, self.shift, self.target_ess = int(k1), int(shift), target_ess
        self.sigma = _schedule(sigma)
        self.sigma_q = self.sigma if sigma_q is None else _schedule(sigma_q)
        self.use_true_image = use_true_image
        self.chunk_size = int(chunk_size)
        self.device = resolve_device(device)
        self.channels = database.image_shape[0]
        self._pixel_grid = pixel_grid(self.grid)  # one scale: pixel ids of full-resolution foveae
        # The same stride-1 positions seen through the task's retina (the exact stage's observations).
        self._shift_sensor = self._pixel_grid.with_scales(self.grid.scales, self.grid.scale_factor)
        # Positions of every grid location must be in the index (checked once here).
        pos, valid = shift_positions(self.grid, self.grid.all_locations(), self.shift)
        index.energy_rows(pos[valid])
        H, W = self.grid.image_size
        self._pixel_ids = torch.arange(self.channels * H * W).view(1, self.channels, H, W)

    @classmethod
    def from_prior(cls, directory: str | os.PathLike, **kw) -> "ImportanceCompletion":
        database, index = open_prior(directory)
        return cls(database, index, **kw)

    # ------------------------------------------------------------------ pieces
    def _positions(self, locations: torch.Tensor):
        pos, valid = shift_positions(self.grid, locations, self.shift)  # (t, S)
        return pos, valid

    def _patch_pixels(self, pos: torch.Tensor) -> torch.Tensor:
        """Flat pixel indices ``(t, S, C*h*w)`` of stride-1 positions (through the sensor)."""
        t, S = pos.shape
        idx = self._pixel_grid.crop(self._pixel_ids, pos.reshape(1, -1))  # (1, t*S, C, h, w)
        return idx.reshape(t, S, -1)

    def _proposal_observation(self, locations, glimpses, true_image):
        """The foveae (t, C, h, w) the proposal scores: the observed ones, or the true image's PCA reconstruction."""
        if true_image is None or not self.use_true_image:
            return glimpses[:, : self.channels]  # scale 0: full-resolution pixels
        recon = self.index.reconstruct(self.index.encode(true_image.unsqueeze(0)))
        return self.grid.crop(recon, locations.unsqueeze(0))[0]

    def proposal_log_likelihood(
        self,
        locations: torch.Tensor | Sequence[int],
        glimpses: torch.Tensor,
        sigma_q: float,
        true_image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``log q~(i)`` for every row (N,), float64 (up to a constant): the PCA-reconstruction Gaussian
        likelihood of the observed foveae, shift-marginalised like the exact stage."""
        loc, y = check_observations(self.grid, locations, glimpses, self.channels)
        if true_image is not None:
            true_image = check_true_image(self.grid, true_image, self.channels)
        y = self._proposal_observation(loc, y, true_image)
        pos, valid = self._positions(loc)
        t, S = pos.shape
        pix = self._patch_pixels(pos)  # (t, S, D)
        d = y.reshape(t, 1, -1) - self.index.mean[pix]  # (t, S, D): observation minus the PCA mean
        # W_p d for every (glimpse, shift): (t*S, k).
        B = torch.einsum("ktsd,tsd->tsk", self.index.components[:, pix], d).reshape(t * S, -1)
        const = d.square().sum(-1).reshape(-1)  # (t*S,)
        erows = self.index.energy_rows(pos.clamp(min=0).reshape(-1)).numpy()
        B = B.to(self.device)
        const = const.to(self.device)
        mask = torch.where(valid.reshape(-1), 0.0, -math.inf).to(self.device)
        log_s = torch.log(valid.sum(1).double()).to(self.device)
        inv = 1.0 / (2 * sigma_q**2)
        out = torch.empty(len(self.index), dtype=torch.float64)
        N = len(self.index)
        for start in range(0, N, self.chunk_size):
            stop = min(start + self.chunk_size, N)
            z = self.index.codes_chunk(start, stop, self.device)  # (M, k)
            e = torch.from_numpy(np.ascontiguousarray(self.index.energies[erows, start:stop])).to(self.device)
            dist = torch.addmm(const.unsqueeze(1) + e, B, z.T, alpha=-2.0)  # (t*S, M) squared distances
            if S == 1:  # no shifts: the glimpses' log-likelihoods just add (one pass over the chunk)
                out[start:stop] = dist.sum(0).mul_(-inv).cpu()
                continue
            ll = (-inv * dist + mask.unsqueeze(1)).reshape(t, S, -1)
            ll = torch.logsumexp(ll, 1).double() - log_s.unsqueeze(1)  # mean over the centred shift window
            out[start:stop] = ll.sum(0).cpu()
        return out

    def exact_log_likelihood(
        self, images: torch.Tensor, locations: torch.Tensor | Sequence[int], glimpses: torch.Tensor, sigma_p: float
    ) -> torch.Tensor:
        """``log p(y_1:t | I)`` (K,) of float images (K, C, H, W), normalising constants included; every scale of
        every glimpse is scored."""
        loc, y = check_observations(self.grid, locations, glimpses, self.channels)
        pos, valid = self._positions(loc)
        t, S = pos.shape
        K = images.shape[0]
        patches = self._shift_sensor.extract(images, pos.reshape(1, -1).to(images.device))  # (K, t*S, k*C, h, w)
        dist = (patches.reshape(K, t, S, -1) - y.to(images.device).reshape(1, t, 1, -1)).square().sum(-1)
        D = y[0].numel()
        ll = -dist.double() / (2 * sigma_p**2) - 0.5 * D * math.log(2 * math.pi * sigma_p**2)
        ll = ll.masked_fill(~valid.to(images.device), -math.inf)
        ll = torch.logsumexp(ll, 2) - torch.log(valid.sum(1).double()).to(images.device)
        return ll.sum(1).cpu()

    excludable_name = "database rows"

    def num_excludable(self) -> int:
        """The database rows :meth:`excluding` may leave out (a design image's own rows and duplicates)."""
        return len(self.database)

    # ------------------------------------------------------------------ sample
    def _prior_sample(self, n: int, generator, t0: float) -> CompletionSamples:
        """With nothing observed: ``n`` distinct rows uniformly (all of them when ``n`` >= N), equally weighted."""
        N = len(self.database)
        rows = torch.arange(N) if n >= N else torch.randperm(N, generator=generator)[:n]
        rows = rows.sort().values
        weights = torch.full((len(rows),), 1.0 / len(rows))
        return CompletionSamples(
            self.database.get(rows),
            weights,
            self.database.get_labels(rows),
            {"t": 0, "rows": rows, "ess": float(len(rows)), "seconds": time.perf_counter() - t0},
        )

    def _log_proposal(self, loc, y, sigma_q: float, true_image):
        """Normalised ``log q`` over all N rows (tempered to the target ESS, excluded rows at zero) and the
        temperature."""
        log_q = self.proposal_log_likelihood(loc, y, sigma_q, true_image)
        tau = 1.0
        if self.target_ess is not None:
            tau = temper_to_ess(log_q, self.target_ess * self.k1)
            log_q = log_q / tau
        if self.excluded is not None:  # the design image's own rows and duplicates (no oracle): q = 0
            log_q = log_q.index_fill(0, self.excluded, -math.inf)
        return log_q - torch.logsumexp(log_q, 0), tau

    def _sample(self, loc, y, n, generator, true_image) -> CompletionSamples:
        """Up to ``n`` unique weighted database images given the glimpses (the prior when ``t = 0``).

        ``diagnostics``: ``rows`` (database rows returned), ``proposal_ess`` (of q over all N rows), ``ess``
        (1 / sum of squared posterior weights over unique rows), ``draw_ess`` (of the K1 weighted draws),
        ``unique_draws``, ``sigma_p`` / ``sigma_q`` (0..255; sigma_q after tempering), ``temperature``,
        ``log_evidence`` (estimate of log p(y_1:t)), ``scored`` (the labels and normalised weights of every unique
        row drawn, before the ``n`` are resampled), ``proposal_seconds``, ``seconds``.
        """
        t0 = time.perf_counter()
        loc, y = loc.cpu(), y.cpu()
        true_image = None if true_image is None else true_image.cpu()
        N = len(self.database)
        t = loc.shape[0]
        if t == 0:  # the prior: uniform over the database
            return self._prior_sample(n, generator, t0)
        sigma_p, sigma_q = _sigma(self.sigma, t), _sigma(self.sigma_q, t)
        # 1. Proposal over all N rows.
        log_q, tau = self._log_proposal(loc, y, sigma_q, true_image)
        proposal_ess = ess(log_q)
        t1 = time.perf_counter()
        # 2. K1 draws by residual resampling; unique rows and their counts.
        counts = residual_resample(log_q.exp(), self.k1, generator)
        rows = torch.nonzero(counts).flatten()
        c = counts[rows].double()
        # 3. Exact likelihoods of the loaded images; w2 = p / q per draw, aggregated per unique row.
        images = self.database.get(rows, self.device)
        log_p = self.exact_log_likelihood(images, loc, y, sigma_p)
        log_w = log_p - log_q[rows]  # per draw
        log_wc = log_w + c.log()  # per unique row: all its draws
        # ESS of the K1 weighted draws, and of the posterior over unique rows (1 / sum W_u^2: how many distinct
        # images effectively carry the weight -- the figure that matters when draws repeat).
        draw_ess = float(torch.exp(2 * torch.logsumexp(log_wc, 0) - torch.logsumexp(2 * log_w + c.log(), 0)))
        final_ess = ess(log_wc)
        # Evidence p(y) = E_q[p(y|I) (1/N) / q(I)], estimated from the K1 draws.
        log_evidence = float(torch.logsumexp(log_wc, 0) - math.log(self.k1) - math.log(N))
        # 4. At most n unique samples: keep all if few enough, else residual-resample n and aggregate.
        scored = {"labels": self.database.get_labels(rows), "weights": torch.softmax(log_wc, 0)}
        rows, images, w = _at_most(n, rows, images, scored["weights"], generator)
        diagnostics = dict(t=t, rows=rows, proposal_ess=proposal_ess, ess=final_ess, draw_ess=draw_ess, scored=scored)
        diagnostics.update(
            unique_draws=int((counts > 0).sum()),
            sigma_p=sigma_p * 255.0,
            sigma_q=sigma_q * 255.0 * math.sqrt(tau),
            temperature=tau,
        )
        diagnostics.update(log_evidence=log_evidence, proposal_seconds=t1 - t0, seconds=time.perf_counter() - t0)
        return CompletionSamples(images.cpu(), w, self.database.get_labels(rows), diagnostics)


def _at_most(
    n: int, rows: torch.Tensor, images: torch.Tensor, w: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """At most ``n`` unique weighted samples: all of them when few enough, else ``n`` residual-resampled draws
    aggregated per row; weights normalised (float32)."""
    if len(rows) > n:
        keep = residual_resample(w, n, generator)
        sel = torch.nonzero(keep).flatten()
        rows, images, w = rows[sel], images[sel], keep[sel].double() / n
    return rows, images, (w / w.sum()).float()
