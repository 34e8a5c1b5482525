"""Training the AVP: random glimpse sets, Adam, validation NLL every epoch, best checkpoint, early stopping,
resume after an interruption, temperature calibration, and DistributedDataParallel under ``torchrun``.

Reproducibility: every epoch reseeds torch (dropout), the glimpse sampler and the data order from
``derive_seed(seed, epoch, rank)``, so a run resumed from its last checkpoint ends with exactly the weights of an
uninterrupted run.  The checkpoint is one file, ``DIR/checkpoint/last.safetensors`` (written atomically by
:func:`ppl_attention.artifacts.save_checkpoint`): its tensors are the model, the optimiser's tensors and the torch
RNG state; its header metadata holds the configs, epoch, history, early-stopping state, the optimiser's
hyper-parameters and the LR schedule.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from ..artifacts import atomic_write_json, clean_temporaries
from ..config import GLIMPSES, config_to_dict, setting
from ..runtime import autocast, check_precision, derive_seed, generator, precision_field
from .calibration import calibrate_avp
from .epoch_checkpoint import load_epoch_checkpoint, save_epoch_checkpoint
from .evaluation import check_labels, collect_draws, fetch_batch
from .glimpses import random_locations
from .metrics import head_loss
from .network import AVP, AVPConfig, save_avp

if TYPE_CHECKING:
    from torch.utils.data import Dataset

__all__ = ["TrainAVPConfig", "train_avp", "avp_config_for", "check_train_avp_config"]

log = logging.getLogger(__name__)
CHECKPOINT = Path("checkpoint") / "last.safetensors"


@dataclass
class TrainAVPConfig:
    backbone: str = setting("small_cnn", "AVP backbone", choices=["small_cnn", "mobilenet_v2", "densenet121"])
    width: int = setting(32, "small_cnn base width")
    dropout: float = setting(0.2, "dropout before the classifier")
    precision: str | None = precision_field()
    max_glimpses: int = setting(
        GLIMPSES, "T: training uses t ~ U{0..T} random glimpses", flag="glimpses", old_flags=("--max-glimpses",)
    )
    epochs: int = setting(40, "maximum number of epochs")
    batch_size: int = setting(64, "minibatch size (over all processes)")
    lr: float = setting(2e-3, "Adam learning rate (cosine-annealed over the epochs)")
    weight_decay: float = setting(1e-4, "Adam weight decay")
    patience: int = setting(8, "early stopping: epochs without a better validation NLL")
    full_fraction: float = setting(
        0.5, "fraction of training images seen whole (a curriculum: random glimpses alone teach slowly)"
    )
    flip: bool = setting(True, "random horizontal flips (only where the dataset allows)")
    aux_weight: float = setting(0.5, "weight of the auxiliary attribute loss (CUB)")
    time_limit_min: float | None = setting(
        None,
        "stop after the epoch that crosses this many minutes of this call (then calibrate and save as "
        "after early stopping); the epoch count then depends on the machine's speed",
    )
    calibrate: bool = setting(True, "fit a temperature on validation data")
    pretrained: str | None = setting(
        None, "torchvision ImageNet state dict (.safetensors) for mobilenet_v2 / densenet121; never downloaded"
    )


def check_train_avp_config(cfg: TrainAVPConfig) -> TrainAVPConfig:
    """Refuse settings that make no sense, naming the field and its flag (before anything is written)."""
    from ..attention.trainer import check_fields

    check_fields(
        cfg,
        positive=("width", "max_glimpses", "epochs", "batch_size", "patience"),
        non_negative=("weight_decay", "aux_weight"),
    )
    if cfg.precision is not None:
        check_precision(cfg.precision)
    check_fields(cfg, non_negative=("lr",))
    value = cfg.time_limit_min
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"`time_limit_min` must be a finite number >= 0, got {value!r}")
    for name in ("dropout", "full_fraction"):
        value = getattr(cfg, name)
        if not (isinstance(value, (int, float)) and 0 <= value <= 1):
            raise ValueError(f"`{name}` must lie in [0, 1], got {value!r}")
    if cfg.dropout == 1:
        raise ValueError("`dropout` must be < 1, got 1")
    return cfg


def avp_config_for(dataset: Dataset, cfg: TrainAVPConfig) -> AVPConfig:
    """The AVP's architecture config for ``dataset`` (grid, channels, head, normalisation)."""
    task = getattr(dataset, "task", "categorical")
    n_attr = int(getattr(dataset, "num_attributes", 0) or 0)
    head = "multilabel" if task == "multilabel" else ("class_attributes" if n_attr else "categorical")
    if head == "multilabel":
        n_attr = int(dataset.num_classes)
    mean = torch.as_tensor(dataset.mean).flatten().tolist()
    std = torch.as_tensor(dataset.std).flatten().tolist()
    return AVPConfig(
        grid=dataset.grid.to_dict(),
        channels=int(dataset.channels),
        head=head,
        num_classes=int(dataset.num_classes) if head != "multilabel" else 0,
        num_attributes=n_attr,
        backbone=cfg.backbone,
        width=cfg.width,
        dropout=cfg.dropout,
        mean=tuple(mean),
        std=tuple(std),
    )


def _dist():
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _sync_buffers(model: torch.nn.Module) -> None:
    """BatchNorm running statistics are updated per process; rank 0's become everyone's."""
    rank, world = _dist()
    if world > 1:
        for b in model.buffers():
            dist.broadcast(b.data, src=0)


def _checkpoint_config(avp_cfg: AVPConfig, cfg: TrainAVPConfig, seed: int, dataset: str) -> dict:
    return {"avp": avp_cfg.to_dict(), "train": config_to_dict(cfg), "seed": seed, "dataset": dataset}


def _save_checkpoint(out: Path, model, opt, sched, state: dict, config: dict) -> None:
    meta = {"scheduler": sched.state_dict()}
    save_epoch_checkpoint(out / CHECKPOINT, model, opt, state, config, {"rng.torch": torch.get_rng_state()}, meta)


def _load_checkpoint(out: Path, model, opt, sched, config: dict) -> dict:
    remedy = "use another `out` or the same settings to resume"
    state, tensors, meta = load_epoch_checkpoint(
        out / CHECKPOINT, model, opt, config, "train-avp", remedy, needs=("scheduler", "rng.torch")
    )
    sched.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    return state


@torch.no_grad()
def _validate(model: AVP, valid, cfg: TrainAVPConfig, seed: int, device) -> float:
    d = collect_draws(model, valid, ("mix", cfg.max_glimpses), derive_seed(seed, "valid"), device=device)
    return float(head_loss(d["logits"], d["labels"], model.head, model.num_classes, d["attributes"], cfg.aux_weight))


def _rank_device(device, world: int) -> torch.device:
    """The process's device: under ``torchrun`` on CUDA, the GPU of ``LOCAL_RANK`` (made current, so NCCL's
    collectives and every new tensor land on it)."""
    device = torch.device(device)
    if device.type == "cuda" and world > 1 and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def _broadcast_value(value: float, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank (a tensor on the process's device: NCCL refuses CPU tensors)."""
    rank, world = _dist()
    if world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def _epoch_order(n: int, seed: int, epoch: int, rank: int, world: int) -> torch.Tensor:
    """This rank's share of the epoch's shuffled item order (the same partition on every rank)."""
    sampler = DistributedSampler(
        range(n), num_replicas=world, rank=rank, shuffle=True, seed=derive_seed(seed, "avp-order"), drop_last=world > 1
    )
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler))


def _train_epoch(
    net,
    model: AVP,
    train,
    cfg: TrainAVPConfig,
    opt,
    order: torch.Tensor,
    per_rank: int,
    device: torch.device,
    g: torch.Generator,
    flip: bool,
) -> float:
    """One pass over ``order`` in batches of ``per_rank``, each image seen through random glimpses; the mean
    training loss."""
    net.train()
    total, count = 0.0, 0
    for start in range(0, len(order), per_rank):
        idx = order[start : start + per_rank]
        images, labels, attrs = fetch_batch(train, idx)
        labels = check_labels(model, labels, "train labels")
        images = model.check_images(images, "train images").to(device)
        if flip:
            flipped = torch.rand(len(idx), generator=g) < 0.5
            images = torch.where(flipped.view(-1, 1, 1, 1).to(device), images.flip(-1), images)
        loc = random_locations(model.grid, len(idx), cfg.max_glimpses, g)
        whole = None
        if cfg.full_fraction > 0:
            whole = (torch.rand(len(idx), generator=g) < cfg.full_fraction).to(device)
        x = model.make_input(*model.grid.observe(images, loc.to(device), whole=whole))
        with autocast(device, cfg.precision):
            logits = net(x)
        loss = head_loss(
            logits.float(),
            labels.to(device),
            model.head,
            model.num_classes,
            None if attrs is None else attrs.to(device),
            cfg.aux_weight,
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(idx)
        count += len(idx)
    return total / max(count, 1)


def _record_epoch(state: dict, epoch: int, train_nll: float, val_nll: float, lr: float) -> bool:
    """Append the epoch to the history and update the early-stopping state; True if it is the best so far."""
    improved = val_nll < state["best_nll"] - 1e-4
    state["history"].append({"epoch": epoch, "train_nll": train_nll, "valid_nll": val_nll, "lr": lr})
    if improved:
        state.update(best_nll=val_nll, best_epoch=epoch, bad_epochs=0)
    else:
        state["bad_epochs"] += 1
    state["epoch"] = epoch + 1
    return improved


def _finish(
    model: AVP,
    out: Path,
    valid,
    cfg: TrainAVPConfig,
    seed: int,
    device,
    name: str,
    train,
    state: dict,
    config: dict,
    timed_out: bool,
) -> AVP:
    """The final AVP: the best epoch's weights, calibrated on ``valid`` and written by rank 0 (the only rank that
    calibrates); the others wait for it."""
    from .network import load_avp

    rank, world = _dist()
    model.load_state_dict(load_avp(out / "best", device).state_dict())
    if rank == 0:
        calibration = (
            calibrate_avp(model, valid, cfg.max_glimpses, derive_seed(seed, "calibrate"), device=device)
            if cfg.calibrate
            else None
        )
        save_avp(
            model,
            out,
            name,
            cfg.max_glimpses,
            extra_config={
                "train": config_to_dict(cfg),
                "seed": seed,
                "best_epoch": state["best_epoch"],
                "data": getattr(train, "data_spec", None),  # name, root, split seed, options
                "held_out": getattr(train, "held_out", None),  # design images left out (no oracle)
                "epochs_run": state["epoch"],
                "stopped_by_time_limit": timed_out,
                "best_valid_nll": state["best_nll"],
                "calibration": calibration,
            },
        )
        atomic_write_json(
            out / "history.json",
            {"history": state["history"], "calibration": calibration, "best_epoch": state["best_epoch"]},
        )
    if world > 1:
        dist.barrier()
    return model.eval()


def _make_model(train, cfg: TrainAVPConfig, seed: int, device, world: int):
    """The AVP's config, the seeded model on ``device`` (checked against the training images' size) and the
    module to train (wrapped for distributed data parallelism when ``world`` > 1)."""
    avp_cfg = avp_config_for(train, cfg)
    torch.manual_seed(derive_seed(seed, "avp-init"))
    model = AVP(avp_cfg, cfg.pretrained).to(device)
    if tuple(getattr(train, "image_size", model.grid.image_size)) != model.grid.image_size:
        raise ValueError(f"train images are {train.image_size}, the grid expects {model.grid.image_size}")
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=None if device.type == "cpu" else [device])
    return avp_cfg, model, net


def _time_limit_reached(cfg: TrainAVPConfig, started: float, epoch: int, device) -> bool:
    """Whether the time limit (if any) has passed, rank 0's answer broadcast so every rank stops after the same
    epoch."""
    if cfg.time_limit_min is None:
        return False
    timed_out = bool(_broadcast_value(float(time.monotonic() - started > 60 * cfg.time_limit_min), device))
    if timed_out:
        log.info("time limit of %.1f min reached after epoch %d", cfg.time_limit_min, epoch)
    return timed_out


def _start(train, cfg: TrainAVPConfig, seed: int, device, out: Path, name: str) -> tuple:
    """The model, the module to train, the optimiser, the schedule, the checkpoint's config and the training state
    (resumed from ``out``'s checkpoint when there is one): ``(model, net, opt, sched, config, state)``."""
    rank, world = _dist()
    avp_cfg, model, net = _make_model(train, cfg, seed, device, world)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    config = _checkpoint_config(avp_cfg, cfg, seed, name)
    state = {"epoch": 0, "best_nll": math.inf, "best_epoch": -1, "bad_epochs": 0, "history": []}
    if (out / CHECKPOINT).is_file():
        state = _load_checkpoint(out, model, opt, sched, config)
        log.info("resuming %s from epoch %d", out, state["epoch"])
    if rank == 0:
        clean_temporaries(out)  # what a killed run left half-written (once the checkpoint, if any, agrees)
    return model, net, opt, sched, config, state


def _epoch(
    net, model: AVP, data: tuple, cfg: TrainAVPConfig, optimisers: tuple, seed: int, epoch: int, device, flip: bool
) -> tuple[float, float]:
    """One epoch on this rank's share of ``data[0]``, then rank 0's validation NLL on ``data[1]`` broadcast:
    ``(train_nll, val_nll)``.  ``optimisers``: the optimiser and its schedule."""
    (train, valid), (opt, sched) = data, optimisers
    rank, world = _dist()
    torch.manual_seed(derive_seed(seed, "avp-epoch", epoch, rank))
    if hasattr(train, "set_epoch"):
        train.set_epoch(epoch)
    train_nll = _train_epoch(
        net,
        model,
        train,
        cfg,
        opt,
        _epoch_order(len(train), seed, epoch, rank, world),
        max(1, cfg.batch_size // world),
        device,
        generator(derive_seed(seed, "avp-glimpses", epoch, rank)),
        flip,
    )
    sched.step()
    _sync_buffers(model)
    val_nll = _broadcast_value(_validate(model, valid, cfg, seed, device) if rank == 0 else 0.0, device)
    return train_nll, val_nll


def train_avp(
    train: Dataset,
    valid: Dataset,
    out_dir: str | os.PathLike,
    cfg: TrainAVPConfig | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dataset_name: str | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> AVP:
    """Train an AVP on ``train`` (a dataset with the ``ppl_attention.data`` attributes), validating on ``valid``.

    Writes ``out_dir/avp.safetensors`` + ``avp.json`` + ``manifest.json`` (the best epoch, calibrated),
    ``out_dir/history.json`` and ``out_dir/checkpoint/``; resumes from the checkpoint when one exists.
    ``stop_after``: stop after this many epochs in this call (to simulate an interruption).  Under
    ``torch.distributed`` every process calls this: each trains on ``batch_size // world`` images per step (its
    BatchNorm statistics are per process; rank 0's are broadcast after each epoch), rank 0 validates, calibrates
    and writes, and its decisions (early stopping, the time limit) are broadcast.  Returns the trained AVP.
    """
    cfg = check_train_avp_config(cfg or TrainAVPConfig())
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(f"train and valid must be non-empty, got {len(train)} and {len(valid)} items")
    out = Path(out_dir)
    rank, world = _dist()
    device = _rank_device(device, world)
    name = dataset_name or getattr(train, "name", "unknown")
    model, net, opt, sched, config, state = _start(train, cfg, seed, device, out, name)
    flip = cfg.flip and bool(getattr(train, "allows_flip", False))
    ran, started, timed_out = 0, time.monotonic(), False
    bar = tqdm(
        range(state["epoch"], cfg.epochs),
        desc="train-avp",
        disable=not progress or rank != 0,
        initial=state["epoch"],
        total=cfg.epochs,
    )
    for epoch in bar:
        if state["bad_epochs"] >= cfg.patience or (stop_after is not None and ran >= stop_after) or timed_out:
            break
        train_nll, val_nll = _epoch(net, model, (train, valid), cfg, (opt, sched), seed, epoch, device, flip)
        improved = _record_epoch(state, epoch, train_nll, val_nll, opt.param_groups[0]["lr"])
        ran += 1
        if rank == 0:
            if improved:
                save_avp(model, out / "best", name, cfg.max_glimpses)
            _save_checkpoint(out, model, opt, sched, state, config)
        bar.set_postfix(train=f"{train_nll:.3f}", valid=f"{val_nll:.3f}", best=state["best_epoch"])
        if world > 1:
            dist.barrier()
        timed_out = _time_limit_reached(cfg, started, epoch, device)
    finished = state["epoch"] >= cfg.epochs or state["bad_epochs"] >= cfg.patience or timed_out
    if stop_after is not None and not finished:
        return model
    return _finish(model, out, valid, cfg, seed, device, name, train, state, config, timed_out)
