"""A small convolutional VAE of the image prior, trained with Pyro's SVI.

It is the "deep generative model" of the paper's appendix A.3.2: NUTS (:mod:`.nuts`) samples its latent ``z``
conditioned on the glimpses.  The encoder reads ``cat(image * mask, mask)`` and is trained on full images and on
randomly glimpsed ones, so it also gives a guess of ``z`` from a masked image, where the NUTS chains start.  Any
guide that reads a function of the image keeps the ELBO a lower bound on log p(image), so training it on masked
inputs is still plain SVI.

Against posterior collapse (a decoder that outputs the mean image and ignores ``z``, which is what plain
Trace_ELBO gave on small MNIST-canvas runs: NUTS then returns blurry blobs), SVI optimises
:class:`FreeBitsELBO`: the ELBO with the analytic Gaussian KL, its weight warmed up linearly from 0 to 1 over
the first ``kl_warmup_epochs`` and a "free bits" floor (Kingma et al. 2016): a latent dimension whose KL,
averaged over the batch, is below ``free_bits`` nats is not pushed further towards the prior, so no unit is
switched off while the decoder is still learning to use it.  With ``kl_warmup_epochs = 0`` and ``free_bits = 0``
the loss is the plain negative ELBO.  :func:`evaluate_vae` measures what collapse would destroy: the KL per
latent dimension, the active units and the reconstruction error of held-out images against the mean image's.

Saved as ``DIR/vae.safetensors`` + ``DIR/vae.json`` + ``DIR/manifest.json`` (kind ``"vae"``).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..artifacts import save_weights, write_manifest
from ..config import config_to_dict, setting
from ..sensor import NO_GLIMPSE, Sensor
from ..runtime import derive_seed, generator as make_generator, resolve_device
from ._saved_network import load_network

if TYPE_CHECKING:
    import os
    from typing import Iterable, Iterator
    from pyro.distributions import TorchDistribution

__all__ = [
    "VAEConfig",
    "VAE",
    "FreeBitsELBO",
    "train_vae",
    "save_vae",
    "load_vae",
    "random_glimpse_masks",
    "evaluate_vae",
]

log = logging.getLogger(__name__)


@dataclass
class VAEConfig:
    """Architecture and SVI settings of the VAE (the architecture fields must match to load a checkpoint)."""

    latent_dim: int = setting(16, "dimension of the latent z")
    width: int = setting(32, "channels of the first conv layer (doubled once)")
    decoder: str = setting(
        "conv",
        "decoder: 'conv' (z -> transposed convs) or 'glyph' (z = position + shape: a decoded glyph "
        "translated onto the canvas, for one-object canvases like MNIST's)",
        choices=["conv", "glyph"],
    )
    glyph_size: int = setting(28, "side of the glyph of the 'glyph' decoder")
    likelihood: str = setting("bernoulli", "pixel likelihood", choices=["bernoulli", "gaussian"])
    pixel_sigma: float = setting(0.1, "std of the Gaussian pixel likelihood")
    epochs: int = setting(10, "passes over the training images")
    batch_size: int = setting(32, "images per SVI step")
    lr: float = setting(2e-3, "Adam learning rate")
    masked_fraction: float = setting(
        0.25, "fraction of each batch the encoder sees through 1-4 random glimpses instead of whole"
    )
    kl_warmup_epochs: float = setting(
        1.0,
        "epochs over which the KL term's weight rises linearly (per step) from 0 to 1 (against "
        "posterior collapse; 0: weight 1 from the start)",
    )
    free_bits: float = setting(
        0.25,
        "nats per latent dimension of batch-mean KL that are not penalised (free bits, against "
        "posterior collapse; 0: the plain ELBO)",
    )
    seed: int = setting(0, "training seed")

    def __post_init__(self):
        if not self.kl_warmup_epochs >= 0:
            raise ValueError(f"`kl_warmup_epochs` must be >= 0, got {self.kl_warmup_epochs}")
        if not self.free_bits >= 0:
            raise ValueError(f"`free_bits` must be >= 0, got {self.free_bits}")
        if self.latent_dim <= 0 or self.width <= 0 or self.epochs < 0 or self.batch_size <= 0:
            raise ValueError(f"latent_dim, width and batch_size must be positive and epochs >= 0, got {self}")
        if self.decoder not in VAE.DECODERS:
            raise ValueError(f"`decoder` must be one of {list(VAE.DECODERS)}, got {self.decoder!r}")
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"`likelihood` must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")
        if not 0.0 <= self.masked_fraction <= 1.0:
            raise ValueError(f"`masked_fraction` must lie in [0, 1], got {self.masked_fraction}")


_GLYPH_EPS = 1e-3


def _conv_size(n: int) -> int:
    return (n + 2 - 3) // 2 + 1  # 3x3 conv, stride 2, padding 1


class VAE(nn.Module):
    """Encoder q(z | masked image, mask) and decoder p(image | z) for ``channels x H x W`` images.

    Two decoders.  ``"conv"``: z -> an 8 x 8 feature map -> three transposed convs to the full image.
    ``"glyph"`` (for canvases holding one translated object, like the MNIST canvases): ``z = (z_where, z_what)``;
    ``z_what`` (d - 2 dims) is decoded to a ``glyph_size`` square glyph and ``z_where`` (2 dims) places it on an
    empty canvas by a differentiable translation (bilinear ``grid_sample``), its centre at
    ``r (2 Phi(z_where) - 1)`` in normalised canvas coordinates, so the N(0, I) prior puts the glyph uniformly
    anywhere it fits.  Its encoder mirrors that: ``z_where`` from the whole canvas, ``z_what`` from the
    glyph-sized window at the mean of ``z_where`` (a spatial transformer).  The glyph decoder cannot reproduce a
    digit at the right place without both parts of ``z``, and shapes are learnt as for centred digits: on
    60 x 60 canvases the conv VAE needs many more SVI steps before its reconstructions stop being blobs.
    """

    DECODERS = ("conv", "glyph")

    def __init__(
        self,
        image_size: tuple[int, int] = (60, 60),
        channels: int = 1,
        latent_dim: int = 16,
        width: int = 32,
        likelihood: str = "bernoulli",
        pixel_sigma: float = 0.1,
        decoder: str = "conv",
        glyph_size: int = 28,
    ) -> None:
        super().__init__()
        self.image_size = tuple(int(s) for s in image_size)
        self.channels, self.latent_dim, self.width = int(channels), int(latent_dim), int(width)
        self.likelihood, self.pixel_sigma = likelihood, float(pixel_sigma)
        self.decoder, self.glyph_size = decoder, int(glyph_size)
        if decoder not in self.DECODERS:
            raise ValueError(f"`decoder` must be one of {list(self.DECODERS)}, got {decoder!r}")
        H, W = self.image_size
        if decoder == "glyph" and (self.latent_dim < 3 or self.glyph_size % 4 or not 4 <= self.glyph_size <= min(H, W)):
            raise ValueError(
                f"the glyph decoder needs latent_dim >= 3 (2 for the position) and a glyph_size that is "
                f"a multiple of 4 no larger than the image {self.image_size}, got latent_dim "
                f"{latent_dim}, glyph_size {glyph_size}"
            )
        sizes = [(H, W)]
        for _ in range(3):
            sizes.append((_conv_size(sizes[-1][0]), _conv_size(sizes[-1][1])))
        self._sizes = sizes
        c1, c2 = width, 2 * width
        self.encoder = nn.Sequential(
            nn.Conv2d(channels + 1, c1, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(c2, c2, 3, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c2 * sizes[3][0] * sizes[3][1], 256),
            nn.ReLU(),
        )
        self.enc_loc = nn.Linear(256, latent_dim)
        self.enc_scale = nn.Linear(256, latent_dim)
        if decoder == "glyph":
            self._glyph_layers(c1, c2)
        else:
            self._conv_decoder(c1, c2, sizes)

    def _glyph_layers(self, c1: int, c2: int) -> None:
        """The glyph decoder and its what-encoder, which reads the glyph-sized window at the where-encoder's mean
        position (a spatial transformer), so shape features need not be learnt separately for every position on
        the canvas."""
        channels, latent_dim, g4 = self.channels, self.latent_dim, self.glyph_size // 4
        self.what_encoder = nn.Sequential(
            nn.Conv2d(channels + 1, c1, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 4, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c2 * g4 * g4, 256),
            nn.ReLU(),
        )
        self.what_loc = nn.Linear(256, latent_dim - 2)
        self.what_scale = nn.Linear(256, latent_dim - 2)
        self.dec_in = nn.Sequential(nn.Linear(latent_dim - 2, 256), nn.ReLU(), nn.Linear(256, c2 * g4 * g4), nn.ReLU())
        self.dec_convs = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(c1, channels, 4, 2, 1)
        )

    def _conv_decoder(self, c1: int, c2: int, sizes: list[tuple[int, int]]) -> None:
        """The conv decoder: transposed convs that undo the encoder's three stride-2 convs exactly
        (``output_padding`` picks the odd/even size)."""
        self.dec_in = nn.Sequential(
            nn.Linear(self.latent_dim, 256), nn.ReLU(), nn.Linear(256, c2 * sizes[3][0] * sizes[3][1]), nn.ReLU()
        )
        ups, chans = [], [c2, c2, c1]
        for i, (src, dst) in enumerate(zip(sizes[3:0:-1], sizes[2::-1])):
            op = (dst[0] - ((src[0] - 1) * 2 - 2 + 3), dst[1] - ((src[1] - 1) * 2 - 2 + 3))
            out_c = chans[i + 1] if i < 2 else self.channels
            ups.append(nn.ConvTranspose2d(chans[i], out_c, 3, 2, 1, output_padding=op))
            if i < 2:
                ups.append(nn.ReLU())
        self.dec_convs = nn.Sequential(*ups)

    def config(self) -> dict:
        return {
            "image_size": list(self.image_size),
            "channels": self.channels,
            "latent_dim": self.latent_dim,
            "width": self.width,
            "likelihood": self.likelihood,
            "pixel_sigma": self.pixel_sigma,
            "decoder": self.decoder,
            "glyph_size": self.glyph_size,
        }

    def encode(self, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of q(z | image * mask, mask); ``mask`` (B, 1, H, W) with 1 on observed pixels."""
        inp = torch.cat([images * mask, mask], dim=1)
        h = self.encoder(inp)
        loc, scale = self.enc_loc(h), nn.functional.softplus(self.enc_scale(h)) + 1e-4
        if self.decoder != "glyph":
            return loc, scale
        # z_where from the canvas encoder; z_what from the window at the mean of z_where.
        window = nn.functional.grid_sample(
            inp, self._window_grid(loc[:, :2]), mode="bilinear", padding_mode="zeros", align_corners=False
        )
        hw = self.what_encoder(window)
        loc = torch.cat([loc[:, :2], self.what_loc(hw)], dim=1)
        scale = torch.cat([scale[:, :2], nn.functional.softplus(self.what_scale(hw)) + 1e-4], dim=1)
        return loc, scale

    def _placement(self, z_where: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Glyph centre (x, y) in normalised canvas coordinates, uniform under the N(0, I) prior of z_where
        (``2 Phi(z) - 1 = erf(z / sqrt 2)``), and the canvas-to-glyph scale (x, y)."""
        g, (H, W) = self.glyph_size, self.image_size
        reach = z_where.new_tensor([(W - g) / W, (H - g) / H])
        return reach * torch.special.erf(z_where[:, [1, 0]] / math.sqrt(2)), z_where.new_tensor([W / g, H / g])

    def _window_grid(self, z_where: torch.Tensor) -> torch.Tensor:
        """Sampling grid (B, g, g, 2) of the glyph-sized window of the canvas placed by ``z_where``."""
        centre, scale = self._placement(z_where)
        theta = torch.zeros(z_where.shape[0], 2, 3, dtype=z_where.dtype, device=z_where.device)
        theta[:, 0, 0], theta[:, 1, 1] = 1 / scale[0], 1 / scale[1]
        theta[:, :, 2] = centre
        g = self.glyph_size
        return nn.functional.affine_grid(theta, [z_where.shape[0], self.channels + 1, g, g], align_corners=False)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid pixel values (B, C, H, W)."""
        if self.decoder == "glyph":
            return self._decode_glyph(z)
        c2, (h, w) = 2 * self.width, self._sizes[3]
        return self.dec_convs(self.dec_in(z).view(-1, c2, h, w))

    def _decode_glyph(self, z: torch.Tensor) -> torch.Tensor:
        g, c2, (H, W) = self.glyph_size, 2 * self.width, self.image_size
        glyph = torch.sigmoid(self.dec_convs(self.dec_in(z[:, 2:]).view(-1, c2, g // 4, g // 4)))
        centre, scale = self._placement(z[:, :2])
        theta = torch.zeros(z.shape[0], 2, 3, dtype=z.dtype, device=z.device)
        theta[:, 0, 0], theta[:, 1, 1] = scale[0], scale[1]
        theta[:, :, 2] = -centre * scale  # canvas -> glyph coordinates
        grid = nn.functional.affine_grid(theta, [z.shape[0], self.channels, H, W], align_corners=False)
        p = nn.functional.grid_sample(glyph, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return torch.logit(p * (1 - 2 * _GLYPH_EPS) + _GLYPH_EPS)  # off-glyph pixels: probability 1e-3

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean image in [0, 1] (B, C, H, W)."""
        return torch.sigmoid(self.decode_logits(z))

    def pixel_distribution(self, z: torch.Tensor) -> TorchDistribution:
        """p(image | z) as a Pyro distribution with event shape (C, H, W)."""
        import pyro.distributions as dist

        logits = self.decode_logits(z)
        if self.likelihood == "bernoulli":
            # Grey-level pixels are fractional Bernoulli targets (the usual binary cross-entropy).
            px = dist.Bernoulli(logits=logits, validate_args=False)
        else:
            px = dist.Normal(torch.sigmoid(logits), self.pixel_sigma)
        return px.to_event(3)

    # ------------------------------------------------------------ Pyro model and guide
    def model(self, images: torch.Tensor, mask: torch.Tensor) -> None:
        """``z ~ N(0, I)``, ``image ~ p(image | decoder(z))``."""
        import pyro
        import pyro.distributions as dist

        pyro.module("vae", self)
        B = images.shape[0]
        with pyro.plate("data", B):
            z = pyro.sample("z", dist.Normal(images.new_zeros(B, self.latent_dim), 1.0).to_event(1))
            pyro.sample("x", self.pixel_distribution(z), obs=images)

    def guide(self, images: torch.Tensor, mask: torch.Tensor) -> None:
        """``q(z | image * mask, mask)``: a diagonal Gaussian from the encoder."""
        import pyro
        import pyro.distributions as dist

        pyro.module("vae", self)
        with pyro.plate("data", images.shape[0]):
            loc, scale = self.encode(images, mask)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


class FreeBitsELBO:
    """Negative ELBO with an analytic KL, a KL weight and free bits, as a loss callable for ``pyro.infer.SVI``.

    ``loss = -sum_b E_q[log p(x_b | z)] + kl_weight * B * sum_j max(free_bits, mean_b KL_bj)`` with one
    reparameterised draw of ``z`` per image from the guide (traced and replayed through the model, as
    ``Trace_ELBO`` does) and ``KL_bj = KL(q(z_j | x_b) || N(0, 1))`` in closed form.  ``kl_weight`` is set by the
    training loop (the warm-up).  With ``kl_weight = 1`` and ``free_bits = 0`` it equals ``TraceMeanField_ELBO``.
    """

    def __init__(self, free_bits: float = 0.0, kl_weight: float = 1.0):
        self.free_bits, self.kl_weight = float(free_bits), float(kl_weight)

    def __call__(self, model, guide, *args, **kwargs) -> torch.Tensor:
        from pyro import poutine

        guide_tr = poutine.trace(guide).get_trace(*args, **kwargs)
        model_tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(*args, **kwargs)
        x = model_tr.nodes["x"]
        log_lik = x["fn"].log_prob(x["value"]).sum()
        q, p = guide_tr.nodes["z"]["fn"].base_dist, model_tr.nodes["z"]["fn"].base_dist
        kl = torch.distributions.kl_divergence(
            torch.distributions.Normal(q.loc, q.scale), torch.distributions.Normal(p.loc, p.scale)
        )  # (B, d)
        B = kl.shape[0]
        kl_term = kl.mean(0).clamp(min=self.free_bits).sum() * B
        return -(log_lik - self.kl_weight * kl_term)


def random_glimpse_masks(
    grid: Sensor,
    batch: int,
    generator: torch.Generator,
    max_glimpses: int = 4,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of 1..max_glimpses uniformly random glimpses per image: (locations (B, T) with NO_GLIMPSE
    padding, fovea mask (B, 1, H, W)).  The VAE's encoder and the conditional GAN read the full-resolution pixels
    the foveae saw (scale 0 of the sensor); with a multi-scale retina the coarse scales enter only through the
    likelihood (NUTS) and the importance weights, not through these networks' inputs."""
    counts = torch.randint(1, max_glimpses + 1, (batch,), generator=generator)
    loc = torch.randint(0, grid.num_locations, (batch, max_glimpses), generator=generator)
    loc = torch.where(torch.arange(max_glimpses) < counts.unsqueeze(1), loc, torch.full_like(loc, NO_GLIMPSE))
    return loc, grid.mask(loc, device=device)[:, :1]


def _check_images(images, name="images", grid: Sensor | None = None) -> torch.Tensor:
    """``images`` (N, C, H, W) with finite pixels in [0, 1] (of the ``grid``'s size when given), as float."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"`{name}` must be a (N, C, H, W) tensor, got {got}")
    if images.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one image")
    x = images.float()
    if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError(f"`{name}` must hold finite pixels in [0, 1]")
    if grid is not None and tuple(x.shape[-2:]) != grid.image_size:
        raise ValueError(f"`{name}` must be {grid.image_size} to match the grid, got {tuple(x.shape[-2:])}")
    return x


def shuffled_batches(
    images: torch.Tensor, batch_size: int, generator: torch.Generator, device
) -> Iterator[torch.Tensor]:
    """One epoch of a training loop: ``images`` in a fresh random order, ``batch_size`` at a time, on ``device``."""
    order = torch.randperm(images.shape[0], generator=generator)
    for i in range(0, images.shape[0], batch_size):
        yield images[order[i : i + batch_size]].to(device)


def train_vae(
    images: torch.Tensor,
    grid: Sensor,
    cfg: VAEConfig = VAEConfig(),
    device: str | torch.device = "auto",
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> VAE:
    """Fit a :class:`VAE` to ``images`` (N, C, H, W) in [0, 1] by SVI; save it to ``out_dir`` if given."""
    import pyro
    from pyro.infer import SVI

    images = _check_images(images, grid=grid)
    device = resolve_device(device)
    torch.manual_seed(derive_seed(cfg.seed, "vae-init"))
    vae = VAE(
        grid.image_size,
        images.shape[1],
        cfg.latent_dim,
        cfg.width,
        cfg.likelihood,
        cfg.pixel_sigma,
        cfg.decoder,
        cfg.glyph_size,
    ).to(device)
    pyro.clear_param_store()
    loss = FreeBitsELBO(cfg.free_bits, kl_weight=0.0 if cfg.kl_warmup_epochs > 0 else 1.0)
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": cfg.lr}), loss=loss)
    g = make_generator(derive_seed(cfg.seed, "vae-batches"))
    N, P = images.shape[0], images[0].numel()
    steps_per_epoch = -(-N // cfg.batch_size)
    warmup_steps = cfg.kl_warmup_epochs * steps_per_epoch
    start, history, step = time.time(), [], 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "vae-svi"))
        bar = tqdm(range(cfg.epochs), desc="VAE (SVI)", disable=not progress)
        for epoch in bar:
            total = 0.0
            for x in shuffled_batches(images, cfg.batch_size, g, device):
                loss.kl_weight = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
                total += svi.step(x, _batch_mask(grid, x.shape[0], cfg.masked_fraction, g, device))
                step += 1
            history.append(total / (N * P))
            bar.set_postfix(loss_per_pixel=f"{history[-1]:.4f}", kl_weight=f"{loss.kl_weight:.2f}")
    vae.eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    log.info(
        "VAE trained: %d epochs (%d SVI steps) in %.1f s, final loss per pixel %.4f",
        cfg.epochs,
        step,
        time.time() - start,
        history[-1] if history else float("nan"),
    )
    if out_dir is not None:
        save_vae(vae, out_dir, cfg, grid, history)
    return vae


def _batch_mask(grid: Sensor, batch: int, masked_fraction: float, g: torch.Generator, device) -> torch.Tensor:
    """(B, 1, H, W) masks of a training batch: the first ``masked_fraction`` of the images seen through random
    glimpses, the others whole."""
    mask = torch.ones(batch, 1, *grid.image_size, device=device)
    n_masked = int(round(masked_fraction * batch))
    if n_masked:
        mask[:n_masked] = random_glimpse_masks(grid, n_masked, g, device=device)[1]
    return mask


@torch.no_grad()
def evaluate_vae(vae: VAE, images: torch.Tensor, batch_size: int = 256, active_threshold: float = 0.01) -> dict:
    """What posterior collapse destroys, measured on (held-out) full images ``(N, C, H, W)`` in [0, 1].

    Returns ``kl_per_dim`` (d,): the mean KL(q(z_j | x) || N(0, 1)) over the images (0 for an unused unit);
    ``active_units``: the number of latent dimensions whose encoder mean varies across images,
    ``Var_x E_q[z_j] > active_threshold`` (Burda et al. 2016's criterion; 0 for a collapsed VAE);
    ``recon_mse``: the mean squared pixel error of ``decode(E_q[z])`` against the images, and
    ``mean_image_mse``: that of the images' own mean image (what a collapsed decoder can at best output);
    ``recon_ratio = recon_mse / mean_image_mse`` (1 for a collapsed VAE, well below 1 when z is used).
    """
    x = _check_images(images)
    if tuple(x.shape[1:]) != (vae.channels, *vae.image_size):
        raise ValueError(
            f"`images` must have shape (N, {vae.channels}, {vae.image_size[0]}, {vae.image_size[1]}) "
            f"for this VAE, got {tuple(x.shape)}"
        )
    device = next(vae.parameters()).device
    locs, kls, sq = [], [], 0.0
    for i in range(0, x.shape[0], batch_size):
        xb = x[i : i + batch_size].to(device)
        loc, scale = vae.encode(xb, torch.ones(xb.shape[0], 1, *vae.image_size, device=device))
        kls.append((0.5 * (loc**2 + scale**2 - 1) - scale.log()).cpu())
        locs.append(loc.cpu())
        sq += float((vae.decode(loc) - xb).square().sum())
    loc, kl = torch.cat(locs), torch.cat(kls)
    recon = sq / x.numel()
    mean_mse = float((x - x.mean(0, keepdim=True)).square().mean())
    return {
        "kl_per_dim": kl.mean(0),
        "kl_total": float(kl.sum(1).mean()),
        "active_units": int((loc.var(0) > active_threshold).sum()) if loc.shape[0] > 1 else 0,
        "recon_mse": recon,
        "mean_image_mse": mean_mse,
        "recon_ratio": recon / mean_mse if mean_mse > 0 else float("nan"),
    }


def save_vae(vae: VAE, out_dir: str | os.PathLike, cfg: VAEConfig, grid: Sensor, history: Iterable[float] = ()) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_weights(out_dir / "vae.safetensors", vae, {**vae.config(), "grid": grid.to_dict()})
    write_manifest(
        out_dir, "vae", {**config_to_dict(cfg), "grid": grid.to_dict()}, loss_history=[float(h) for h in history]
    )
    return out_dir


def load_vae(
    directory: str | os.PathLike, device: str | torch.device = "cpu", expected: dict | None = None
) -> tuple[VAE, Sensor]:
    """Load a VAE saved by :func:`train_vae`; ``expected`` config values (e.g. ``{"latent_dim": 16}``) must
    match.  Returns the frozen VAE (eval mode, no gradients) and its grid."""
    vae, config = load_network(directory, "vae", "vae", _build_vae, device, expected, ("grid",))
    for p in vae.parameters():
        p.requires_grad_(False)
    return vae, Sensor.from_dict(config["grid"])


def _build_vae(config: dict) -> VAE:
    return VAE(
        config["image_size"],
        config["channels"],
        config["latent_dim"],
        config["width"],
        config["likelihood"],
        config["pixel_sigma"],
        config.get("decoder", "conv"),
        config.get("glyph_size", 28),
    )
