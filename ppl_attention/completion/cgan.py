"""A pix2pix-style conditional GAN inpainter (the paper's appendix A.3.1).

The generator is a U-Net on ``cat(image * mask + noise * (1 - mask), mask)``: unobserved pixels are replaced by
Gaussian noise, as in the paper, and dropout stays active when sampling, as in pix2pix, so both are sources of
diversity.  A PatchGAN discriminator judges (condition, image) pairs; the generator's loss adds an L1 term.  The
output keeps the observed pixels exactly (the generator only fills the unobserved ones).  Samples are equally
weighted.

Saved as ``DIR/generator.safetensors`` (+ ``.json``), ``DIR/discriminator.safetensors`` (+ ``.json``) and
``DIR/manifest.json`` (kind ``"cgan"``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..artifacts import save_weights, write_manifest
from ..config import config_to_dict, setting
from ..sensor import Sensor
from ..runtime import derive_seed, generator as make_generator, resolve_device
from ._saved_network import load_network
from .base import Completion, CompletionSamples
from .vae import _check_images, random_glimpse_masks, shuffled_batches

if TYPE_CHECKING:
    import os

__all__ = ["CGANConfig", "UNetGenerator", "PatchDiscriminator", "train_cgan", "load_cgan", "CGANCompletion"]

log = logging.getLogger(__name__)

DEPTH = 4  # stride-2 levels of the U-Net; images are zero-padded to a multiple of 2**DEPTH


@dataclass
class CGANConfig:
    """Architecture and training settings of the conditional GAN."""

    width: int = setting(32, "channels of the first U-Net / PatchGAN layer")
    dropout: float = setting(0.5, "dropout in the U-Net decoder (kept on when sampling)")
    noise_std: float = setting(1.0, "std of the noise put in unobserved input pixels")
    l1_weight: float = setting(100.0, "weight of the L1 term (pix2pix: 100)")
    epochs: int = setting(5, "passes over the training images")
    batch_size: int = setting(16, "images per step (pix2pix uses 1-10)")
    lr: float = setting(2e-4, "Adam learning rate (betas 0.5, 0.999 as pix2pix)")
    seed: int = setting(0, "training seed")

    def __post_init__(self):
        if self.width <= 0 or self.batch_size <= 0 or self.epochs < 0:
            raise ValueError(f"width and batch_size must be positive and epochs >= 0, got {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"`dropout` must lie in [0, 1), got {self.dropout}")
        if self.noise_std < 0 or self.l1_weight < 0:
            raise ValueError(f"noise_std and l1_weight must be >= 0, got {self.noise_std}, {self.l1_weight}")


def _down(cin, cout, norm=True):
    layers = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


def _up(cin, cout, dropout):
    layers = [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout)]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class UNetGenerator(nn.Module):
    """U-Net (pix2pix) from ``cat(noisy masked image, mask)`` to an image in [0, 1]."""

    def __init__(
        self, image_size: tuple[int, int] = (60, 60), channels: int = 1, width: int = 32, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.image_size, self.channels = tuple(int(s) for s in image_size), int(channels)
        self.width, self.dropout = int(width), float(dropout)
        w = width
        self.downs = nn.ModuleList(
            [_down(channels + 1, w, norm=False), _down(w, 2 * w), _down(2 * w, 4 * w), _down(4 * w, 4 * w)]
        )
        self.ups = nn.ModuleList([_up(4 * w, 4 * w, dropout), _up(8 * w, 2 * w, dropout), _up(4 * w, w, 0.0)])
        self.out = nn.ConvTranspose2d(2 * w, channels, 4, 2, 1)

    def config(self) -> dict:
        return {
            "image_size": list(self.image_size),
            "channels": self.channels,
            "width": self.width,
            "dropout": self.dropout,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        m = 2**DEPTH
        x = F.pad(x, (0, (-W) % m, 0, (-H) % m))
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        skips.pop()  # the bottleneck is x itself
        for up in self.ups:
            x = torch.cat([up(x), skips.pop()], dim=1)
        return torch.sigmoid(self.out(x))[..., :H, :W]


class PatchDiscriminator(nn.Module):
    """PatchGAN: a logit per overlapping patch of ``cat(masked image, mask, image)``."""

    def __init__(self, channels: int = 1, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            _down(2 * channels + 1, w, norm=False),
            _down(w, 2 * w),
            nn.Conv2d(2 * w, 4 * w, 4, 1, 1, bias=False),
            nn.BatchNorm2d(4 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 1, 4, 1, 1),
        )

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([condition, image], dim=1))


def generator_input(canvas: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``cat(canvas * mask + noise * (1 - mask), mask)``: unobserved pixels become noise (the paper's input)."""
    return torch.cat([canvas * mask + noise * (1 - mask), mask], dim=1)


def train_cgan(
    images: torch.Tensor,
    grid: Sensor,
    cfg: CGANConfig = CGANConfig(),
    device: str | torch.device = "auto",
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> UNetGenerator:
    """Train the inpainter on ``images`` (N, C, H, W) in [0, 1] with 1-4 random glimpses per image."""
    images = _check_images(images, grid=grid)
    device = resolve_device(device)
    C = images.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "cgan-init"))
        G = UNetGenerator(grid.image_size, C, cfg.width, cfg.dropout).to(device)
        D = PatchDiscriminator(C, cfg.width).to(device)
        with torch.no_grad():  # start the generator at the data's mean pixel, not at grey 0.5
            G.out.bias.fill_(float(torch.logit(images.mean().clamp(1e-3, 1 - 1e-3))))
        opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        bce = nn.BCEWithLogitsLoss()
        g = make_generator(derive_seed(cfg.seed, "cgan-batches"))
        N, history, start = images.shape[0], [], time.time()
        torch.manual_seed(derive_seed(cfg.seed, "cgan-dropout"))
        bar = tqdm(range(cfg.epochs), desc="cGAN", disable=not progress)
        for _ in bar:
            sums = torch.zeros(3)
            for x in shuffled_batches(images, cfg.batch_size, g, device):
                mask = random_glimpse_masks(grid, x.shape[0], g, device=device)[1]
                noise = (torch.randn(x.shape, generator=g) * cfg.noise_std).to(device)
                sums += _gan_step((G, D), (opt_g, opt_d), bce, x, mask, noise, cfg.l1_weight) * x.shape[0]
            history.append({k: float(v) / N for k, v in zip(("loss_d", "loss_g", "l1"), sums)})
            bar.set_postfix(l1=f"{history[-1]['l1']:.4f}")
    G.eval()
    D.eval()
    log.info(
        "cGAN trained: %d epochs in %.1f s, final L1 %.4f",
        cfg.epochs,
        time.time() - start,
        history[-1]["l1"] if history else float("nan"),
    )
    if out_dir is not None:
        _save_cgan(Path(out_dir), (G, D), cfg, grid, C, history)
    return G


def _gan_step(
    nets: tuple,
    optimisers: tuple,
    bce: nn.Module,
    x: torch.Tensor,
    mask: torch.Tensor,
    noise: torch.Tensor,
    l1_weight: float,
) -> torch.Tensor:
    """One pix2pix step on a batch: the discriminator on real vs completed images, then the generator (adversarial
    + L1); the losses ``(loss_d, loss_g, l1)``."""
    (G, D), (opt_g, opt_d) = nets, optimisers
    cond = torch.cat([x * mask, mask], dim=1)
    fake = mask * x + (1 - mask) * G(generator_input(x, mask, noise))
    real_logits, fake_logits = D(cond, x), D(cond, fake.detach())
    loss_d = 0.5 * (bce(real_logits, torch.ones_like(real_logits)) + bce(fake_logits, torch.zeros_like(fake_logits)))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    adv_logits = D(cond, fake)
    l1 = (fake - x).abs().mean()
    loss_g = bce(adv_logits, torch.ones_like(adv_logits)) + l1_weight * l1
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return torch.tensor([loss_d.item(), loss_g.item(), l1.item()])


def _save_cgan(out_dir: Path, nets: tuple, cfg, grid: Sensor, channels: int, history: list[dict]) -> None:
    """The generator and discriminator weights (``nets``, with their configs) and the manifest, into ``out_dir``."""
    G, D = nets
    out_dir.mkdir(parents=True, exist_ok=True)
    save_weights(
        out_dir / "generator.safetensors", G, {**G.config(), "noise_std": cfg.noise_std, "grid": grid.to_dict()}
    )
    save_weights(out_dir / "discriminator.safetensors", D, {"channels": channels, "width": cfg.width})
    write_manifest(out_dir, "cgan", {**config_to_dict(cfg), "grid": grid.to_dict()}, history=history)


def load_cgan(
    directory: str | os.PathLike, device: str | torch.device = "cpu", expected: dict | None = None
) -> tuple[UNetGenerator, Sensor, float]:
    """Load a generator saved by :func:`train_cgan`: (generator, grid, noise_std).  ``expected`` config values
    (e.g. ``{"width": 32}``) must match."""
    G, config = load_network(directory, "cgan", "generator", _build_generator, device, expected, ("grid", "noise_std"))
    return G, Sensor.from_dict(config["grid"]), float(config["noise_std"])


def _build_generator(config: dict) -> UNetGenerator:
    return UNetGenerator(config["image_size"], config["channels"], config["width"], config["dropout"])


class CGANCompletion(Completion):
    """Completion by the conditional GAN: ``n`` generator passes with fresh input noise and dropout masks."""

    def __init__(self, generator: UNetGenerator, grid: Sensor, noise_std: float = 1.0):
        if tuple(generator.image_size) != tuple(grid.image_size):
            raise ValueError(f"generator was trained on {generator.image_size} images, the grid has {grid.image_size}")
        self.G, self.grid, self.noise_std = generator.eval(), grid, float(noise_std)
        self.channels = generator.channels
        for p in self.G.parameters():
            p.requires_grad_(False)

    def _sample(self, loc, obs, n, generator, true_image) -> CompletionSamples:
        """``n`` generator passes conditioned on the pasted foveae (``true_image`` is not used)."""
        device = next(self.G.parameters()).device
        start = time.perf_counter()
        C, (H, W) = self.G.channels, self.grid.image_size
        # The generator conditions on the foveae (scale 0: full-resolution pixels), see random_glimpse_masks.
        mask = self.grid.mask(loc.unsqueeze(0))[:, :1]  # (1, 1, H, W)
        canvas = self.grid.paste(obs.unsqueeze(0), loc.unsqueeze(0))[:, :C] if loc.numel() else torch.zeros(1, C, H, W)
        noise = torch.randn(n, C, H, W, generator=generator) * self.noise_std
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        mask, canvas, noise = mask.to(device), canvas.to(device), noise.to(device)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)  # dropout draws from the global RNG: seed it locally
            for m in self.G.modules():  # pix2pix keeps dropout on at test time as its noise source
                if isinstance(m, nn.Dropout):
                    m.train()
            out = self.G(generator_input(canvas.expand(n, -1, -1, -1), mask.expand(n, -1, -1, -1), noise))
            self.G.eval()
        images = (mask * canvas + (1 - mask) * out).clamp(0, 1)
        seconds = time.perf_counter() - start
        return CompletionSamples(images.cpu(), torch.full((n,), 1.0 / n), None, {"seconds": seconds, "seed": seed})
