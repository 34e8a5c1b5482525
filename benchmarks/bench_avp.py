"""Batched inference throughput of the AVP's small CNN on the CPU (masked 60 x 60 canvases per second), with
and without temperatures per observed fraction (the calibration applied inside ``forward``).

    python benchmarks/bench_avp.py [--quick] [--threads 2] [--width 32] [--batch 256 1024]

Prints JSON. Timings depend on what else runs on the machine; report them with that caveat.
"""

import argparse
import json
import os
import time

import torch

from ppl_attention.sensor import Sensor
from ppl_attention.posterior import AVP, AVPConfig, random_locations
from ppl_attention.posterior.calibration import fraction_knots


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="a short run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--batch", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--glimpses", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    grid = Sensor.mnist()
    avp = AVP(AVPConfig(grid=grid.to_dict(), width=args.width)).eval()
    repeats = 2 if args.quick else 10
    results = []
    g = torch.Generator().manual_seed(0)
    for b in args.batch:
        images = torch.rand(b, 1, 60, 60, generator=g)
        loc = random_locations(grid, b, args.glimpses, g, args.glimpses)
        with torch.inference_mode():
            avp.predict(images, loc)  # warm-up
            t0 = time.perf_counter()
            for _ in range(repeats):
                avp.predict(images, loc)  # mask + normalise + network, as the EPE loop calls it
            dt = (time.perf_counter() - t0) / repeats
            x = avp.make_input(images, grid.mask(loc))
            t0 = time.perf_counter()
            for _ in range(repeats):
                avp(x)
            dt_net = (time.perf_counter() - t0) / repeats
            avp.set_fraction_temperatures(
                fraction_knots(grid, args.glimpses), torch.linspace(0.5, -0.5, args.glimpses + 2)
            )
            t0 = time.perf_counter()
            for _ in range(repeats):
                avp(x)
            dt_cal = (time.perf_counter() - t0) / repeats
            avp.set_fraction_temperatures(None, None)
        results.append(
            {
                "batch": b,
                "images_per_s": round(b / dt, 1),
                "network_only_images_per_s": round(b / dt_net, 1),
                "network_fraction_temperatures_images_per_s": round(b / dt_cal, 1),
            }
        )
    print(
        json.dumps(
            {
                "benchmark": "avp_small_cnn_inference",
                "threads": args.threads,
                "width": args.width,
                "parameters": sum(p.numel() for p in avp.parameters()),
                "glimpses": args.glimpses,
                "load_average_1min": os.getloadavg()[0],
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
