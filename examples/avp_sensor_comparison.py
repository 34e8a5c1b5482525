"""The AVP with Mnih's 3-scale retina against the single 12 x 12 patch, on the same canvases and settings.

Trains one AVP per sensor (``train_avp``, resumable: a finished AVP is re-read) and evaluates each on the test
split after t = 0..T random glimpses (``evaluate_avp``, 20 glimpse sets per image and t) and on the whole image.
Writes OUT/{sensor}/ (the AVP directories) and OUT/comparison.json, and prints the accuracy table.

    .venv/bin/python examples/avp_sensor_comparison.py --out runs/avp-sensor --epochs 12
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ppl_attention.artifacts import atomic_write_json
from ppl_attention.data import load_dataset
from ppl_attention.posterior import load_avp
from ppl_attention.posterior.evaluation import evaluate_avp
from ppl_attention.posterior.training import TrainAVPConfig, train_avp
from ppl_attention.runtime import machine_info

SENSORS = {"single-patch": 1, "retina": 3}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dataset", default="cluttered-mnist")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--max-glimpses", type=int, default=5)
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    table = {}
    for name, scales in SENSORS.items():
        data = {
            s: load_dataset(args.dataset, split=s, seed=args.seed, scales=scales) for s in ("train", "valid", "test")
        }
        out = args.out / name
        if not (out / "manifest.json").is_file():
            train_avp(
                data["train"],
                data["valid"],
                out,
                TrainAVPConfig(epochs=args.epochs, max_glimpses=args.max_glimpses),
                seed=args.seed,
                device="cpu",
                dataset_name=args.dataset,
            )
        result = evaluate_avp(load_avp(out), data["test"], args.max_glimpses, seed=args.seed, draws=args.draws)
        table[name] = {
            "sensor": data["test"].grid.describe(),
            "accuracy_after_t": {r["t"]: r["accuracy"] for r in result["per_glimpses"]},
            "full_image_accuracy": result["full_image"]["accuracy"],
        }
    atomic_write_json(
        args.out / "comparison.json",
        {"settings": {k: str(v) for k, v in vars(args).items()}, "results": table, "machine": machine_info()},
    )
    ts = list(table["retina"]["accuracy_after_t"])
    print("| sensor | " + " | ".join(f"t = {t}" for t in ts) + " | whole image |")
    print("|---|" + "---|" * (len(ts) + 1))
    for name, row in table.items():
        print(
            f"| {name} | "
            + " | ".join(f"{100 * row['accuracy_after_t'][t]:.1f}" for t in ts)
            + f" | {100 * row['full_image_accuracy']:.1f} |"
        )
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
