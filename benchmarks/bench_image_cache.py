"""How many images per second does the CelebA-HQ loader serve, decoding every access against the decoded cache?

Writes ``--images`` synthetic JPEGs of CelebA-HQ's size (``--side`` x ``--side``, default 1024, smooth colour
fields plus noise so they do not compress to nothing) with an annotation file in a temporary folder, then reads
every image of the training split through ``CelebAHQ`` at ``--size`` (default 224), in one run:

- ``decode``: the cache off (``PPL_ATTENTION_IMAGE_CACHE=off``), every access decodes and resizes the file;
- ``first epoch``: the cache on and empty, so the first access builds it (all images, a thread pool);
- ``cached``: a later epoch, served from the memmap.

Prints JSON: images per second of each and the speed-up of ``cached`` over ``decode``.

    python benchmarks/bench_image_cache.py --images 64 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def write_jpegs(root: Path, n: int, side: int, seed: int = 0) -> Path:
    """``n`` CelebA-HQ-style ``{i:06d}.jpg`` of ``side`` px and ``annotations.txt`` in ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, side, dtype=np.float32)
    lines = []
    for i in range(n):
        a, b, c = rng.uniform(0, 255, (3, 3))
        field = a[:, None, None] * ramp[None, :, None] + b[:, None, None] * ramp[None, None, :] + c[:, None, None]
        noise = rng.normal(0, 12, (side, side, 3)).astype(np.float32)
        img = (field.transpose(1, 2, 0) / 2 + noise).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"{i:06d}.jpg", quality=90)
        labels = " ".join(str(v) for v in np.where(rng.random(40) < 0.5, -1, 1))
        lines.append(f"{i:06d}.jpg {labels}")
    (root / "annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def _epoch(ds) -> float:
    """Seconds to read every image of ``ds`` once, by index, as a training loop does."""
    start = time.perf_counter()
    for i in range(len(ds)):
        ds[i]["image"]
    return time.perf_counter() - start


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=64, help="how many synthetic JPEGs (default 64)")
    p.add_argument("--side", type=int, default=1024, help="their side in pixels (default 1024, CelebA-HQ's)")
    p.add_argument("--size", type=int, default=224, help="the loader's output side (default 224, the paper's)")
    p.add_argument("--epochs", type=int, default=3, help="cached epochs timed after the first (default 3)")
    args = p.parse_args(argv)
    from ppl_attention.data.celeba_hq import CelebAHQ

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "celeba"
        root.mkdir()
        write_jpegs(root, args.images, args.side)
        before = os.environ.get("PPL_ATTENTION_IMAGE_CACHE")
        try:
            os.environ["PPL_ATTENTION_IMAGE_CACHE"] = "off"
            decode = _epoch(CelebAHQ(root, size=args.size, _stats=False))
            os.environ["PPL_ATTENTION_IMAGE_CACHE"] = str(Path(tmp) / "cache")
            ds = CelebAHQ(root, size=args.size, _stats=False)
            first = _epoch(ds)
            cached = min(_epoch(CelebAHQ(root, size=args.size, _stats=False)) for _ in range(max(1, args.epochs)))
        finally:
            if before is None:
                os.environ.pop("PPL_ATTENTION_IMAGE_CACHE", None)
            else:
                os.environ["PPL_ATTENTION_IMAGE_CACHE"] = before
        n = len(ds)
    result = {
        "images": n,
        "side": args.side,
        "size": args.size,
        "cpus": os.cpu_count(),
        "decode_images_per_s": round(n / decode, 1),
        "first_epoch_images_per_s": round(n / first, 1),
        "cached_images_per_s": round(n / cached, 1),
        "speedup_cached_over_decode": round(decode / cached, 1),
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
