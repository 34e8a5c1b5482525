"""The retina's pooling and paste arithmetic, as functions of a :class:`~ppl_attention.sensor.Sensor`'s geometry.

Kept apart from :mod:`ppl_attention.sensor` (which checks its inputs and calls these) so that the class reads as
the sensor's interface and this module as the index arithmetic behind :meth:`Sensor.extract` and
:meth:`Sensor.paste`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .sensor import Sensor

__all__ = ["paste_latest", "pooling_matrices"]


def pooling_matrices(sensor: Sensor, axis: int, device: torch.device | str | None, dtype: torch.dtype) -> torch.Tensor:
    """(k, g, G) matrices that average the blocks of each scale out of the coarsest patch (side G) along
    one axis: row ``u`` of scale ``j`` averages pixels ``off_j + u s^j .. off_j + (u+1) s^j - 1``."""
    g = sensor.glimpse_size[axis]
    G = sensor.patch_sizes[-1][axis]
    q = torch.zeros(sensor.scales, g, G, dtype=dtype, device=device)
    for j in range(sensor.scales):  # k small matrices built once per call; the pooling itself is one einsum
        b = sensor.scale_factor**j
        off = (G - g * b) // 2
        cols = off + torch.arange(g * b, device=device)
        q[j, torch.arange(g * b, device=device) // b, cols] = 1.0 / b
    return q


def paste_latest(
    sensor: Sensor, patches: torch.Tensor, loc: torch.Tensor, canvas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The general paste: for every canvas pixel and scale, the last glimpse covering it (one amax over
    glimpses), then one gather of the pooled value of the block holding the pixel.  Returns the canvas and
    the (B, k, H, W) bool of the pixels seen (the mask)."""
    B, T, KC = patches.shape[:3]
    k, C = sensor.scales, KC // sensor.scales
    H, W = sensor.image_size
    h, w = sensor.glimpse_size
    device = patches.device
    in_r, in_c, top = sensor._coverage(loc, device)  # (B, T, k, H), (B, T, k, W), (B, T, k, 2)
    # The last glimpse covering each pixel, per scale: stamps 1..T in a small integer type (memory traffic).
    stamp_dtype = torch.uint8 if T < 255 else torch.int32
    stamp = torch.arange(1, T + 1, device=device, dtype=stamp_dtype).view(1, T, 1, 1)
    rows_owner = in_r.to(stamp_dtype) * stamp  # (B, T, k, H)
    owner = (rows_owner.unsqueeze(-1) * in_c.to(stamp_dtype).unsqueeze(-2)).amax(1)  # (B, k, H, W), 0 = unseen
    seen = owner > 0
    owner = (owner.long() - 1).clamp_(min=0)
    # Top-left of the owning glimpse's patch at each pixel: gather over T (int32 arithmetic from here on).
    tops = top.permute(0, 2, 1, 3).int()  # (B, k, T, 2)
    idx = owner.flatten(2)  # (B, k, H*W)
    top_r = tops[..., 0].gather(2, idx).view(B, k, H, W)
    top_c = tops[..., 1].gather(2, idx).view(B, k, H, W)
    block = (sensor.scale_factor ** torch.arange(k, device=device, dtype=torch.int32)).view(1, k, 1, 1)
    u = torch.div(
        torch.arange(H, device=device, dtype=torch.int32).view(1, 1, H, 1) - top_r, block, rounding_mode="floor"
    ).clamp_(0, h - 1)
    v = torch.div(
        torch.arange(W, device=device, dtype=torch.int32).view(1, 1, 1, W) - top_c, block, rounding_mode="floor"
    ).clamp_(0, w - 1)
    flat = (owner.int() * (h * w) + u * w + v).flatten(2).long()  # (B, k, H*W) index into (T, h, w)
    source = sensor.split_scales(patches).permute(0, 2, 3, 1, 4, 5).reshape(B, k, C, T * h * w)
    values = source.gather(3, flat.unsqueeze(2).expand(B, k, C, H * W)).view(B, k, C, H, W)
    old = canvas.view(B, k, C, H, W)
    return torch.where(seen.unsqueeze(2), values, old).reshape(B, KC, H, W), seen
