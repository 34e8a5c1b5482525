"""NUTS in a VAE's latent space: the paper's "HMC in a deep generative model" (appendix A.3.2).

The model is ``z ~ N(0, I)``, ``y_i ~ N(glimpse(decoder(z), l_i), sigma^2)`` for the observed glimpses (a
Gaussian instead of the Dirac delta of eq. (4), as the paper does, so that HMC is feasible).  The decoder is
frozen; Pyro's NUTS samples ``z``; chains start at the encoder's guess of ``z`` from the masked image
(``initial_params``).  Samples
are equally weighted (thinned evenly when more draws were taken than asked for).
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Optional

import torch

from ..sensor import GlimpseGrid
from .base import Completion, CompletionSamples, check_observations
from .vae import VAE

__all__ = ["NUTSConfig", "NUTSCompletion"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device):
    """Run on one CPU thread: a leapfrog step is a few tiny ops, where intra-op threads only add
    synchronisation (measured 10x slower with 2 threads on a shared machine)."""
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

    sigma: float = field(default=0.1, metadata={"help": "std of the Gaussian glimpse likelihood (pixels in [0,1])"})
    warmup_steps: int = field(default=200, metadata={"help": "NUTS warm-up (adaptation) iterations"})
    num_samples: int = field(default=200, metadata={"help": "NUTS draws kept (thinned to n if n is smaller)"})
    max_tree_depth: int = field(default=5, metadata={"help": "NUTS maximum tree depth"})
    target_accept_prob: float = field(default=0.8, metadata={"help": "NUTS target acceptance probability"})
    init_from_encoder: bool = field(default=True, metadata={"help": "start the chain at the encoder's guess of z"})

    def __post_init__(self):
        if not self.sigma > 0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")
        if self.warmup_steps < 0 or self.num_samples <= 0 or self.max_tree_depth <= 0:
            raise ValueError(f"warmup_steps must be >= 0, num_samples and max_tree_depth positive, got {self}")


class NUTSCompletion(Completion):
    """Completion by NUTS over the latent ``z`` of a frozen :class:`~.vae.VAE`."""

    def __init__(self, vae: VAE, grid: GlimpseGrid, cfg: NUTSConfig = NUTSConfig()):
        if tuple(vae.image_size) != tuple(grid.image_size):
            raise ValueError(f"vae was trained on {vae.image_size} images but the grid has {grid.image_size}")
        self.vae, self.grid, self.cfg = vae.eval(), grid, cfg
        for p in self.vae.parameters():
            p.requires_grad_(False)

    def log_joint(self, z: torch.Tensor, locations: torch.Tensor, glimpses: torch.Tensor) -> torch.Tensor:
        """``log N(z; 0, I) + sum_i log N(y_i; glimpse(decode(z), l_i), sigma^2)`` for ``z`` (B, d) -> (B,); every
        scale of the sensor's glimpses is observed."""
        d = self.vae.latent_dim
        out = -0.5 * (z ** 2).sum(-1) - 0.5 * d * math.log(2 * math.pi)
        if locations.numel():
            patches = self.grid.extract(self.vae.decode(z), locations.expand(z.shape[0], -1))  # (B, t, k*C, h, w)
            resid = ((patches - glimpses) / self.cfg.sigma).flatten(1)
            out = out - 0.5 * (resid ** 2).sum(-1) - resid.shape[1] * (math.log(self.cfg.sigma)
                                                                      + 0.5 * math.log(2 * math.pi))
        return out

    def sample_latents(self, locations, glimpses, n: int, generator: Optional[torch.Generator] = None
                       ) -> tuple[torch.Tensor, dict]:
        """``n`` NUTS draws of ``z`` given the glimpses (evenly thinned from ``max(num_samples, n)`` draws),
        and the chain's diagnostics."""
        from pyro.infer import MCMC, NUTS

        loc, obs = check_observations(self.grid, locations, glimpses, channels=self.vae.channels)
        if not isinstance(n, int) or n <= 0:
            raise ValueError(f"n must be a positive int, got {n!r}")
        device = next(self.vae.parameters()).device
        loc, obs = loc.to(device), obs.to(device)
        seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator))
        draws = max(self.cfg.num_samples, n)
        start = time.perf_counter()
        # Pyro draws from the global RNG: seed it locally.
        with torch.random.fork_rng(devices=[]), _one_cpu_thread(device):
            torch.manual_seed(seed)
            if self.cfg.init_from_encoder:
                # The encoder reads the foveae (scale 0), see vae.random_glimpse_masks.
                mask = self.grid.mask(loc.unsqueeze(0), device=device)[:, :1]
                canvas = self.grid.paste(obs.unsqueeze(0), loc.unsqueeze(0))[:, :self.vae.channels] if loc.numel() \
                    else obs.new_zeros(1, self.vae.channels, *self.grid.image_size)
                with torch.no_grad():
                    z0 = self.vae.encode(canvas, mask)[0][0]
            else:
                z0 = torch.zeros(self.vae.latent_dim, device=device)
            # A potential function instead of a Pyro model: the same density without Pyro's per-step tracing,
            # about 3x faster for this small decoder.
            kernel = NUTS(potential_fn=lambda p: -self.log_joint(p["z"].unsqueeze(0), loc.unsqueeze(0), obs)[0],
                          max_tree_depth=self.cfg.max_tree_depth, target_accept_prob=self.cfg.target_accept_prob)
            mcmc = MCMC(kernel, num_samples=draws, warmup_steps=self.cfg.warmup_steps, num_chains=1,
                        initial_params={"z": z0}, disable_progbar=True)
            mcmc.run()
            z = mcmc.get_samples()["z"]  # (draws, d)
        keep = torch.linspace(0, draws - 1, n).round().long()  # even thinning
        diag = mcmc.diagnostics()
        diagnostics = {"seconds": time.perf_counter() - start, "draws": draws,
                       "warmup_steps": self.cfg.warmup_steps, "n_eff_mean": float(diag["z"]["n_eff"].mean()),
                       "divergences": len(diag.get("divergences", {}).get("chain 0", [])),
                       "step_size": float(kernel.step_size), "seed": seed}
        log.debug("NUTS: %d draws in %.2f s, mean n_eff %.1f", draws, diagnostics["seconds"],
                  diagnostics["n_eff_mean"])
        return z[keep], diagnostics

    def sample(self, locations, glimpses, n: int, generator: Optional[torch.Generator] = None,
               true_image: Optional[torch.Tensor] = None) -> CompletionSamples:
        z, diagnostics = self.sample_latents(locations, glimpses, n, generator)
        with torch.no_grad():
            images = self.vae.decode(z).clamp(0, 1)
        return CompletionSamples(images.cpu(), torch.full((n,), 1.0 / n), None, diagnostics)
