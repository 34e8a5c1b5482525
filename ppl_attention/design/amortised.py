"""Amortised near-optimal design: a network that predicts the EPE of every candidate location in one pass.

The BOED search (:mod:`.search`) estimates ``EPE(l)`` for every location ``l`` from ``N`` completions of the image:
``L x N`` AVP passes per step.  :class:`EPEMapNet` reads what the glimpses so far reveal -- exactly the AVP's
input, one canvas and one mask per scale of the sensor (``avp.make_input(*sensor.observe(image, observed))``) --
plus the AVP's current label probabilities, and returns the EPE map ``(L,)`` in the grid's location order in one
forward pass (Foster et al.'s Deep Adaptive Design replaces per-step optimisation the same way).  It is trained by
distillation from the maps the exhaustive search writes into a sequence store (:mod:`.distill`).

Architecture: a small convolutional trunk (stride 4 and 8 feature maps), read at every location's glimpse centre
by bilinear sampling (so a location sees what lies under and around its fovea), a global summary of the canvas,
the AVP's probabilities and a learned per-location embedding, all fed to one MLP shared by the locations.

- :class:`EPENetConfig` / :class:`EPEMapNet`: the network (its config records the sensor it is for).
- :func:`epe_map_loss`: standardised MSE plus a listwise ranking term (cross-entropy between the softmins of the
  target and the predicted map at temperature ``tau``), over the allowed (not yet observed) locations only, so the
  locations near the minimum dominate.
- :class:`AmortisedMap`: net + AVP; ``(images (B, C, H, W), observed (B, t)) -> (B, L)`` EPE maps.
- :func:`amortised_sequences`: greedy sequences of a batch of images, one pass per step for the whole batch.
- :func:`save_epe_net` / :func:`load_epe_net` / :func:`check_epe_net`: safetensors weights plus a manifest (kind
  ``epe-net``) tying the net to its AVP, prior and sensor; a net for another one is refused naming both.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_int
from ..artifacts import ArtifactError, load_state, load_weights, read_manifest, save_weights, write_manifest
from ..sensor import NO_GLIMPSE, Sensor, check_sensor

if TYPE_CHECKING:
    import os
    from ..posterior.network import AVP

__all__ = [
    "EPENetConfig",
    "EPEMapNet",
    "epe_map_loss",
    "AmortisedMap",
    "amortised_sequences",
    "save_epe_net",
    "load_epe_net",
    "check_epe_net",
    "avp_weights_checksum",
    "EPE_NET_KIND",
    "EPE_NET_WEIGHTS",
    "map_regret",
    "allowed_mask",
    "posterior_probs",
    "avp_input",
    "POSITIONS",
]

EPE_NET_KIND = "epe-net"
#: How the network tells locations apart: ``table``, a learned embedding and bias per location (tied to one grid);
#: ``coords``, Fourier features of the glimpse centre and one bias (no per-location parameter: any grid of the same
#: image size, e.g. the 49 x 49 MNIST grid, and trainable on maps scored on a sub-lattice of it only).
POSITIONS = ("table", "coords")
#: Of the Fourier features, in cycles per image side: the highest has a 15-pixel period on a 60-pixel canvas, so a
#: 6-pixel sub-lattice (the 9 x 9 MNIST grid inside the 49 x 49 one) samples it above the Nyquist rate.
FREQUENCIES = (1, 2, 4)
EPE_NET_WEIGHTS = "epe_net.safetensors"


@dataclass
class EPENetConfig:
    """Everything needed to rebuild an :class:`EPEMapNet` (saved as ``epe_net.json`` beside the weights)."""

    grid: dict = field(default_factory=lambda: Sensor.retina().to_dict())
    channels: int = 1
    num_outputs: int = 10  # the AVP's logits (its label probabilities are an input)
    width: int = 16
    embedding: int = 16
    hidden: int = 64
    positions: str = "table"

    def __post_init__(self):
        Sensor.from_dict(self.grid)  # validates
        if self.positions not in POSITIONS:
            raise ValueError(f"EPENetConfig.positions must be one of {POSITIONS}, got {self.positions!r}")
        for name in ("channels", "num_outputs", "width", "hidden"):
            v = getattr(self, name)
            check_int(name, v)
        check_int("embedding", self.embedding, minimum=0)

    def to_dict(self) -> dict:
        return asdict(self)


def _conv(cin: int, cout: int, stride: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2), nn.ReLU(inplace=True))


class EPEMapNet(nn.Module):
    """``forward(x (B, k*C + k, H, W), probs (B, K)) -> (B, L)``: the EPE (nats) of every location of the grid.

    ``x`` is the AVP's input (normalised canvases times masks, then the masks; from ``AVP.make_input``), ``probs``
    the AVP's label probabilities on it.  Output column ``l`` is location ``l`` of ``config.grid`` (flat index,
    row-major: ``grid.location_heatmap`` reshapes it to the grid); ``locations`` (L',) restricts the output to
    those columns (training on maps scored on a sub-lattice only costs what the sub-lattice costs)."""

    def __init__(self, config: EPENetConfig):
        super().__init__()
        self.config = config
        self.grid = Sensor.from_dict(config.grid)
        k, w = self.grid.scales, config.width
        self.in_channels = self.grid.glimpse_channels(config.channels) + k
        self.fine = nn.Sequential(
            _conv(self.in_channels, w, 2, 5), _conv(w, w, 1), _conv(w, 2 * w, 2), _conv(2 * w, 2 * w, 1)
        )  # stride 4
        self.coarse = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w, 1))  # stride 8
        self.summary = nn.Sequential(nn.Linear(8 * w + config.num_outputs, config.hidden), nn.ReLU(inplace=True))
        L = self.grid.num_locations
        table = config.positions == "table"
        self.embed = nn.Parameter(torch.zeros(L, config.embedding)) if table and config.embedding else None
        where = config.embedding if table else 4 * len(FREQUENCIES)
        feats = 2 * w + 4 * w + config.hidden + where + 2
        self.head = nn.Sequential(
            nn.Linear(feats, config.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(config.hidden, config.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(config.hidden, 1),
        )
        self.bias = nn.Parameter(torch.zeros(L if table else 1))
        self._set_centres()

    def _set_centres(self) -> None:
        """Each location's glimpse centre in grid_sample's [-1, 1] coordinates (x = column, y = row), (1, 1, L, 2),
        and (coords) its Fourier features (L, 4 * len(FREQUENCIES))."""
        H, W = self.grid.image_size
        c = self.grid.centres(torch.arange(self.grid.num_locations)).float()
        xy = torch.stack([(c[:, 1] + 0.5) / W * 2 - 1, (c[:, 0] + 0.5) / H * 2 - 1], dim=-1)
        self.register_buffer("centres", xy.view(1, 1, -1, 2), persistent=False)
        f = torch.tensor(FREQUENCIES, dtype=torch.float32) * math.pi
        angles = (xy.unsqueeze(-1) * f).flatten(1)  # (L, 2 * F)
        self.register_buffer("fourier", torch.cat([angles.sin(), angles.cos()], 1), persistent=False)

    def on_grid(self, grid: Sensor) -> "EPEMapNet":
        """This network (a ``coords`` one: no per-location parameter) for another grid of the same sensor image
        size, glimpse and scales, e.g. one distilled on the 9 x 9 MNIST grid, used on the 49 x 49 one."""
        if self.config.positions != "coords":
            raise ValueError(
                "only an EPE-map network with positions='coords' serves another grid; this one learned "
                f"a table of the {self.grid.num_locations} locations of {self.grid.describe()}"
            )
        mine = self.grid
        if (grid.image_size, grid.glimpse_size, grid.scales, grid.scale_factor) != (
            mine.image_size,
            mine.glimpse_size,
            mine.scales,
            mine.scale_factor,
        ):
            raise ValueError(
                f"the grid {grid.describe()} has another image size, glimpse or scales than the "
                f"network's {mine.describe()}"
            )
        other = EPEMapNet(EPENetConfig(**{**self.config.to_dict(), "grid": grid.to_dict()}))
        other.load_state_dict(self.state_dict())
        other.manifest = getattr(self, "manifest", {})
        return other.to(self.bias.device).train(self.training)

    def _check(self, x, probs):
        H, W = self.grid.image_size
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != (self.in_channels, H, W):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"`x` must be the AVP's input (B, {self.in_channels}, {H}, {W}) for the sensor "
                f"{self.grid.describe()}, got {shape}"
            )
        if not isinstance(probs, torch.Tensor) or tuple(probs.shape) != (x.shape[0], self.config.num_outputs):
            shape = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
            raise ValueError(
                f"`probs` must be the AVP's ({x.shape[0]}, {self.config.num_outputs}) probabilities, got {shape}"
            )

    def forward(self, x: torch.Tensor, probs: torch.Tensor, locations: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x, probs)
        if locations is None:
            locations = torch.arange(self.grid.num_locations, device=x.device)
        B = x.shape[0]
        f1 = self.fine(x)
        f2 = self.coarse(f1)
        centres = self.centres[:, :, locations]
        where = centres.expand(B, -1, -1, -1)
        local = torch.cat([F.grid_sample(f, where, align_corners=False) for f in (f1, f2)], 1)  # (B, F, 1, L)
        local = local.squeeze(2).transpose(1, 2)  # (B, L, F)
        pooled = torch.cat([f2.mean((2, 3)), f2.amax((2, 3)), probs.to(f2.dtype)], 1)
        context = self.summary(pooled)  # (B, hidden)
        position = [centres[0, 0]]
        if self.config.positions == "coords":
            position.append(self.fourier[locations])
        elif self.embed is not None:
            position.append(self.embed[locations])
        position = torch.cat(position, 1).to(local.dtype)  # (L, P)
        # the head's first layer on cat([local, context, position]), split by part: the context once per image,
        # the position once per location, only the local features once per (image, location) pair
        first = self.head[0]
        n_local, n_context = local.shape[-1], context.shape[-1]
        w_local, w_context, w_position = first.weight.split([n_local, n_context, position.shape[1]], 1)
        h = local @ w_local.T + (context @ w_context.T).unsqueeze(1) + (position @ w_position.T + first.bias)
        bias = self.bias if self.config.positions == "coords" else self.bias[locations]
        return self.head[1:](h).squeeze(-1) + bias


def allowed_mask(observed: torch.Tensor, L: int) -> torch.Tensor:
    """(B, L) bool: the locations not in ``observed`` (B, t) (``NO_GLIMPSE`` entries ignored)."""
    real = (observed != NO_GLIMPSE).unsqueeze(-1)
    taken = F.one_hot(observed.clamp(min=0), L).bool() & real  # (B, t, L)
    return ~taken.any(1)


def epe_map_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    allowed: torch.Tensor,
    scale: float,
    tau: float,
    rank_weight: float = 1.0,
    level_weight: float = 0.1,
) -> dict:
    """Distillation loss of predicted EPE maps ``pred`` (B, L) against the search's maps ``target`` (B, L).

    The level of a map (its mean) varies far more between images and steps than the map within itself, and only
    the shape decides the choice, so the squared error is split: ``mse``, the mean squared error of the CENTRED maps
    (each minus its mean over the allowed locations), plus ``level_weight`` times the squared error of the means;
    both in units of ``scale`` (the targets' spread within a map).  ``rank``: the KL divergence between
    ``softmax(-target / tau)`` and ``softmax(-pred / tau)`` over the allowed locations, which is large when the
    prediction misses the locations near the target's minimum and small for errors far above it.
    ``loss = mse + level_weight * level + rank_weight * rank``.  ``allowed`` (B, L) bool masks the locations
    already observed."""
    if pred.shape != target.shape or pred.dim() != 2 or allowed.shape != pred.shape:
        raise ValueError(
            f"pred, target and allowed must be (B, L) of one shape, got {tuple(pred.shape)}, "
            f"{tuple(target.shape)}, {tuple(allowed.shape)}"
        )
    if not bool(allowed.any(1).all()):
        raise ValueError("every map needs at least one allowed location")
    if not scale > 0 or not tau > 0:
        raise ValueError(f"scale and tau must be > 0, got {scale}, {tau}")
    a = allowed.to(pred.dtype)
    n = a.sum(1)
    err = (pred - target) * a
    level = err.sum(1) / n  # error of the means over the allowed locations
    mse = (((err - level[:, None] * a) / scale) ** 2).sum(1) / n
    neg = torch.finfo(pred.dtype).min / 4
    lt = torch.where(allowed, -target / tau, torch.full_like(target, neg)).log_softmax(1)
    lp = torch.where(allowed, -pred / tau, torch.full_like(pred, neg)).log_softmax(1)
    rank = (lt.exp() * (lt - lp) * a).sum(1)
    mse, level, rank = mse.mean(), ((level / scale) ** 2).mean(), rank.mean()
    return {"loss": mse + level_weight * level + rank_weight * rank, "mse": mse, "level": level, "rank": rank}


def map_regret(pred: torch.Tensor, target: torch.Tensor, allowed: torch.Tensor) -> dict:
    """Per map: the relative regret ``(target[argmin pred] - min target) / min target`` over the allowed locations,
    and whether the argmins agree.  (B,) float64 and (B,) bool."""
    inf = torch.tensor(math.inf, dtype=torch.float64, device=pred.device)
    p = torch.where(allowed, pred.double(), inf)
    t = torch.where(allowed, target.double(), inf)
    choice, best = p.argmin(1), t.argmin(1)
    chosen = t.gather(1, choice.unsqueeze(1)).squeeze(1)
    low = t.gather(1, best.unsqueeze(1)).squeeze(1)
    return {"regret": (chosen - low) / low.clamp_min(1e-12), "agree": choice == best}


class AmortisedMap:
    """``(images (B, C, H, W), observed (B, t)) -> (B, L)`` float64 EPE maps: one AVP pass (its probabilities)
    and one :class:`EPEMapNet` pass for the whole batch.  ``observed`` may hold ``NO_GLIMPSE`` padding."""

    def __init__(self, net: EPEMapNet, posterior: AVP) -> None:
        check_sensor(net.grid, posterior.grid, "the EPE-map network", "the AVP's sensor")
        if net.config.num_outputs != _num_outputs(posterior):
            raise ValueError(
                f"the EPE-map network reads {net.config.num_outputs} AVP outputs, the AVP has {_num_outputs(posterior)}"
            )
        self.net, self.posterior, self.grid = net.eval(), posterior, net.grid

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, observed) -> torch.Tensor:
        images = self.grid._check_images(images)
        if not bool(torch.isfinite(images).all()):
            raise ValueError("images holds NaN or infinite values")
        observed = torch.as_tensor(observed, dtype=torch.long, device=images.device)
        if observed.dim() == 1:
            observed = observed.unsqueeze(0).expand(images.shape[0], -1)
        if observed.dim() != 2 or observed.shape[0] != images.shape[0]:
            raise ValueError(f"`observed` must be ({images.shape[0]}, t) locations, got {tuple(observed.shape)}")
        self.grid._check_locations(observed, "observed", allow_empty=True)
        x = avp_input(self.posterior, images, observed)
        return self.net(x, posterior_probs(self.posterior, x)).double()


def avp_input(posterior: AVP, images: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """What the AVP (and so the network) reads after the glimpses ``observed`` (B, t) of ``images`` (B, C, H, W):
    one masked canvas and one mask per scale of its sensor."""
    return posterior.make_input(*posterior.grid.observe(images, observed))


def _num_outputs(posterior) -> int:
    return int(posterior.config.out_features)


def posterior_probs(posterior: AVP, x: torch.Tensor) -> torch.Tensor:
    """The AVP's (calibrated) probabilities on its input ``x``: softmax for a categorical head, sigmoids otherwise
    (a ``class_attributes`` head: the softmax of its classes, then the sigmoids of its attributes)."""
    logits = posterior(x).float()
    head = getattr(posterior, "head", "categorical")
    if head == "categorical":
        return logits.softmax(-1)
    if head == "class_attributes":
        K = posterior.num_classes
        return torch.cat([logits[:, :K].softmax(-1), logits[:, K:].sigmoid()], -1)
    return logits.sigmoid()


@torch.no_grad()
def amortised_sequences(
    predictor: AmortisedMap, images: torch.Tensor, T: int, first_epe: torch.Tensor, allow_repeat: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy sequences of a batch of images with the predicted EPE maps: ``(locations (B, T), maps (B, T, L))``.

    The first location is the argmin of the cached first-glimpse map ``first_epe`` (L,) (computed once per store
    by the BOED estimator); every later step is one ``predictor(images, observed)`` pass for the whole batch."""
    L = predictor.grid.num_locations
    first_epe = torch.as_tensor(first_epe, dtype=torch.float64).cpu()
    if first_epe.shape != (L,):
        raise ValueError(f"`first_epe` must have shape ({L},), got {tuple(first_epe.shape)}")
    if not isinstance(T, int) or T < 1 or (T > L and not allow_repeat):
        raise ValueError(f"T must be an int in [1, {L}] (without repeats), got {T!r}")
    B = images.shape[0]
    loc = torch.full((B, T), int(first_epe.argmin()), dtype=torch.long)
    maps = first_epe.expand(B, T, L).clone()
    for t in range(1, T):
        m = predictor(images, loc[:, :t].to(images.device)).cpu()
        maps[:, t] = m
        if not allow_repeat:
            m = m.scatter(1, loc[:, :t], math.inf)
        loc[:, t] = m.argmin(1)
    return loc, maps


# ----------------------------------------------------------------------------- artefact
def save_epe_net(net: EPEMapNet, directory: str | os.PathLike, config: dict, inputs: dict | None = None) -> Path:
    """Write ``directory/epe_net.safetensors`` (+ ``.json``: the net's config) and ``manifest.json`` (kind
    ``epe-net``; ``config`` must hold ``avp``, ``prior`` (checksums) and ``grid``)."""
    missing = [k for k in ("avp", "prior", "grid") if k not in config]
    if missing:
        raise ValueError(f"an EPE-map network's manifest needs {missing}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_weights(directory / EPE_NET_WEIGHTS, net, {"net": net.config.to_dict()})
    write_manifest(directory, EPE_NET_KIND, {**config, "net": net.config.to_dict()}, inputs)
    return directory


def load_epe_net(directory: str | os.PathLike, device: str | torch.device | None = None) -> EPEMapNet:
    """The trained network in ``directory`` (eval mode), with ``.manifest`` (its manifest) attached."""
    directory = Path(directory)
    manifest = read_manifest(directory, EPE_NET_KIND)
    path = directory / EPE_NET_WEIGHTS
    if not path.is_file():
        raise ArtifactError(
            f"{directory} holds no trained EPE-map network ({EPE_NET_WEIGHTS} is missing: is "
            "train-epe-net still running?)"
        )
    tensors, saved = load_weights(path)
    try:
        cfg = EPENetConfig(**saved["net"])
    except (KeyError, TypeError) as e:
        raise ArtifactError(f"{path.with_suffix('.json')} does not describe an EPE-map network: {e}") from None
    net = load_state(EPEMapNet(cfg), tensors, str(path))
    net.manifest = manifest
    return net.to(device or "cpu").eval()


def avp_weights_checksum(avp_dir: str | os.PathLike) -> str:
    """The checksum of an AVP directory's weights file (its manifest's checksum does not change with the weights)."""
    from ..artifacts import file_checksum
    from ..posterior.network import AVP_WEIGHTS

    path = Path(avp_dir) / AVP_WEIGHTS
    if not path.is_file():
        raise ArtifactError(f"{avp_dir} holds no {AVP_WEIGHTS} (not a trained AVP directory)")
    return file_checksum(path)


def check_epe_net(
    net: EPEMapNet,
    grid: Sensor,
    avp: str,
    prior: str | None,
    what: str,
    avp_what: str = "the AVP",
    prior_what: str = "the prior",
    avp_weights: str | None = None,
) -> None:
    """Refuse a network trained for another sensor, AVP or prior (``avp`` / ``prior``: checksums as
    ``artifacts.dir_checksum`` gives them; ``avp_weights``: :func:`avp_weights_checksum`), naming both sides."""
    check_sensor(net.grid, grid, what, f"{avp_what}'s sensor")
    config = getattr(net, "manifest", {}).get("config", {})
    if config.get("avp") != avp or (avp_weights is not None and config.get("avp_weights") != avp_weights):
        raise ArtifactError(
            f"{what} was trained for the AVP {config.get('avp_dir', '?')} ({config.get('avp')}), "
            f"not for {avp_what} ({avp}); train one for this AVP (train-epe-net)"
        )
    if prior is not None and config.get("prior") != prior:
        raise ArtifactError(
            f"{what} was trained on maps made with the prior {config.get('prior_dir', '?')} "
            f"({config.get('prior')}), not with {prior_what} ({prior})"
        )
