"""The glimpse sensor: the one implementation of locations, multi-scale glimpses, canvases and masks.

A :class:`Sensor` is a grid of candidate locations times ``k`` scales (Mnih et al. 2014's retina).  A *location*
is a flat index into the grid; its ``(row, col)`` is the top-left pixel of the finest patch (the fovea, the
paper's glimpse).  Flat index = ``row_index * n_cols + col_index`` (the paper's convention).

What a glimpse returns: ``k`` square patches centred on the fovea's centre, of sides ``g, g*s, ..., g*s^(k-1)``
(``g`` = ``glimpse_size``, ``s`` = ``scale_factor``), each area-averaged (mean over ``s^j x s^j`` blocks) down to
``g x g``.  The scales are stacked along the channel axis, finest first, so a glimpse of a ``C``-channel image is a
``(k*C, h, w)`` tensor (channel ``j*C + c`` is channel ``c`` at scale ``j``); with ``k = 1`` it is exactly the
paper's ``(C, h, w)`` patch.  **Border**: a coarse patch may reach past the image; pixels outside the image read 0
before pooling (zero padding, as in Mnih's retina), so a pooled value near the border is the block's in-image sum
divided by the full block area.

What the glimpses reveal, as images (for the AVP, the completions' networks and the figures):

* :meth:`Sensor.mask` ``(B, k, H, W)``: per scale, the in-image pixels that some glimpse's scale-``j`` patch covers;
* :meth:`Sensor.paste` ``(B, k*C, H, W)``: per scale, every covered pixel holds the pooled value of the block it
  falls in (nearest-neighbour upsampling); where patches of one scale overlap, the LATER glimpse wins, at every
  scale (for the fovea the values agree anyway: they are the same pixels);
* :meth:`Sensor.observe` = ``paste(extract(images, loc), loc), mask(loc)``.

Everything that extracts glimpses, builds masks or pastes glimpses back into an image goes through this module
(its pooling and paste arithmetic in :mod:`.sensor_maths`), batched, with no Python loop over images, glimpses
or scales.  ``Sensor`` is the same class (its older name): a grid is a sensor with one scale.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Sequence, TYPE_CHECKING

import numpy as np
import torch

from .checks import check_int
from .sensor_maths import paste_latest, pooling_matrices

if TYPE_CHECKING:
    from typing import Any, Iterator, Mapping

__all__ = ["Sensor", "NO_GLIMPSE", "SensorMismatch", "check_sensor", "checked_locations"]

#: Placeholder location meaning "no glimpse here" (accepted by :meth:`Sensor.mask` only), so that a batch
#: can hold sequences of different lengths.
NO_GLIMPSE = -1

_trust = threading.local()


@contextlib.contextmanager
def checked_locations() -> Iterator[None]:
    """Within this block the sensor skips its range check of locations, which the caller has already checked: the
    check reads a device tensor's values on the host, a GPU sync per call (a loop of AVP passes needs none)."""
    before = getattr(_trust, "on", False)
    _trust.on = True
    try:
        yield
    finally:
        _trust.on = before


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(int(v) for v in value)
        except TypeError:
            raise ValueError(f"`{name}` must be an int or a pair of ints, got {value!r}") from None
        if len(pair) != 2:
            raise ValueError(f"`{name}` must be an int or a pair of ints, got {value!r}")
    if min(pair) <= 0:
        raise ValueError(f"`{name}` must be positive, got {value!r}")
    return pair


class SensorMismatch(ValueError):
    """An artefact was made for another sensor (grid, glimpse size or retina) than the one it is used with."""


def check_sensor(
    found: Sensor | Mapping[str, Any],
    expected: Sensor | Mapping[str, Any],
    what: str,
    expected_what: str = "the current sensor",
) -> None:
    """Raise :class:`SensorMismatch` naming both sensors unless ``found`` and ``expected`` are the same sensor.

    Either may be a :class:`Sensor` or its ``to_dict()`` (a dict without ``scales`` reads as
    ``scales = 1``)."""
    a = found if isinstance(found, Sensor) else Sensor.from_dict(found)
    b = expected if isinstance(expected, Sensor) else Sensor.from_dict(expected)
    if a != b:
        raise SensorMismatch(
            f"{what} was made for sensor {a.describe()}, but {expected_what} is {b.describe()}; "
            "use artefacts made for one sensor"
        )


@dataclass(frozen=True, eq=True)
class Sensor:
    """The candidate glimpse locations of a task and the retina that looks there.

    Args:
        image_size: ``H`` or ``(H, W)`` of the images.
        glimpse_size: ``h`` or ``(h, w)`` of the fovea (each scale is pooled to this size).
        rows: top-left pixel rows of the fovea allowed (increasing); default: every ``stride`` pixels.
        cols: top-left pixel columns allowed (increasing); default: every ``stride`` pixels.
        stride: spacing used for ``rows``/``cols`` that are not given (default 1).
        scales: ``k``, the number of patches per glimpse (1: the paper's single patch).
        scale_factor: ``s``, each patch is ``s`` times the side of the previous one (an int >= 2).
    """

    image_size: tuple[int, int]
    glimpse_size: tuple[int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    scales: int = 1
    scale_factor: int = 2

    def __init__(
        self,
        image_size: int | tuple[int, int],
        glimpse_size: int | tuple[int, int],
        rows: Sequence[int] | None = None,
        cols: Sequence[int] | None = None,
        stride: int | None = None,
        scales: int = 1,
        scale_factor: int = 2,
    ) -> None:
        H, W = _pair(image_size, "image_size")
        h, w = _pair(glimpse_size, "glimpse_size")
        if h > H or w > W:
            raise ValueError(
                f"glimpse_size {(h, w)} is larger than image_size {(H, W)}; a glimpse must fit inside the image"
            )
        if stride is not None and (not isinstance(stride, (int, np.integer)) or stride <= 0):
            raise ValueError(f"`stride` must be a positive int, got {stride!r}")
        for name, value, low in (("scales", scales, 1), ("scale_factor", scale_factor, 2)):
            check_int(name, value, minimum=low)
        k, f = int(scales), int(scale_factor)
        for side, axis in ((h, "height"), (w, "width")):
            if (side * (f ** (k - 1) - 1)) % 2:
                raise ValueError(
                    f"a glimpse {axis} of {side} with scale_factor {f} cannot centre the scale-"
                    f"{k - 1} patch on the fovea (its offset {side * (f ** (k - 1) - 1)}/2 is not a "
                    "whole pixel); use an even glimpse size or an odd scale_factor"
                )
        step = int(stride or 1)
        rows = tuple(range(0, H - h + 1, step)) if rows is None else tuple(int(r) for r in rows)
        cols = tuple(range(0, W - w + 1, step)) if cols is None else tuple(int(c) for c in cols)
        for name, values, limit in (("rows", rows, H - h), ("cols", cols, W - w)):
            if len(values) == 0:
                raise ValueError(f"`{name}` must hold at least one position")
            if any(v < 0 or v > limit for v in values):
                raise ValueError(
                    f"`{name}` must lie in [0, {limit}] so that the glimpse fits the image, got {list(values)}"
                )
            if any(b <= a for a, b in zip(values, values[1:])):
                raise ValueError(f"`{name}` must be strictly increasing, got {list(values)}")
        object.__setattr__(self, "image_size", (H, W))
        object.__setattr__(self, "glimpse_size", (h, w))
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "cols", cols)
        object.__setattr__(self, "scales", k)
        object.__setattr__(self, "scale_factor", f)

    # ------------------------------------------------------------------ presets
    @classmethod
    def celeba_hq(cls) -> "Sensor":
        """The paper's CelebA-HQ grid: 224 x 224 images, 16 x 16 glimpses, 50 x 50 locations, one scale."""
        pos = [int(x) for x in np.linspace(0, 207, 50)]
        return cls(224, 16, rows=pos, cols=pos)

    @classmethod
    def cub(cls) -> "Sensor":
        """The paper's CUB grid: 128 x 128 crops, 32 x 32 glimpses, 13 x 13 locations (0..96 step 8), one scale."""
        return cls(128, 32, stride=8)

    @classmethod
    def mnist(cls, scales: int = 1, scale_factor: int = 2, canvas_size: int = 60) -> "Sensor":
        """MNIST canvases with 12 x 12 foveae every 6 pixels (9 x 9 = 81 locations on 60 x 60).

        ``scales=3`` is Mnih et al.'s retina (12, 24 and 48 pixels, each pooled to 12 x 12)."""
        return cls(canvas_size, 12, stride=6, scales=scales, scale_factor=scale_factor)

    @classmethod
    def retina(cls) -> "Sensor":
        """Mnih et al. (2014)'s retina on 60 x 60 MNIST: the 81-location grid, 3 scales, factor 2."""
        return cls.mnist(scales=3)

    @classmethod
    def preset(cls, name: str) -> "Sensor":
        presets = {"celeba-hq": cls.celeba_hq, "cub": cls.cub, "mnist": cls.mnist, "mnist-retina": cls.retina}
        if name not in presets:
            raise ValueError(f"grid preset must be one of {sorted(presets)}, got {name!r}")
        return presets[name]()

    def with_scales(self, scales: int, scale_factor: int | None = None) -> "Sensor":
        """The same grid with another retina."""
        return Sensor(
            self.image_size,
            self.glimpse_size,
            rows=self.rows,
            cols=self.cols,
            scales=scales,
            scale_factor=self.scale_factor if scale_factor is None else scale_factor,
        )

    # -------------------------------------------------------------- serialise
    def to_dict(self) -> dict:
        return {
            "image_size": list(self.image_size),
            "glimpse_size": list(self.glimpse_size),
            "rows": list(self.rows),
            "cols": list(self.cols),
            "scales": self.scales,
            "scale_factor": self.scale_factor,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Sensor":
        """From :meth:`to_dict`; a dict without ``scales`` is a one-scale grid."""
        if not isinstance(d, dict):
            raise ValueError(f"a sensor description must be a dict, got {type(d).__name__}")
        try:
            return cls(
                d["image_size"],
                d["glimpse_size"],
                rows=d["rows"],
                cols=d["cols"],
                scales=d.get("scales", 1),
                scale_factor=d.get("scale_factor", 2),
            )
        except KeyError as e:
            raise ValueError(f"grid description is missing the key {e.args[0]!r}: {d!r}") from None

    def describe(self) -> str:
        """A short human-readable description (for error messages and figure titles)."""
        H, W = self.image_size
        h, w = self.glimpse_size
        text = f"{self.n_rows}x{self.n_cols} locations on {H}x{W}, {h}x{w} glimpses"
        if self.scales > 1:
            sides = ", ".join(str(s[0]) for s in self.patch_sizes)
            text += f", {self.scales} scales ({sides} px, factor {self.scale_factor})"
        else:
            text += ", 1 scale"
        return text

    # ------------------------------------------------------------- properties
    @property
    def n_rows(self) -> int:
        return len(self.rows)

    @property
    def n_cols(self) -> int:
        return len(self.cols)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.n_cols)

    @property
    def num_locations(self) -> int:
        return self.n_rows * self.n_cols

    def __len__(self) -> int:
        return self.num_locations

    @property
    def patch_sizes(self) -> tuple[tuple[int, int], ...]:
        """Side ``(h * s^j, w * s^j)`` of each scale's patch, finest first."""
        h, w = self.glimpse_size
        return tuple((h * self.scale_factor**j, w * self.scale_factor**j) for j in range(self.scales))

    def glimpse_channels(self, channels: int) -> int:
        """Channels of one glimpse of a ``channels``-channel image: ``k * channels`` (scales stacked)."""
        return self.scales * int(channels)

    def glimpse_shape(self, channels: int) -> tuple[int, int, int]:
        """Shape ``(k*C, h, w)`` of one glimpse of a ``C``-channel image."""
        return (self.glimpse_channels(channels),) + self.glimpse_size

    def split_scales(self, glimpses: torch.Tensor) -> torch.Tensor:
        """View glimpses ``(..., k*C, h, w)`` as ``(..., k, C, h, w)``."""
        kc = glimpses.shape[-3]
        if kc % self.scales:
            raise ValueError(f"glimpses have {kc} channels, not a multiple of the sensor's {self.scales} scales")
        return glimpses.reshape(*glimpses.shape[:-3], self.scales, kc // self.scales, *glimpses.shape[-2:])

    def all_locations(self, device: str | torch.device | None = None) -> torch.Tensor:
        """Every flat location index, shape ``(L,)``."""
        return torch.arange(self.num_locations, device=device)

    # ------------------------------------------------------ index <-> pixels
    def _check_locations(self, locations, name: str = "locations", allow_empty: bool = False) -> torch.Tensor:
        loc = torch.as_tensor(locations)
        if loc.dtype.is_floating_point or loc.dtype == torch.bool:
            raise ValueError(f"`{name}` must be integer flat indices, got dtype {loc.dtype}")
        loc = loc.long()
        if getattr(_trust, "on", False):
            return loc
        bad = ((loc < 0) & ~(allow_empty & (loc == NO_GLIMPSE))) | (loc >= self.num_locations)
        if bool(bad.any()):
            first = int(loc[bad].flatten()[0])
            valid = f"[0, {self.num_locations - 1}]" + (f" or {NO_GLIMPSE} (no glimpse)" if allow_empty else "")
            raise ValueError(f"{name} holds {first}, outside the grid's locations {valid}")
        return loc

    def pixels(self, locations: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Top-left ``(row, col)`` pixel of each location's fovea: shape ``locations.shape + (2,)``."""
        loc = self._check_locations(locations)
        rows = torch.tensor(self.rows, device=loc.device)
        cols = torch.tensor(self.cols, device=loc.device)
        return torch.stack([rows[loc // self.n_cols], cols[loc % self.n_cols]], dim=-1)

    def index(self, pixel_rows: torch.Tensor, pixel_cols: torch.Tensor) -> torch.Tensor:
        """Flat location of top-left pixels ``(row, col)``; refuses pixels that are not on the grid."""
        r = torch.as_tensor(pixel_rows).long()
        c = torch.as_tensor(pixel_cols).long()
        rows = torch.tensor(self.rows)
        cols = torch.tensor(self.cols)
        r_match = r.unsqueeze(-1).cpu() == rows
        c_match = c.unsqueeze(-1).cpu() == cols
        r_ok, c_ok = r_match.any(-1), c_match.any(-1)
        if not bool(r_ok.all()):
            raise ValueError(
                f"pixel row {int(r.cpu()[~r_ok].flatten()[0])} is not on the grid; allowed rows are {list(self.rows)}"
            )
        if not bool(c_ok.all()):
            raise ValueError(
                f"pixel col {int(c.cpu()[~c_ok].flatten()[0])} is not on the grid; allowed cols are {list(self.cols)}"
            )
        return (r_match.long().argmax(-1) * self.n_cols + c_match.long().argmax(-1)).to(r.device)

    def cell(self, locations: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Grid cell ``(row_index, col_index)`` of each location: shape ``locations.shape + (2,)``."""
        loc = self._check_locations(locations)
        return torch.stack([loc // self.n_cols, loc % self.n_cols], dim=-1)

    def centres(self, locations: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Centre pixel (float ``(row, col)``) of each glimpse (the same for every scale)."""
        px = self.pixels(locations).float()
        return px + torch.tensor([(self.glimpse_size[0] - 1) / 2, (self.glimpse_size[1] - 1) / 2], device=px.device)

    def nearest(self, pixel_rows: torch.Tensor, pixel_cols: torch.Tensor) -> torch.Tensor:
        """Flat location whose glimpse centre is nearest to the given pixel (clamped to the grid)."""
        r = torch.as_tensor(pixel_rows, dtype=torch.float32)
        c = torch.as_tensor(pixel_cols, dtype=torch.float32)
        rows = torch.tensor(self.rows, dtype=torch.float32) + (self.glimpse_size[0] - 1) / 2
        cols = torch.tensor(self.cols, dtype=torch.float32) + (self.glimpse_size[1] - 1) / 2
        ri = (r.unsqueeze(-1) - rows).abs().argmin(-1)
        ci = (c.unsqueeze(-1) - cols).abs().argmin(-1)
        return ri * self.n_cols + ci

    def footprints(self, locations: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Top-left pixel ``(row, col)`` of every scale's patch: ``locations.shape + (k, 2)`` (may be < 0 or
        reach past the image for the coarse scales)."""
        return self._tops(self._check_locations(locations))

    def _offsets(self, device=None) -> torch.Tensor:
        """(k, 2) shift of each scale's top-left from the fovea's: ``-(side_j - g) / 2``."""
        h, w = self.glimpse_size
        return torch.tensor([[-(sh - h) // 2, -(sw - w) // 2] for sh, sw in self.patch_sizes], device=device)

    def _tops(self, loc: torch.Tensor) -> torch.Tensor:
        """Top-left pixels (loc.shape + (k, 2)) of each scale's patch for valid (>= 0) locations."""
        rows = torch.tensor(self.rows, device=loc.device)[loc // self.n_cols]
        cols = torch.tensor(self.cols, device=loc.device)[loc % self.n_cols]
        return torch.stack([rows, cols], -1).unsqueeze(-2) + self._offsets(loc.device)

    # ------------------------------------------------------ images and masks
    def _check_images(self, images, name: str = "images") -> torch.Tensor:
        if not isinstance(images, torch.Tensor):
            raise ValueError(f"`{name}` must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
        if images.dim() != 4:
            raise ValueError(f"`{name}` must have shape (B, C, H, W), got shape {tuple(images.shape)}")
        if tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(
                f"`{name}` must be {self.image_size[0]} x {self.image_size[1]} to match the grid, "
                f"got {images.shape[-2]} x {images.shape[-1]}"
            )
        return images

    def _pixel_ranges(self, loc: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel row indices ``loc.shape + (h,)`` and col indices ``loc.shape + (w,)`` of each fovea."""
        h, w = self.glimpse_size
        rows = torch.tensor(self.rows, device=device)[loc // self.n_cols]
        cols = torch.tensor(self.cols, device=device)[loc % self.n_cols]
        return (
            rows.unsqueeze(-1) + torch.arange(h, device=device),
            cols.unsqueeze(-1) + torch.arange(w, device=device),
        )

    def _batch_locations(self, locations, batch: int, name: str = "locations", allow_empty=False):
        loc = self._check_locations(locations, name, allow_empty=allow_empty)
        if loc.dim() not in (1, 2):
            raise ValueError(f"`{name}` must have shape (B,) or (B, T), got shape {tuple(loc.shape)}")
        if loc.shape[0] not in (batch, 1):
            raise ValueError(f"{name} has batch size {loc.shape[0]} but images have batch size {batch}")
        return loc

    def _images_and_locations(self, images, locations) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Checked images (B, C, H, W), locations expanded to (B, T), and whether they were given as (B,)."""
        images = self._check_images(images)
        B = images.shape[0]
        loc = self._batch_locations(locations, B).to(images.device)
        single = loc.dim() == 1
        if single:
            loc = loc.unsqueeze(1)
        return images, loc.expand(B, loc.shape[1]), single

    def crop(self, images: torch.Tensor, locations: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """The fovea alone, full resolution: ``(B, C, h, w)`` for (B,) locations, ``(B, T, C, h, w)`` for (B, T)
        (a leading 1 broadcasts).  The paper's glimpse; :meth:`extract` is what the sensor returns."""
        images, loc, single = self._images_and_locations(images, locations)
        B = images.shape[0]
        r, c = self._pixel_ranges(loc, images.device)  # (B, T, h), (B, T, w)
        b = torch.arange(B, device=images.device).view(B, 1, 1, 1)
        # Advanced indexing around a slice puts the indexed dims first: (B, T, h, w, C).
        patches = images[b, :, r.unsqueeze(-1), c.unsqueeze(-2)].permute(0, 1, 4, 2, 3)
        return patches[:, 0] if single else patches

    def extract(self, images: torch.Tensor, locations: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """What the sensor returns at ``locations`` (B,) or (B, T) of ``images`` (B, C, H, W) (a leading 1
        broadcasts): ``(B, k*C, h, w)`` or ``(B, T, k*C, h, w)``, scales stacked along channels, finest first.

        The coarse patches are gathered once as the coarsest square (zero outside the image) and pooled to
        ``h x w`` by one einsum with per-scale averaging matrices, so there is no loop over scales."""
        if self.scales == 1:
            return self.crop(images, locations)
        images, loc, single = self._images_and_locations(images, locations)
        B, C = images.shape[:2]
        H, W = self.image_size
        Gh, Gw = self.patch_sizes[-1]
        top = self._tops(loc)[..., -1, :]  # (B, T, 2): top-left of the coarsest patch
        r = top[..., :1] + torch.arange(Gh, device=images.device)  # (B, T, Gh)
        c = top[..., 1:] + torch.arange(Gw, device=images.device)  # (B, T, Gw)
        inside = ((r >= 0) & (r < H)).unsqueeze(-1) & ((c >= 0) & (c < W)).unsqueeze(-2)  # (B, T, Gh, Gw)
        b = torch.arange(B, device=images.device).view(B, 1, 1, 1)
        big = images[b, :, r.clamp(0, H - 1).unsqueeze(-1), c.clamp(0, W - 1).unsqueeze(-2)]  # (B, T, Gh, Gw, C)
        big = big * inside.unsqueeze(-1).to(big.dtype)  # zero padding outside the image
        qh = pooling_matrices(self, 0, images.device, images.dtype)
        qw = pooling_matrices(self, 1, images.device, images.dtype)
        out = torch.einsum("kuy,btyxc,kvx->btkcuv", qh, big, qw)  # (B, T, k, C, h, w)
        out = out.reshape(B, loc.shape[1], self.scales * C, *self.glimpse_size)
        return out[:, 0] if single else out

    def _coverage(self, loc: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per glimpse and scale, which image rows (B, T, k, H) and cols (B, T, k, W) its patch covers, and the
        patches' top-left pixels (B, T, k, 2); ``NO_GLIMPSE`` entries cover nothing."""
        H, W = self.image_size
        valid = loc != NO_GLIMPSE
        top = self._tops(loc.clamp(min=0))  # (B, T, k, 2)
        sides = torch.tensor(self.patch_sizes, device=device)  # (k, 2)
        ar_h = torch.arange(H, device=device)
        ar_w = torch.arange(W, device=device)
        rel_r = ar_h - top[..., :1]  # (B, T, k, H)
        rel_c = ar_w - top[..., 1:]
        in_r = (rel_r >= 0) & (rel_r < sides[:, :1]) & valid[..., None, None]
        in_c = (rel_c >= 0) & (rel_c < sides[:, 1:])
        return in_r, in_c, top

    def _empty_locations(self, locations, device=None) -> torch.Tensor:
        loc = self._check_locations(locations, allow_empty=True)
        if device is not None:
            loc = loc.to(device)
        if loc.dim() == 1:
            loc = loc.unsqueeze(1)
        if loc.dim() != 2:
            raise ValueError(f"`locations` must have shape (B,) or (B, T), got shape {tuple(loc.shape)}")
        return loc

    def mask(
        self,
        locations: torch.Tensor | Sequence[int],
        dtype: torch.dtype = torch.float32,
        device: str | torch.device | None = None,
    ) -> torch.Tensor:
        """Binary mask (B, k, H, W): per scale, the in-image pixels covered by that scale's patch of some glimpse
        at ``locations`` (B, T) (or (B,)); overlaps unioned.  Channel 0 is the fovea (the paper's mask).

        ``T`` may be 0 (nothing observed) and entries equal to ``NO_GLIMPSE`` (-1) are ignored, so a batch can
        hold sequences of different lengths.
        """
        loc = self._empty_locations(locations, device)
        B, T = loc.shape
        H, W = self.image_size
        if T == 0:
            return torch.zeros(B, self.scales, H, W, dtype=dtype, device=loc.device)
        in_r, in_c, _ = self._coverage(loc, loc.device)
        # Union of rectangles as one batched outer product summed over glimpses.
        cover = torch.einsum("btkh,btkw->bkhw", in_r.float(), in_c.float())
        return (cover > 0).to(dtype)

    def paste(
        self, patches: torch.Tensor, locations: torch.Tensor | Sequence[int], canvas: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Write glimpses (B, T, k*C, h, w) at ``locations`` (B, T) into a canvas (B, k*C, H, W) (zeros if None):
        per scale, each pooled value fills the block it was averaged over; a later glimpse overwrites an
        earlier one where their patches of the same scale overlap.  ``NO_GLIMPSE`` entries write nothing."""
        if patches.dim() == 4:
            patches = patches.unsqueeze(1)
        if patches.dim() != 5:
            raise ValueError(f"`patches` must have shape (B, T, k*C, h, w), got shape {tuple(patches.shape)}")
        B, T, KC = patches.shape[:3]
        if tuple(patches.shape[-2:]) != self.glimpse_size:
            raise ValueError(
                f"`patches` must be {self.glimpse_size[0]} x {self.glimpse_size[1]} glimpses, got "
                f"{patches.shape[-2]} x {patches.shape[-1]}"
            )
        if KC % self.scales:
            raise ValueError(f"patches have {KC} channels, not a multiple of the sensor's {self.scales} scales")
        loc = self._check_locations(locations, allow_empty=True)
        if loc.dim() == 1:
            loc = loc.unsqueeze(1)
        if tuple(loc.shape) != (B, T):
            raise ValueError(f"`locations` must have shape {(B, T)} to match patches, got {tuple(loc.shape)}")
        if canvas is None:
            canvas = patches.new_zeros(B, KC, *self.image_size)
        else:
            canvas = self._check_images(canvas, "canvas")
            if canvas.shape[:2] != (B, KC):
                raise ValueError(f"`canvas` must have shape {(B, KC) + self.image_size}, got {tuple(canvas.shape)}")
            canvas = canvas.clone()
        loc = loc.to(patches.device)
        if T == 0:
            return canvas
        if self.scales == 1 and bool((loc != NO_GLIMPSE).all()):
            # One scale, no padding: a direct scatter (the paper's case, kept exact and fast).
            r, c = self._pixel_ranges(loc, patches.device)
            b = torch.arange(B, device=patches.device).view(B, 1, 1, 1)
            canvas[b, :, r.unsqueeze(-1), c.unsqueeze(-2)] = patches.permute(0, 1, 3, 4, 2)
            return canvas
        return paste_latest(self, patches, loc, canvas)[0]

    def observe(
        self, images: torch.Tensor, locations: torch.Tensor | Sequence[int], whole: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What glimpses at ``locations`` (B, T) reveal of ``images`` (B, C, H, W), as images: the canvas
        (B, k*C, H, W) (:meth:`paste` of :meth:`extract`; zero where nothing was seen) and the mask (B, k, H, W).

        ``NO_GLIMPSE`` entries are ignored.  With one scale the canvas is just ``images * mask``.  ``whole``: an
        optional (B,) bool; those rows see the whole image at full resolution in every scale's channels (mask 1):
        the "everything observed" input."""
        if whole is not None:
            canvas, mask = self.observe(images, locations)
            w = torch.as_tensor(whole, dtype=torch.bool, device=images.device).view(-1, 1, 1, 1)
            if w.shape[0] != canvas.shape[0]:
                raise ValueError(f"`whole` must have shape ({canvas.shape[0]},), got {tuple(w.shape[:1])}")
            full = images.repeat(1, self.scales, 1, 1)
            return torch.where(w, full, canvas), torch.where(w, torch.ones_like(mask), mask)
        images = self._check_images(images)
        loc = self._empty_locations(locations, images.device)
        if loc.shape[0] != images.shape[0]:
            if loc.shape[0] != 1:
                raise ValueError(f"locations has batch size {loc.shape[0]} but images have {images.shape[0]}")
            loc = loc.expand(images.shape[0], -1)
        if self.scales == 1 or loc.shape[1] == 0:
            mask = self.mask(loc, dtype=images.dtype, device=images.device)
            return images.repeat(1, self.scales, 1, 1) * mask.repeat_interleave(images.shape[1], 1), mask
        glimpses = self.extract(images, loc.clamp(min=0))
        canvas, seen = paste_latest(
            self, glimpses, loc, glimpses.new_zeros(images.shape[0], glimpses.shape[2], *self.image_size)
        )
        return canvas, seen.to(images.dtype)

    def location_heatmap(self, values: torch.Tensor) -> torch.Tensor:
        """Reshape per-location values (..., L) to the grid (..., n_rows, n_cols)."""
        if values.shape[-1] != self.num_locations:
            raise ValueError(
                f"`values` must have {self.num_locations} entries in the last dim, got shape {tuple(values.shape)}"
            )
        return values.reshape(*values.shape[:-1], self.n_rows, self.n_cols)
