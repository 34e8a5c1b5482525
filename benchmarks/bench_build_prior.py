"""Build a cluttered-MNIST prior (image database + PCA index) and report time and peak memory as JSON.

Target: 1,000,000 canvases built and indexed in under 15 minutes on the development machine.
    python benchmarks/bench_build_prior.py            # 1,000,000 canvases
    python benchmarks/bench_build_prior.py --quick    # 20,000 canvases
"""

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import torch

from ppl_attention.completion.database import mnist_canvas_source
from ppl_attention.completion.pca_index import PCAIndexConfig
from ppl_attention.completion.prior import build_prior
from ppl_attention.sensor import Sensor


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="20,000 canvases")
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--components", type=int, default=256)
    p.add_argument("--fit-samples", type=int, default=None, help="default 20,000 (5,000 with --quick)")
    p.add_argument("--out", type=Path, default=None, help="keep the prior here (default: a temporary folder, removed)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    size = args.size or (20_000 if args.quick else 1_000_000)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-prior-"))
    t0 = time.perf_counter()
    summary = build_prior(
        out,
        mnist_canvas_source("train", cluttered=True),
        size,
        Sensor.mnist(),
        PCAIndexConfig(components=args.components, fit_samples=args.fit_samples or (5_000 if args.quick else 20_000)),
        progress=False,
    )
    seconds = time.perf_counter() - t0
    result = {
        "benchmark": "build_prior",
        "size": size,
        "components": summary["components"],
        "seconds_total": round(seconds, 1),
        "seconds_database": summary["database_seconds"],
        "seconds_index": summary["index_seconds"],
        "explained_variance": round(summary["explained_variance"], 4),
        "disk_gb": round(summary["disk_bytes"] / 1e9, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "target_seconds": 900,
        "threads": args.threads,
        "kept": str(out) if args.out else None,
    }
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
