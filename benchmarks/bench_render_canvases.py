"""Throughput of ppl_attention.data.mnist.render_canvases (cluttered 60 x 60 canvases, streaming batches).

Prints JSON: canvases per second and the projected time for 1,000,000 canvases.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from ppl_attention.data.mnist import load_digits, render_canvases


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="a small run (50,000 canvases)")
    p.add_argument("--total", type=int, default=1_000_000, help="canvases to render")
    p.add_argument("--batch", type=int, default=10_000, help="canvases per batch")
    p.add_argument("--translated", action="store_true", help="no clutter")
    args = p.parse_args(argv)
    total = 50_000 if args.quick else args.total
    digits, labels = load_digits("train")
    g = torch.Generator().manual_seed(0)
    render_canvases(digits, labels, 100, g, cluttered=not args.translated)  # warm-up
    start = time.perf_counter()
    done = checksum = 0
    while done < total:
        n = min(args.batch, total - done)
        images, _, _ = render_canvases(digits, labels, n, g, cluttered=not args.translated)
        checksum += int(images[:, 0, 30, 30].sum())
        done += n
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "canvases": total,
                "batch": args.batch,
                "cluttered": not args.translated,
                "seconds": round(seconds, 3),
                "canvases_per_s": round(total / seconds),
                "projected_s_per_million": round(1e6 * seconds / total, 1),
                "threads": torch.get_num_threads(),
                "checksum": checksum,
            }
        )
    )


if __name__ == "__main__":
    main()
