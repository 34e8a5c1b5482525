"""The attentional variational posterior (AVP): g(label | what the glimpses revealed).

The network sees ``cat(normalised_canvas * mask, mask)``, built by :meth:`AVP.make_input` from the sensor's
:meth:`~ppl_attention.sensor.Sensor.observe`: one canvas and one mask PER SCALE of the sensor, stacked along
channels (``k*C`` canvas channels, then ``k`` mask channels; ``k = 1`` is the paper's ``cat(image * mask, mask)``).
Scale ``j``'s canvas holds, wherever a scale-``j`` patch was seen, the pooled value of the block that pixel fell
in, i.e. exactly what the sensor returned and nothing more.  Why canvases rather than a set encoder over
glimpses: the AVP is evaluated millions of times in the EPE loop on (completion, candidate) pairs, and a
convolutional network on a fixed-size canvas batches them all in one pass, keeps the paper's architecture (its
DenseNet takes extra mask channels, initialised to zero) and lets the fine and coarse views of one place line up
pixel for pixel.  Pixels are normalised with the dataset's per-channel mean/std first, so an unobserved pixel
reads 0 (= the mean colour) and the mask channels say which zeros are real.  Backbones: a small CNN (default for
60 x 60 canvases on the CPU; it is evaluated millions of times inside the EPE loop, so it is kept cheap),
torchvision MobileNetV2 and DenseNet-121 (the paper's).  Heads return logits:

* ``categorical``: ``num_classes`` logits (softmax over classes);
* ``multilabel``: ``num_attributes`` logits, one Bernoulli per attribute (all CelebA attributes in one network);
* ``class_attributes``: ``num_classes`` class logits followed by ``num_attributes`` auxiliary attribute logits
  (CUB); the target ``label`` uses the first ``num_classes``.

Calibration (see :mod:`.calibration`) is part of the network, so every caller of ``forward`` gets calibrated
logits: a scalar ``temperature`` buffer times, optionally, a temperature that depends on the observed fraction of
the image (the mean of the input's fovea mask channel), piecewise log-linear between fitted knots.  Checkpoints written
before the fraction temperatures existed load with them switched off.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..model import entropy_from_logits
from ..sensor import Sensor
from .calibration import fraction_log_temperature

if TYPE_CHECKING:
    import os
    from typing import Sequence

__all__ = [
    "AVPConfig",
    "AVP",
    "build_avp",
    "entropy_from_logits",
    "save_avp",
    "load_avp",
    "BACKBONES",
    "HEADS",
    "AVP_WEIGHTS",
    "AVP_KIND",
]

BACKBONES = ("small_cnn", "mobilenet_v2", "densenet121")
HEADS = ("categorical", "multilabel", "class_attributes")
AVP_WEIGHTS = "avp.safetensors"
AVP_KIND = "avp"


@dataclass
class AVPConfig:
    """Everything needed to rebuild an AVP (saved as ``avp.json`` next to the weights)."""

    grid: dict = field(default_factory=lambda: Sensor.mnist().to_dict())
    channels: int = 1
    head: str = "categorical"
    num_classes: int = 10
    num_attributes: int = 0
    backbone: str = "small_cnn"
    width: int = 32
    dropout: float = 0.2
    mean: tuple = (0.0,)
    std: tuple = (1.0,)

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"`backbone` must be one of {BACKBONES}, got {self.backbone!r}")
        if self.head not in HEADS:
            raise ValueError(f"`head` must be one of {HEADS}, got {self.head!r}")
        if self.channels <= 0:
            raise ValueError(f"`channels` must be positive, got {self.channels}")
        if self.head in ("categorical", "class_attributes") and self.num_classes < 2:
            raise ValueError(f"`num_classes` must be >= 2 for a {self.head} head, got {self.num_classes}")
        if self.head in ("multilabel", "class_attributes") and self.num_attributes < 1:
            raise ValueError(f"`num_attributes` must be >= 1 for a {self.head} head, got {self.num_attributes}")
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(
                f"mean and std need one value per channel ({self.channels}), got mean={self.mean}, std={self.std}"
            )
        if min(self.std) <= 0:
            raise ValueError(f"`std` must be positive, got {self.std}")
        Sensor.from_dict(self.grid)  # validates

    @property
    def out_features(self) -> int:
        return {
            "categorical": self.num_classes,
            "multilabel": self.num_attributes,
            "class_attributes": self.num_classes + self.num_attributes,
        }[self.head]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


class SmallCNN(nn.Module):
    """Four strided conv blocks (BatchNorm, ReLU), global average pooling, dropout and a linear layer.

    About 19 M multiply-adds for a 2 x 60 x 60 input at width 32, so thousands of masked images per second
    on a couple of CPU cores.
    """

    def __init__(self, in_channels: int, out_features: int, width: int = 32, dropout: float = 0.2):
        super().__init__()
        w = width

        def block(cin, cout, k, s):
            return [nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(in_channels, w, 5, 2),
            *block(w, 2 * w, 3, 2),
            *block(2 * w, 2 * w, 3, 1),
            *block(2 * w, 3 * w, 3, 2),
            *block(3 * w, 4 * w, 3, 2),
        )
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(4 * w, 4 * w),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4 * w, out_features),
        )

    @property
    def first_conv(self) -> nn.Conv2d:
        return self.features[0]

    def forward(self, x):
        return self.classifier(self.features(x))


def _widen_first_conv(conv: nn.Conv2d, in_channels: int, mask_channels: int = 1) -> nn.Conv2d:
    """A copy of ``conv`` taking ``in_channels`` canvas channels plus ``mask_channels`` mask channels whose weights
    start at zero.  Canvas channels that are ``k`` copies of the stem's (one per scale) share its filter / k."""
    new = nn.Conv2d(
        in_channels + mask_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        w = conv.weight
        if in_channels == w.shape[1]:
            new.weight[:, :in_channels] = w
        elif in_channels % w.shape[1] == 0:  # k scales of the stem's channels
            reps = in_channels // w.shape[1]
            new.weight[:, :in_channels] = w.repeat(1, reps, 1, 1) / reps
        else:  # e.g. grey images into an RGB stem: the summed filter sees a grey image like the RGB one
            new.weight[:, :in_channels] = w.sum(1, keepdim=True).expand(-1, in_channels, -1, -1) / in_channels
        new.weight[:, in_channels:] = 0.0
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def _torchvision_backbone(
    name: str,
    in_channels: int,
    out_features: int,
    dropout: float,
    pretrained: str | Path | None,
    mask_channels: int = 1,
) -> nn.Module:
    """torchvision DenseNet-121 / MobileNetV2, built with ``weights=None``; ImageNet weights only from a local file."""
    import torchvision

    net = getattr(torchvision.models, name)(weights=None)
    if pretrained is not None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(pretrained)
        if path.suffix != ".safetensors" or not path.is_file():
            raise ValueError(f"`pretrained` must be an existing torchvision state dict in .safetensors, got {path}")
        try:
            state = load_file(str(path))
        except (SafetensorError, Exception) as e:
            raise ValueError(f"`pretrained` {path} is not a valid safetensors file: {e}") from None
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if "classifier" not in k]:
            raise ValueError(
                f"`pretrained` {path} does not hold {name} weights (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
    if name == "densenet121":
        net.features.conv0 = _widen_first_conv(net.features.conv0, in_channels, mask_channels)
        net.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(net.classifier.in_features, out_features))
    else:
        net.features[0][0] = _widen_first_conv(net.features[0][0], in_channels, mask_channels)
        net.classifier[-1] = nn.Linear(net.classifier[-1].in_features, out_features)
        net.classifier[0].p = dropout
    return net


class AVP(nn.Module):
    """Amortised posterior over the label given glimpses: ``forward(make_input(*sensor.observe(images, loc)))``."""

    def __init__(self, config: AVPConfig, pretrained: str | Path | None = None):
        super().__init__()
        self.config = config
        self.grid = Sensor.from_dict(config.grid)
        self.head = config.head
        self.num_classes = config.num_classes if config.head != "multilabel" else 0
        self.num_attributes = config.num_attributes
        self.channels = config.channels
        self.scales = self.grid.scales
        canvas_ch = self.grid.glimpse_channels(config.channels)
        in_ch, out = canvas_ch + self.scales, config.out_features
        if config.backbone == "small_cnn":
            if pretrained is not None:
                raise ValueError("`pretrained` is only for the torchvision backbones (mobilenet_v2, densenet121)")
            self.backbone = SmallCNN(in_ch, out, config.width, config.dropout)
            with torch.no_grad():
                self.backbone.first_conv.weight[:, canvas_ch:] = 0.0  # mask channels start at zero
        else:
            self.backbone = _torchvision_backbone(
                config.backbone, canvas_ch, out, config.dropout, pretrained, self.scales
            )
        # Per canvas channel (the image's mean / std repeated for every scale).
        self.register_buffer("mean", torch.tensor(config.mean).repeat(self.scales).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(config.std).repeat(self.scales).view(1, -1, 1, 1))
        self.register_buffer("temperature", torch.ones(()))
        # Fraction temperatures: knots (K,) in [0, 1] and log-temperatures (K,); K = 0 switches them off.
        self.register_buffer("calibration_fractions", torch.zeros(0))
        self.register_buffer("calibration_log_temperatures", torch.zeros(0))

    _CALIBRATION_BUFFERS = ("calibration_fractions", "calibration_log_temperatures")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Accept state dicts without fraction temperatures (switched off) and with any number
        of knots (the buffers take the stored size)."""
        for name in self._CALIBRATION_BUFFERS:
            key = prefix + name
            if key not in state_dict:
                state_dict[key] = torch.zeros(0)
            if state_dict[key].shape != getattr(self, name).shape:
                setattr(self, name, torch.zeros(state_dict[key].shape, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------- calibration
    def set_fraction_temperatures(
        self, fractions: torch.Tensor | Sequence[float] | None, log_temperatures: torch.Tensor | Sequence[float] | None
    ) -> None:
        """Use temperature ``exp(log_temperatures)`` at observed fractions ``fractions`` (increasing, in [0, 1]),
        interpolated in between; ``None`` / empty switches the fraction temperatures off."""
        f = torch.as_tensor([] if fractions is None else fractions, dtype=torch.float32).flatten()
        v = torch.as_tensor([] if log_temperatures is None else log_temperatures, dtype=torch.float32).flatten()
        if f.shape != v.shape:
            raise ValueError(f"fractions and log_temperatures need the same length, got {f.numel()} and {v.numel()}")
        if f.numel() and (bool((f < 0).any()) or bool((f > 1).any()) or bool((f[1:] <= f[:-1]).any())):
            raise ValueError(f"`fractions` must increase strictly within [0, 1], got {f.tolist()}")
        if not bool(torch.isfinite(v).all()):
            raise ValueError(f"`log_temperatures` must be finite, got {v.tolist()}")
        device = self.temperature.device
        self.calibration_fractions = f.to(device)
        self.calibration_log_temperatures = v.to(device)

    def observed_fraction(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) fraction of the pixels seen by the fovea, read from the first mask channel of a :meth:`make_input`."""
        return x[:, self.grid.glimpse_channels(self.channels)].flatten(1).mean(1)

    def fraction_temperatures(self) -> dict | None:
        """``{"fractions", "temperatures"}`` of the fraction temperatures (for manifests and reports), or None."""
        if not self.calibration_fractions.numel():
            return None
        return {
            "fractions": self.calibration_fractions.tolist(),
            "temperatures": self.calibration_log_temperatures.exp().tolist(),
        }

    def temperature_at(self, fraction: torch.Tensor) -> torch.Tensor:
        """(B,) temperature dividing the logits of inputs with observed ``fraction`` (B,), on ``fraction``'s device
        (evaluation calibrates logits it has collected on the CPU)."""
        t = self.temperature.to(fraction.device).expand(fraction.shape)
        if self.calibration_fractions.numel():
            t = (
                t
                * fraction_log_temperature(
                    fraction, self.calibration_fractions, self.calibration_log_temperatures
                ).exp()
            )
        return t

    def calibrate_logits(self, raw: torch.Tensor, fraction: torch.Tensor) -> torch.Tensor:
        """Calibrated logits from the backbone's ``raw`` logits (B, K) of inputs with observed ``fraction`` (B,)."""
        return raw / self.temperature_at(fraction.to(raw)).unsqueeze(-1)

    def uncalibrated(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's logits without any temperature (what calibration is fitted on)."""
        return self.backbone(x)

    # ------------------------------------------------------------------ inputs
    def check_images(self, images: torch.Tensor, name: str = "images") -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"`{name}` must be a tensor of shape (B, {self.channels}, H, W), got {shape}")
        H, W = self.grid.image_size
        if tuple(images.shape[1:]) != (self.channels, H, W):
            raise ValueError(
                f"`{name}` must have shape (B, {self.channels}, {H}, {W}) to match the AVP's grid, "
                f"got {tuple(images.shape)}"
            )
        if not images.dtype.is_floating_point:
            raise ValueError(f"`{name}` must be float in [0, 1], got dtype {images.dtype}")
        return images

    def make_input(self, canvas: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``cat((canvas - mean) / std * mask, mask)`` from :meth:`Sensor.observe`: canvas (B, k*C, H, W) in
        [0, 1], mask (B, k, H, W).  With one scale, ``canvas`` may be the whole image (the mask hides the rest)."""
        k = self.scales
        canvas_ch = self.grid.glimpse_channels(self.channels)
        if not isinstance(canvas, torch.Tensor) or canvas.dim() != 4 or not canvas.dtype.is_floating_point:
            shape = tuple(canvas.shape) if isinstance(canvas, torch.Tensor) else type(canvas).__name__
            raise ValueError(f"`canvas` must be a float tensor of shape (B, {canvas_ch}, H, W), got {shape}")
        H, W = self.grid.image_size
        if tuple(canvas.shape[1:]) != (canvas_ch, H, W):
            raise ValueError(
                f"`canvas` must have shape (B, {canvas_ch}, {H}, {W}) ({k} scale(s) x {self.channels} "
                f"channel(s), from sensor.observe) to match the AVP's sensor, got {tuple(canvas.shape)}"
            )
        if (
            not isinstance(mask, torch.Tensor)
            or mask.dim() != 4
            or mask.shape[1] != k
            or tuple(mask.shape[-2:]) != (H, W)
            or mask.shape[0] not in (1, canvas.shape[0])
        ):
            raise ValueError(
                f"`mask` must have shape ({canvas.shape[0]}, {k}, {H}, {W}) (one channel per scale), "
                f"got {tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}"
            )
        mask = mask.to(canvas.dtype).expand(canvas.shape[0], -1, -1, -1)
        per_channel = mask.repeat_interleave(self.channels, dim=1) if k > 1 else mask
        return torch.cat([(canvas - self.mean) / self.std * per_channel, mask], dim=1)

    # ----------------------------------------------------------------- outputs
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Calibrated logits (B, out_features) of an input built by :meth:`make_input`: the backbone's logits
        divided by the temperature at the input's observed fraction."""
        return self.calibrate_logits(self.backbone(x), self.observed_fraction(x))

    def label_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The logits of the target ``label`` (drops the auxiliary attributes of a class_attributes head)."""
        return logits[..., : self.num_classes] if self.head == "class_attributes" else logits

    def predict(self, images: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        """Logits (B, out_features) after observing ``images`` at ``locations`` (B, T) (``NO_GLIMPSE`` = -1 pads)."""
        images = self.check_images(images)
        if not bool(torch.isfinite(images).all()):
            raise ValueError("images hold NaN or infinite values (expected finite pixel values in [0, 1])")
        return self(self.make_input(*self.grid.observe(images, locations)))

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        return entropy_from_logits(logits, self.head, self.num_classes)


def build_avp(config: AVPConfig, pretrained: str | Path | None = None) -> AVP:
    return AVP(config, pretrained)


# --------------------------------------------------------------------- saving
def save_avp(
    avp: AVP,
    directory: str | os.PathLike,
    dataset: str,
    T: int,
    extra_config: dict | None = None,
    inputs: dict | None = None,
) -> Path:
    """Write an AVP directory: ``avp.safetensors`` + ``avp.json`` + ``manifest.json`` (kind ``avp``)."""
    from ..artifacts import save_weights, write_manifest

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = avp.module if hasattr(avp, "module") else avp
    cfg = model.config.to_dict()
    save_weights(directory / AVP_WEIGHTS, {k: v for k, v in model.state_dict().items()}, cfg)
    manifest = {
        "dataset": dataset,
        "backbone": cfg["backbone"],
        "head": cfg["head"],
        "grid": cfg["grid"],
        "T": T,
        "normalisation": {"mean": cfg["mean"], "std": cfg["std"]},
        "temperature": float(model.temperature),
        "data": None,
        **(extra_config or {}),
    }
    if model.fraction_temperatures() is not None:
        manifest["fraction_temperatures"] = model.fraction_temperatures()
    write_manifest(directory, AVP_KIND, manifest, inputs)
    return directory


def load_avp(directory: str | os.PathLike, device: str | torch.device = "cpu", expected: dict | None = None) -> AVP:
    """Rebuild an AVP from a directory written by :func:`save_avp` (or ``train-avp``), in eval mode.

    ``expected``: config keys that must match (e.g. ``{"grid": grid.to_dict()}``); anything else is refused.
    """
    from ..artifacts import ArtifactError, load_state, load_weights, read_manifest
    from ..config import config_from_dict
    from ..runtime import resolve_device

    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"AVP directory {directory} does not exist")
    read_manifest(directory, AVP_KIND)
    tensors, cfg = load_weights(directory / AVP_WEIGHTS, expected)
    try:
        config = config_from_dict(AVPConfig, cfg)
    except (TypeError, ValueError) as e:
        raise ArtifactError(f"{directory / 'avp.json'} is not an AVP config: {e}") from None
    model = load_state(AVP(config), tensors, f"{directory / AVP_WEIGHTS} (config {directory / 'avp.json'})")
    if not math.isfinite(float(model.temperature)) or float(model.temperature) <= 0:
        raise ArtifactError(f"{directory} holds a non-positive temperature {float(model.temperature)}")
    try:
        model.set_fraction_temperatures(model.calibration_fractions, model.calibration_log_temperatures)
    except ValueError as e:
        raise ArtifactError(f"{directory / AVP_WEIGHTS} holds invalid fraction temperatures: {e}") from None
    return model.to(resolve_device(device)).eval()
