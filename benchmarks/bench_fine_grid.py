"""Cost of the fine MNIST grids: seconds per training iteration and peak memory, against the coarse grids.

Grids (all with Mnih's 3-scale retina, 12 x 12 foveae): 60 x 60 every 6 px (9 x 9 = 81 locations, the default),
every pixel (49 x 49 = 2,401, ``--config cluttered-mnist-fine``); 100 x 100 every 6 px (15 x 15 = 225) and every
2 px (45 x 45 = 2,025, ``cluttered-mnist-100-fine``).  Each grid with each location policy (dense, gaussian,
factorised) and each location embedding asked for.  One training iteration = batch 64, T = 8 glimpses, forward,
backward and Adam step through :class:`~ppl_attention.attention.trainer.Trainer` (REINFORCE loss, as RAM).

Time: every configuration is built once, then the timed iterations are interleaved (repetition r of every
configuration, then r + 1 ...), so a change in the machine's load hits them all alike; the median is reported.
Memory: on CPU (Linux), each configuration runs 3 iterations in a fresh subprocess; after one warm-up iteration of
a tiny network of the same kind (the libraries' one-off buffers) and ``malloc_trim``, the process resets its peak
resident set (``/proc/self/clear_refs``) just before the network is built; the figure is that peak (``VmHWM``)
minus the resident set then: parameters, Adam state, the autograd graph of one iteration and the allocator's slack.
(``tracemalloc`` sees only Python's allocations, not torch's; ``ru_maxrss`` cannot be reset, so torch's import
would hide it.)  On CUDA: ``torch.cuda.max_memory_allocated``.
Images are random canvases: the cost does not depend on their content.  Prints a table (stderr) and JSON (stdout).

    .venv/bin/python benchmarks/bench_fine_grid.py [--quick] [--threads 1] [--embeddings table mlp] > fine.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

from ppl_attention.attention.network import LOCATION_EMBEDDINGS, HardAttentionNet, NetworkConfig, flops_per_glimpse
from ppl_attention.attention.policy import POLICIES
from ppl_attention.attention.trainer import SplitData, TrainConfig, Trainer
from ppl_attention.sensor import Sensor

#: name -> (canvas side, stride)
GRIDS = {
    "60x60 stride 6 (81)": (60, 6),
    "60x60 stride 1 (2401)": (60, 1),
    "100x100 stride 6 (225)": (100, 6),
    "100x100 stride 2 (2025)": (100, 2),
}
BATCH, T = 64, 8


class RandomCanvases:
    def __init__(self, n: int, side: int):
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 1, side, side, generator=g)
        self.labels = torch.randint(0, 10, (n,), generator=g)

    def __len__(self):
        return len(self.labels)


def make_trainer(grid_name: str, policy: str, embedding: str, hidden: int, out_dir, device) -> Trainer:
    side, stride = GRIDS[grid_name]
    grid = Sensor(side, 12, stride=stride, scales=3)
    torch.manual_seed(0)
    net = HardAttentionNet(grid, 10, 1, NetworkConfig(hidden=hidden, policy=policy, location_embedding=embedding))
    data = SplitData(RandomCanvases(4 * BATCH, side))
    cfg = TrainConfig(glimpses=T, batch_size=BATCH, tensorboard=False)
    return Trainer(cfg, net.to(device), data, data, out_dir, seed=0)


def step(trainer: Trainer, i: int) -> float:
    """One training iteration; its wall-clock seconds."""
    images, labels, forced = trainer.get_batch(i)
    if images.is_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    loss, _ = trainer.loss(images, labels, forced, torch.Generator(images.device).manual_seed(i))
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.optimizer.step()
    if images.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def peak_memory_mib(grid_name: str, policy: str, embedding: str, hidden: int, device: str, threads: int) -> float:
    """Peak memory growth (MiB) of building the network and running 3 iterations (see the module docstring)."""
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with tempfile.TemporaryDirectory() as tmp:
            trainer = make_trainer(grid_name, policy, embedding, hidden, tmp, torch.device("cuda"))
            for i in range(3):
                step(trainer, i)
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    probe = [
        sys.executable,
        os.path.abspath(__file__),
        "--probe",
        grid_name,
        policy,
        embedding,
        str(hidden),
        "--threads",
        str(threads),
    ]
    out = subprocess.run(probe, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith(key + ":")))


def probe(grid_name: str, policy: str, embedding: str, hidden: int) -> None:
    """(Subprocess) print the peak resident-memory growth in MiB of building and training one configuration."""
    import ctypes
    import gc

    RandomCanvases(4 * BATCH, GRIDS[grid_name][0])  # the data exist before the baseline
    # One iteration of a tiny network first: the libraries' one-off buffers (oneDNN, the thread pool) are then
    # allocated, and what it freed goes back to the OS (malloc_trim), so that neither counts below.
    with tempfile.TemporaryDirectory() as tmp:
        warm = make_trainer(grid_name, policy, embedding, 8, tmp, torch.device("cpu"))
        step(warm, 0)
    del warm
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    # Reset the process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0), so the peak measured afterwards
    # is this configuration's, not the import's.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(grid_name, policy, embedding, hidden, tmp, torch.device("cpu"))
        for i in range(3):
            step(trainer, i)
    print((_status_kib("VmHWM") - before) / 1024)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 timed iterations per configuration instead of 15")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    p.add_argument("--embeddings", nargs="+", default=["table", "mlp"], choices=list(LOCATION_EMBEDDINGS))
    p.add_argument("--grids", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the memory probes")
    p.add_argument("--probe", nargs=4, metavar=("GRID", "POLICY", "EMBEDDING", "HIDDEN"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.probe:
        grid_name, policy, embedding, hidden = args.probe
        return probe(grid_name, policy, embedding, int(hidden))
    device = torch.device(args.device)
    n = 3 if args.quick else 15
    configs = [(g, pol, emb) for g in args.grids for pol in args.policies for emb in args.embeddings]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        trainers = [
            make_trainer(g, pol, emb, args.hidden, os.path.join(tmp, str(k)), device)
            for k, (g, pol, emb) in enumerate(configs)
        ]
        times = [[] for _ in configs]
        for i in range(n + 2):  # two warm-up rounds, then interleaved repetitions
            for k, trainer in enumerate(trainers):
                seconds = step(trainer, i)
                if i >= 2:
                    times[k].append(seconds)
        for k, ((g, pol, emb), trainer) in enumerate(zip(configs, trainers)):
            ts = sorted(times[k])
            net = trainer.net
            rows.append(
                {
                    "grid": g,
                    "locations": net.grid.num_locations,
                    "policy": pol,
                    "location_embedding": emb,
                    "seconds_per_iteration": ts[len(ts) // 2],
                    "min_s": ts[0],
                    "max_s": ts[-1],
                    "policy_parameters": sum(q.numel() for q in net.policy.parameters()),
                    "where_parameters": sum(q.numel() for q in net.where.parameters()),
                    "parameters": sum(q.numel() for q in net.parameters()),
                    "flops_per_glimpse": flops_per_glimpse(net),
                }
            )
        del trainers
    if args.memory:
        for row in rows:
            row["peak_memory_mib"] = peak_memory_mib(
                row["grid"], row["policy"], row["location_embedding"], args.hidden, args.device, args.threads
            )
    base = {
        (r["grid"].split()[0], r["policy"], r["location_embedding"]): r["seconds_per_iteration"]
        for r in rows
        if r["locations"] in (81, 225)
    }
    for r in rows:
        coarse = base.get((r["grid"].split()[0], r["policy"], r["location_embedding"]))
        r["time_over_coarse"] = None if coarse is None else r["seconds_per_iteration"] / coarse
    header = (
        f"{'grid':<24} {'policy':<10} {'where':<10} {'s/iter':>7} {'x coarse':>8} {'MiB':>6} "
        f"{'policy params':>13} {'where params':>12} {'MFLOP/glimpse':>13}"
    )
    print(header, file=sys.stderr)
    for r in rows:
        mem = f"{r['peak_memory_mib']:6.1f}" if "peak_memory_mib" in r else "     -"
        ratio = f"{r['time_over_coarse']:8.2f}" if r["time_over_coarse"] is not None else "       -"
        print(
            f"{r['grid']:<24} {r['policy']:<10} {r['location_embedding']:<10} {r['seconds_per_iteration']:7.3f} "
            f"{ratio} {mem} {r['policy_parameters']:>13,} {r['where_parameters']:>12,} "
            f"{r['flops_per_glimpse'] / 1e6:>13.2f}",
            file=sys.stderr,
        )
    print(
        json.dumps(
            {
                "batch": BATCH,
                "T": T,
                "hidden": args.hidden,
                "threads": args.threads,
                "device": args.device,
                "timed_iterations": n,
                "statistic": "median seconds per training iteration (forward, backward, Adam), interleaved",
                "load_average": list(os.getloadavg()),
                "rows": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
