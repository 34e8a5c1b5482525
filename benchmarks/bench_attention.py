"""Cost of one training iteration of the hard-attention network (batch 64, T = 5, cluttered-MNIST grid).

Compares the library's network (one batched ``grid.extract`` per time step) with the same network whose glimpse
sensor loops over the samples of the batch in Python (the reference slow path, written here only).  Images are
random 60 x 60 canvases: the cost does not depend on their content.  Prints JSON.

    .venv/bin/python benchmarks/bench_attention.py [--quick] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from ppl_attention.attention.network import HardAttentionNet, NetworkConfig, flops_per_glimpse
from ppl_attention.attention.trainer import SplitData, TrainConfig, Trainer
from ppl_attention.geometry import GlimpseGrid


class PerSampleSensorNet(HardAttentionNet):
    """The same network, but each glimpse of the batch is extracted separately (a per-sample Python loop)."""

    def glimpse_step(self, images, loc, h):
        patches = torch.cat([self.grid.extract(images[i:i + 1], loc[i:i + 1]) for i in range(len(loc))])
        patches = (patches - self.mean) / self.std
        g = torch.relu(self.embedder(patches) + self.where(loc))
        return self.core(g, h)


class RandomCanvases:
    def __init__(self, n: int, grid: GlimpseGrid):
        g = torch.Generator().manual_seed(0)
        self.grid, self.images, self.labels = grid, torch.rand(n, 1, 60, 60, generator=g), torch.randint(0, 10, (n,),
                                                                                                          generator=g)

    def __len__(self):
        return len(self.labels)


def time_iterations(net_cls, iterations: int, hidden: int, out_dir) -> float:
    grid = GlimpseGrid.mnist()
    torch.manual_seed(0)
    net = net_cls(grid, 10, 1, NetworkConfig(hidden=hidden))
    data = SplitData(RandomCanvases(640, grid))
    cfg = TrainConfig(glimpses=5, batch_size=64, tensorboard=False)
    trainer = Trainer(cfg, net, data, data, out_dir, seed=0)
    times = []
    for i in range(iterations + 2):  # two warm-up iterations
        images, labels, forced = trainer.get_batch(i)
        t0 = time.perf_counter()
        loss, _ = trainer.loss(images, labels, forced, torch.Generator().manual_seed(i))
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
        times.append(time.perf_counter() - t0)
    times = sorted(times[2:])
    return times[len(times) // 2]


def main(argv=None):
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="5 timed iterations instead of 30")
    p.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="torch thread counts to time")
    p.add_argument("--hidden", type=int, default=256)
    args = p.parse_args(argv)
    n = 5 if args.quick else 30
    results = {"batch": 64, "T": 5, "grid": "mnist 60x60, 12x12 glimpses, 81 locations", "hidden": args.hidden,
               "timed_iterations": n, "statistic": "median seconds per training iteration (forward, backward, Adam)",
               "flops_per_glimpse": flops_per_glimpse(HardAttentionNet(GlimpseGrid.mnist(), 10, 1,
                                                                       NetworkConfig(hidden=args.hidden))),
               "load_average": list(__import__("os").getloadavg()), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for threads in args.threads:
            torch.set_num_threads(threads)
            fast = time_iterations(HardAttentionNet, n, args.hidden, tmp)
            slow = time_iterations(PerSampleSensorNet, n, args.hidden, tmp)
            results["runs"].append({"threads": threads, "batched_s": fast, "per_sample_loop_s": slow,
                                    "iterations_per_s": 1 / fast, "speedup": slow / fast})
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
