"""Cost of one training iteration of the hard-attention network (batch 64, T = 5, cluttered-MNIST grid).

Measured in one run, interleaved (iteration i of every network, then i + 1, ...): the network with one 12 x 12
patch per glimpse, the same network with Mnih's 3-scale retina (12, 24, 48 px pooled to 12 x 12; the target is at
most 1.5x the one-scale cost), and the retina
network whose sensor loops over the samples of the batch in Python (the reference slow path, written here only).
Images are random 60 x 60 canvases: the cost does not depend on their content.  Prints JSON.

    .venv/bin/python benchmarks/bench_attention.py [--quick] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from ppl_attention.attention.network import HardAttentionNet, NetworkConfig, flops_per_glimpse
from ppl_attention.attention.trainer import SplitData, TrainConfig, Trainer
from ppl_attention.sensor import Sensor


class PerSampleSensorNet(HardAttentionNet):
    """The same network, but each glimpse of the batch is extracted separately (a per-sample Python loop)."""

    def glimpse_step(self, images, loc, h):
        patches = torch.cat([self.grid.extract(images[i : i + 1], loc[i : i + 1]) for i in range(len(loc))])
        patches = (patches - self.mean) / self.std
        g = torch.relu(self.embedder(patches) + self.where(loc))
        return self.core(g, h)


class RandomCanvases:
    def __init__(self, n: int, grid: Sensor):
        g = torch.Generator().manual_seed(0)
        self.grid, self.images, self.labels = (
            grid,
            torch.rand(n, 1, 60, 60, generator=g),
            torch.randint(0, 10, (n,), generator=g),
        )

    def __len__(self):
        return len(self.labels)


def make_step(net_cls, hidden: int, out_dir, grid: Sensor):
    """One training iteration (forward, backward, Adam) of a fresh network on ``grid``, as a callable of the
    iteration number that returns its seconds."""
    torch.manual_seed(0)
    net = net_cls(grid, 10, 1, NetworkConfig(hidden=hidden))
    data = SplitData(RandomCanvases(640, grid))
    cfg = TrainConfig(glimpses=5, batch_size=64, tensorboard=False)
    trainer = Trainer(cfg, net, data, data, out_dir, seed=0)

    def step(i: int) -> float:
        images, labels, forced = trainer.get_batch(i)
        t0 = time.perf_counter()
        loss, _ = trainer.loss(images, labels, forced, torch.Generator().manual_seed(i))
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
        return time.perf_counter() - t0

    return step


def time_interleaved(steps: dict, iterations: int) -> dict:
    """Median seconds per iteration of each step, timed interleaved (iteration i of every step, then i + 1, ...) so
    that a change in the machine's load hits them all alike; two warm-up iterations each."""
    times = {name: [] for name in steps}
    for i in range(iterations + 2):
        for name, step in steps.items():
            times[name].append(step(i))
    return {name: sorted(t[2:])[len(t[2:]) // 2] for name, t in times.items()}


def main(argv=None):
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="5 timed iterations instead of 30")
    p.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="torch thread counts to time")
    p.add_argument("--hidden", type=int, default=256)
    args = p.parse_args(argv)
    n = 5 if args.quick else 30
    one, retina = Sensor.mnist(), Sensor.retina()
    results = {
        "batch": 64,
        "T": 5,
        "grid": "mnist 60x60, 12x12 glimpses, 81 locations",
        "hidden": args.hidden,
        "timed_iterations": n,
        "statistic": "median seconds per training iteration (forward, backward, Adam), interleaved",
        "flops_per_glimpse": {
            name: flops_per_glimpse(HardAttentionNet(g, 10, 1, NetworkConfig(hidden=args.hidden)))
            for name, g in (("one_scale", one), ("retina", retina))
        },
        "load_average": list(__import__("os").getloadavg()),
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for threads in args.threads:
            torch.set_num_threads(threads)
            med = time_interleaved(
                {
                    "one": make_step(HardAttentionNet, args.hidden, tmp, one),
                    "retina": make_step(HardAttentionNet, args.hidden, tmp, retina),
                    "loop": make_step(PerSampleSensorNet, args.hidden, tmp, retina),
                },
                n,
            )
            base, fast, slow = med["one"], med["retina"], med["loop"]
            results["runs"].append(
                {
                    "threads": threads,
                    "one_scale_s": base,
                    "retina_s": fast,
                    "retina_per_sample_loop_s": slow,
                    "retina_over_one_scale": fast / base,
                    "target_retina_over_one_scale_at_most": 1.5,
                    "iterations_per_s": 1 / fast,
                    "speedup_over_loop": slow / fast,
                }
            )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
