"""Tune a candidate search offline, on recorded entropy tables.

``record`` runs the greedy loop with the exhaustive search on some training images and keeps, for every step, the
whole (candidate, sample) entropy table in float32 and in bfloat16, with the samples' weights.  ``replay`` then
runs search settings on those tables (a lookup replaces each AVP pass), so a grid of settings costs seconds, and
prints JSON: per setting, the AVP evaluations per step (what sets the search's time) and the mean relative EPE
regret against the float32 exhaustive map, with its standard error.  The defaults of ``successive_halving`` were
chosen this way, on images that ``bench_design.py`` does not use (it designs images 0..11).

    python benchmarks/search_regret.py record --avp runs/avp-long --prior runs/prior-cluttered-mnist \
        --images 100 140 --out runs/tune/tables.pt
    python benchmarks/search_regret.py replay runs/tune/tables.pt > runs/tune/replay.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import torch

from ppl_attention.design.search import exhaustive_search, run_search
from ppl_attention.design.sequential import DesignProblem, first_glimpse_epe, image_seed
from ppl_attention.runtime import generator


def record(args):
    from ppl_attention.completion.importance import ImportanceCompletion
    from ppl_attention.data import load_dataset
    from ppl_attention.posterior import load_avp

    torch.set_num_threads(args.threads)
    avp = load_avp(args.avp).eval()
    sampler = ImportanceCompletion.from_prior(args.prior, grid=avp.grid, k1=args.k1)
    grid = avp.grid
    problems = {p: DesignProblem(avp, sampler, grid, precision=p) for p in ("float32", "bfloat16")}
    data = load_dataset(args.dataset, split="train", seed=0)
    first = first_glimpse_epe(problems["float32"], args.num_samples, seed=0)
    # Resumable: the tables are saved after every image, and images already recorded are skipped.
    steps = torch.load(args.out, weights_only=False)["steps"] if args.out.is_file() else []
    done = {s["image"] for s in steps}
    everything = torch.arange(grid.num_locations)
    for i in range(*args.images):
        if i in done:
            continue
        image, gen, locs = data[i]["image"], generator(image_seed(0, i)), [int(first.argmin())]
        for _ in range(1, args.T):
            obs = torch.tensor(locs)
            smp = problems["float32"].sample(obs, grid.extract(image[None], obs[None])[0], args.num_samples, gen, image)
            samples = torch.arange(len(smp.weights))
            tables = {p: problems[p].score_fn(smp.images, obs)(everything, samples) for p in problems}
            w = smp.weights.double() / smp.weights.double().sum()
            choice = exhaustive_search(lambda c, s: tables["float32"][c][:, s], w, grid.num_locations, obs).location
            steps.append(
                {
                    "image": i,
                    "observed": obs,
                    "weights": w,
                    "float32": tables["float32"],
                    "bfloat16": tables["bfloat16"],
                }
            )
            locs.append(choice)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        torch.save({"grid": grid.to_dict(), "steps": steps}, tmp)
        tmp.replace(args.out)
        print(f"image {i}: {len(steps)} steps recorded", flush=True)


def replay_one(steps, grid, name: str, options: dict, precision: str) -> dict:
    """Run one search setting on every recorded step (the race gets its own previous map as prior)."""
    regrets, evaluations, agree, previous = [], [], 0, {}
    for s in steps:
        table, w, obs = s[precision], s["weights"], s["observed"]
        reference = s["float32"].double() @ w
        reference[obs] = math.inf
        result = run_search(
            name,
            lambda c, n, t=table: t[c][:, n],
            w,
            grid,
            obs,
            generator(image_seed(1, s["image"])),
            prior=previous.get(s["image"]),
            **options,
        )
        previous[s["image"]] = result.epe
        best = reference.min()
        regrets.append(float((reference[result.location] - best) / best))
        evaluations.append(result.evaluations)
        agree += int(result.location == int(reference.argmin()))
    n = len(regrets)
    mean = sum(regrets) / n
    return {
        "search": name,
        "options": options,
        "precision": precision,
        "steps": n,
        "evaluations_per_step": sum(evaluations) / n,
        "exhaustive_evaluations_per_step": sum(s["float32"].numel() for s in steps) / n,
        "mean_relative_epe_regret": mean,
        "stderr": (sum((r - mean) ** 2 for r in regrets) / max(n - 1, 1) / n) ** 0.5,
        "max_relative_epe_regret": max(regrets),
        "argmin_agreement": agree / n,
    }


def replay(args):
    from ppl_attention.sensor import Sensor

    recorded = torch.load(args.tables, weights_only=False)
    steps, grid = recorded["steps"], Sensor.from_dict(recorded["grid"])
    if not steps:
        raise SystemExit(f"{args.tables} holds no recorded steps")
    settings = [("exhaustive", {}), ("halving", {}), ("coarse", {}), ("race", {})]
    settings += [
        ("halving", {"initial_samples": i, "growth": g, "keep": k, "min_keep": m})
        for i, g, k, m in itertools.product(args.initial, args.growth, args.keep, (1, 2))
    ]
    rows = [replay_one(steps, grid, name, opts, p) for name, opts in settings for p in args.precisions]
    rows.sort(key=lambda r: r["evaluations_per_step"])
    front, best = [], math.inf  # the settings no cheaper setting beats on regret
    for r in rows:
        if r["mean_relative_epe_regret"] < best:
            front.append(r)
            best = r["mean_relative_epe_regret"]
    print(json.dumps({"tables": str(args.tables), "pareto_front": front, "all": rows}, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("record", help="record exhaustive entropy tables along exhaustive sequences")
    r.add_argument("--avp", type=Path, required=True)
    r.add_argument("--prior", type=Path, required=True)
    r.add_argument("--dataset", default="cluttered-mnist")
    r.add_argument(
        "--images",
        type=int,
        nargs=2,
        default=(100, 140),
        metavar=("START", "STOP"),
        help="training images START..STOP-1",
    )
    r.add_argument("--num-samples", type=int, default=100)
    r.add_argument("-T", type=int, default=4)
    r.add_argument("--k1", type=int, default=1000)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("replay", help="replay search settings on recorded tables (prints JSON)")
    p.add_argument("tables", type=Path)
    p.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    p.add_argument("--initial", type=int, nargs="+", default=[4, 6, 7, 8, 10])
    p.add_argument("--growth", type=int, nargs="+", default=[2, 3, 4])
    p.add_argument("--keep", type=float, nargs="+", default=[0.2, 0.25, 0.3])
    args = ap.parse_args()
    record(args) if args.command == "record" else replay(args)


if __name__ == "__main__":
    main()
