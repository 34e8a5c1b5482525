"""Execute the notebooks at their default (full) size and time every cell: the figures the notebooks' text cites.

Each notebook runs in a fresh kernel (nbclient) with its working directory in ``--work`` so that it trains its own
artefacts from scratch (nothing reused from an earlier run), one torch/OpenMP thread per process unless
``--threads`` says otherwise. Prints and writes (``--out``, JSON) the wall-clock seconds of every code cell, the
total, the kernel's CPU seconds (user + system, its threads and child processes included: unlike the wall-clock
time, barely inflated by other jobs on a shared machine; with one thread it is what the notebook takes on an idle
core), the load average before and after (a loaded machine inflates every wall-clock figure) and whether the
notebook raised.

    python benchmarks/time_notebooks.py --out runs/bench/notebooks.json                 # both, default size
    python benchmarks/time_notebooks.py --notebooks walkthrough --small                 # the test suite's size
    python benchmarks/time_notebooks.py --executed notebooks                            # also store the outputs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = {p.stem: p for p in sorted((REPO / "notebooks").glob("*.ipynb"))}


def time_notebook(
    path: Path, work: Path, small: bool, threads: int, timeout: int, executed: Path | None = None
) -> dict:
    """Run one notebook; returns per-cell seconds (code cells, in order), the total and any error's name.  With
    ``executed`` (a folder) the notebook with its outputs is written there, under its own name, when it ran."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    env_before = dict(os.environ)
    os.environ.update(
        {
            "PPL_NOTEBOOK_SMALL": "1" if small else "0",
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "MPLBACKEND": "Agg",
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
    )
    for var in [k for k in os.environ if k.startswith("PPL_WALKTHROUGH_")]:
        os.environ.pop(var)  # train everything here: no artefacts reused from elsewhere
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    cells, error, i = [], None, None
    start, cpu_start = time.perf_counter(), _children_cpu()
    try:
        with client.setup_kernel():
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                t0 = time.perf_counter()
                client.execute_cell(cell, i)
                cells.append(
                    {
                        "cell": i,
                        "seconds": round(time.perf_counter() - t0, 1),
                        "first_line": cell.source.splitlines()[0] if cell.source else "",
                    }
                )
    except Exception as exc:  # noqa: BLE001 -- reported, not hidden: the timing of a failed run is still useful
        # a failing cell raises nbclient's CellExecutionError, which carries the kernel's exception name and value
        name, value = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
        error = f"cell {i}: {name}: {value.splitlines()[0] if value else ''}"
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    if executed is not None and error is None:
        from ppl_attention.artifacts import atomic_write_text

        executed.mkdir(parents=True, exist_ok=True)
        atomic_write_text(executed / path.name, nbformat.writes(nb) + "\n")
    # the kernel was a child of this process, reaped when setup_kernel's block closed: its CPU time is counted now
    return {
        "notebook": path.name,
        "small": small,
        "cells": cells,
        "total_seconds": round(time.perf_counter() - start, 1),
        "kernel_cpu_seconds": round(_children_cpu() - cpu_start, 1),
        "error": error,
    }


def _children_cpu() -> float:
    """User + system seconds of this process's finished (reaped) children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notebooks", nargs="+", default=sorted(NOTEBOOKS), choices=sorted(NOTEBOOKS))
    ap.add_argument("--small", action="store_true", help="PPL_NOTEBOOK_SMALL=1 (the size the tests execute)")
    ap.add_argument("--threads", type=int, default=1, help="torch / OpenMP threads of the kernel (default 1)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell (default 3600)")
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file to write the timings to")
    ap.add_argument(
        "--executed",
        type=Path,
        default=None,
        help="folder to write each executed notebook to, "
        "outputs included (e.g. notebooks/ to commit them with outputs); only those that ran",
    )
    args = ap.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory(prefix="time-notebooks-") as tmp:
        for name in args.notebooks:
            work = (args.work or Path(tmp)) / name
            work.mkdir(parents=True, exist_ok=True)
            load = os.getloadavg()
            r = time_notebook(NOTEBOOKS[name], work, args.small, args.threads, args.timeout, args.executed)
            r.update({"load_before": [round(x, 2) for x in load], "load_after": [round(x, 2) for x in os.getloadavg()]})
            results.append(r)
            print(json.dumps(r), flush=True)
    report = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
        },
        "threads": args.threads,
        "results": results,
    }
    if args.out:
        from ppl_attention.artifacts import atomic_write_json

        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, report)
    for r in results:
        status = "ok" if r["error"] is None else f"FAILED ({r['error']})"
        print(
            f"{r['notebook']}: {r['total_seconds'] / 60:.1f} min ({r['kernel_cpu_seconds'] / 60:.1f} CPU-min in "
            f"the kernel), {status}, load {r['load_before'][0]} -> {r['load_after'][0]}"
        )
    return 0 if all(r["error"] is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
