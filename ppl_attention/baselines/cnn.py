"""MobileNetV2 and ShuffleNetV2 from torchvision, and Mnih et al.'s two-layer CNN, scaled by a channel multiplier
and fed a downsampled input.

The workshop paper searched over channel multipliers ``c`` and input resolutions ``r`` to trace accuracy
against FLOPs; :func:`build_baseline` builds one point of that search for any channel count and class count.
``mnih`` is the convolutional baseline of Mnih et al. 2014 (section 4.1, "Convolutional, 2 layers" in their
Tables 1-2: 7.83-8.09 % error on 60 x 60 cluttered MNIST, 16.51 % on 100 x 100): one convolutional layer of 8
10 x 10 filters with stride 5, a fully connected layer of 256 ReLUs and the softmax output; the multiplier scales
the 8 filters and the 256 units. It is four lines of torch, so it is written here (torchvision has no such model).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import setting

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import MobileNetV2, ShuffleNetV2

__all__ = ["BaselineConfig", "build_baseline", "ResizedInput", "ARCHITECTURES"]

ARCHITECTURES = ("mobilenet_v2", "shufflenet_v2", "mnih")
#: Mnih et al.'s convolutional baseline: 10 x 10 filters, stride 5
MNIH_KERNEL, MNIH_STRIDE = 10, 5
# ShuffleNetV2 1.0x stage widths (torchvision's shufflenet_v2_x1_0); other multipliers scale the three stages.
_SHUFFLE_STAGES_X1 = (116, 232, 464)


@dataclass
class BaselineConfig:
    arch: str = setting("mobilenet_v2", "CNN architecture", choices=list(ARCHITECTURES))
    width: float = setting(1.0, "channel multiplier c")
    resolution: int = setting(60, "input resolution r (the image is resized to r x r)")
    in_channels: int = 1
    num_classes: int = 10


class ResizedInput(nn.Module):
    """Resize the input to ``resolution`` x ``resolution`` (antialiased bilinear), then run ``net``."""

    def __init__(self, net: nn.Module, resolution: int):
        super().__init__()
        self.net = net
        self.resolution = int(resolution)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.interpolate(
                x, size=(self.resolution, self.resolution), mode="bilinear", antialias=True, align_corners=False
            )
        return self.net(x)


def _round_even(x: float, base: int = 4) -> int:
    return max(base, int(round(x / base)) * base)


def build_baseline(config: BaselineConfig) -> nn.Module:
    """A torchvision CNN for ``config`` whose first convolution takes ``in_channels`` inputs."""
    if config.arch not in ARCHITECTURES:
        raise ValueError(f"`arch` must be one of {ARCHITECTURES}, got {config.arch!r}")
    if not config.width > 0:
        raise ValueError(f"`width` must be positive, got {config.width}")
    if config.arch == "mnih" and config.resolution < MNIH_KERNEL:
        raise ValueError(
            f"`resolution` must be at least {MNIH_KERNEL} pixels (mnih's {MNIH_KERNEL} x {MNIH_KERNEL} "
            f"filters), got {config.resolution}"
        )
    if config.arch != "mnih" and config.resolution < 16:
        raise ValueError(f"`resolution` must be at least 16 pixels (five stride-2 stages), got {config.resolution}")
    if config.in_channels < 1 or config.num_classes < 2:
        raise ValueError(
            f"`in_channels` must be >= 1 and num_classes >= 2, got {config.in_channels}, {config.num_classes}"
        )
    if config.arch == "mnih":
        filters, units = max(1, round(8 * config.width)), max(1, round(256 * config.width))
        side = (config.resolution - MNIH_KERNEL) // MNIH_STRIDE + 1
        net = nn.Sequential(
            nn.Conv2d(config.in_channels, filters, MNIH_KERNEL, MNIH_STRIDE),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(filters * side * side, units),
            nn.ReLU(inplace=True),
            nn.Linear(units, config.num_classes),
        )
    elif config.arch == "mobilenet_v2":
        net = MobileNetV2(num_classes=config.num_classes, width_mult=config.width)
        first = net.features[0][0]
        net.features[0][0] = nn.Conv2d(config.in_channels, first.out_channels, 3, 2, 1, bias=False)
    else:
        stages = [_round_even(c * config.width) for c in _SHUFFLE_STAGES_X1]
        # torchvision's 2.0x model widens the last convolution to 2048; every smaller one keeps 1024.
        last = 2048 if config.width >= 2.0 else 1024
        net = ShuffleNetV2([4, 8, 4], [24, *stages, last], num_classes=config.num_classes)
        first = net.conv1[0]
        net.conv1[0] = nn.Conv2d(config.in_channels, first.out_channels, 3, 2, 1, bias=False)
    return ResizedInput(net, config.resolution)
