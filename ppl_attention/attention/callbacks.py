"""What a training run reports and keeps, as callbacks of :meth:`.trainer.Trainer.run` (as Pyro's MCMC ``hook_fn``):
``on_step(trainer, running)`` after every iteration, ``on_validate(trainer, row, improved)`` after every
validation, ``close()`` at the end."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from ..artifacts import atomic_write_text, save_weights

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["ProgressBar", "TensorBoard", "CSVLog", "Checkpoints"]


class ProgressBar:
    """A tqdm bar over the run's iterations, with the latest validation accuracy."""

    def __init__(self, trainer: Trainer):
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=trainer.cfg.iterations,
            initial=trainer.iteration,
            desc=f"{trainer.stage} {trainer.out.name}",
            leave=False,
        )

    def on_step(self, trainer: Trainer, running: dict) -> None:
        self.bar.update(1)

    def on_validate(self, trainer: Trainer, row: dict, improved: bool) -> None:
        self.bar.set_postfix(val_acc=f"{row['val_greedy_acc']:.3f}")

    def close(self) -> None:
        self.bar.close()


class TensorBoard:
    """Every validation row as TensorBoard scalars in ``out/tensorboard`` (resumed runs purge later steps)."""

    def __init__(self, trainer: Trainer):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(trainer.out / "tensorboard"), purge_step=trainer.iteration)

    def on_validate(self, trainer: Trainer, row: dict, improved: bool) -> None:
        for k, v in row.items():
            if k != "iteration":
                self.writer.add_scalar(k, v, trainer.iteration)

    def close(self) -> None:
        self.writer.close()


class CSVLog:
    """The validation history as ``out/log.csv``, rewritten atomically at every validation."""

    def on_validate(self, trainer: Trainer, row: dict, improved: bool) -> None:
        history = trainer.history
        buf = io.StringIO()
        # A fixed column order (the checkpoint's JSON sorts keys, so insertion order is not kept on resume).
        writer = csv.DictWriter(buf, fieldnames=["iteration"] + sorted(set(history[0]) - {"iteration"}))
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(trainer.out / "log.csv", buf.getvalue())


class Checkpoints:
    """The best weights (when a validation improves) and the resumable checkpoint, at every validation."""

    def on_validate(self, trainer: Trainer, row: dict, improved: bool) -> None:
        if improved:
            save_weights(trainer.best_path, trainer.net, {**trainer.net.to_config(), "iteration": trainer.iteration})
        trainer.save_checkpoint()
