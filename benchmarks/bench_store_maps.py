"""How big and how fast to read is a sequence store whose records hold full EPE maps (what train-epe-net reads)?

Writes ``--records`` records of ``T`` random maps through ``SequenceStore.write_record`` (the JSON records that
``generate`` writes) for each grid size, then reads every map back with ``SequenceStore.epe_maps`` (what
``design.distill.load_store_maps`` does), and compares with the same maps as one float32 safetensors file.
Prints JSON: bytes per record, total MiB, seconds to read all, per grid.

    python benchmarks/bench_store_maps.py --records 400 --sizes 81 2401
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def main():
    from safetensors.torch import load_file, save_file

    from ppl_attention.design.store import SequenceStore
    from ppl_attention.sensor import GlimpseGrid

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=400)
    ap.add_argument("-T", type=int, default=4)
    ap.add_argument("--sizes", type=int, nargs="+", default=[9, 49], help="grid sides (9: 81 locations, 49: 2401)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = {"records": args.records, "T": args.T, "grids": {}}
    g = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sizes:
            grid = GlimpseGrid((60, 60), (12, 12), rows=torch.linspace(0, 48, side).round().int().unique().tolist(),
                               cols=torch.linspace(0, 48, side).round().int().unique().tolist())
            if grid.num_locations != side * side:  # a 49 x 49 grid of a 60 x 60 image: stride 1
                grid = GlimpseGrid((60, 60), (12, 12), stride=1)
            L = grid.num_locations
            store = SequenceStore.create(Path(tmp) / f"s{L}", {"dataset": "bench", "task": "label", "grid": grid,
                                                               "T": args.T})
            maps = 2.3 * torch.rand(args.records, args.T, L, generator=g, dtype=torch.float64)
            t0 = time.perf_counter()
            for i in range(args.records):
                store.write_record(i, 0, torch.randperm(L, generator=g)[:args.T], maps[i])
            write_s = time.perf_counter() - t0
            size = sum(p.stat().st_size for p in (store.directory / "records").glob("*.json"))
            t0 = time.perf_counter()
            back = torch.stack([store.epe_maps(i) for i in store.indices()])
            read_s = time.perf_counter() - t0
            assert torch.equal(back, maps)
            packed = Path(tmp) / f"maps{L}.safetensors"
            save_file({"epe": maps.float().contiguous()}, str(packed))
            t0 = time.perf_counter()
            load_file(str(packed))["epe"]
            packed_s = time.perf_counter() - t0
            out["grids"][str(L)] = {
                "json_bytes_per_record": size / args.records, "json_MiB": size / 2 ** 20,
                "json_write_seconds_per_record": write_s / args.records,
                "json_read_seconds_per_record": read_s / args.records,
                "json_MiB_for_4000_images": size / args.records * 4000 / 2 ** 20,
                "json_read_seconds_for_4000_images": read_s / args.records * 4000,
                "float32_safetensors_bytes_per_record": packed.stat().st_size / args.records,
                "float32_safetensors_read_seconds": packed_s}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
