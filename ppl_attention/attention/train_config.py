"""The settings of one hard-attention training run and the schedules read from them (learning rate, lambda).

Kept apart from :mod:`.trainer` so that the CLI can build its flags from :class:`TrainConfig` and the other stages
can share :func:`check_fields` without importing the training loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..checks import check_int, check_number
from ..config import GLIMPSES, setting
from ..runtime import check_precision, precision_field
from .stopping import STOP_TARGETS

__all__ = ["TrainConfig", "check_fields", "scheduled_lr", "supervision_lambda"]


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (defaults: sane for 60x60 cluttered MNIST on a CPU)."""

    precision: str | None = precision_field()
    glimpses: int = setting(GLIMPSES, "T, glimpses per image")
    iterations: int = setting(5000, "training iterations (minibatches)")
    batch_size: int = setting(64, "minibatch size")
    lr: float = setting(1e-3, "Adam learning rate")
    lr_schedule: str = setting(
        "constant",
        "learning-rate schedule: constant; step (times lr_decay every lr_decay_every iterations); cosine "
        "(from lr to lr * lr_final over lr_horizon iterations, then held)",
        choices=["constant", "step", "cosine"],
    )
    lr_decay: float = setting(0.5, "step schedule: factor applied every lr_decay_every")
    lr_decay_every: int = setting(10000, "step schedule: iterations between decays")
    lr_final: float = setting(0.01, "cosine schedule: final lr as a fraction of lr")
    lr_horizon: int | None = setting(
        None,
        "cosine schedule: iterations over which lr decays (required, so that extending --iterations "
        "later does not change the schedule)",
    )
    mc_samples: int = setting(
        10,
        "M: the Monte-Carlo test accuracy averages the class probabilities of M sampled policies "
        "(reported beside the deterministic, greedy-policy accuracy)",
    )
    validate_every: int = setting(100, "validate (and checkpoint) every K iterations")
    supervision_weight: float = setting(1.0, "lambda of -lambda log pi(target)")
    supervision_until: int | None = setting(
        None,
        "stop the partial supervision after this many iterations: from then on every example, the "
        "supervised images too, is trained with REINFORCE, so the bias of approximate sequences does not "
        "last (default: supervise throughout)",
    )
    supervision_probability: float | None = setting(
        None,
        "supervise a drawn supervised image only with this probability; otherwise it is shown as its "
        "redrawn canvas of the epoch and trained by REINFORCE, so sequences for every training image do "
        "not freeze the training canvases (default: always supervise a supervised image)",
    )
    supervised_fraction: float | None = setting(
        None, "fix the fraction of supervised examples per minibatch (default: as they come in the data)"
    )
    supervision_reduction: str = setting(
        "mean",
        "the supervised term -lambda log pi(target) over the batch: mean (divided by the batch size, like "
        "REINFORCE) or sum (the authors' trainer: every supervised glimpse weighs lambda, whatever the "
        "batch size)",
        choices=["mean", "sum"],
    )
    supervision_anneal: int | None = setting(
        None,
        "anneal lambda linearly from --supervision-weight to 0 over this many iterations (default: "
        "constant lambda; --supervision-until stops it outright instead)",
    )
    imitate: bool = setting(
        True,
        "false: the supervised images keep the frozen canvases their sequences were made for and are "
        "drawn as often, but nothing is teacher-forced or imitated (RAM on PS-NOGS's canvases, the "
        "control for the canvases themselves)",
    )
    entropy_weight: float = setting(0.0, "weight of the policy-entropy bonus")
    baseline_weight: float = setting(1.0, "weight of the baseline's MSE loss")
    ce_every_step: bool = setting(
        False, "cross-entropy after every glimpse (needed for adaptive stopping), not just the last"
    )
    stop_target: str = setting(
        "probability",
        "stop head regression target: gain in true-class probability, or in 0/1 correctness",
        choices=list(STOP_TARGETS),
    )
    stop_weight: float = setting(1.0, "weight of the stop head's MSE loss")
    redraw_each_epoch: bool = setting(
        True,
        "redraw training canvases each epoch (supervised images always keep the epoch-0 canvas their "
        "sequence was made for)",
    )
    best_metric: str = setting(
        "accuracy", "which greedy validation metric picks the best checkpoint", choices=["accuracy", "loss"]
    )
    eval_batch_size: int = setting(500, "batch size of validation / test passes")
    attribute: int | None = setting(None, "for multi-label datasets: the attribute to classify (binary)")
    tensorboard: bool = setting(True, "write TensorBoard events to OUT/tensorboard")

    def check(self) -> "TrainConfig":
        """Refuse settings that make no sense (before anything is loaded or written); returns ``self``."""
        check_fields(
            self,
            positive=(
                "glimpses",
                "iterations",
                "batch_size",
                "validate_every",
                "eval_batch_size",
                "mc_samples",
                "lr_decay_every",
            ),
            non_negative=("supervision_weight", "entropy_weight", "baseline_weight", "stop_weight"),
            optional_non_negative=("supervision_until", "attribute"),
            optional_positive=("supervision_anneal",),
        )
        if self.precision is not None:
            check_precision(self.precision)
        if self.supervision_reduction not in ("mean", "sum"):
            raise ValueError(f"`supervision_reduction` must be 'mean' or 'sum', got {self.supervision_reduction!r}")
        if not isinstance(self.imitate, bool):
            raise ValueError(f"`imitate` must be true or false, got {self.imitate!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"`lr` must be a positive number, got {self.lr!r}")
        f = self.supervised_fraction
        if f is not None and not (isinstance(f, (int, float)) and 0.0 <= f <= 1.0):
            raise ValueError(f"`supervised_fraction` must be in [0, 1], got {f!r}")
        q = self.supervision_probability
        if q is not None and not (isinstance(q, (int, float)) and not isinstance(q, bool) and 0.0 < q <= 1.0):
            raise ValueError(f"`supervision_probability` must be in (0, 1], got {q!r}")
        _check_lr_schedule(self)
        return self


def check_fields(
    cfg: object,
    positive: tuple[str, ...] = (),
    non_negative: tuple[str, ...] = (),
    optional_non_negative: tuple[str, ...] = (),
    optional_positive: tuple[str, ...] = (),
) -> None:
    """Shared checks of a config dataclass: ints >= 1, finite numbers >= 0; errors name the field and its flag."""
    for name in positive + optional_positive:
        value = getattr(cfg, name)
        if value is None and name in optional_positive:
            continue
        check_int(name, value)
    for name in non_negative + optional_non_negative:
        value = getattr(cfg, name)
        if value is None and name in optional_non_negative:
            continue
        check_number(name, value)


def _check_lr_schedule(cfg: "TrainConfig") -> None:
    """Refuse an incomplete or invalid learning-rate schedule, naming the setting (part of TrainConfig.check)."""
    if cfg.lr_schedule not in ("constant", "step", "cosine"):
        raise ValueError(f"`lr_schedule` must be constant, step or cosine, got {cfg.lr_schedule!r}")
    if cfg.lr_schedule == "step" and not 0 < cfg.lr_decay <= 1:
        raise ValueError(f"the step schedule needs `lr_decay` in (0, 1], got {cfg.lr_decay}")
    if cfg.lr_schedule == "cosine":
        if cfg.lr_horizon is None or cfg.lr_horizon < 1:
            raise ValueError(
                f"the cosine schedule needs `lr_horizon` N >= 1 (iterations of decay), got {cfg.lr_horizon}"
            )
        if not 0 <= cfg.lr_final <= 1:
            raise ValueError(f"`lr_final` must be a fraction in [0, 1], got {cfg.lr_final}")


def supervision_lambda(cfg: "TrainConfig", iteration: int) -> float:
    """lambda at ``iteration`` (0-based): ``supervision_weight``, annealed linearly to 0 over
    ``supervision_anneal`` iterations when that is set."""
    if cfg.supervision_anneal is None:
        return float(cfg.supervision_weight)
    return float(cfg.supervision_weight) * max(0.0, 1.0 - iteration / cfg.supervision_anneal)


def scheduled_lr(cfg: "TrainConfig", iteration: int) -> float:
    """Learning rate of ``cfg``'s schedule at ``iteration`` (0-based)."""
    if cfg.lr_schedule == "step":
        return cfg.lr * cfg.lr_decay ** (iteration // cfg.lr_decay_every)
    if cfg.lr_schedule == "cosine":
        progress = min(iteration / cfg.lr_horizon, 1.0)
        return cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * progress)))
    return cfg.lr
