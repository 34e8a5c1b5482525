"""Training an EPE-map network (:mod:`.amortised`) by distillation from the maps the exhaustive search stored.

Every record of a sequence store holds, for each step ``t``, the EPE map of every location after the glimpses
``locations[:t]`` (the first step's map is the same for every image: the cached first-glimpse map, kept once).
An example is ``(image, observed = locations[:t], target = epe[t])``; the network's input is built on the fly
from the image (``avp.make_input(*sensor.observe(image, observed))``), the AVP's probabilities are computed once.

Training is resumable: ``OUT/checkpoint/last.safetensors`` (one file: the network, the optimiser, the best
weights so far, the history in its header) is written after every epoch; every shuffle derives from the seed and
the epoch, so a resumed run ends with the weights of an uninterrupted one.  The best epoch (lowest mean relative
regret of the predicted argmin on the validation maps) is saved as ``OUT/epe_net.safetensors`` at the end.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from ..checks import check_int, check_number
from ..artifacts import ArtifactError, atomic_write_json, clean_temporaries
from ..config import config_to_dict, setting
from ..runtime import autocast, check_precision, derive_seed, generator, precision_field
from ..posterior.epoch_checkpoint import load_epoch_checkpoint, save_epoch_checkpoint
from ..sensor import NO_GLIMPSE
from .amortised import EPEMapNet, allowed_mask, avp_input, epe_map_loss, map_regret, posterior_probs

if TYPE_CHECKING:
    import os
    from typing import Callable, Sequence
    from ..posterior.network import AVP
    from .store import SequenceStore

__all__ = ["TrainEPENetConfig", "MapData", "load_store_maps", "train_epe_net", "CHECKPOINT"]

log = logging.getLogger(__name__)

CHECKPOINT = Path("checkpoint") / "last.safetensors"
MIN_SCALE = 1e-2  # nats


@dataclass
class TrainEPENetConfig:
    """Settings of ``ppl-attention train-epe-net`` (flags, or a ``--config`` YAML file with these keys)."""

    precision: str | None = precision_field()
    epochs: int = setting(60, "passes over the examples")
    batch_size: int = setting(64, "maps per step")
    lr: float = setting(2e-3, "AdamW learning rate (cosine to lr/20)")
    weight_decay: float = setting(1e-4, "AdamW weight decay")
    tau: float = setting(
        0.3,
        "temperature of the ranking term, in units of the maps' within-map spread (smaller: only the argmin counts)",
    )
    rank_weight: float = setting(1.0, "weight of the ranking term against the MSE")
    valid_fraction: float = setting(
        0.1, "fraction of the images held out to pick the best epoch (by mean regret of the argmin)"
    )
    width: int = setting(16, "channels of the network's first convolutions")
    hidden: int = setting(64, "width of the per-location MLP")
    embedding: int = setting(16, "size of the learned per-location embedding (0: none)")
    positions: str = setting(
        "table",
        "how locations are told apart: table (a learned embedding and bias per location, one grid) or "
        "coords (Fourier features of the glimpse centre: no per-location parameter, trains on maps scored on a "
        "sub-lattice, e.g. generate --search exhaustive --search-options stride=6 on the 49 x 49 grid)",
        choices=["table", "coords"],
    )

    def check(self) -> "TrainEPENetConfig":
        for name in ("epochs", "batch_size", "width", "hidden"):
            v = getattr(self, name)
            check_int(name, v)
        check_int("embedding", self.embedding, minimum=0)
        for name, strict in (("lr", True), ("tau", True), ("weight_decay", False), ("rank_weight", False)):
            check_number(name, getattr(self, name), strict=strict)
        if self.positions not in ("table", "coords"):
            raise ValueError(f"`positions` must be table or coords, got {self.positions!r}")
        if not isinstance(self.valid_fraction, (int, float)) or not 0 <= self.valid_fraction < 1:
            raise ValueError(f"`valid_fraction` must be in [0, 1), got {self.valid_fraction!r}")
        if self.precision is not None:
            check_precision(self.precision)
        return self


@dataclass
class MapData:
    """Distillation examples: ``images`` (N, C, H, W); per example ``rows`` (M,) into images, ``observed``
    (M, T-1) locations (``NO_GLIMPSE``-padded), ``targets`` (M, L') float32 maps, ``allowed`` (M, L') bool,
    ``probs`` (M, K) the AVP's probabilities, ``keys`` (M,) the example's image (store number * 10**9 + index);
    ``locations`` (L',): the grid locations the target columns are (all of them, or the sub-lattice that an
    ``exhaustive`` search with ``stride`` scored)."""

    images: torch.Tensor
    rows: torch.Tensor
    observed: torch.Tensor
    targets: torch.Tensor
    allowed: torch.Tensor
    probs: torch.Tensor
    keys: torch.Tensor
    locations: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def to(self, device: str | torch.device) -> "MapData":
        """The same examples on ``device`` (training keeps them there: no transfer per batch)."""
        return MapData(
            *(
                None if v is None else v.to(device)
                for v in (
                    self.images,
                    self.rows,
                    self.observed,
                    self.targets,
                    self.allowed,
                    self.probs,
                    self.keys,
                    self.locations,
                )
            )
        )

    def subset(self, idx: torch.Tensor) -> "MapData":
        return MapData(
            self.images,
            self.rows[idx],
            self.observed[idx],
            self.targets[idx],
            self.allowed[idx],
            self.probs[idx],
            self.keys[idx],
            self.locations,
        )


def scored_locations(store) -> torch.Tensor:
    """The locations whose map values a store's search estimated: the stride sub-lattice of an exhaustive search
    with ``stride`` (the others hold a neighbour's value), else every location."""
    from .search import lattice

    stride = int((store.config.get("search_options") or {}).get("stride", 1))
    return torch.nonzero(lattice(store.grid, stride)).flatten()


def load_store_maps(
    stores: Sequence[SequenceStore],
    image_fns: Sequence[Callable[[int], torch.Tensor]],
    posterior: AVP,
    batch_size: int = 256,
) -> MapData:
    """The examples of ``stores`` (:class:`~.store.SequenceStore`, built by the exhaustive search), with
    ``image_fns[i](index)`` the true image of store ``i``'s record ``index``; on the CPU (the AVP's probabilities
    are computed on its device)."""
    from .sequential import posterior_device

    device = posterior_device(posterior)
    images, rows, observed, targets, repeats, keys = [], [], [], [], [], []
    Tmax = max(s.T for s in stores)
    columns = _common_columns(stores)
    full = len(columns) == stores[0].grid.num_locations
    for n, (store, image_fn) in enumerate(zip(stores, image_fns)):
        repeat = bool(store.config.get("allow_repeat", False))
        first_kept = False
        for index in store.indices():
            maps = store.epe_maps(index).float()
            if not bool(torch.isfinite(maps).all()):
                raise ArtifactError(f"{store.record_path(index)} holds NaN or infinite EPE values")
            loc = torch.tensor(store.record(index)["locations"], dtype=torch.long)
            row = len(images)
            images.append(image_fn(index).float().cpu())
            for t in range(store.T):
                if t == 0 and first_kept:  # the first map does not depend on the image: keep one copy
                    continue
                first_kept = True
                obs = torch.full((Tmax - 1,), NO_GLIMPSE, dtype=torch.long)
                obs[:t] = loc[:t]
                rows.append(row)
                observed.append(obs)
                targets.append(maps[t] if full else maps[t, columns])
                repeats.append(repeat)
                keys.append(n * 10**9 + index)
    if not rows:
        raise ValueError("the sequence stores hold no records to train on")
    observed, targets = torch.stack(observed), torch.stack(targets)
    # a store that allows repeats may choose an observed location again: every location is allowed there
    allowed = allowed_mask(observed, stores[0].grid.num_locations)[:, columns] | torch.tensor(repeats).unsqueeze(1)
    data = MapData(
        torch.stack(images),
        torch.tensor(rows),
        observed,
        targets,
        allowed,
        torch.zeros(0),
        torch.tensor(keys),
        None if full else columns,
    )
    data.probs = _posterior_probs(posterior, data, batch_size, device)
    return data


def _common_columns(stores: Sequence[SequenceStore]) -> torch.Tensor:
    """The locations every store scored (one sub-lattice of the grid); refuses stores made with different strides."""
    columns = [scored_locations(s) for s in stores]
    if any(not torch.equal(c, columns[0]) for c in columns):
        raise ValueError(
            "the stores scored different sub-lattices of the grid (search option stride): train on "
            "stores made with one stride"
        )
    return columns[0]


@torch.no_grad()
def _posterior_probs(posterior: AVP, data: MapData, batch_size: int, device) -> torch.Tensor:
    """The AVP's label probabilities of every example (on its device, in batches), on the CPU."""
    probs = []
    for start in range(0, len(data), batch_size):
        sl = slice(start, start + batch_size)
        x = avp_input(posterior, data.images[data.rows[sl]].to(device), data.observed[sl].to(device))
        probs.append(posterior_probs(posterior, x).cpu())
    return torch.cat(probs)


def _split(data: MapData, fraction: float, seed: int) -> tuple[MapData, MapData | None]:
    """Validation = every example of a random ``fraction`` of the images (never part of an image's steps)."""
    if fraction <= 0:
        return data, None
    unique = data.keys.unique()
    if len(unique) < 2:
        raise ValueError(f"`valid_fraction` {fraction} needs at least 2 images, the stores hold {len(unique)}")
    perm = unique[torch.randperm(len(unique), generator=generator(derive_seed(seed, "epe-net-split")))]
    n_valid = min(len(unique) - 1, max(1, round(fraction * len(unique))))
    valid = torch.isin(data.keys, perm[:n_valid])
    return data.subset(torch.nonzero(~valid).flatten()), data.subset(torch.nonzero(valid).flatten())


def target_scale(data: MapData) -> float:
    """The mean within-map standard deviation of the targets over the allowed locations (the MSE's unit), at least
    ``MIN_SCALE`` nats (maps flatter than the bfloat16 estimator's noise carry no ranking to learn)."""
    a = data.allowed.float()
    n = a.sum(1)
    mean = (data.targets * a).sum(1) / n
    var = (((data.targets - mean[:, None]) ** 2) * a).sum(1) / n
    return max(float(var.sqrt().mean()), MIN_SCALE)


@torch.no_grad()
def predict_maps(net: EPEMapNet, posterior, data: MapData, batch_size: int = 256) -> torch.Tensor:
    net.eval()
    out = []
    for start in range(0, len(data), batch_size):
        sl = slice(start, start + batch_size)
        out.append(
            net(avp_input(posterior, data.images[data.rows[sl]], data.observed[sl]), data.probs[sl], data.locations)
        )
    return torch.cat(out)


def _evaluate(net, posterior, data: MapData, scale: float, cfg: TrainEPENetConfig) -> dict:
    pred = predict_maps(net, posterior, data)
    losses = epe_map_loss(pred, data.targets, data.allowed, scale, cfg.tau * scale, cfg.rank_weight)
    r = map_regret(pred, data.targets, data.allowed)
    return {
        "loss": float(losses["loss"]),
        "mse": float(losses["mse"]),
        "level": float(losses["level"]),
        "rank": float(losses["rank"]),
        "mean_regret": float(r["regret"].mean()),
        "agreement": float(r["agree"].double().mean()),
    }


def _lr(cfg: TrainEPENetConfig, epoch: int) -> float:
    """Cosine from ``lr`` to ``lr / 20`` over the epochs (a pure function of the epoch: resumes exactly)."""
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * epoch / cfg.epochs)))


def _init_bias(net: EPEMapNet, train: MapData) -> None:
    """Start the network at the mean map (one mean for coords positions); refuse sub-lattice maps for a table."""
    with torch.no_grad():
        a = train.allowed.float()
        mean = (train.targets * a).sum(0) / a.sum(0).clamp_min(1)
        if net.bias.numel() == 1:  # positions='coords': one bias for every location
            net.bias.fill_(float((train.targets * a).sum() / a.sum()))
        elif train.locations is None:
            net.bias.copy_(mean)
        else:
            raise ValueError(
                "maps scored on a sub-lattice of the grid (exhaustive stride) teach nothing about the "
                "other locations' table entries: train with `positions` coords"
            )


def _train_epoch(
    net, opt, posterior, train: MapData, scale: float, cfg: TrainEPENetConfig, seed: int, epoch: int
) -> float:
    """One epoch of minibatch steps in this epoch's seeded order (resumes exactly); the mean training loss."""
    order = torch.randperm(len(train), generator=generator(derive_seed(seed, "epe-net-epoch", epoch)))
    total, batches = 0.0, 0
    for start in range(0, len(train), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        with torch.no_grad():
            x = avp_input(posterior, train.images[train.rows[idx]], train.observed[idx])
        with autocast(x.device, cfg.precision):
            pred = net(x, train.probs[idx], train.locations)
        losses = epe_map_loss(
            pred.float(), train.targets[idx], train.allowed[idx], scale, cfg.tau * scale, cfg.rank_weight
        )
        if not bool(torch.isfinite(losses["loss"])):
            raise FloatingPointError(f"the EPE-map network's loss is {float(losses['loss'])} at epoch {epoch}")
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        total, batches = total + float(losses["loss"].detach()), batches + 1
    return total / batches


def train_epe_net(
    data: MapData,
    posterior: AVP,
    net: EPEMapNet,
    out_dir: str | os.PathLike,
    cfg: TrainEPENetConfig,
    seed: int = 0,
    run_config: dict | None = None,
    progress: bool = True,
) -> tuple[EPEMapNet, dict]:
    """Train ``net`` on ``data`` into ``out_dir`` (checkpoint every epoch, resumed when one exists and its
    ``run_config`` agrees).  Returns the best network (by validation regret) and the history.

    Runs on the posterior's device: the network and the examples are moved there once."""
    from .sequential import posterior_device

    cfg.check()
    out = Path(out_dir)
    device = posterior_device(posterior)
    train, valid = _split(data, cfg.valid_fraction, seed)
    net.to(device)
    train, valid = train.to(device), None if valid is None else valid.to(device)
    scale = target_scale(train)
    config = {
        "run": run_config or {},
        "train": config_to_dict(cfg),
        "net": net.config.to_dict(),
        "seed": seed,
        "examples": len(data),
    }
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = {"epoch": 0, "history": [], "best_epoch": None, "best": None, "scale": scale}
    _init_bias(net, train)
    best = {k: v.clone() for k, v in net.state_dict().items()}
    if (out / CHECKPOINT).is_file():
        state, best = _load(out / CHECKPOINT, net, opt, config)
    clean_temporaries(out)
    bar = tqdm(total=cfg.epochs, initial=state["epoch"], desc="train-epe-net", disable=not progress)
    while state["epoch"] < cfg.epochs:
        epoch = state["epoch"]
        row, metrics = _epoch_row(net, opt, posterior, (train, valid), scale, cfg, seed, epoch)
        if state["best"] is None or metrics["mean_regret"] < state["best"]:
            state["best"], state["best_epoch"] = metrics["mean_regret"], epoch + 1
            best = {k: v.detach().clone() for k, v in net.state_dict().items()}
        state["history"].append(row)
        state["epoch"] = epoch + 1
        _save(out / CHECKPOINT, net, opt, best, state, config)
        bar.set_postfix(
            loss=f"{row['train_loss']:.3f}", regret=f"{metrics['mean_regret']:.4f}", best=state["best_epoch"]
        )
        bar.update(1)
    bar.close()
    net.load_state_dict(best)
    history = {"scale": scale, "best_epoch": state["best_epoch"], "best_mean_regret": state["best"]}
    history.update(
        train_examples=len(train), valid_examples=0 if valid is None else len(valid), history=state["history"]
    )
    atomic_write_json(out / "history.json", history)
    return net.eval(), history


def _epoch_row(
    net, opt, posterior, splits: tuple, scale: float, cfg: TrainEPENetConfig, seed: int, epoch: int
) -> tuple[dict, dict]:
    """Train one epoch at its scheduled learning rate, then evaluate on the validation split (``splits[1]``, or
    the training split when there is none): the history row and the metrics."""
    train, valid = splits
    net.train()
    for group in opt.param_groups:
        group["lr"] = _lr(cfg, epoch)
    row = {
        "epoch": epoch + 1,
        "train_loss": _train_epoch(net, opt, posterior, train, scale, cfg, seed, epoch),
        "lr": _lr(cfg, epoch),
    }
    metrics = _evaluate(net, posterior, valid if valid is not None else train, scale, cfg)
    row.update({("valid_" if valid is not None else "train_eval_") + k: v for k, v in metrics.items()})
    return row, metrics


def _save(path: Path, net, opt, best: dict, state: dict, config: dict) -> None:
    save_epoch_checkpoint(path, net, opt, state, config, {f"best.{k}": v for k, v in best.items()})


def _load(path: Path, net, opt, config: dict) -> tuple[dict, dict]:
    remedy = "use another `out` or the same settings and stores to resume"
    state, tensors, _ = load_epoch_checkpoint(path, net, opt, config, "train-epe-net", remedy)
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    log.info("resuming train-epe-net from %s (epoch %d)", path, state["epoch"])
    return state, best
