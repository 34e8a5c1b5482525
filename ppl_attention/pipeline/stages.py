"""Staged runs that resume: a list of :class:`Stage` (a name, a test of being finished, a bound pipeline call),
run in order by :func:`run_stages`, which skips the finished ones and times the rest (the demo and the example
scripts are such lists)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["Stage", "run_stages"]


@dataclass
class Stage:
    name: str
    done: Path | Callable[[], bool] | None  # a path that exists once finished, or a test; None: always run
    call: Callable[[], object] | None  # a pipeline function with its arguments bound; None: filled in later

    def finished(self) -> bool:
        if self.done is None:
            return False
        return bool(self.done()) if callable(self.done) else Path(self.done).exists()


def run_stages(stages: list[Stage], start: int = 1, total: int | None = None) -> dict[str, float]:
    """Run the unfinished stages in order, printing ``[i/total] name`` (numbered from ``start`` of ``total``) and
    whether each was cached or how long it took; returns seconds per stage (0 for cached ones)."""
    timings = {}
    for i, st in enumerate(stages, start):
        header = f"[{i}/{total or len(stages)}] {st.name}"
        if st.finished():
            print(f"{header}: cached", flush=True)
            timings[st.name] = 0.0
            continue
        print(f"{header} ...", flush=True)
        t0 = time.perf_counter()
        st.call()
        timings[st.name] = round(time.perf_counter() - t0, 1)
        print(f"{header}: done in {timings[st.name]:.0f} s", flush=True)
    return timings
