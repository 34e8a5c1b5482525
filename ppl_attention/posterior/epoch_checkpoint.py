"""The checkpoint of an epoch loop (the AVP's trainer, the EPE network's): one file holding the model, the
optimiser, any extra tensors and a JSON ``state`` whose ``history`` has a row per finished epoch.  It is resumed
only when the run's settings agree, so a resumed run continues the one that wrote it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..artifacts import (
    ArtifactError,
    check_compatible,
    load_checkpoint,
    optimizer_from_checkpoint,
    optimizer_to_checkpoint,
    save_checkpoint,
)

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Sequence

    import torch

__all__ = ["save_epoch_checkpoint", "load_epoch_checkpoint"]

_MODEL = "model."


def save_epoch_checkpoint(
    path: Path,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    state: dict,
    config: dict,
    tensors: dict | None = None,
    meta: dict | None = None,
) -> None:
    """Save ``model``, ``opt``, the extra ``tensors`` and ``{**config, "state": state, **meta}`` to ``path``."""
    optim_tensors, optim_meta = optimizer_to_checkpoint(opt)
    everything = {**{_MODEL + k: v for k, v in model.state_dict().items()}, **(tensors or {}), **optim_tensors}
    save_checkpoint(path, everything, {**config, "state": state, **optim_meta, **(meta or {})})


def load_epoch_checkpoint(
    path: Path,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    config: dict,
    what: str,
    remedy: str,
    needs: Sequence[str] = (),
) -> tuple[dict, dict, dict]:
    """Load the checkpoint at ``path`` into ``model`` and ``opt``; ``(state, tensors, meta)`` for the rest.

    Refused (``ArtifactError``) when it lacks ``needs`` (metadata keys or tensor names the trainer stores; ``what``
    names the trainer), when its ``config`` entries differ from this run's (``remedy`` says what to do) or when
    its state is not one epoch loop's (an int ``epoch`` and as many ``history`` rows)."""
    tensors, meta = load_checkpoint(path)
    needed = [k for k in ("state", "param_groups", *needs) if k not in meta and k not in tensors]
    if needed:
        raise ArtifactError(f"checkpoint {path} lacks {needed} (not a {what} checkpoint)")
    check_compatible(f"checkpoint {path} was", meta, config, keys=tuple(config), remedy=remedy)
    state = meta["state"]
    epoch, history = (state.get("epoch"), state.get("history")) if isinstance(state, dict) else (None, None)
    rows = len(history) if isinstance(history, list) else None
    if not isinstance(epoch, int) or rows != epoch:
        raise ArtifactError(
            f"checkpoint {path} holds an inconsistent state (epoch {epoch!r}, {rows} history rows); use another `out`"
        )
    model.load_state_dict({k[len(_MODEL) :]: v for k, v in tensors.items() if k.startswith(_MODEL)}, strict=True)
    optimizer_from_checkpoint(opt, tensors, meta)
    return state, tensors, meta
