"""Is the location policy what limits a hard-attention network's accuracy, or is it the classifier?

For each finished training run (its best checkpoint) and the images of a sequence store made on the same data
(e.g. ``ppl-attention generate --split test ...``), the accuracy after every glimpse when the network

- follows its own greedy policy (what the run's test accuracy measures),
- is teacher-forced along the store's near-optimal sequence (its own policy for any glimpse beyond the store's T),
- looks at uniformly random distinct locations (mean over ``--draws`` draws).

If forcing the near-optimal glimpses barely changes the accuracy, the learned policy is about as good as the
near-optimal one for this classifier, and what keeps the accuracy down is the classifier (glimpse embedder, core
and classifier head), not where it looks.  Snapshots of one method at several training lengths (e.g. the demo's
3,000-iteration runs, the reproduction's 15,000 and the longer runs) show which of the two improves with training.

    python examples/diagnose_policy.py runs/demo/ram-s0 runs/reproduce/cluttered-mnist/none-s0 \\
        runs/long/cluttered-mnist/none-s0 --sequences runs/validity-test --out runs/diagnose

Writes ``OUT/policy.json`` (per run: accuracy after each glimpse for the three ways of looking) and
``OUT/policy.md`` (the table the results page shows).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ppl_attention.artifacts import atomic_write_json, atomic_write_text, read_json
from ppl_attention.attention.run import load_run_network
from ppl_attention.data import load_dataset
from ppl_attention.data.spec import DatasetSpec
from ppl_attention.design.store import SequenceStore
from ppl_attention.sensor import NO_GLIMPSE, Sensor
from ppl_attention.runtime import generator

MODES = ("own policy", "near-optimal", "random")
#: random-location draws per image
DRAWS = 5


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="finished `ppl-attention train` run directories")
    p.add_argument(
        "--sequences",
        type=Path,
        required=True,
        help="sequence store of the images to test on (its split, seed and grid must fit the runs)",
    )
    p.add_argument("--draws", type=int, default=DRAWS, help="random-location draws per image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.draws < 1:
        p.error(f"--draws must be >= 1, got {args.draws}")
    return args


def accuracy_per_glimpse(
    net, images: torch.Tensor, labels: torch.Tensor, T: int, forced=None, batch: int = 500
) -> torch.Tensor:
    """(T,) accuracy after 1..T glimpses of the greedy policy, with ``forced`` (B, T) locations where not -1."""
    correct = []
    with torch.no_grad():
        for s in range(0, len(images), batch):
            f = None if forced is None else forced[s : s + batch]
            roll = net(images[s : s + batch], T, policy="greedy", forced=f)
            correct.append(roll.logits.argmax(-1).eq(labels[s : s + batch].unsqueeze(1)).double())
    return torch.cat(correct).mean(0)


def agreement_per_glimpse(net, images: torch.Tensor, sequences: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How often the greedy policy, given the near-optimal history ``sequences[:, :t]``, picks the near-optimal
    location ``sequences[:, t]`` itself, and a location at most half a fovea away from it (in pixels, each axis: one
    cell of the 81-location grid, whose stride is half a fovea; 6 cells of the 2,401-location grid): two (k,)
    tensors."""
    B, k = sequences.shape
    half_fovea = torch.tensor(net.grid.glimpse_size) // 2
    exact, near = [], []
    with torch.no_grad():
        for t in range(k):
            forced = torch.full((B, t + 1), NO_GLIMPSE, dtype=torch.long)
            forced[:, :t] = sequences[:, :t]
            chosen = net(images, t + 1, policy="greedy", forced=forced).locations[:, t]
            exact.append(chosen.eq(sequences[:, t]).double().mean())
            offset = (net.grid.pixels(chosen) - net.grid.pixels(sequences[:, t])).abs()
            near.append((offset <= half_fovea).all(-1).double().mean())
    return torch.stack(exact), torch.stack(near)


def half_fovea_in_cells(grid) -> dict:
    """Half a fovea in pixels and in cells of the grid's location lattice (its smallest row step), for the report:
    one cell of the 81-location grid, 6 of the 2,401-location one."""
    half = int(grid.glimpse_size[0]) // 2
    steps = [b - a for a, b in zip(grid.rows, grid.rows[1:])] or [half]
    return {"pixels": half, "cells": half / min(steps)}


def check_fit(run: Path, store: SequenceStore) -> dict:
    """The run's summary; refuses an unfinished run, or a store made on other data than the run's."""
    for name in ("summary.json", "manifest.json", "best.safetensors"):
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run} is not a finished training run (no {name})")
    summary, manifest = read_json(run / "summary.json"), read_json(run / "manifest.json")
    data_seed = manifest["config"].get("data_seed", manifest["config"].get("run", {}).get("data_seed"))
    cfg = store.config
    store_seed = int((cfg.get("data") or {}).get("seed", cfg["seed"]))  # the seed of its images
    if summary["dataset"] != cfg["dataset"] or (data_seed is not None and int(data_seed) != store_seed):
        raise ValueError(
            f"{run} was trained on {summary['dataset']} with data seed {data_seed}; the store "
            f"{store.directory} holds {cfg['dataset']} images of seed {store_seed}"
        )
    return summary


def diagnose(args) -> dict:
    store = SequenceStore.open(args.sequences)
    cfg = store.config
    sequences = store.sequences()
    if not sequences:
        raise ValueError(f"the store {args.sequences} holds no sequences")
    indices = sorted(sequences)
    split = cfg.get("split", "train")
    # the store's recorded data (options such as the canvas or the fine grid's stride), else its name and seed
    data = (
        DatasetSpec.from_dict(cfg["data"]).load(split)
        if cfg.get("data")
        else load_dataset(cfg["dataset"], split=split, seed=int(cfg["seed"]))
    )
    items = [data[i] for i in indices]
    images = torch.stack([it["image"] for it in items])
    labels = torch.tensor([int(it["label"]) for it in items])
    store_T = int(cfg["T"])
    results = {}
    for run in args.runs:
        summary = check_fit(run, store)
        net = load_run_network(run).eval()
        if net.grid.to_dict() != store.config["grid"]:
            raise ValueError(f"{run}'s glimpse grid differs from the store's ({store.directory})")
        T = int(read_json(run / "manifest.json")["config"]["train"]["glimpses"])
        forced = torch.full((len(indices), T), NO_GLIMPSE, dtype=torch.long)
        k = min(T, store_T)
        forced[:, :k] = torch.stack([sequences[i][:k] for i in indices])
        g = generator(args.seed)
        random = torch.stack(
            [
                accuracy_per_glimpse(
                    net,
                    images,
                    labels,
                    T,
                    torch.rand(len(indices), net.grid.num_locations, generator=g).argsort(1)[:, :T],
                )
                for _ in range(args.draws)
            ]
        ).mean(0)
        curves = {
            "own policy": accuracy_per_glimpse(net, images, labels, T),
            "near-optimal": accuracy_per_glimpse(net, images, labels, T, forced),
            "random": random,
        }
        results[str(run)] = {
            "supervision": "ram+" if summary.get("pretrain") else summary["supervision"],
            "iterations": summary["iterations"],
            "best_iteration": summary.get("best_iteration"),
            "T": T,
            "forced_glimpses": k,
            "test_greedy_acc": summary.get("test_greedy_acc"),
            "curves": {m: [round(float(a), 4) for a in c] for m, c in curves.items()},
        }
        exact, near = agreement_per_glimpse(net, images, forced[:, :k])
        results[str(run)].update(
            agreement=[round(float(a), 4) for a in exact],
            agreement_within_half_fovea=[round(float(a), 4) for a in near],
        )
    return {
        "sequences": str(args.sequences),
        "images": len(indices),
        "split": cfg.get("split", "train"),
        "store_T": store_T,
        "draws": args.draws,
        # every run's grid is the store's (checked above)
        "half_fovea": half_fovea_in_cells(Sensor.from_dict(cfg["grid"])),
        "runs": results,
    }


def _tolerance_words(half_fovea: dict | None) -> str:
    if not half_fovea:
        return "in pixels"
    cells = half_fovea["cells"]
    cells = f"{cells:g} cell{'s' if cells != 1 else ''}"
    return f"{half_fovea['pixels']} pixels, {cells} of the run's location grid"


def markdown(report: dict, labels: dict | None = None) -> str:
    labels = labels or {}
    lines = [
        f"Accuracy (%) on the {report['images']} {report['split']} images of `{report['sequences']}` after the "
        f"run's T glimpses; near-optimal = its first {report['store_T']} glimpses teacher-forced along the "
        "store's sequence; random = distinct uniformly random locations "
        f"(mean of {report['draws']} draws). Agreement: how often the policy, shown the near-optimal glimpses "
        "so far, picks the next near-optimal location itself, or one at most half a fovea away on each axis "
        f"({_tolerance_words(report.get('half_fovea'))}) (mean over "
        "glimpses 2.. of the store's sequences; whether the first glimpse matches is shown apart, it is the same "
        "for every image).",
        "",
        "| run | method | iterations (best at) | T | " + " | ".join(MODES) + " | first glimpse matches | "
        "agreement: exact | within half a fovea |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def later(values):
        rest = values[1:] or values
        return f"{100 * sum(rest) / len(rest):.1f}"

    for run, r in report["runs"].items():
        cells = " | ".join(f"{100 * r['curves'][m][-1]:.1f}" for m in MODES)
        lines.append(
            f"| {run} | {labels.get(r['supervision'], r['supervision'])} | {r['iterations']:,} "
            f"({r['best_iteration']:,}) | {r['T']} | {cells} | {'yes' if r['agreement'][0] else 'no'} | "
            f"{later(r['agreement'])} | {later(r['agreement_within_half_fovea'])} |"
        )
    return "\n".join(lines) + "\n"


def report(runs, sequences, out, *, draws: int = DRAWS, seed: int = 0, command: str | None = None) -> dict:
    """Diagnose the finished ``runs`` along the store ``sequences``: writes ``out/policy.json`` (with ``command``,
    by default the equivalent command line of this script) and ``out/policy.md``, prints the table, returns the
    report."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from compare_supervision import LABELS

    if draws < 1:
        raise ValueError(f"`draws` must be >= 1, got {draws}")
    args = argparse.Namespace(
        runs=[Path(r) for r in runs], sequences=Path(sequences), draws=draws, seed=seed, out=Path(out)
    )
    if command is None:  # the same diagnosis as this script's command line
        extra = (f" --draws {draws}" if draws != DRAWS else "") + (f" --seed {seed}" if seed else "")
        command = (
            f"python examples/diagnose_policy.py {' '.join(map(str, args.runs))} --sequences {args.sequences} "
            f"--out {args.out}{extra}"
        )
    torch.set_num_threads(1)
    result = diagnose(args)
    result["command"] = command
    atomic_write_json(args.out / "policy.json", result)
    text = markdown(result, LABELS)
    atomic_write_text(args.out / "policy.md", text)
    print(text)
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    return report(
        args.runs,
        args.sequences,
        args.out,
        draws=args.draws,
        seed=args.seed,
        command=" ".join(["python examples/diagnose_policy.py", *(sys.argv[1:] if argv is None else map(str, argv))]),
    )


if __name__ == "__main__":
    main()
