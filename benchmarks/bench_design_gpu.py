"""Design throughput at the paper's CelebA-HQ scale: a DenseNet-121 AVP on synthetic 224 x 224 RGB completions,
``--side``^2 candidate locations x ``--samples`` completions per step.  For the exhaustive, halving and amortised
searches it prints (JSON) AVP passes per second, seconds per step and per sequence (T - 1 searched steps: the
first glimpse's map is computed once per store), and peak memory (CUDA's allocator on a GPU, the process's peak
RSS on the CPU).  The AVP and the EPE-map network are freshly initialised: throughput does not depend on weights.

    python benchmarks/bench_design_gpu.py                       # the paper's size (meant for a GPU)
    python benchmarks/bench_design_gpu.py --device cpu --image-size 32 --glimpse 8 --side 5 --samples 4 -T 3
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from ppl_attention.design.amortised import AmortisedMap, EPEMapNet, EPENetConfig
from ppl_attention.design.epe import PairScorer
from ppl_attention.design.search import run_search
from ppl_attention.posterior.network import AVPConfig, build_avp
from ppl_attention.runtime import generator, resolve_device
from ppl_attention.sensor import Sensor


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--glimpse", type=int, default=32, help="fovea side in pixels")
    p.add_argument("--side", type=int, default=50, help="locations per side: side^2 candidates")
    p.add_argument("--samples", type=int, default=200, help="completions per step")
    p.add_argument("-T", type=int, default=5, help="glimpses per sequence")
    p.add_argument("--batch-size", type=int, default=None, help="pairs per AVP pass (default 128 CPU, 1024 CUDA)")
    p.add_argument(
        "--precision",
        default=None,
        choices=["float32", "bfloat16"],
        help="default bfloat16 on CUDA, float32 on the CPU",
    )
    p.add_argument("--searches", nargs="+", default=["exhaustive", "halving", "amortised"])
    return p.parse_args(argv)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(search, avp, epe_map, images, observed, grid, args, device) -> dict:
    """One design step of ``search`` on fixed completions: seconds, AVP passes (pairs / batch size)."""
    weights = torch.full((images.shape[0],), 1.0 / images.shape[0], dtype=torch.float64)
    sync(device)
    t0 = time.perf_counter()
    if search == "amortised":
        proposal = epe_map(images[:1], observed.view(1, -1))[0].double().cpu()
        result = run_search("amortised", None, None, grid, observed, proposal=proposal)
        count = {"passes": 1, "evaluations": 1}  # one AVP pass and one network pass on the true image
    else:
        scorer = PairScorer(avp, images, observed, grid, args.batch_size, precision=args.precision)
        count = {"passes": 0, "evaluations": 0}

        def score(cands, samples):
            pairs = cands.numel() * (images.shape[0] if samples is None else samples.numel())
            count["evaluations"] += pairs
            count["passes"] += -(-pairs // args.batch_size)
            return scorer(cands, samples)

        result = run_search(search, score, weights, grid, observed, generator(0))
    sync(device)
    return {"seconds": time.perf_counter() - t0, **count, "location": int(result.location)}


def main(argv=None) -> dict:
    args = parse(argv)
    device = resolve_device(args.device)
    args.precision = args.precision or ("bfloat16" if device.type == "cuda" else "float32")
    args.batch_size = args.batch_size or (1024 if device.type == "cuda" else 128)
    pos = torch.linspace(0, args.image_size - args.glimpse, args.side).round().long().unique().tolist()
    grid = Sensor(args.image_size, args.glimpse, rows=pos, cols=pos)
    torch.manual_seed(0)
    avp = (
        build_avp(AVPConfig(grid=grid.to_dict(), channels=3, backbone="densenet121", mean=(0.5,) * 3, std=(0.25,) * 3))
        .to(device)
        .eval()
    )
    net = EPEMapNet(EPENetConfig(grid=grid.to_dict(), channels=3, num_outputs=10)).to(device)
    epe_map = AmortisedMap(net, avp)
    images = torch.rand(args.samples, 3, args.image_size, args.image_size, generator=generator(1)).to(device)
    observed = torch.tensor([0], dtype=torch.long, device=device)
    time_step("halving", avp, epe_map, images[:2], observed, grid, args, device)  # warm-up (cuDNN, allocator)
    out = {
        "device": str(device),
        "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "image_size": args.image_size,
        "locations": grid.num_locations,
        "samples": args.samples,
        "T": args.T,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "torch_threads": torch.get_num_threads(),
        "searches": {},
    }
    for search in args.searches:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        step = time_step(search, avp, epe_map, images, observed, grid, args, device)
        out["searches"][search] = {
            "seconds_per_step": step["seconds"],
            "passes_per_step": step["passes"],
            "passes_per_second": step["passes"] / step["seconds"],
            "avp_images_per_step": step["evaluations"],
            "avp_images_per_second": step["evaluations"] / step["seconds"],
            "seconds_per_sequence": step["seconds"] * (args.T - 1),
            "peak_memory_mb": peak_memory_mb(device),
        }
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
