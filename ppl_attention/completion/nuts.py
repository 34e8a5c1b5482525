"""NUTS in a VAE's latent space: the paper's "HMC in a deep generative model" (appendix A.3.2).

The model is ``z ~ N(0, I)``, ``y ~ p(y | glimpse(decoder(z), l), sigma_t)`` for the observed glimpses: every
pooled value of every scale of the sensor, with the same observation model as the importance samplers, so that
the samplers and the design share one noise model:

- the noise std ``sigma_t`` follows a :class:`~ppl_attention.model.NoiseSchedule` over the number of glimpses t
  (0..255 pixels; default the MNIST dataset schedule ``192 sqrt(t)`` of :mod:`.importance`), or is a fixed
  ``NUTSConfig.sigma`` (pixels in [0, 1]) when one is given;
- each value is Gaussian, or the Gaussian-plus-clutter mixture of :func:`.clutter_noise.clutter_log_likelihood` when
  a :class:`~.clutter_noise.ClutterNoise` is given (cluttered canvases; the VAE draws no clutter).

:meth:`NUTSCompletion.matching` copies both from an importance sampler.  The decoder is frozen; Pyro's NUTS samples
``z`` in ``num_chains`` chains, chain 0 started at the encoder's guess from the masked image and the others at
draws of the prior (dispersed starts, so that R-hat can see chains that do not mix).  Two ways to run the chains:

- ``"sequential"`` (default): C independent Pyro MCMC runs, one after the other (C times the cost on one core).
- ``"vectorized"``: ONE NUTS over the product space of the chains, ``z`` of shape (chains, d) with the potential
  ``sum_c U(z_c)``: one batched decoder call per leapfrog step for all chains.  Its target is the product of the
  posteriors, so each chain's marginal is the posterior, but the chains share the step size, the mass-matrix
  adaptation and the trajectory (they are not independent Markov chains: R-hat across them checks mixing from
  dispersed starts).  Pyro's own ``MCMC(num_chains=C)`` runs chains in processes or one after the other, never
  batched, hence this.  It takes less time than sequential chains, but the shared step size is the stiffest
  chain's and the chains mix worse (higher R-hat): not the default.

R-hat (``pyro.ops.stats.split_gelman_rubin``) and ESS (``pyro.ops.stats.effective_sample_size``) per latent
dimension over the (chains, draws) samples go into the completion's diagnostics.  Samples are equally weighted,
thinned evenly within each chain, and taken from every chain in turn.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass

from ..config import setting
from typing import Optional, TYPE_CHECKING

import torch

from ..checks import check_int
from ..sensor import Sensor
from .base import Completion, CompletionSamples, check_observations
from .vae import VAE

if TYPE_CHECKING:
    from typing import Callable, Sequence
    from ..model import NoiseSchedule
    from .clutter_noise import ClutterNoise

__all__ = ["NUTSConfig", "NUTSCompletion", "chain_diagnostics"]

log = logging.getLogger(__name__)

CHAIN_METHODS = ("vectorized", "sequential")


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device):
    """Run on one CPU thread: a leapfrog step is a few tiny ops, where intra-op threads only add
    synchronisation."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class NUTSConfig:
    """Settings of the latent-space NUTS sampler."""

    sigma: Optional[float] = setting(
        None, "fixed std of the glimpse likelihood (pixels in [0,1]); default: the noise schedule sigma_t"
    )
    num_chains: int = setting(4, "NUTS chains per completion (R-hat needs >= 2)")
    chain_method: str = setting(
        "sequential",
        "'sequential': independent Pyro MCMC runs; 'vectorized': one NUTS over the chains' product space "
        "(one batched decoder call per step, ~2.5x faster, mixes worse)",
        choices=list(CHAIN_METHODS),
    )
    warmup_steps: int = setting(200, "NUTS warm-up (adaptation) iterations")
    num_samples: int = setting(200, "NUTS draws kept per chain (thinned to n in all)")
    max_tree_depth: int = setting(5, "NUTS maximum tree depth")
    target_accept_prob: float = setting(0.8, "NUTS target acceptance probability")
    init_from_encoder: bool = setting(
        True, "start chain 0 at the encoder's guess of z (the others at prior draws); else all at prior draws"
    )

    def __post_init__(self):
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"`sigma` must be positive (or None for the noise schedule), got {self.sigma}")
        if self.warmup_steps < 0 or self.num_samples <= 0 or self.max_tree_depth <= 0:
            raise ValueError(f"`warmup_steps` must be >= 0, num_samples and max_tree_depth positive, got {self}")
        check_int("num_chains", self.num_chains)
        if self.chain_method not in CHAIN_METHODS:
            raise ValueError(f"`chain_method` must be one of {list(CHAIN_METHODS)}, got {self.chain_method!r}")


def chain_diagnostics(samples: torch.Tensor) -> dict:
    """R-hat and ESS of ``samples`` (chains, draws, d) per dimension, from Pyro's diagnostics
    (split Gelman-Rubin, and the ESS of all chains together); ``r_hat`` is None for one chain of < 4 draws."""
    from pyro.ops.stats import effective_sample_size, split_gelman_rubin

    x = samples.detach().double().cpu()
    if x.dim() != 3:
        raise ValueError(f"`samples` must have shape (chains, draws, d), got {tuple(x.shape)}")
    ess = effective_sample_size(x, chain_dim=0, sample_dim=1)
    out = {"ess": [float(v) for v in ess], "ess_min": float(ess.min()), "ess_mean": float(ess.mean())}
    if x.shape[1] >= 4:  # split R-hat halves each chain
        r_hat = split_gelman_rubin(x, chain_dim=0, sample_dim=1)
        out.update(r_hat=[float(v) for v in r_hat], r_hat_max=float(r_hat.max()))
    else:
        out.update(r_hat=None, r_hat_max=None)
    return out


def _noise_schedule(sigma):
    from .importance import _schedule

    return _schedule(sigma)


class NUTSCompletion(Completion):
    """Completion by NUTS over the latent ``z`` of a frozen :class:`~.vae.VAE`.

    Args:
        vae, grid, cfg: the VAE, the sensor, the sampler's settings.
        sigma: the noise schedule (``NoiseSchedule``, 0..255 stds per t, a constant or a callable t -> std in
            0..255; default the MNIST dataset schedule); ignored when ``cfg.sigma`` is set.
        noise: a :class:`~.clutter_noise.ClutterNoise` for the clutter-mixture likelihood (None: Gaussian).
    """

    def __init__(
        self,
        vae: VAE,
        grid: Sensor,
        cfg: NUTSConfig = NUTSConfig(),
        sigma: float | Sequence[float] | NoiseSchedule | Callable[[int], float] | None = None,
        noise: ClutterNoise | None = None,
    ) -> None:
        if tuple(vae.image_size) != tuple(grid.image_size):
            raise ValueError(f"vae was trained on {vae.image_size} images but the grid has {grid.image_size}")
        if noise is not None and len(noise.rho) != grid.scales:
            raise ValueError(f"noise has {len(noise.rho)} scales, the sensor {grid.scales}")
        if noise is not None and vae.channels != 1:
            raise ValueError("the clutter likelihood is defined for one-channel images")
        self.vae, self.grid, self.cfg = vae.eval(), grid, cfg
        self.channels = vae.channels
        self.schedule = _noise_schedule(sigma)
        self.noise = noise if noise is not None and any(noise.rho) else None
        for p in self.vae.parameters():
            p.requires_grad_(False)

    @classmethod
    def matching(cls, vae: VAE, sampler: Completion, cfg: NUTSConfig = NUTSConfig()) -> "NUTSCompletion":
        """NUTS with the observation model of an importance ``sampler`` (its noise schedule, and its clutter
        model when it has one): one noise model for the samplers being compared."""
        return cls(vae, sampler.grid, cfg, sigma=sampler.sigma, noise=getattr(sampler, "noise", None))

    def sigma_at(self, t: int) -> float:
        """The likelihood's std (pixels in [0, 1]) after ``t`` glimpses."""
        from .importance import _sigma

        return float(self.cfg.sigma) if self.cfg.sigma is not None else _sigma(self.schedule, max(int(t), 1))

    def log_joint(self, z: torch.Tensor, locations: torch.Tensor, glimpses: torch.Tensor) -> torch.Tensor:
        """``log N(z; 0, I) + log p(y | glimpse(decode(z), l), sigma_t)`` for ``z`` (B, d) -> (B,); every scale of
        the sensor's glimpses is observed."""
        d = self.vae.latent_dim
        out = -0.5 * (z**2).sum(-1) - 0.5 * d * math.log(2 * math.pi)
        if locations.numel():
            sigma = self.sigma_at(locations.numel())
            patches = self.grid.extract(self.vae.decode(z), locations.expand(z.shape[0], -1))  # (B, t, k*C, h, w)
            resid = patches - glimpses
            if self.noise is None:
                r = (resid / sigma).flatten(1)
                out = out - 0.5 * (r**2).sum(-1) - r.shape[1] * (math.log(sigma) + 0.5 * math.log(2 * math.pi))
            else:
                from .clutter_noise import clutter_log_likelihood

                B, t = resid.shape[:2]
                ll = clutter_log_likelihood(resid.reshape(B, t, self.grid.scales, -1), sigma, self.noise)
                out = out + ll.flatten(1).sum(-1).to(out.dtype)
        return out

    def _initial_points(self, loc, obs, device) -> torch.Tensor:
        """(chains, d): chain 0 at the encoder's guess (if asked), the others at draws of the prior N(0, I)."""
        C, d = self.cfg.num_chains, self.vae.latent_dim
        z0 = torch.randn(C, d, device=device)
        if self.cfg.init_from_encoder:
            # The encoder reads the foveae (scale 0), see vae.random_glimpse_masks.
            mask = self.grid.mask(loc.unsqueeze(0), device=device)[:, :1]
            canvas = (
                self.grid.paste(obs.unsqueeze(0), loc.unsqueeze(0))[:, : self.vae.channels]
                if loc.numel()
                else obs.new_zeros(1, self.vae.channels, *self.grid.image_size)
            )
            with torch.no_grad():
                z0[0] = self.vae.encode(canvas, mask)[0][0]
        return z0

    def _kernel(self, potential):
        from pyro.infer import NUTS

        return NUTS(
            potential_fn=potential,
            max_tree_depth=self.cfg.max_tree_depth,
            target_accept_prob=self.cfg.target_accept_prob,
        )

    def _mcmc(self, potential, z0: torch.Tensor, draws: int) -> tuple[torch.Tensor, int, float]:
        """One NUTS run of ``draws`` from ``z0``: its draws of ``z``, its divergences and its adapted step size."""
        from pyro.infer import MCMC

        kernel = self._kernel(potential)
        mcmc = MCMC(kernel, draws, warmup_steps=self.cfg.warmup_steps, initial_params={"z": z0}, disable_progbar=True)
        mcmc.run()
        divergences = len(mcmc.diagnostics().get("divergences", {}).get("chain 0", []))
        return mcmc.get_samples()["z"], divergences, float(kernel.step_size)

    def _run(self, loc, obs, z0: torch.Tensor, draws: int) -> tuple[torch.Tensor, dict]:
        """Run the chains from ``z0`` (C, d); returns samples (C, draws, d) and run statistics."""

        # A potential function instead of a Pyro model: the same density without Pyro's per-step tracing,
        # much faster for this small decoder.
        def potential(p):
            z = p["z"]
            return -self.log_joint(z.reshape(-1, z.shape[-1]), loc.unsqueeze(0), obs).sum()

        if self.cfg.chain_method == "vectorized":
            z, div, step = self._mcmc(potential, z0, draws)
            return z.transpose(0, 1), {"divergences": div, "step_size": [step]}  # (draws, C, d) -> (C, draws, d)
        chains, div, steps = [], 0, []
        for c in range(z0.shape[0]):
            z, d, step = self._mcmc(potential, z0[c], draws)
            chains.append(z)
            div += d
            steps.append(step)
        return torch.stack(chains), {"divergences": div, "step_size": steps}

    def sample_chains(
        self,
        locations: torch.Tensor | Sequence[int],
        glimpses: torch.Tensor,
        draws: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
    ) -> tuple[torch.Tensor, dict]:
        """All chains' draws of ``z`` given the glimpses, (chains, draws, d) (``draws`` default
        ``cfg.num_samples``), and the diagnostics: R-hat and ESS per latent dimension (``r_hat_max``,
        ``ess_min``, ``ess_mean``), divergences, step sizes, the likelihood's sigma (0..255), seconds, seed."""
        loc, obs = check_observations(self.grid, locations, glimpses, channels=self.vae.channels)
        draws = self.cfg.num_samples if draws is None else draws
        check_int("draws", draws)
        device = next(self.vae.parameters()).device
        loc, obs = loc.to(device), obs.to(device)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        start = time.perf_counter()
        # Pyro draws from the global RNG: seed it locally.
        with torch.random.fork_rng(devices=[]), _one_cpu_thread(device):
            torch.manual_seed(seed)
            z0 = self._initial_points(loc, obs, device)
            z, stats = self._run(loc, obs, z0, draws)
        diagnostics = {
            "seconds": time.perf_counter() - start,
            "num_chains": self.cfg.num_chains,
            "chain_method": self.cfg.chain_method,
            "draws_per_chain": draws,
            "warmup_steps": self.cfg.warmup_steps,
            "sigma": self.sigma_at(loc.numel()) * 255.0,
            "clutter": self.noise is not None,
            "seed": seed,
            **stats,
            **chain_diagnostics(z),
        }
        diagnostics["n_eff_mean"] = diagnostics["ess_mean"]  # an alias of ess_mean
        log.debug(
            "NUTS: %d x %d draws in %.2f s, R-hat max %s, ESS min %.1f",
            z.shape[0],
            draws,
            diagnostics["seconds"],
            diagnostics["r_hat_max"],
            diagnostics["ess_min"],
        )
        return z, diagnostics

    def sample_latents(
        self,
        locations: torch.Tensor | Sequence[int],
        glimpses: torch.Tensor,
        n: int,
        generator: Optional[torch.Generator] = None,
    ) -> tuple[torch.Tensor, dict]:
        """``n`` draws of ``z`` given the glimpses, taken evenly from every chain (chain c gives ``n // C`` or one
        more, evenly thinned from its ``max(num_samples, ceil(n / C))`` draws), and the diagnostics."""
        check_int("n", n)
        C = self.cfg.num_chains
        draws = max(self.cfg.num_samples, -(-n // C))
        z, diagnostics = self.sample_chains(locations, glimpses, draws, generator)
        picked, chain = [], []
        for c in range(C):
            k = n // C + (1 if c < n % C else 0)
            if k:
                picked.append(z[c, torch.linspace(0, draws - 1, k).round().long()])
                chain += [c] * k
        diagnostics["sample_chain"] = chain
        return torch.cat(picked), diagnostics

    def _sample(self, loc, obs, n, generator, true_image) -> CompletionSamples:
        """The decoded :meth:`sample_latents`, equally weighted (``true_image`` is not used)."""
        z, diagnostics = self.sample_latents(loc, obs, n, generator)
        with torch.no_grad():
            images = self.vae.decode(z).clamp(0, 1)
        return CompletionSamples(images.cpu(), torch.full((n,), 1.0 / n), None, diagnostics)
