"""Partially supervised training of the hard-attention network (RAM, RAM+, PS-NOGS, PS-H1/H5, PS-HGS).

Per minibatch (paper, eq. 8 and section 5):
- every example: cross-entropy of the class after the last glimpse (optionally after every glimpse);
- every glimpse the policy sampled: REINFORCE on log pi(location sampled), with a 0/1 reward (correct after the
  last glimpse) minus a learned baseline, and an MSE loss for the baseline;
- every glimpse teacher-forced to a supervision sequence: ``-lambda log pi(target)``, no REINFORCE.  A sequence
  shorter than ``T`` forces the first glimpses only; the rest are sampled and trained by REINFORCE, so every
  glimpse is trained by one of the two;
- the supervised term is averaged over the batch or summed over it (the authors' trainer), its share of each
  batch is a setting (the paper's: about 2.2 %), and lambda may stop after N iterations or anneal to 0;
  ``imitate = False`` keeps the supervised images' frozen canvases but imitates nothing (the canvases' control);
- optional entropy bonus; the stop head regresses on the observed gain of one more glimpse (:mod:`.stopping`).

Pretraining (RAM+, appendix B.2) trains embedder, core and classifier with locations drawn from a fixed
distribution; the best checkpoint is then frozen while the policy trains.

Reproducibility: the data order, the canvases of an epoch and the policy's draws are all derived from
``(seed, iteration)`` (``runtime.derive_seed``), so a run resumed from a checkpoint (model, optimiser, iteration,
history) continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..artifacts import (
    check_compatible,
    clean_temporaries,
    load_checkpoint,
    load_weights,
    optimizer_from_checkpoint,
    optimizer_to_checkpoint,
    save_checkpoint,
)
from ..config import config_to_dict
from ..sensor import NO_GLIMPSE
from ..runtime import autocast, derive_seed, generator
from .convergence import convergence_summary
from .network import HardAttentionNet
from .stopping import gain_targets
from .supervision import Supervision
from .train_config import TrainConfig, check_fields, scheduled_lr, supervision_lambda

if TYPE_CHECKING:
    import os
    from typing import Iterable
    from torch.utils.data import Dataset

__all__ = [
    "TrainConfig",
    "Trainer",
    "SplitData",
    "check_checkpoint",
    "check_fields",
    "policy_terms",
    "supervision_lambda",
]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"


def policy_terms(
    log_probs: torch.Tensor,
    teacher: torch.Tensor,
    reward: torch.Tensor,
    baselines: torch.Tensor,
    reduction: str = "mean",
) -> dict[str, torch.Tensor]:
    """The policy's loss terms of one batch: REINFORCE, the baseline's MSE and the supervised NLL.

    ``log_probs`` (B, T): log pi(location taken); ``teacher`` (B, T): 1 where the glimpse was teacher-forced to a
    supervision target, 0 where the policy sampled it; ``reward`` (B,) and ``baselines`` (B, T).  REINFORCE is
    averaged over the batch; the supervised ``-sum log pi(target)`` is averaged (``mean``) or summed (``sum``).
    Shared by the trainer and the examples' bandits, so both use one loss."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"`reduction` must be 'mean' or 'sum', got {reduction!r}")
    B = log_probs.shape[0]
    sampled = 1.0 - teacher
    adv = (reward.unsqueeze(1) - baselines).detach()
    reinforce = -(log_probs * adv * sampled).sum() / B
    base = (((baselines - reward.unsqueeze(1)) ** 2) * sampled).sum() / max(float(sampled.sum()), 1.0)
    supervised = -(log_probs * teacher).sum() / (B if reduction == "mean" else 1)
    return {"reinforce": reinforce, "baseline_mse": base, "supervised_nll": supervised}


class SplitData:
    """A dataset split as batched tensors: ``.images``/``.labels`` when the dataset has them, else item dicts."""

    def __init__(self, dataset: Dataset, attribute: int | None = None) -> None:
        self.dataset, self.attribute = dataset, attribute
        self.epoch = getattr(dataset, "epoch", 0)
        if len(dataset) == 0:
            raise ValueError(f"dataset {getattr(dataset, 'name', dataset)!r} is empty")

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch") and epoch != getattr(self.dataset, "epoch", self.epoch):
            self.dataset.set_epoch(epoch)
        self.epoch = epoch

    def _label(self, labels: torch.Tensor) -> torch.Tensor:
        if labels.dim() == 2:  # multi-label: one binary attribute
            if self.attribute is None:
                raise ValueError("the dataset is multi-label; choose one attribute with `attribute` N")
            labels = labels[:, self.attribute]
        return labels.long()

    def batch(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if hasattr(self.dataset, "images") and hasattr(self.dataset, "labels"):
            return self.dataset.images[positions], self._label(self.dataset.labels[positions])
        items = [self.dataset[int(i)] for i in positions]  # item-wise datasets (files on disk), like a DataLoader
        return (
            torch.stack([it["image"] for it in items]),
            self._label(torch.stack([torch.as_tensor(it["label"]) for it in items])),
        )

    def annotations(self, positions: torch.Tensor) -> dict:
        """``bbox`` / ``parts`` of the given images (for hand-crafted supervision)."""
        if hasattr(self.dataset, "bboxes"):
            return {"bbox": self.dataset.bboxes[positions]}
        items = [self.dataset[int(i)] for i in positions]
        out = {}
        for key in ("bbox", "parts"):
            if all(key in it for it in items):
                out[key] = torch.stack([torch.as_tensor(it[key]) for it in items])
        out["part_names"] = getattr(self.dataset, "part_names", None)
        return out


def check_checkpoint(
    path: str | os.PathLike, cfg: TrainConfig, network: dict, seed: int, stage: str
) -> tuple[dict, dict] | None:
    """Read the checkpoint at ``path`` and refuse it unless a run with these settings may resume it (nothing is
    loaded into a model); ``(tensors, meta)``, or None when there is none.  :func:`..run.train_run` calls it
    before it writes anything, so a refused run leaves its folder as it was."""
    path = Path(path)
    if not path.is_file():
        return None
    tensors, meta = load_checkpoint(path)
    if "meta.iteration" not in tensors or int(tensors["meta.iteration"]) != meta.get("iteration"):
        raise ValueError(f"{path} and its metadata disagree on the iteration; delete the checkpoint folder to restart")

    # ``iterations`` may grow: the data order and draws depend only on (seed, iteration), so extending a
    # finished run gives the same curves as a longer run.  Likewise ``supervision_until`` may change while
    # the checkpoint is still inside both the old and the new supervised phase (the runs agree up to there).
    def until(cfg: dict) -> float:
        value = cfg.get("supervision_until")
        return math.inf if value is None else value

    # settings a checkpoint does not record take their defaults (the behaviour it was written with)
    stored_cfg = {**config_to_dict(TrainConfig()), **meta.get("train_config", {})}
    free = {"iterations"}
    if meta["iteration"] <= min(until(stored_cfg), until(config_to_dict(cfg))):
        free.add("supervision_until")

    def same(cfg: dict) -> dict:
        return {k: v for k, v in cfg.items() if k not in free}

    check_compatible(
        f"checkpoint {path} was",
        {
            "train_config": same(stored_cfg),
            "network": HardAttentionNet.complete_config(meta.get("network")),
            "seed": meta.get("seed"),
            "stage": meta.get("stage"),
        },
        {"train_config": same(config_to_dict(cfg)), "network": network, "seed": seed, "stage": stage},
        remedy="use another `out` or delete it",
    )
    return tensors, meta


class Trainer:
    """One training run (or the pretraining stage of one) writing to ``out_dir``.

    Args:
        cfg: the run's :class:`TrainConfig`.
        net: the network (already on ``device``).
        train, valid: the splits, as :class:`SplitData`.
        out_dir: where checkpoints, ``log.csv``, TensorBoard events and best weights go.
        seed: the run seed; every random draw is derived from it and the iteration.
        supervision: the supervised indices and sequences (None: RAM).
        fixed_probs: (L,) location distribution: pretraining mode (policy unused, trunk trained).
        trainable: parameters to optimise (default: all that require grad).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        net: HardAttentionNet,
        train: SplitData,
        valid: SplitData,
        out_dir: str | os.PathLike,
        seed: int,
        supervision: Supervision | None = None,
        fixed_probs: torch.Tensor | None = None,
        trainable: Iterable[torch.nn.Parameter] | None = None,
        stage: str = "train",
    ) -> None:
        cfg.check()
        if cfg.batch_size < 1 or cfg.batch_size > len(train):
            raise ValueError(
                f"`batch_size` must be in [1, {len(train)}] (the training split's size), got {cfg.batch_size}"
            )
        self.cfg, self.net, self.train_data, self.valid_data = cfg, net, train, valid
        self.out, self.seed, self.stage = Path(out_dir), int(seed), stage
        self.device = net.h0.device
        self.fixed_probs = fixed_probs
        self.sup_table = (
            supervision.table(len(train), cfg.glimpses)
            if supervision is not None
            else torch.full((len(train), cfg.glimpses), NO_GLIMPSE, dtype=torch.long)
        )
        self.is_sup = (self.sup_table != NO_GLIMPSE).any(1)
        self.sup_positions = self.is_sup.nonzero().flatten()
        self.unsup_positions = (~self.is_sup).nonzero().flatten()
        # Supervised images keep the epoch-0 canvases their sequences were made for.
        self.sup_slot = torch.full((len(train),), -1, dtype=torch.long)
        self.sup_slot[self.sup_positions] = torch.arange(len(self.sup_positions))
        if len(self.sup_positions):
            train.set_epoch(0)
            self.sup_images, self.sup_labels = train.batch(self.sup_positions)
        self._check_fraction()
        params = list(trainable) if trainable is not None else [p for p in net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr)
        self.iteration = 0
        self.history: list[dict] = []
        self.best: dict | None = None
        self.elapsed = 0.0

    # ------------------------------------------------------------------ data
    def _check_fraction(self) -> None:
        f = self.cfg.supervised_fraction
        if f is None:
            return
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"`supervised_fraction` must be in [0, 1], got {f}")
        k = round(f * self.cfg.batch_size)
        if k > 0 and len(self.sup_positions) == 0:
            raise ValueError("supervised_fraction > 0 but the run has no supervised images")
        if self.cfg.batch_size - k > len(self.unsup_positions):
            raise ValueError(
                f"supervised_fraction={f} leaves {self.cfg.batch_size - k} unsupervised examples per "
                f"batch but only {len(self.unsup_positions)} images are unsupervised"
            )

    @staticmethod
    def _stream(pool: torch.Tensor, per_batch: int, iteration: int, seed: int, name: str):
        """Positions for one batch of a stateless epoch-wise shuffled stream over ``pool``: (positions, epoch)."""
        per_epoch = max(len(pool) // per_batch, 1)
        epoch, step = divmod(iteration, per_epoch)
        perm = torch.randperm(len(pool), generator=generator(derive_seed(seed, name, epoch)))
        return pool[perm[step * per_batch : (step + 1) * per_batch]], epoch

    def batch_positions(self, iteration: int) -> tuple[torch.Tensor, int]:
        """Training positions of minibatch ``iteration`` and the epoch it belongs to (a pure function)."""
        B, f = self.cfg.batch_size, self.cfg.supervised_fraction
        if f is None:
            return self._stream(torch.arange(len(self.train_data)), B, iteration, self.seed, "order")
        k = round(f * B)
        pos, epoch = self._stream(self.unsup_positions, B - k, iteration, self.seed, "order-unsup")
        if k:
            sup, _ = self._stream(self.sup_positions, k, iteration, self.seed, "order-sup")
            pos = torch.cat([sup, pos])
        return pos, epoch

    def get_batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos, epoch = self.batch_positions(iteration)
        if self.cfg.redraw_each_epoch:
            self.train_data.set_epoch(epoch)
        images, labels = self.train_data.batch(pos)
        slot = self.sup_slot[pos]
        sup = slot >= 0
        forced = self.sup_table[pos]
        q = self.cfg.supervision_probability
        if q is not None and bool(sup.any()):
            # a supervised image drawn now: its fixed canvas with its sequence (probability q), else the epoch's
            # redrawn canvas already in ``images``, unsupervised; the draw depends on (seed, iteration) only
            keep = (
                torch.rand(len(pos), generator=generator(derive_seed(self.seed, "supervision-probability", iteration)))
                < q
            )
            forced[sup & ~keep] = NO_GLIMPSE
            sup = sup & keep
        if bool(sup.any()):
            images, labels = images.clone(), labels.clone()
            images[sup] = self.sup_images[slot[sup]]
            labels[sup] = self.sup_labels[slot[sup]]
        if not self.cfg.imitate or (self.cfg.supervision_until is not None and iteration >= self.cfg.supervision_until):
            forced = torch.full_like(forced, NO_GLIMPSE)
        return images.to(self.device), labels.to(self.device), forced.to(self.device)

    # ------------------------------------------------------------------ loss
    def learning_rate(self, iteration: int) -> float:
        """The schedule's learning rate at ``iteration`` (a pure function, so a resumed run continues exactly)."""
        return scheduled_lr(self.cfg, iteration)

    def loss(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        forced: torch.Tensor,
        gen: torch.Generator | None,
        iteration: int = 0,
    ) -> tuple[torch.Tensor, dict]:
        cfg, T = self.cfg, self.cfg.glimpses
        pretrain = self.fixed_probs is not None
        ro = self.net(
            images,
            T,
            policy="fixed" if pretrain else "sample",
            forced=None if pretrain else forced,
            fixed_probs=self.fixed_probs,
            generator=gen,
        )
        if cfg.ce_every_step:
            ce = F.cross_entropy(ro.logits.flatten(0, 1), labels.repeat_interleave(T))
        else:
            ce = F.cross_entropy(ro.logits[:, -1], labels)
        total = ce
        stats = {"ce": float(ce.detach())}
        gains = gain_targets(ro.logits, labels, cfg.stop_target)
        if T > 1:
            stop = F.mse_loss(ro.gains[:, :-1], gains)
            total = total + cfg.stop_weight * stop
            stats["stop_mse"] = float(stop.detach())
        if not pretrain:
            reward = (ro.logits[:, -1].argmax(-1) == labels).float()
            teacher = (forced != NO_GLIMPSE).float()  # (B, T): glimpses forced to a supervision sequence
            terms = policy_terms(ro.log_probs, teacher, reward, ro.baselines, cfg.supervision_reduction)
            entropy = ro.entropy.mean()
            total = (
                total
                + terms["reinforce"]
                + cfg.baseline_weight * terms["baseline_mse"]
                + supervision_lambda(cfg, iteration) * terms["supervised_nll"]
                - cfg.entropy_weight * entropy
            )
            stats.update(
                {k: float(v.detach()) for k, v in terms.items()},
                entropy=float(entropy.detach()),
                train_reward=float(reward.mean()),
            )
        stats["loss"] = float(total.detach())
        return total, stats

    # ------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, data: SplitData, policy: str, seed_parts: tuple[object, ...] = (), mc_samples: int = 1) -> dict:
        """Cross-entropy and accuracy after the last glimpse on a whole split (greedy or sampled policy).

        ``mc_samples = M > 1`` (sampled policy only): the class probabilities of M independent rollouts per image
        are averaged before the accuracy and cross-entropy are taken (Mnih et al.'s Monte-Carlo test accuracy;
        it can hide a weak policy, so it is reported beside the greedy one, never instead of it)."""
        if mc_samples < 1 or (mc_samples > 1 and policy != "sample"):
            raise ValueError(
                f"`mc_samples` must be >= 1, and > 1 only with the sampled policy; got {mc_samples} "
                f"with policy {policy!r}"
            )
        self.net.eval()
        gen = generator(derive_seed(self.seed, "eval", *seed_parts), self.device)
        ce, correct, n = 0.0, 0, 0
        per_batch = max(1, self.cfg.eval_batch_size // mc_samples)
        for start in range(0, len(data), per_batch):
            pos = torch.arange(start, min(start + per_batch, len(data)))
            images, labels = data.batch(pos)
            images, labels = images.to(self.device), labels.to(self.device)
            p = "fixed" if self.fixed_probs is not None else policy
            # M rollouts of every image in one batch (image-major), probabilities averaged per image.
            ro = self.net(
                images.repeat_interleave(mc_samples, 0),
                self.cfg.glimpses,
                policy=p,
                fixed_probs=self.fixed_probs,
                generator=gen,
            )
            probs = ro.logits[:, -1].softmax(-1).reshape(len(pos), mc_samples, -1).mean(1)
            ce += float(F.nll_loss(probs.clamp_min(1e-12).log(), labels, reduction="sum"))
            correct += int((probs.argmax(-1) == labels).sum())
            n += len(labels)
        self.net.train()
        return {"ce": ce / n, "acc": correct / n}

    def validate(self) -> dict:
        greedy = self.evaluate(self.valid_data, "greedy", ("valid", self.iteration))
        sampled = self.evaluate(self.valid_data, "sample", ("valid-sample", self.iteration))
        return {
            "val_greedy_ce": greedy["ce"],
            "val_greedy_acc": greedy["acc"],
            "val_sampled_ce": sampled["ce"],
            "val_sampled_acc": sampled["acc"],
        }

    # ----------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT / "last.safetensors"

    @property
    def best_path(self) -> Path:
        return self.out / "best.safetensors"

    def save_checkpoint(self) -> None:
        opt_tensors, opt_meta = optimizer_to_checkpoint(self.optimizer)
        tensors = {f"model.{k}": v for k, v in self.net.state_dict().items()}
        tensors.update(opt_tensors)
        tensors["meta.iteration"] = torch.tensor(self.iteration)
        save_checkpoint(
            self.checkpoint_path,
            tensors,
            {
                "iteration": self.iteration,
                "history": self.history,
                "best": self.best,
                "elapsed": self.elapsed,
                "optimizer": opt_meta,
                "train_config": config_to_dict(self.cfg),
                "network": self.net.to_config(),
                "seed": self.seed,
                "stage": self.stage,
            },
        )

    def check_checkpoint(self) -> tuple[dict, dict] | None:
        """Read ``checkpoint/last`` and refuse it unless this run's settings may resume it (nothing is loaded);
        ``(tensors, meta)``, or None when there is no checkpoint."""
        return check_checkpoint(self.checkpoint_path, self.cfg, self.net.to_config(), self.seed, self.stage)

    def try_resume(self) -> bool:
        """Load ``checkpoint/last`` when present and made by the same config; True if it was."""
        found = self.check_checkpoint()
        if found is None:
            return False
        tensors, meta = found
        self.net.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer_from_checkpoint(self.optimizer, tensors, meta["optimizer"])
        self.iteration, self.history, self.best = meta["iteration"], meta["history"], meta["best"]
        self.elapsed = meta.get("elapsed", 0.0)
        log.info("resumed %s from iteration %d", self.out, self.iteration)
        return True

    def _is_better(self, row: dict) -> bool:
        if self.best is None:
            return True
        if self.cfg.best_metric == "accuracy":
            return row["val_greedy_acc"] > self.best["val_greedy_acc"]
        return row["val_greedy_ce"] < self.best["val_greedy_ce"]

    # ------------------------------------------------------------------ loop
    def default_callbacks(self, progress: bool = True) -> list:
        """What a run reports and keeps: the progress bar, TensorBoard (``cfg.tensorboard``), log.csv, and the
        best weights and checkpoint at every validation."""
        from .callbacks import Checkpoints, CSVLog, ProgressBar, TensorBoard

        callbacks = [ProgressBar(self)] if progress else []
        if self.cfg.tensorboard:
            callbacks.append(TensorBoard(self))
        return callbacks + [CSVLog(), Checkpoints()]

    def step(self) -> dict:
        """One training iteration; the loss terms of its batch."""
        images, labels, forced = self.get_batch(self.iteration)
        gen = generator(derive_seed(self.seed, "policy", self.iteration), self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.iteration)
        with autocast(self.device, self.cfg.precision):
            loss, stats = self.loss(images, labels, forced, gen, self.iteration)
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(f"the training loss became {float(loss.detach())} at iteration {self.iteration}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.iteration += 1
        return stats

    def run(self, stop_at: int | None = None, progress: bool = True, callbacks: list | None = None) -> dict:
        """Train until ``cfg.iterations`` (or ``stop_at``, to simulate an interruption); returns the summary.

        ``callbacks`` (default :meth:`default_callbacks`) are told of every step (``on_step(trainer, stats)``),
        every validation (``on_validate(trainer, row)``) and the end (``close()``), as Pyro's MCMC ``hook_fn``."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.try_resume()
        clean_temporaries(self.out)  # what a killed run left half-written (once its checkpoint agrees)
        end = self.cfg.iterations if stop_at is None else min(stop_at, self.cfg.iterations)
        callbacks = self.default_callbacks(progress) if callbacks is None else callbacks
        running: dict[str, float] = {}
        count = 0
        self.net.train()
        t0 = time.perf_counter()
        try:
            while self.iteration < end:
                for k, v in self.step().items():
                    running[k] = running.get(k, 0.0) + v
                count += 1
                for c in callbacks:
                    getattr(c, "on_step", _ignore)(self, running)
                if self.iteration % self.cfg.validate_every == 0 or self.iteration == self.cfg.iterations:
                    self.elapsed += time.perf_counter() - t0
                    row = {
                        "iteration": self.iteration,
                        **{f"train_{k}": v / count for k, v in running.items()},
                        "lr": self.learning_rate(self.iteration - 1),
                        **self.validate(),
                    }
                    running, count = {}, 0
                    self.history.append(row)
                    improved = self._is_better(row)
                    if improved:
                        self.best = dict(row)
                    for c in callbacks:
                        getattr(c, "on_validate", _ignore)(self, row, improved)
                    t0 = time.perf_counter()  # validation and checkpointing are not training time
        finally:
            for c in callbacks:
                getattr(c, "close", _ignore)()
        return self.summary()

    def summary(self) -> dict:
        return {
            "stage": self.stage,
            "iterations": self.iteration,
            "best": self.best,
            "iterations_per_second": self.iteration / self.elapsed if self.elapsed else None,
            **convergence_summary(self.history),
        }

    def load_best(self) -> None:
        tensors, _ = load_weights(self.best_path)
        self.net.load_state_dict(tensors)


def _ignore(*args) -> None:
    """What a callback without a given hook does there."""
    return None
