"""Devices, seeds and logging: the small runtime conventions every stage shares."""

from __future__ import annotations

import contextlib
from typing import Iterator

import logging
import random
import zlib

from .config import setting
from typing import Any

import numpy as np
import torch

__all__ = [
    "resolve_device",
    "seed_everything",
    "derive_seed",
    "generator",
    "setup_logging",
    "machine_info",
    "run_record",
    "PRECISIONS",
    "DEFAULT_PRECISION",
    "default_precision",
    "check_precision",
    "precision_field",
    "autocast",
    "progress_bars",
]


#: Precisions of the networks' forward passes: autocast to bfloat16, or plain float32.
PRECISIONS = ("float32", "bfloat16")
#: The precision on the CPU, where bfloat16 is slower without AMX / AVX512-BF16.
DEFAULT_PRECISION = "float32"


def default_precision(device: str | torch.device) -> str:
    """The precision when none is asked for: bfloat16 on CUDA (tensor cores), float32 on the CPU."""
    return "bfloat16" if torch.device(device).type == "cuda" else DEFAULT_PRECISION


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ValueError naming the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {PRECISIONS}, got {precision!r}")
    return precision


def precision_field() -> Any:
    """The ``precision`` setting of a training config (a dataclass field; ``None``: :func:`default_precision`)."""
    text = "of the forward passes: bfloat16 (autocast) or float32 (default: bfloat16 on CUDA, float32 on the CPU)"
    return setting(None, text, choices=list(PRECISIONS))


def autocast(device: str | torch.device, precision: str | None = None) -> torch.autocast:
    """The context of a training or design forward pass: bfloat16 autocast when ``precision`` (default: the
    device's, :func:`default_precision`) says so; losses and softmaxes stay float32 (autocast's own rules)."""
    device = torch.device(device)
    precision = check_precision(precision or default_precision(device))
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU.  Refuses a CUDA request on a machine without one."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"`device` must be auto, cpu or cuda, got {device!r}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available on this machine")
    return torch.device(device)


def derive_seed(*parts) -> int:
    """A stable 31-bit seed from any parts (run seed, image index, stage name...): one seed per unit of work."""
    return zlib.crc32(repr(parts).encode()) & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def machine_info() -> dict:
    """The machine this process runs on (CPU model and count, torch and its device), for results pages."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": None,
    }
    if torch.cuda.is_available():
        info["cuda"] = torch.cuda.get_device_name(0)
    return info


def run_record() -> dict:
    """Who made a result: the command line, package versions, the machine and the time, stored beside a run's
    metrics so a results page can say where each number came from."""
    import datetime
    import sys

    from .artifacts import package_versions

    from pathlib import Path

    command = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv else []  # the program's name, not where it is
    return {
        "command": command,
        "versions": package_versions(),
        "machine": machine_info(),
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


@contextlib.contextmanager
def progress_bars(show: bool) -> Iterator[None]:
    """Unless ``show``, every tqdm bar drawn inside is disabled, whatever its ``disable`` argument."""
    if show:
        yield
        return
    from tqdm import std

    init = std.tqdm.__init__

    def hidden(self, *args, **kwargs):
        init(self, *args, **{**kwargs, "disable": True})

    std.tqdm.__init__ = hidden
    try:
        yield
    finally:
        std.tqdm.__init__ = init
