"""A small convolutional VAE of the image prior, trained with Pyro's SVI (Trace_ELBO).

It is the "deep generative model" of the paper's appendix A.3.2: NUTS (:mod:`.nuts`) samples its latent ``z``
conditioned on the glimpses.  The encoder reads ``cat(image * mask, mask)`` and is trained on full images and on
randomly glimpsed ones, so it also gives a guess of ``z`` from a masked image, where the NUTS chains start.  Any
guide that reads a function of the image keeps the ELBO a lower bound on log p(image), so training it on masked
inputs is still plain SVI.

Saved as ``DIR/vae.safetensors`` + ``DIR/vae.json`` + ``DIR/manifest.json`` (kind ``"vae"``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..artifacts import ArtifactError, load_weights, read_manifest, save_weights, write_manifest
from ..config import config_to_dict
from ..geometry import NO_GLIMPSE, GlimpseGrid
from ..runtime import derive_seed, generator as make_generator, resolve_device

__all__ = ["VAEConfig", "VAE", "train_vae", "save_vae", "load_vae", "random_glimpse_masks"]

log = logging.getLogger(__name__)


@dataclass
class VAEConfig:
    """Architecture and SVI settings of the VAE (the architecture fields must match to load a checkpoint)."""

    latent_dim: int = field(default=16, metadata={"help": "dimension of the latent z"})
    width: int = field(default=32, metadata={"help": "channels of the first conv layer (doubled once)"})
    likelihood: str = field(default="bernoulli", metadata={"help": "pixel likelihood",
                                                            "choices": ["bernoulli", "gaussian"]})
    pixel_sigma: float = field(default=0.1, metadata={"help": "std of the Gaussian pixel likelihood"})
    epochs: int = field(default=10, metadata={"help": "passes over the training images"})
    batch_size: int = field(default=64, metadata={"help": "images per SVI step"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    masked_fraction: float = field(default=0.5, metadata={
        "help": "fraction of each batch the encoder sees through 1-4 random glimpses instead of whole"})
    kl_warmup_epochs: int = field(default=0, metadata={
        "help": "epochs over which the KL term's weight rises linearly to 1 (against posterior collapse)"})
    seed: int = field(default=0, metadata={"help": "training seed"})

    def __post_init__(self):
        if self.kl_warmup_epochs < 0:
            raise ValueError(f"kl_warmup_epochs must be >= 0, got {self.kl_warmup_epochs}")
        if self.latent_dim <= 0 or self.width <= 0 or self.epochs < 0 or self.batch_size <= 0:
            raise ValueError(f"latent_dim, width and batch_size must be positive and epochs >= 0, got {self}")
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")
        if not 0.0 <= self.masked_fraction <= 1.0:
            raise ValueError(f"masked_fraction must lie in [0, 1], got {self.masked_fraction}")


def _conv_size(n: int) -> int:
    return (n + 2 - 3) // 2 + 1  # 3x3 conv, stride 2, padding 1


class VAE(nn.Module):
    """Encoder q(z | masked image, mask) and decoder p(image | z) for ``channels x H x W`` images."""

    def __init__(self, image_size=(60, 60), channels: int = 1, latent_dim: int = 16, width: int = 32,
                 likelihood: str = "bernoulli", pixel_sigma: float = 0.1):
        super().__init__()
        self.image_size = tuple(int(s) for s in image_size)
        self.channels, self.latent_dim, self.width = int(channels), int(latent_dim), int(width)
        self.likelihood, self.pixel_sigma = likelihood, float(pixel_sigma)
        H, W = self.image_size
        sizes = [(H, W)]
        for _ in range(3):
            sizes.append((_conv_size(sizes[-1][0]), _conv_size(sizes[-1][1])))
        self._sizes = sizes
        c1, c2 = width, 2 * width
        self.encoder = nn.Sequential(
            nn.Conv2d(channels + 1, c1, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(c2, c2, 3, 2, 1), nn.ReLU(), nn.Flatten(),
            nn.Linear(c2 * sizes[3][0] * sizes[3][1], 256), nn.ReLU())
        self.enc_loc = nn.Linear(256, latent_dim)
        self.enc_scale = nn.Linear(256, latent_dim)
        self.dec_in = nn.Sequential(nn.Linear(latent_dim, 256), nn.ReLU(),
                                    nn.Linear(256, c2 * sizes[3][0] * sizes[3][1]), nn.ReLU())
        # Transposed convs undo the three stride-2 convs exactly (output_padding picks the odd/even size).
        ups, chans = [], [c2, c2, c1]
        for i, (src, dst) in enumerate(zip(sizes[3:0:-1], sizes[2::-1])):
            op = (dst[0] - ((src[0] - 1) * 2 - 2 + 3), dst[1] - ((src[1] - 1) * 2 - 2 + 3))
            out_c = chans[i + 1] if i < 2 else channels
            ups.append(nn.ConvTranspose2d(chans[i], out_c, 3, 2, 1, output_padding=op))
            if i < 2:
                ups.append(nn.ReLU())
        self.dec_convs = nn.Sequential(*ups)

    def config(self) -> dict:
        return {"image_size": list(self.image_size), "channels": self.channels, "latent_dim": self.latent_dim,
                "width": self.width, "likelihood": self.likelihood, "pixel_sigma": self.pixel_sigma}

    def encode(self, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of q(z | image * mask, mask); ``mask`` (B, 1, H, W) with 1 on observed pixels."""
        h = self.encoder(torch.cat([images * mask, mask], dim=1))
        return self.enc_loc(h), nn.functional.softplus(self.enc_scale(h)) + 1e-4

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid pixel values (B, C, H, W)."""
        c2, (h, w) = 2 * self.width, self._sizes[3]
        return self.dec_convs(self.dec_in(z).view(-1, c2, h, w))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean image in [0, 1] (B, C, H, W)."""
        return torch.sigmoid(self.decode_logits(z))

    # ------------------------------------------------------------ Pyro model and guide
    def model(self, images: torch.Tensor, mask: torch.Tensor, kl_weight: float = 1.0):
        import pyro
        import pyro.distributions as dist
        from pyro import poutine

        pyro.module("vae", self)
        B = images.shape[0]
        with pyro.plate("data", B):
            with poutine.scale(scale=kl_weight):  # scales log p(z) here and log q(z) in the guide: the KL term
                z = pyro.sample("z", dist.Normal(images.new_zeros(B, self.latent_dim), 1.0).to_event(1))
            logits = self.decode_logits(z)
            if self.likelihood == "bernoulli":
                # Grey-level pixels are fractional Bernoulli targets (the usual binary cross-entropy).
                px = dist.Bernoulli(logits=logits, validate_args=False)
            else:
                px = dist.Normal(torch.sigmoid(logits), self.pixel_sigma)
            pyro.sample("x", px.to_event(3), obs=images)

    def guide(self, images: torch.Tensor, mask: torch.Tensor, kl_weight: float = 1.0):
        import pyro
        import pyro.distributions as dist
        from pyro import poutine

        pyro.module("vae", self)
        with pyro.plate("data", images.shape[0]):
            loc, scale = self.encode(images, mask)
            with poutine.scale(scale=kl_weight):
                pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def random_glimpse_masks(grid: GlimpseGrid, batch: int, generator: torch.Generator, max_glimpses: int = 4,
                         device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of 1..max_glimpses uniformly random glimpses per image: (locations (B, T) with NO_GLIMPSE
    padding, mask (B, 1, H, W))."""
    counts = torch.randint(1, max_glimpses + 1, (batch,), generator=generator)
    loc = torch.randint(0, grid.num_locations, (batch, max_glimpses), generator=generator)
    loc = torch.where(torch.arange(max_glimpses) < counts.unsqueeze(1), loc, torch.full_like(loc, NO_GLIMPSE))
    return loc, grid.mask(loc, device=device)


def _check_images(images, name="images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a (N, C, H, W) tensor, got {got}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image")
    x = images.float()
    if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError(f"{name} must hold finite pixels in [0, 1]")
    return x


def train_vae(images: torch.Tensor, grid: GlimpseGrid, cfg: VAEConfig = VAEConfig(), device="auto",
              out_dir=None, progress: bool = True) -> VAE:
    """Fit a :class:`VAE` to ``images`` (N, C, H, W) in [0, 1] by SVI; save it to ``out_dir`` if given."""
    import pyro
    from pyro.infer import SVI, Trace_ELBO

    images = _check_images(images)
    if tuple(images.shape[-2:]) != grid.image_size:
        raise ValueError(f"images must be {grid.image_size} to match the grid, got {tuple(images.shape[-2:])}")
    device = resolve_device(device)
    torch.manual_seed(derive_seed(cfg.seed, "vae-init"))
    vae = VAE(grid.image_size, images.shape[1], cfg.latent_dim, cfg.width, cfg.likelihood, cfg.pixel_sigma).to(device)
    pyro.clear_param_store()
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": cfg.lr}), loss=Trace_ELBO())
    g = make_generator(derive_seed(cfg.seed, "vae-batches"))
    N, P = images.shape[0], images[0].numel()
    start, history = time.time(), []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "vae-svi"))
        bar = tqdm(range(cfg.epochs), desc="VAE (SVI)", disable=not progress)
        for epoch in bar:
            kl_weight = min(1.0, (epoch + 1) / (cfg.kl_warmup_epochs + 1))
            order, total = torch.randperm(N, generator=g), 0.0
            for i in range(0, N, cfg.batch_size):
                x = images[order[i:i + cfg.batch_size]].to(device)
                mask = torch.ones(x.shape[0], 1, *grid.image_size, device=device)
                n_masked = int(round(cfg.masked_fraction * x.shape[0]))
                if n_masked:
                    mask[:n_masked] = random_glimpse_masks(grid, n_masked, g, device=device)[1]
                total += svi.step(x, mask, kl_weight)
            history.append(total / (N * P))
            bar.set_postfix(loss_per_pixel=f"{history[-1]:.4f}")
    vae.eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    log.info("VAE trained: %d epochs in %.1f s, final -ELBO per pixel %.4f", cfg.epochs, time.time() - start,
             history[-1] if history else float("nan"))
    if out_dir is not None:
        save_vae(vae, out_dir, cfg, grid, history)
    return vae


def save_vae(vae: VAE, out_dir, cfg: VAEConfig, grid: GlimpseGrid, history=()) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_weights(out_dir / "vae.safetensors", vae, {**vae.config(), "grid": grid.to_dict()})
    write_manifest(out_dir, "vae", {**config_to_dict(cfg), "grid": grid.to_dict()},
                   loss_history=[float(h) for h in history])
    return out_dir


def load_vae(directory, device="cpu", expected: dict | None = None) -> tuple[VAE, GlimpseGrid]:
    """Load a VAE saved by :func:`train_vae`; ``expected`` config values (e.g. ``{"latent_dim": 16}``) must
    match.  Returns the frozen VAE (eval mode, no gradients) and its grid."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"VAE directory {directory} does not exist")
    read_manifest(directory, "vae")
    tensors, config = load_weights(directory / "vae.safetensors", expected)
    try:
        grid = GlimpseGrid.from_dict(config["grid"])
        vae = VAE(config["image_size"], config["channels"], config["latent_dim"], config["width"],
                  config["likelihood"], config["pixel_sigma"])
    except KeyError as e:
        raise ArtifactError(f"{directory}/vae.json is missing the key {e.args[0]!r}") from None
    try:
        vae.load_state_dict(tensors)
    except RuntimeError as e:
        raise ArtifactError(f"{directory}/vae.safetensors does not fit the architecture in vae.json: {e}") from None
    vae.to(resolve_device(device)).eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    return vae, grid
