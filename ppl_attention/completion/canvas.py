"""The data's generative process of translated and cluttered MNIST canvases, and the index of its digit pool.

A canvas (:func:`ppl_attention.data.mnist.render_canvases`) is one training digit at one of the ``(S - 27)^2``
top-left offsets of an ``S x S`` canvas, max-combined with random pieces of clutter.  :class:`CanvasPrior` is that
process as a Pyro program (:meth:`CanvasPrior.model`)::

    digit  ~ Categorical(uniform over the training pool)
    offset ~ Categorical(uniform over the (S - 27)^2 offsets)
    clutter pieces ~ the dataset's clutter process                 # (cluttered MNIST only)
    y      ~ ClutterObservation(sensor.extract(render(digit, offset), locations), sigma_t, rho, rate)

with the renderer that draws a (digit, offset) pair exactly as the data does.  :class:`DigitIndex` holds the pool's
faiss PCA and k-means prototypes, which the proposals of :mod:`.generative` score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..sensor import Sensor

from .clutter_noise import ClutterNoise, ClutterObservation

__all__ = ["CanvasPrior", "DigitIndex", "DIGIT"]

DIGIT = 28


class CanvasPrior:
    """The generative process of an MNIST canvas dataset: ``digits`` (N, 28, 28) float in [0, 1], their ``labels``,
    the canvas side, the clutter settings and the sensor."""

    def __init__(
        self,
        digits: torch.Tensor,
        labels: torch.Tensor,
        grid: Sensor,
        canvas_size: int = 60,
        cluttered: bool = True,
        n_clutter: int = 4,
        clutter_size: int = 8,
    ):
        if not isinstance(digits, torch.Tensor) or digits.dim() != 3 or tuple(digits.shape[1:]) != (DIGIT, DIGIT):
            raise ValueError(
                f"`digits` must be a (N, 28, 28) tensor, got "
                f"{tuple(digits.shape) if isinstance(digits, torch.Tensor) else type(digits).__name__}"
            )
        if digits.shape[0] < (2 if cluttered and n_clutter > 0 else 1):
            raise ValueError(f"the digit pool needs at least {2 if cluttered else 1} digits, got {digits.shape[0]}")
        if digits.dtype == torch.uint8:
            digits = digits.float().div(255.0)
        labels = torch.as_tensor(labels).long()
        if labels.shape != (digits.shape[0],):
            raise ValueError(
                f"`labels` must have shape ({digits.shape[0]},) to match digits, got {tuple(labels.shape)}"
            )
        S = int(canvas_size)
        if S < DIGIT or tuple(grid.image_size) != (S, S):
            raise ValueError(
                f"the sensor is for {grid.image_size[0]} x {grid.image_size[1]} images, the canvases are "
                f"{S} x {S} (and must be at least 28)"
            )
        self.digits = digits.float().contiguous()
        self.digits_uint8 = self.digits.mul(255.0).round().clamp(0, 255).to(torch.uint8)
        self.labels = labels
        self.grid = grid
        self.canvas_size = S
        self.cluttered = bool(cluttered)
        self.n_clutter, self.clutter_size = int(n_clutter), int(clutter_size)
        self.side = S - DIGIT + 1  # offsets per axis
        self._filtered = self.box_filtered(self.digits)

    @property
    def num_digits(self) -> int:
        return self.digits.shape[0]

    @property
    def num_offsets(self) -> int:
        return self.side * self.side

    def offset_pixels(self, offsets: torch.Tensor) -> torch.Tensor:
        """Top-left pixel (row, col) ``offsets.shape + (2,)`` of each flat offset."""
        return torch.stack([offsets // self.side, offsets % self.side], -1)

    def render(self, images: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Float images (M, 28, 28) (digits or any 28 x 28 pattern) placed at flat ``offsets`` (M,) on empty
        canvases: (M, 1, S, S).  One scatter, no loop."""
        M, S = images.shape[0], self.canvas_size
        px = self.offset_pixels(offsets.long())
        ar = torch.arange(DIGIT)
        pos = (px[:, 0, None, None] + ar[None, :, None]) * S + (px[:, 1, None, None] + ar[None, None, :])
        flat = images.new_zeros(M, S * S)
        flat.scatter_(1, pos.reshape(M, -1), images.reshape(M, -1))
        return flat.view(M, 1, S, S)

    def box_filtered(self, images: torch.Tensor) -> list:
        """Per scale ``j`` (block side ``b = s^j``), the block means ``Fb[a] = mean(images[a : a + b])`` of float
        patterns (M, 28, 28) for every top-left ``a`` in ``[-(b-1), 27]`` (zero padded): (M, 27 + b, 27 + b)."""
        out = []
        for j in range(self.grid.scales):
            b = self.grid.scale_factor**j
            out.append(F.avg_pool2d(F.pad(images.unsqueeze(1), (b - 1,) * 4), b, stride=1)[:, 0].contiguous())
        return out

    def predict(
        self, digit: torch.Tensor, offsets: torch.Tensor, locations: torch.Tensor, filtered: list | None = None
    ) -> torch.Tensor:
        """What the sensor returns at ``locations`` (t,) of pattern ``digit`` (M,) at ``offsets`` (M,) on an empty
        canvas: (M, t, k, h*w) -- ``grid.extract(render(...))`` computed without rendering: each pooled value of
        scale ``j`` is one entry of the pattern's block means (:meth:`box_filtered`; default: the pool's digits),
        because the pattern lies inside the canvas (the sensor's zero padding outside the image reads nothing
        of it)."""
        filtered = self._filtered if filtered is None else filtered
        grid = self.grid
        h, w = grid.glimpse_size
        tops = grid.footprints(locations)  # (t, k, 2)
        px = self.offset_pixels(offsets.long())  # (M, 2)
        out = []
        for j, Fb in enumerate(filtered):  # k scales
            b = grid.scale_factor**j
            n_f = Fb.shape[-1]
            r = tops[None, :, j, 0, None] + b * torch.arange(h) - px[:, 0, None, None] + (b - 1)  # (M, t, h)
            c = tops[None, :, j, 1, None] + b * torch.arange(w) - px[:, 1, None, None] + (b - 1)  # (M, t, w)
            vr, vc = (r >= 0) & (r < n_f), (c >= 0) & (c < n_f)
            flat = (
                digit.view(-1, 1, 1, 1) * (n_f * n_f)
                + r.clamp(0, n_f - 1).unsqueeze(-1) * n_f
                + c.clamp(0, n_f - 1).unsqueeze(-2)
            )  # (M, t, h, w)
            v = Fb.view(-1)[flat] * (vr.unsqueeze(-1) & vc.unsqueeze(-2))
            out.append(v.reshape(v.shape[0], v.shape[1], -1))
        return torch.stack(out, 2)  # (M, t, k, h*w)

    def add_clutter(
        self, canvases: torch.Tensor, digit: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Max-combine fresh clutter (the dataset's process) into float canvases (M, 1, S, S) showing ``digit``."""
        if not self.cluttered or self.n_clutter == 0:
            return canvases
        from ..data.mnist import add_clutter

        flat = canvases.reshape(canvases.shape[0], -1).clone()
        add_clutter(
            flat, self.digits_uint8, digit.long(), self.canvas_size, self.n_clutter, self.clutter_size, generator
        )
        return flat.view_as(canvases)

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n`` canvases of the process: images (n, 1, S, S) float, labels, digits, offsets."""
        digit = torch.randint(self.num_digits, (n,), generator=generator)
        offsets = torch.randint(self.num_offsets, (n,), generator=generator)
        images = self.add_clutter(self.render(self.digits[digit], offsets), digit, generator)
        return images, self.labels[digit], digit, offsets

    def model(
        self,
        locations: torch.Tensor,
        y: Optional[torch.Tensor] = None,
        sigma: float = 0.25,
        noise: Optional[ClutterNoise] = None,
        candidates: int = 1,
    ) -> torch.Tensor:
        """The Pyro program (module docstring).  ``y`` (t, k*C, h, w) conditions the glimpses; ``candidates`` > 1
        runs it vectorised in a plate (condition ``digit`` / ``offset`` on (candidates,) tensors to score pairs).
        Returns the canvases (candidates, 1, S, S) with their clutter."""
        import pyro
        import pyro.distributions as dist

        noise = noise or ClutterNoise.none(self.grid.scales)
        locations = torch.as_tensor(locations).long().reshape(-1)
        with pyro.plate("candidates", candidates):
            digit = pyro.sample("digit", dist.Categorical(logits=torch.zeros(self.num_digits)))
            offset = pyro.sample("offset", dist.Categorical(logits=torch.zeros(self.num_offsets)))
            clean = self.render(self.digits[digit], offset)
            canvas = clean
            if self.cluttered and self.n_clutter > 0:
                K, c, S = self.n_clutter, self.clutter_size, self.canvas_size
                with pyro.plate("pieces", K, dim=-2):
                    other = pyro.sample("clutter_digit", dist.Categorical(logits=torch.zeros(self.num_digits - 1)))
                    crop = pyro.sample("clutter_crop", dist.Categorical(logits=torch.zeros((DIGIT - c + 1) ** 2)))
                    place = pyro.sample("clutter_place", dist.Categorical(logits=torch.zeros((S - c + 1) ** 2)))
                canvas = self._max_clutter(clean, digit, other.T, crop.T, place.T)
            if locations.numel():
                mean = self.grid.extract(clean, locations.view(1, -1).expand(clean.shape[0], -1))
                pyro.sample(
                    "y",
                    ClutterObservation(mean, sigma, noise, self.grid.scales),
                    obs=None if y is None else y.unsqueeze(0).expand_as(mean),
                )
        return canvas

    def _max_clutter(self, clean, digit, other, crop, place):
        """Clutter pieces (M, K) given by the model's sites, max-combined into ``clean`` (M, 1, S, S)."""
        M, K = other.shape
        c, S = self.clutter_size, self.canvas_size
        other = other + (other >= digit[:, None]).long()
        cr, cc = crop // (DIGIT - c + 1), crop % (DIGIT - c + 1)
        pr, pc = place // (S - c + 1), place % (S - c + 1)
        arc = torch.arange(c)
        pieces = self.digits[
            other[..., None, None].expand(M, K, c, c),
            (cr[..., None, None] + arc[:, None]).expand(M, K, c, c),
            (cc[..., None, None] + arc[None, :]).expand(M, K, c, c),
        ]
        dst = (pr[..., None, None] + arc[:, None]) * S + (pc[..., None, None] + arc[None, :])
        flat = clean.reshape(M, -1).clone()
        flat.scatter_reduce_(1, dst.reshape(M, -1), pieces.reshape(M, -1), reduce="amax", include_self=True)
        return flat.view_as(clean)


@dataclass
class DigitIndex:
    """The faiss PCA of the digit pool (``mean`` (784,), ``components`` (k, 784), ``codes`` (N, k)) and its k-means
    ``prototypes`` (P, 28, 28) with their cluster ``sizes`` (P,)."""

    mean: torch.Tensor
    components: torch.Tensor
    codes: torch.Tensor
    prototypes: torch.Tensor
    sizes: torch.Tensor

    @classmethod
    def fit(cls, digits: torch.Tensor, components: int = 24, prototypes: int = 32, seed: int = 0) -> "DigitIndex":
        import faiss

        x = np.ascontiguousarray(digits.reshape(digits.shape[0], -1).float().numpy())
        N = x.shape[0]
        k = int(min(components, x.shape[1], max(N - 1, 1)))
        pca = faiss.PCAMatrix(x.shape[1], k)
        pca.train(x)
        mean = torch.from_numpy(faiss.vector_to_array(pca.mean).astype(np.float32))
        comp = torch.from_numpy(faiss.vector_to_array(pca.A).reshape(k, x.shape[1]).astype(np.float32))
        codes = (torch.from_numpy(x) - mean) @ comp.T
        P = int(min(prototypes, N))
        if P >= N:
            assign = np.arange(N)
        else:
            km = faiss.Kmeans(x.shape[1], P, niter=25, seed=int(seed) % (2**31), verbose=False)
            km.train(x)
            _, assign = km.index.search(x, 1)
            assign = assign[:, 0]
        assign = torch.from_numpy(assign.astype(np.int64))
        sizes = torch.bincount(assign, minlength=P).float()
        sums = torch.zeros(P, x.shape[1]).index_add_(0, assign, torch.from_numpy(x))
        keep = sizes > 0
        protos = (sums[keep] / sizes[keep, None]).view(-1, DIGIT, DIGIT)
        return cls(mean, comp, codes, protos, sizes[keep])

    def tensors(self) -> dict:
        return {
            "pca_mean": self.mean,
            "pca_components": self.components,
            "codes": self.codes,
            "prototypes": self.prototypes,
            "prototype_sizes": self.sizes,
        }
