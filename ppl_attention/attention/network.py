"""The hard-attention network: glimpse network ("what" x "where"), recurrent core, location policy and heads.

One forward pass (:meth:`HardAttentionNet.forward`) takes ``T`` glimpses of a batch of images.  A glimpse is what
the sensor returns (:meth:`~ppl_attention.sensor.Sensor.extract`: ``k`` scales stacked along channels); the
glimpse network is ``g = ReLU(what(glimpse) + where(location))`` (Mnih et al. 2014): ``what`` is the paper's small
CNN over the stacked scales, a torchvision backbone run on every scale (shared weights), or Mnih's linear layer
on the flattened retina (``backbone="mnih"``); ``where`` a learned table or an MLP of the location's
coordinates.  The core is a GRU (the paper's), an LSTM, or Mnih's ReLU RNN ``h' = ReLU(W_h h + W_g g)``.

At each step the policy (an MLP with one hidden layer, :mod:`.policy`) reads the *detached* hidden state -- so
the policy is trained only by its own loss, and the first glimpse, chosen from the learned initial state, is
image-independent -- and gives a categorical distribution over the grid's flat locations: ``dense`` (one logit
per location, the default), ``gaussian`` (Mnih's: a mean cell and a fixed standard deviation) or ``factorised``
(rows times columns); the last two scale to grids of thousands of locations.  The glimpses of the
whole batch are extracted with one call to the sensor per step (no loop over images or scales).  Rows of
``forced`` that hold a location are teacher-forced to it (partial supervision); the log-probability of the
location actually taken is returned either way, so ``-log pi(target)`` and REINFORCE use the same tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import setting
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
import torch.nn.functional as F

from ..checks import check_int
from ..sensor import Sensor, NO_GLIMPSE
from .policy import POLICIES, LocationPolicy, check_policy, grid_coordinates

if TYPE_CHECKING:
    from typing import Iterator, Sequence

__all__ = [
    "NetworkConfig",
    "HardAttentionNet",
    "Rollout",
    "GlimpseEmbedder",
    "LocationEmbedding",
    "LOCATION_EMBEDDINGS",
    "flops_per_glimpse",
    "classifier_flops",
]


LOCATION_EMBEDDINGS = ("table", "mlp", "factorised")


@dataclass
class NetworkConfig:
    """Architecture of the hard-attention network (the defaults are the paper's small CelebA-HQ embedder)."""

    hidden: int = setting(256, "hidden size of the core")
    glimpse_dim: int = setting(64, "size of a glimpse's embedding (the GRU input)")
    backbone: str = setting(
        "small",
        "glimpse embedder ('what'): the paper's small CNN, Mnih et al.'s linear layer on the flattened "
        "retina, or torchvision VGG-16 / MobileNetV2 features (run on every scale)",
        choices=["small", "mnih", "vgg16", "mobilenet_v2"],
    )
    core: str = setting(
        "gru", "recurrent core: GRU (the paper's), LSTM, or Mnih et al.'s ReLU RNN", choices=["gru", "lstm", "rnn"]
    )
    what_hidden: int = setting(128, "hidden units of the 'mnih' glimpse network (Mnih: 128) and of the location MLP")
    backbone_layers: int = setting(12, "leading layers of a torchvision backbone kept")
    backbone_weights: str | None = setting(
        None, "local .safetensors file with the torchvision backbone's weights (never downloaded)"
    )
    location_embedding: str = setting(
        "table",
        "learned table over flat locations, an MLP of normalised (row, col), or a row table plus a column "
        "table (factorised: O(rows + cols) parameters; mlp or factorised for fine grids)",
        choices=list(LOCATION_EMBEDDINGS),
    )
    policy_hidden: int = setting(32, "hidden units of the location policy")
    policy: str = setting(
        "dense",
        "location policy: dense (a logit per location, the paper's), gaussian (Mnih et al.: a mean cell, "
        "fixed --policy-std) or factorised (row x column categoricals); gaussian or factorised for fine "
        "grids of thousands of locations",
        choices=list(POLICIES),
    )
    policy_std: float = setting(
        0.2, "gaussian policy: standard deviation in normalised grid coordinates ([-1, 1] across the grid)"
    )


class GlimpseEmbedder(nn.Module):
    """Glimpse (B, k*C, h, w) (``k`` scales of ``C`` channels) -> embedding (B, glimpse_dim).

    ``small``: conv3x3(16) - ReLU - conv3x3 stride 2 (32) - ReLU - maxpool 2 - linear (paper, appendix B.4), on
    the stacked scales.  ``mnih``: ReLU(linear(flattened retina, what_hidden)) - linear (Mnih et al. 2014).
    ``vgg16`` / ``mobilenet_v2``: the first ``backbone_layers`` of torchvision's features (weights only from a
    local safetensors file) on every scale with shared weights, global average pooling, then a linear layer on
    the scales' features -- for large RGB glimpses.
    """

    def __init__(self, channels: int, glimpse_size: tuple[int, int], cfg: NetworkConfig, scales: int = 1):
        super().__init__()
        self.scales, self.kind = int(scales), cfg.backbone
        stacked = channels * self.scales
        if cfg.backbone == "small":
            self.features = nn.Sequential(
                nn.Conv2d(stacked, 16, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
            )
            self.in_channels = channels
        elif cfg.backbone == "mnih":
            self.features = nn.Sequential(
                nn.Flatten(), nn.Linear(stacked * glimpse_size[0] * glimpse_size[1], cfg.what_hidden), nn.ReLU()
            )
            self.in_channels = channels
        else:
            import torchvision

            if cfg.backbone == "vgg16":
                full = torchvision.models.vgg16(weights=None).features
            else:
                full = torchvision.models.mobilenet_v2(weights=None).features
            if cfg.backbone_weights:
                self._load_backbone(full, cfg.backbone_weights)
            layers = list(full.children())[: cfg.backbone_layers]
            self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.in_channels = 3
        self.channels = channels
        self.per_scale = cfg.backbone not in ("small", "mnih")  # torchvision stems take one scale at a time
        with torch.no_grad():
            probe = torch.zeros(1, self.in_channels if self.per_scale else stacked, *glimpse_size)
            n = self.features(probe).shape[1] * (self.scales if self.per_scale else 1)
        self.project = nn.Linear(n, cfg.glimpse_dim)

    @staticmethod
    def _load_backbone(module: nn.Module, path: str) -> None:
        from safetensors.torch import load_file

        p = Path(path)
        if p.suffix != ".safetensors" or not p.is_file():
            raise FileNotFoundError(f"`backbone_weights` must be an existing .safetensors file, got {path!r}")
        try:
            state = load_file(str(p))
        except Exception as e:  # noqa: BLE001  (safetensors raises several types for a corrupt or pickled file)
            raise ValueError(f"backbone_weights {path!r} is not a valid safetensors file: {e}") from None
        # Accept both a bare `features` state dict and a full model's ("features.0.weight").
        state = {k[len("features.") :] if k.startswith("features.") else k: v for k, v in state.items()}
        missing, _ = module.load_state_dict(state, strict=False)
        if missing:
            raise ValueError(f"backbone_weights {path!r} lacks {len(missing)} tensors, e.g. {missing[:3]}")

    def forward(self, glimpses: torch.Tensor) -> torch.Tensor:
        if not self.per_scale:
            return self.project(self.features(glimpses))
        B, _, h, w = glimpses.shape
        x = glimpses.reshape(B * self.scales, self.channels, h, w)  # every scale through the shared backbone
        if self.in_channels != self.channels:  # grey glimpses into an RGB backbone
            x = x.expand(-1, self.in_channels, -1, -1) if self.channels == 1 else x[:, :3]
        return self.project(self.features(x).reshape(B, -1))


class LocationEmbedding(nn.Module):
    """Flat location (B,) -> (B, glimpse_dim): a learned table (L x dim), an MLP of the normalised (row, col)
    cell, or ``factorised``: a row table plus a column table ((R + C) x dim, so neighbours share a row or a
    column embedding: the cheap choice for fine grids)."""

    def __init__(self, grid: Sensor, dim: int, kind: str, hidden: int | None = None):
        super().__init__()
        self.kind = kind
        if kind == "table":
            self.table = nn.Embedding(grid.num_locations, dim)
        elif kind == "mlp":
            rows, cols = grid_coordinates(grid)
            coords = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)  # flat order
            self.register_buffer("coords", coords, persistent=False)
            hidden = dim if hidden is None else int(hidden)
            self.mlp = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        elif kind == "factorised":
            self.n_cols = grid.n_cols
            self.row_table, self.col_table = nn.Embedding(grid.n_rows, dim), nn.Embedding(grid.n_cols, dim)
        else:
            raise ValueError(f"`location_embedding` must be one of {list(LOCATION_EMBEDDINGS)}, got {kind!r}")

    def forward(self, loc: torch.Tensor) -> torch.Tensor:
        if self.kind == "table":
            return self.table(loc)
        if self.kind == "mlp":
            return self.mlp(self.coords[loc])
        return self.row_table(loc // self.n_cols) + self.col_table(loc % self.n_cols)


class Core(nn.Module):
    """The recurrent core on a flat state: ``gru`` / ``rnn`` hold ``h`` (B, hidden), ``lstm`` holds ``cat(h, c)``
    (B, 2 * hidden); :meth:`output` is the ``h`` that the policy and the heads read."""

    def __init__(self, kind: str, input_size: int, hidden: int):
        super().__init__()
        if kind not in ("gru", "lstm", "rnn"):
            raise ValueError(f"`core` must be 'gru', 'lstm' or 'rnn', got {kind!r}")
        self.kind, self.hidden = kind, int(hidden)
        if kind == "gru":
            self.cell = nn.GRUCell(input_size, hidden)
        elif kind == "lstm":
            self.cell = nn.LSTMCell(input_size, hidden)
        else:  # Mnih et al.: h_t = ReLU(Linear(h_{t-1}) + Linear(g_t))
            self.cell = nn.RNNCell(input_size, hidden, nonlinearity="relu")

    @property
    def state_size(self) -> int:
        return 2 * self.hidden if self.kind == "lstm" else self.hidden

    def output(self, state: torch.Tensor) -> torch.Tensor:
        return state[:, : self.hidden] if self.kind == "lstm" else state

    def forward(self, g: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        if self.kind == "lstm":
            h, c = self.cell(g, (state[:, : self.hidden].contiguous(), state[:, self.hidden :].contiguous()))
            return torch.cat([h, c], 1)
        return self.cell(g, state)


@dataclass
class Rollout:
    """What one pass over ``T`` glimpses produced (B = batch, T = glimpses, K = classes)."""

    locations: torch.Tensor  # (B, T) flat locations taken
    log_probs: torch.Tensor  # (B, T) log pi(location taken) under the policy
    entropy: torch.Tensor  # (B, T) entropy of the policy at each step
    logits: torch.Tensor  # (B, T, K) class logits after 1..T glimpses
    baselines: torch.Tensor  # (B, T) predicted reward when choosing each location
    gains: torch.Tensor  # (B, T) predicted gain from one more glimpse after 1..T glimpses (last is unused)


class HardAttentionNet(nn.Module):
    """Recurrent hard-attention classifier over a :class:`Sensor` (RAM with a categorical policy)."""

    def __init__(
        self,
        grid: Sensor,
        num_classes: int,
        channels: int = 1,
        cfg: NetworkConfig | None = None,
        mean: Sequence[float] | torch.Tensor | None = None,
        std: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"`num_classes` must be at least 2, got {num_classes}")
        for name in ("hidden", "glimpse_dim", "policy_hidden", "backbone_layers"):
            value = getattr(cfg or NetworkConfig(), name)
            check_int(name, value)
        self.grid, self.num_classes, self.channels = grid, int(num_classes), int(channels)
        self.cfg = cfg or NetworkConfig()
        c = self.cfg
        mean = torch.as_tensor(mean if mean is not None else [0.0] * channels, dtype=torch.float32)
        std = torch.as_tensor(std if std is not None else [1.0] * channels, dtype=torch.float32)
        if mean.numel() != channels or std.numel() != channels:
            raise ValueError(
                f"mean and std need {channels} entries (one per channel), got {mean.tolist()}, {std.tolist()}"
            )
        # Per glimpse channel: the image's mean / std repeated for every scale of the sensor.
        self.register_buffer("mean", mean.repeat(grid.scales).view(1, -1, 1, 1))
        self.register_buffer("std", std.repeat(grid.scales).view(1, -1, 1, 1))
        check_policy(c.policy, c.policy_std)
        if c.hidden < 1 or c.glimpse_dim < 1 or c.policy_hidden < 1 or c.what_hidden < 1:
            raise ValueError(
                f"hidden, glimpse_dim, policy_hidden and what_hidden must be >= 1, got {c.hidden}, "
                f"{c.glimpse_dim}, {c.policy_hidden}, {c.what_hidden}"
            )
        self.embedder = GlimpseEmbedder(channels, grid.glimpse_size, c, grid.scales)
        self.where = LocationEmbedding(
            grid, c.glimpse_dim, c.location_embedding, c.what_hidden if c.backbone == "mnih" else None
        )
        self.core = Core(c.core, c.glimpse_dim, c.hidden)
        self.h0 = nn.Parameter(torch.zeros(self.core.state_size))
        self.policy = LocationPolicy(grid, c.hidden, c.policy_hidden, c.policy, c.policy_std)
        self.baseline = nn.Linear(c.hidden, 1)
        self.classifier = nn.Linear(c.hidden, num_classes)
        self.stop_head = nn.Sequential(nn.Linear(c.hidden, c.policy_hidden), nn.ReLU(), nn.Linear(c.policy_hidden, 1))

    # ----------------------------------------------------------------- config
    def to_config(self) -> dict:
        """Everything needed to rebuild the module (stored next to its safetensors weights)."""
        from ..config import config_to_dict

        return {
            "kind": "hard-attention",
            "grid": self.grid.to_dict(),
            "num_classes": self.num_classes,
            "channels": self.channels,
            "network": config_to_dict(self.cfg),
            "mean": self.mean.flatten()[: self.channels].tolist(),
            "std": self.std.flatten()[: self.channels].tolist(),
        }

    @classmethod
    def from_config(cls, config: dict) -> "HardAttentionNet":
        """From :meth:`to_config`; a config without a field takes its default (e.g. no ``policy``:
        the dense policy)."""
        from ..config import config_from_dict

        return cls(
            Sensor.from_dict(config["grid"]),
            config["num_classes"],
            config["channels"],
            config_from_dict(NetworkConfig, config["network"]),
            config["mean"],
            config["std"],
        )

    @staticmethod
    def complete_config(config: dict | None) -> dict | None:
        """A stored :meth:`to_config` with the fields it lacks filled in with their defaults (what a network
        without them is built with), so that it compares equal to the same network's config as built now."""
        from ..config import config_to_dict

        if not isinstance(config, dict) or not isinstance(config.get("network"), dict):
            return config
        return {**config, "network": {**config_to_dict(NetworkConfig()), **config["network"]}}

    # ------------------------------------------------------------ submodules
    def trunk_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the embedder, core, initial state and classifier (what pretraining trains)."""
        for m in (self.embedder, self.where, self.core, self.classifier):
            yield from m.parameters()
        yield self.h0

    def initial_state(self, batch: int) -> torch.Tensor:
        return self.h0.unsqueeze(0).expand(batch, -1)

    def hidden(self, state: torch.Tensor) -> torch.Tensor:
        """The core's output ``h`` (B, hidden) from its state (the LSTM's state also holds the cell)."""
        return self.core.output(state)

    def glimpse_step(self, images: torch.Tensor, loc: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Observe ``images`` at ``loc`` (B,) (one batched extraction by the sensor) and update the core state."""
        patches = (self.grid.extract(images, loc) - self.mean) / self.std
        g = F.relu(self.embedder(patches) + self.where(loc))
        return self.core(g, h)

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        images: torch.Tensor,
        glimpses: int,
        policy: str = "sample",
        forced: torch.Tensor | None = None,
        fixed_probs: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Rollout:
        """Take ``glimpses`` glimpses of each image.

        Args:
            images: (B, C, H, W) in [0, 1].
            glimpses: ``T``.
            policy: ``sample`` (draw from the policy), ``greedy`` (its mode) or ``fixed`` (draw from
                ``fixed_probs`` (L,), for pretraining; the policy is still evaluated for ``log_probs``).
            forced: optional (B, T) locations; entries other than ``NO_GLIMPSE`` (-1) replace the choice.
            generator: for the draws (reproducible runs).
        """
        forced, fixed_probs = self._check_forward(images, glimpses, policy, forced, fixed_probs)
        B = images.shape[0]
        h = self.initial_state(B)
        out = {k: [] for k in ("locations", "log_probs", "entropy", "logits", "baselines", "gains")}
        for t in range(glimpses):
            hd = self.hidden(h).detach()
            dist = self.policy.distribution(hd)
            with torch.no_grad():
                if policy == "greedy":
                    loc = dist.mode()
                elif policy == "fixed":
                    loc = torch.multinomial(fixed_probs, 1, generator=generator).squeeze(1)
                else:
                    loc = dist.sample(generator)
                if forced is not None:
                    loc = torch.where(forced[:, t] >= 0, forced[:, t], loc)
            out["locations"].append(loc)
            out["log_probs"].append(dist.log_prob(loc))
            out["entropy"].append(dist.entropy())
            out["baselines"].append(self.baseline(hd).squeeze(1))
            h = self.glimpse_step(images, loc, h)
            ho = self.hidden(h)
            out["logits"].append(self.classifier(ho))
            out["gains"].append(self.stop_head(ho.detach()).squeeze(1))
        return Rollout(**{k: torch.stack(v, 1) for k, v in out.items()})

    def _check_forward(
        self,
        images: torch.Tensor,
        glimpses: int,
        policy: str,
        forced: torch.Tensor | None,
        fixed_probs: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Refuse bad arguments of :meth:`forward`; ``forced`` as a long tensor on the images' device and
        ``fixed_probs`` expanded to (B, L) there (``policy='fixed'`` only)."""
        if policy not in ("sample", "greedy", "fixed"):
            raise ValueError(f"`policy` must be 'sample', 'greedy' or 'fixed', got {policy!r}")
        if not isinstance(glimpses, int) or glimpses < 1:
            raise ValueError(f"`glimpses` must be a positive int, got {glimpses!r}")
        if images.dim() != 4 or images.shape[1] != self.channels:
            raise ValueError(f"`images` must have shape (B, {self.channels}, H, W), got {tuple(images.shape)}")
        if images.is_floating_point() and not bool(torch.isfinite(images).all()):
            raise ValueError("images hold NaN or infinite values (expected finite pixel values in [0, 1])")
        B, T, L = images.shape[0], glimpses, self.grid.num_locations
        if forced is not None:
            forced = torch.as_tensor(forced, device=images.device).long()
            if tuple(forced.shape) != (B, T):
                raise ValueError(f"`forced` must have shape {(B, T)}, got {tuple(forced.shape)}")
            if bool(((forced < NO_GLIMPSE) | (forced >= L)).any()):
                raise ValueError(
                    f"forced locations must lie in [0, {L - 1}] or be {NO_GLIMPSE}, got "
                    f"{forced[(forced < NO_GLIMPSE) | (forced >= L)][0].item()}"
                )
        if policy == "fixed":
            if fixed_probs is None or fixed_probs.shape != (L,):
                raise ValueError(
                    f"policy='fixed' needs fixed_probs of shape ({L},), got "
                    f"{None if fixed_probs is None else tuple(fixed_probs.shape)}"
                )
            fixed_probs = fixed_probs.to(images.device).expand(B, L)
        return forced, fixed_probs


@torch.no_grad()
def flops_per_glimpse(net: HardAttentionNet) -> int:
    """FLOPs of one glimpse for one image: policy, extraction, embedder, location embedding, GRU and stop head.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts 2); the classifier, run once
    when the network stops, is :func:`classifier_flops`.
    """
    from torch.utils.flop_counter import FlopCounterMode

    device = net.h0.device
    images = torch.zeros(1, net.channels, *net.grid.image_size, device=device)
    h = torch.zeros(1, net.core.state_size, device=device)  # a plain tensor: the module tracker rejects h0's view
    with FlopCounterMode(display=False) as counter:
        loc = net.policy.distribution(net.hidden(h)).mode()
        h = net.glimpse_step(images, loc, h)
        net.stop_head(net.hidden(h))
    return int(counter.get_total_flops())


@torch.no_grad()
def classifier_flops(net: HardAttentionNet) -> int:
    """FLOPs of one classification (the linear classifier on the hidden state) for one image."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        net.classifier(torch.zeros(1, net.cfg.hidden, device=net.h0.device))
    return int(counter.get_total_flops())
