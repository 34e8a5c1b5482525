"""How big and how fast to read is a sequence store whose records hold full EPE maps (what train-epe-net reads)?

For each grid size, writes ``--records`` records of ``T`` random maps twice: in the store's format
(``SequenceStore.write_record``: the record's JSON plus a float16 safetensors maps file) and in the format before
it (the maps as ``"epe": [[L floats] per step]`` inside the JSON, written the way the store used to), then reads
every map back with ``SequenceStore.epe_maps`` (what ``design.distill.load_store_maps`` does; it reads both).
Prints JSON: bytes per record, MiB and seconds to read for 4,000 images, seconds to write a record, and the largest
float16 rounding error, per grid and format.

    python benchmarks/bench_store_maps.py --records 200 --sizes 9 49 -T 4
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def main():
    from ppl_attention.artifacts import atomic_write_json
    from ppl_attention.design.store import SequenceStore
    from ppl_attention.sensor import Sensor

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=200)
    ap.add_argument("-T", type=int, default=4)
    ap.add_argument("--sizes", type=int, nargs="+", default=[9, 49], help="grid sides (9: 81 locations, 49: 2401)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = {"records": args.records, "T": args.T, "grids": {}}
    g = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sizes:
            if 48 % max(side - 1, 1):
                raise SystemExit(f"--sizes: a side must divide 48 + 1 (the 60 x 60 MNIST canvas), got {side}")
            grid = Sensor((60, 60), (12, 12), stride=48 // (side - 1), scales=3)
            L = grid.num_locations
            maps = 0.05 + 2.25 * torch.rand(args.records, args.T, L, generator=g, dtype=torch.float64)
            locs = [torch.randperm(L, generator=g)[: args.T] for _ in range(args.records)]
            row = {}
            for fmt in ("json", "binary"):
                store = SequenceStore.create(
                    Path(tmp) / f"{fmt}{L}", {"dataset": "bench", "task": "label", "grid": grid, "T": args.T}
                )
                t0 = time.perf_counter()
                for i in range(args.records):
                    if fmt == "binary":
                        store.write_record(i, 0, locs[i], maps[i], evaluations=[0] * args.T)
                    else:  # the format before the binary maps
                        atomic_write_json(
                            store.record_path(i),
                            {
                                "index": i,
                                "seed": 0,
                                "locations": locs[i].tolist(),
                                "epe": maps[i].tolist(),
                                "evaluations": [0] * args.T,
                            },
                        )
                write_s = time.perf_counter() - t0
                size = _size(store.directory / "records")
                t0 = time.perf_counter()
                back = torch.stack([store.epe_maps(i) for i in store.indices()])
                read_s = time.perf_counter() - t0
                err = float(((back - maps).abs() / maps).max())
                row[fmt] = {
                    "bytes_per_record": round(size / args.records),
                    "MiB_for_4000_images": round(size / args.records * 4000 / 2**20, 1),
                    "read_seconds_for_4000_images": round(read_s / args.records * 4000, 2),
                    "write_seconds_per_record": round(write_s / args.records, 5),
                    "max_relative_error": err,
                }
            row["binary_vs_json"] = {
                "size": round(row["json"]["bytes_per_record"] / row["binary"]["bytes_per_record"], 1),
                "read": round(
                    row["json"]["read_seconds_for_4000_images"] / row["binary"]["read_seconds_for_4000_images"], 1
                ),
            }
            out["grids"][str(L)] = row
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
