"""Glimpse geometry: the one implementation of locations, patches and masks.

A *location* is a flat index into a :class:`GlimpseGrid`; its ``(row, col)`` is the top-left pixel of the
glimpse.  Flat index = ``row_index * n_cols + col_index`` (the paper's convention).  Everything that extracts
patches, builds masks or pastes glimpses back into an image goes through this module, batched, with no Python
loop over images or glimpses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

__all__ = ["GlimpseGrid", "NO_GLIMPSE"]

#: Placeholder location meaning "no glimpse here" (accepted by :meth:`GlimpseGrid.mask` only), so that a batch
#: can hold sequences of different lengths.
NO_GLIMPSE = -1


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(int(v) for v in value)
        except TypeError:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}") from None
        if len(pair) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return pair


@dataclass(frozen=True, eq=True)
class GlimpseGrid:
    """The candidate glimpse locations of a task.

    Args:
        image_size: ``H`` or ``(H, W)`` of the images.
        glimpse_size: ``h`` or ``(h, w)`` of a glimpse.
        rows: top-left pixel rows allowed (increasing); default: every ``stride`` pixels.
        cols: top-left pixel columns allowed (increasing); default: every ``stride`` pixels.
        stride: spacing used for ``rows``/``cols`` that are not given (default 1).
    """

    image_size: tuple[int, int]
    glimpse_size: tuple[int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    def __init__(self, image_size, glimpse_size, rows: Sequence[int] | None = None,
                 cols: Sequence[int] | None = None, stride: int | None = None):
        H, W = _pair(image_size, "image_size")
        h, w = _pair(glimpse_size, "glimpse_size")
        if h > H or w > W:
            raise ValueError(f"glimpse_size {(h, w)} is larger than image_size {(H, W)}; "
                             "a glimpse must fit inside the image")
        if stride is not None and (not isinstance(stride, (int, np.integer)) or stride <= 0):
            raise ValueError(f"stride must be a positive int, got {stride!r}")
        step = int(stride or 1)
        rows = tuple(range(0, H - h + 1, step)) if rows is None else tuple(int(r) for r in rows)
        cols = tuple(range(0, W - w + 1, step)) if cols is None else tuple(int(c) for c in cols)
        for name, values, limit in (("rows", rows, H - h), ("cols", cols, W - w)):
            if len(values) == 0:
                raise ValueError(f"{name} must hold at least one position")
            if any(v < 0 or v > limit for v in values):
                raise ValueError(f"{name} must lie in [0, {limit}] so that the glimpse fits the image, "
                                 f"got {list(values)}")
            if any(b <= a for a, b in zip(values, values[1:])):
                raise ValueError(f"{name} must be strictly increasing, got {list(values)}")
        object.__setattr__(self, "image_size", (H, W))
        object.__setattr__(self, "glimpse_size", (h, w))
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "cols", cols)

    # ------------------------------------------------------------------ presets
    @classmethod
    def celeba_hq(cls) -> "GlimpseGrid":
        """The paper's CelebA-HQ grid: 224 x 224 images, 16 x 16 glimpses, 50 x 50 locations."""
        pos = [int(x) for x in np.linspace(0, 207, 50)]
        return cls(224, 16, rows=pos, cols=pos)

    @classmethod
    def cub(cls) -> "GlimpseGrid":
        """The paper's CUB grid: 128 x 128 crops, 32 x 32 glimpses, 13 x 13 locations (0..96 step 8)."""
        return cls(128, 32, stride=8)

    @classmethod
    def mnist(cls) -> "GlimpseGrid":
        """60 x 60 MNIST canvases with 12 x 12 glimpses every 6 pixels (9 x 9 = 81 locations)."""
        return cls(60, 12, stride=6)

    @classmethod
    def preset(cls, name: str) -> "GlimpseGrid":
        presets = {"celeba-hq": cls.celeba_hq, "cub": cls.cub, "mnist": cls.mnist}
        if name not in presets:
            raise ValueError(f"grid preset must be one of {sorted(presets)}, got {name!r}")
        return presets[name]()

    # -------------------------------------------------------------- serialise
    def to_dict(self) -> dict:
        return {"image_size": list(self.image_size), "glimpse_size": list(self.glimpse_size),
                "rows": list(self.rows), "cols": list(self.cols)}

    @classmethod
    def from_dict(cls, d: dict) -> "GlimpseGrid":
        try:
            return cls(d["image_size"], d["glimpse_size"], rows=d["rows"], cols=d["cols"])
        except KeyError as e:
            raise ValueError(f"grid description is missing the key {e.args[0]!r}: {d!r}") from None

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

    def all_locations(self, device=None) -> torch.Tensor:
        """Every flat location index, shape ``(L,)``."""
        return torch.arange(self.num_locations, device=device)

    # ------------------------------------------------------ index <-> pixels
    def _check_locations(self, locations, name: str = "locations", allow_empty: bool = False) -> torch.Tensor:
        loc = torch.as_tensor(locations)
        if loc.dtype.is_floating_point or loc.dtype == torch.bool:
            raise ValueError(f"{name} must be integer flat indices, got dtype {loc.dtype}")
        loc = loc.long()
        bad = ((loc < 0) & ~(allow_empty & (loc == NO_GLIMPSE))) | (loc >= self.num_locations)
        if bool(bad.any()):
            first = int(loc[bad].flatten()[0])
            valid = f"[0, {self.num_locations - 1}]" + (f" or {NO_GLIMPSE} (no glimpse)" if allow_empty else "")
            raise ValueError(f"{name} holds {first}, outside the grid's locations {valid}")
        return loc

    def pixels(self, locations) -> torch.Tensor:
        """Top-left ``(row, col)`` pixel of each location: shape ``locations.shape + (2,)``."""
        loc = self._check_locations(locations)
        rows = torch.tensor(self.rows, device=loc.device)
        cols = torch.tensor(self.cols, device=loc.device)
        return torch.stack([rows[loc // self.n_cols], cols[loc % self.n_cols]], dim=-1)

    def index(self, pixel_rows, pixel_cols) -> torch.Tensor:
        """Flat location of top-left pixels ``(row, col)``; refuses pixels that are not on the grid."""
        r = torch.as_tensor(pixel_rows).long()
        c = torch.as_tensor(pixel_cols).long()
        rows = torch.tensor(self.rows)
        cols = torch.tensor(self.cols)
        r_match = r.unsqueeze(-1).cpu() == rows
        c_match = c.unsqueeze(-1).cpu() == cols
        r_ok, c_ok = r_match.any(-1), c_match.any(-1)
        if not bool(r_ok.all()):
            raise ValueError(f"pixel row {int(r.cpu()[~r_ok].flatten()[0])} is not on the grid; "
                             f"allowed rows are {list(self.rows)}")
        if not bool(c_ok.all()):
            raise ValueError(f"pixel col {int(c.cpu()[~c_ok].flatten()[0])} is not on the grid; "
                             f"allowed cols are {list(self.cols)}")
        return (r_match.long().argmax(-1) * self.n_cols + c_match.long().argmax(-1)).to(r.device)

    def cell(self, locations) -> torch.Tensor:
        """Grid cell ``(row_index, col_index)`` of each location: shape ``locations.shape + (2,)``."""
        loc = self._check_locations(locations)
        return torch.stack([loc // self.n_cols, loc % self.n_cols], dim=-1)

    def centres(self, locations) -> torch.Tensor:
        """Centre pixel (float ``(row, col)``) of each glimpse."""
        px = self.pixels(locations).float()
        return px + torch.tensor([(self.glimpse_size[0] - 1) / 2, (self.glimpse_size[1] - 1) / 2],
                                 device=px.device)

    def nearest(self, pixel_rows, pixel_cols) -> torch.Tensor:
        """Flat location whose glimpse centre is nearest to the given pixel (clamped to the grid)."""
        r = torch.as_tensor(pixel_rows, dtype=torch.float32)
        c = torch.as_tensor(pixel_cols, dtype=torch.float32)
        rows = torch.tensor(self.rows, dtype=torch.float32) + (self.glimpse_size[0] - 1) / 2
        cols = torch.tensor(self.cols, dtype=torch.float32) + (self.glimpse_size[1] - 1) / 2
        ri = (r.unsqueeze(-1) - rows).abs().argmin(-1)
        ci = (c.unsqueeze(-1) - cols).abs().argmin(-1)
        return ri * self.n_cols + ci

    # ------------------------------------------------------ images and masks
    def _check_images(self, images, name: str = "images") -> torch.Tensor:
        if not isinstance(images, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
        if images.dim() != 4:
            raise ValueError(f"{name} must have shape (B, C, H, W), got shape {tuple(images.shape)}")
        if tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(f"{name} must be {self.image_size[0]} x {self.image_size[1]} to match the grid, "
                             f"got {images.shape[-2]} x {images.shape[-1]}")
        return images

    def _pixel_ranges(self, loc: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel row indices ``loc.shape + (h,)`` and col indices ``loc.shape + (w,)`` of each glimpse."""
        h, w = self.glimpse_size
        rows = torch.tensor(self.rows, device=device)[loc // self.n_cols]
        cols = torch.tensor(self.cols, device=device)[loc % self.n_cols]
        return (rows.unsqueeze(-1) + torch.arange(h, device=device),
                cols.unsqueeze(-1) + torch.arange(w, device=device))

    def _batch_locations(self, locations, batch: int, name: str = "locations", allow_empty=False):
        loc = self._check_locations(locations, name, allow_empty=allow_empty)
        if loc.dim() not in (1, 2):
            raise ValueError(f"{name} must have shape (B,) or (B, T), got shape {tuple(loc.shape)}")
        if loc.shape[0] not in (batch, 1):
            raise ValueError(f"{name} has batch size {loc.shape[0]} but images have batch size {batch}")
        return loc

    def extract(self, images: torch.Tensor, locations) -> torch.Tensor:
        """Glimpses of ``images`` (B, C, H, W) at ``locations`` (B,) or (B, T) (a leading 1 broadcasts).

        Returns (B, C, h, w) for (B,) locations and (B, T, C, h, w) for (B, T) locations.
        """
        images = self._check_images(images)
        B = images.shape[0]
        loc = self._batch_locations(locations, B).to(images.device)
        single = loc.dim() == 1
        if single:
            loc = loc.unsqueeze(1)
        loc = loc.expand(B, loc.shape[1])
        r, c = self._pixel_ranges(loc, images.device)  # (B, T, h), (B, T, w)
        b = torch.arange(B, device=images.device).view(B, 1, 1, 1)
        # Advanced indexing around a slice puts the indexed dims first: (B, T, h, w, C).
        patches = images[b, :, r.unsqueeze(-1), c.unsqueeze(-2)].permute(0, 1, 4, 2, 3)
        return patches[:, 0] if single else patches

    def mask(self, locations, dtype=torch.float32, device=None) -> torch.Tensor:
        """Binary mask (B, 1, H, W) of the pixels seen by ``locations`` (B, T) (or (B,)); overlaps unioned.

        ``T`` may be 0 (nothing observed) and entries equal to ``NO_GLIMPSE`` (-1) are ignored, so a batch can
        hold sequences of different lengths.
        """
        loc = self._check_locations(locations, allow_empty=True)
        if device is not None:
            loc = loc.to(device)
        if loc.dim() == 1:
            loc = loc.unsqueeze(1)
        if loc.dim() != 2:
            raise ValueError(f"locations must have shape (B,) or (B, T), got shape {tuple(loc.shape)}")
        B, T = loc.shape
        H, W = self.image_size
        if T == 0:
            return torch.zeros(B, 1, H, W, dtype=dtype, device=loc.device)
        valid = loc != NO_GLIMPSE
        safe = loc.clamp(min=0)
        rows = torch.tensor(self.rows, device=loc.device)[safe // self.n_cols]
        cols = torch.tensor(self.cols, device=loc.device)[safe % self.n_cols]
        h, w = self.glimpse_size
        ar_h = torch.arange(H, device=loc.device)
        ar_w = torch.arange(W, device=loc.device)
        in_r = ((ar_h >= rows.unsqueeze(-1)) & (ar_h < rows.unsqueeze(-1) + h) & valid.unsqueeze(-1)).float()
        in_c = ((ar_w >= cols.unsqueeze(-1)) & (ar_w < cols.unsqueeze(-1) + w)).float()
        # Union of rectangles as one batched outer product summed over glimpses.
        cover = torch.einsum("bth,btw->bhw", in_r, in_c)
        return (cover > 0).to(dtype).unsqueeze(1)

    def paste(self, patches: torch.Tensor, locations, canvas: torch.Tensor | None = None) -> torch.Tensor:
        """Write glimpses (B, T, C, h, w) at ``locations`` (B, T) into ``canvas`` (B, C, H, W) (zeros if None).

        Later glimpses overwrite earlier ones where they overlap (they hold the same pixels of the same image).
        """
        if patches.dim() == 4:
            patches = patches.unsqueeze(1)
        if patches.dim() != 5:
            raise ValueError(f"patches must have shape (B, T, C, h, w), got shape {tuple(patches.shape)}")
        B, T, C = patches.shape[:3]
        if tuple(patches.shape[-2:]) != self.glimpse_size:
            raise ValueError(f"patches must be {self.glimpse_size[0]} x {self.glimpse_size[1]} glimpses, got "
                             f"{patches.shape[-2]} x {patches.shape[-1]}")
        loc = self._check_locations(locations)
        if loc.dim() == 1:
            loc = loc.unsqueeze(1)
        if tuple(loc.shape) != (B, T):
            raise ValueError(f"locations must have shape {(B, T)} to match patches, got {tuple(loc.shape)}")
        if canvas is None:
            canvas = patches.new_zeros(B, C, *self.image_size)
        else:
            canvas = self._check_images(canvas, "canvas").clone()
        loc = loc.to(patches.device)
        r, c = self._pixel_ranges(loc, patches.device)
        b = torch.arange(B, device=patches.device).view(B, 1, 1, 1)
        canvas[b, :, r.unsqueeze(-1), c.unsqueeze(-2)] = patches.permute(0, 1, 3, 4, 2)
        return canvas

    def location_heatmap(self, values: torch.Tensor) -> torch.Tensor:
        """Reshape per-location values (..., L) to the grid (..., n_rows, n_cols)."""
        if values.shape[-1] != self.num_locations:
            raise ValueError(f"values must have {self.num_locations} entries in the last dim, "
                             f"got shape {tuple(values.shape)}")
        return values.reshape(*values.shape[:-1], self.n_rows, self.n_cols)
