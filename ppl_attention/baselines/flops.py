"""FLOPs of one forward pass, counted by ``torch.utils.flop_counter`` (a multiply-add counts as 2 FLOPs)."""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops"]


@torch.no_grad()
def count_flops(fn: Callable[..., object] | torch.nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of ``fn(*inputs)`` (per call, for the batch given).  Divide by the batch size for per-image FLOPs."""
    was_training = isinstance(fn, torch.nn.Module) and fn.training
    if isinstance(fn, torch.nn.Module):
        fn.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            fn(*inputs)
    finally:
        if was_training:
            fn.train()
    return int(counter.get_total_flops())
