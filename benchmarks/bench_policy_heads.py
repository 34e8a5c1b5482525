"""Cost of the location policy heads on the 2,401-location grid, and of the two ways to sample a dense head.

Two tables, every figure the median of interleaved repetitions (repetition r of every case, then r + 1, so a
change in the machine's load hits them all alike):
- ``sampling``: one draw per row of a (batch, 2,401) probability table: inverse CDF (cumsum + searchsorted, one
  uniform per row; the library's) against ``torch.multinomial`` (one exponential per location);
- ``iteration``: one training iteration (batch 64, T glimpses, forward, backward, Adam step, REINFORCE loss) of
  the 60 x 60 cluttered-MNIST network on the every-pixel grid (49 x 49 = 2,401 locations, Mnih's 3-scale retina)
  with each head: dense (inverse-CDF sampling), dense with ``torch.multinomial``, gaussian, factorised.

Prints a table (stderr) and JSON (stdout).

    .venv/bin/python benchmarks/bench_policy_heads.py [--quick] [--threads 1] [--device cpu] > heads.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time

import torch

from ppl_attention.attention import policy as policy_module
from ppl_attention.attention.network import HardAttentionNet, NetworkConfig
from ppl_attention.attention.policy import SAMPLERS, sample_categorical
from ppl_attention.attention.trainer import SplitData, TrainConfig, Trainer
from ppl_attention.sensor import Sensor

#: head name -> (policy kind, dense sampler)
HEADS = {
    "dense": ("dense", "inverse_cdf"),
    "dense (multinomial)": ("dense", "multinomial"),
    "gaussian": ("gaussian", None),
    "factorised": ("factorised", None),
}
SIDE, BATCH = 60, 64


class RandomCanvases:
    def __init__(self, n: int):
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 1, SIDE, SIDE, generator=g)
        self.labels = torch.randint(0, 10, (n,), generator=g)

    def __len__(self):
        return len(self.labels)


@contextlib.contextmanager
def dense_sampler(method: str | None):
    """Make the dense head sample with ``method`` for the duration (the library's is inverse CDF)."""
    original = policy_module.DenseLocations.sample
    if method is not None:
        policy_module.DenseLocations.sample = lambda self, generator=None: sample_categorical(
            self.log_pi.exp(), generator, method
        )
    try:
        yield
    finally:
        policy_module.DenseLocations.sample = original


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_sampling(device: torch.device, rows: int, repeats: int) -> dict:
    """Median seconds of one draw per row of a (rows, 2,401) table, per sampler."""
    g = torch.Generator(device).manual_seed(0)
    probs = torch.softmax(torch.randn(rows, 49 * 49, device=device, generator=g), -1)
    times = {m: [] for m in SAMPLERS}
    for r in range(repeats):
        for m in SAMPLERS:
            _sync(device)
            t0 = time.perf_counter()
            sample_categorical(probs, g, m)
            _sync(device)
            times[m].append(time.perf_counter() - t0)
    return {m: statistics.median(v) for m, v in times.items()}


def make_trainer(kind: str, glimpses: int, hidden: int, out_dir, device) -> Trainer:
    grid = Sensor(SIDE, 12, stride=1, scales=3)
    torch.manual_seed(0)
    net = HardAttentionNet(grid, 10, 1, NetworkConfig(hidden=hidden, policy=kind, location_embedding="mlp"))
    data = SplitData(RandomCanvases(4 * BATCH))
    cfg = TrainConfig(glimpses=glimpses, batch_size=BATCH, tensorboard=False)
    return Trainer(cfg, net.to(device), data, data, out_dir, seed=0)


def iteration_seconds(trainer: Trainer, sampler: str | None, i: int) -> float:
    images, labels, forced = trainer.get_batch(i)
    _sync(images.device)
    with dense_sampler(sampler):
        t0 = time.perf_counter()
        loss, _ = trainer.loss(images, labels, forced, torch.Generator(images.device).manual_seed(i))
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        _sync(images.device)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="few repetitions, T = 2, a small network (a smoke test)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--heads", nargs="+", default=list(HEADS), choices=list(HEADS))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    repeats, glimpses, hidden = (3, 2, 16) if args.quick else (15, 8, 256)
    sampling = {rows: time_sampling(device, rows, 5 * repeats) for rows in (BATCH, BATCH * 10)}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {
            h: make_trainer(HEADS[h][0], glimpses, hidden, f"{tmp}/{i}", device) for i, h in enumerate(args.heads)
        }
        for h, t in trainers.items():
            iteration_seconds(t, HEADS[h][1], 0)  # warm-up
        times = {h: [] for h in trainers}
        for r in range(1, repeats + 1):
            for h, t in trainers.items():
                times[h].append(iteration_seconds(t, HEADS[h][1], r))
    rows = [
        {
            "head": h,
            "locations": 49 * 49,
            "glimpses": glimpses,
            "hidden": hidden,
            "batch": BATCH,
            "seconds_per_iteration": statistics.median(v),
            "policy_parameters": sum(p.numel() for p in trainers[h].net.policy.parameters()),
        }
        for h, v in times.items()
    ]
    result = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "sampling_seconds": {str(k): v for k, v in sampling.items()},
        "rows": rows,
    }
    for n, v in sampling.items():
        print(f"sampling {n} x 2401: " + ", ".join(f"{m} {s * 1e6:.0f} us" for m, s in v.items()), file=sys.stderr)
    for row in rows:
        print(
            f"{row['head']:<22} {row['seconds_per_iteration'] * 1e3:8.1f} ms/iteration  "
            f"{row['policy_parameters']:>8} policy parameters",
            file=sys.stderr,
        )
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
