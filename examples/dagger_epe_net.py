"""DAgger for the EPE-map network: distil honest exhaustive maps, then label the states the network's own sequences
reach, round after round, until its regret on held-out images stops falling.

The stages are :mod:`ppl_attention.pipeline` functions, each skipped once finished (examples/_paper_pipeline.py):

    generate --search exhaustive      OUT/maps-0: every step's whole-grid EPE map along the exhaustive search's
                                      sequence, for the first N images of --split (default: the validation split,
                                      which the AVP never trained on, so the maps are honest)
    generate --search exhaustive      OUT/reference: the same for the held-out --eval-images test images
    then for round r = 0, 1, ...:
    train-epe-net --store maps-0 .. maps-r     OUT/net-r, a network trained on every map so far
    evaluate-epe-net --reference reference     OUT/eval-r: its regret against the exhaustive search there (round 0
                                               also measures the noise floor: an exhaustive search on independent
                                               completions)
    generate --search dagger --epe-net net-r   OUT/maps-(r+1): the exhaustive map at each state net-r's own
                                               sequence reaches, on the same N images

It stops when the mean held-out regret has not fallen for ``--patience`` rounds, or after ``--rounds`` rounds, and
writes OUT/dagger.json (a table record for docs/results/render.py) and prints the table.

    python examples/dagger_epe_net.py --avp runs/avp81 --prior runs/prior81 --out runs/dagger81
    python examples/dagger_epe_net.py --avp runs/fine-avp --prior runs/fine-prior --out runs/dagger-fine \\
        --search-option stride=6          # a fine grid: maps on a sub-lattice
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _paper_pipeline import Stage, run_stages  # noqa: E402

from ppl_attention import pipeline  # noqa: E402

COLUMNS = [
    "round",
    "maps (stores)",
    "training examples",
    "mean regret",
    "median regret",
    "argmin agreement",
    "AVP accuracy after T, along the network's sequences",
]
FORMATS = [
    {"format": "d"},
    {"format": "d"},
    {"format": "d"},
    {"format": ".1%"},
    {"format": ".1%"},
    {"format": ".1%"},
    {"format": ".1%"},
]


#: the counts of a run (each at least 1): flag -> (default, help)
COUNTS = {
    "--num-images": (200, "design images per round (default: 200)"),
    "--eval-images": (50, "held-out test images (default: 50)"),
    "--glimpses": (5, "glimpses per sequence (default: 5, the paper's T)"),
    "--num-samples": (40, "completions per step (default: 40)"),
    "--epochs": (30, "train-epe-net epochs per round (default: 30)"),
}
#: the repeatable KEY=VALUE options handed to the stages: flag -> help
STAGE_OPTIONS = {
    "--search-option": "option of the exhaustive / dagger search, e.g. stride=6 on a fine grid",
    "--design-option": "another option of generate and evaluate-epe-net, e.g. k1=400 precision=bfloat16 "
    "batch_size=512 pooled_draws=4 sigma=144,203.7,249.3 (a list: commas; repeatable)",
    "--net-option": "another train-epe-net option, e.g. positions=coords (repeatable)",
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--avp", type=Path, required=True, help="the AVP directory (train-avp)")
    p.add_argument("--prior", type=Path, required=True, help="the prior directory (build-prior)")
    p.add_argument("--out", type=Path, required=True, help="output directory (a rerun resumes)")
    p.add_argument(
        "--split",
        default="valid",
        choices=["train", "valid", "test"],
        help="the images whose maps train the network (default: valid, unseen by the AVP)",
    )
    for flag, (default, text) in COUNTS.items():
        p.add_argument(flag, type=int, default=default, help=text)
    for flag, text in STAGE_OPTIONS.items():
        p.add_argument(flag, action="append", default=[], metavar="KEY=VALUE", help=text)
    p.add_argument("--rounds", type=int, default=4, help="DAgger rounds after the first (default: 4)")
    p.add_argument("--patience", type=int, default=1, help="rounds without a lower regret before stopping")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = p.parse_args(argv)
    for flag in COUNTS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value < 1:
            p.error(f"{flag} must be >= 1, got {value}")
    if args.rounds < 0 or args.patience < 1:
        p.error(f"--rounds must be >= 0 and --patience >= 1, got {args.rounds} and {args.patience}")
    return args


def _run_options(args) -> dict:
    """What every stage runs with: the seed, device and threads, without progress bars."""
    return {"seed": args.seed, "device": args.device, "threads": args.threads, "no_progress": True}


def _options(items: list[str], flag: str) -> dict[str, str]:
    """``["k1=400", "sigma=144,203.7"]`` -> ``{"k1": "400", "sigma": ["144", "203.7"]}``; the stage parses each
    value as its flag would (a comma-separated value is a list flag's values)."""
    pairs = [item.partition("=") for item in items]
    bad = [item for item, (_, sep, _) in zip(items, pairs) if not sep]
    if bad:
        raise SystemExit(f"{flag} takes KEY=VALUE, got {bad}")
    return {key.replace("-", "_"): text.split(",") if "," in text else text for key, _, text in pairs}


def _design(args, out: Path, split: str, num_images: int, **options) -> Stage:
    common = {
        "glimpses": args.glimpses,
        "num_samples": args.num_samples,
        "search_options": args.search_option or None,
        **_run_options(args),
        **_options(args.design_option, "--design-option"),
    }
    call = partial(
        pipeline.design_sequences, out, args.avp, args.prior, split=split, num_images=num_images, **common, **options
    )
    return Stage(
        f"{options.get('search', 'exhaustive')} maps: {num_images} {split} images -> {out.name}",
        out / "summary.json",
        call,
    )


def _round_stages(args, r: int, stores: list[Path]) -> list[Stage]:
    """Train net-r on ``stores`` and measure its held-out regret against the reference store."""
    net, evaluation = args.out / f"net-{r}", args.out / f"eval-{r}"
    searches = ["amortised", "exhaustive-independent"] if r == 0 else ["amortised"]
    return [
        Stage(
            f"train net-{r} on {len(stores)} store(s)",
            net / "manifest.json",
            partial(
                pipeline.train_epe_net,
                net,
                stores,
                args.avp,
                epochs=args.epochs,
                **_run_options(args),
                **_options(args.net_option, "--net-option"),
            ),
        ),
        Stage(
            f"evaluate net-{r} on {args.eval_images} test images",
            evaluation / "summary.json",
            partial(
                pipeline.evaluate_epe_net,
                evaluation,
                net,
                args.avp,
                args.prior,
                split="test",
                num_images=args.eval_images,
                glimpses=args.glimpses,
                num_samples=args.num_samples,
                searches=searches,
                reference=args.out / "reference",
                **_run_options(args),
                **_options(args.design_option, "--design-option"),
            ),
        ),
    ]


def _row(args, r: int) -> list:
    summary = json.loads((args.out / f"eval-{r}" / "summary.json").read_text())
    net = json.loads((args.out / f"net-{r}" / "summary.json").read_text())
    entry = summary["searches"]["amortised"]
    validity = (summary.get("validity") or {}).get("amortised") or [None]
    return [
        r,
        r + 1,
        int(net.get("examples", 0)),
        entry["mean_regret"],
        entry["median_regret"],
        entry["agreement"],
        validity[-1],
    ]


def _noise_floor(args) -> dict | None:
    summary = json.loads((args.out / "eval-0" / "summary.json").read_text())
    return summary["searches"].get("exhaustive-independent")


def main(argv=None) -> dict:
    return run(parse_args(argv))


def run(args) -> dict:
    """Round 0, then DAgger rounds until the held-out regret stops falling; returns the table record."""
    args.out.mkdir(parents=True, exist_ok=True)
    stores = [args.out / "maps-0"]
    run_stages(
        [
            _design(args, stores[0], args.split, args.num_images, search="exhaustive"),
            _design(args, args.out / "reference", "test", args.eval_images, search="exhaustive"),
        ]
    )
    rows, best, stale = [], float("inf"), 0
    for r in range(args.rounds + 1):
        if r > 0:
            stores.append(args.out / f"maps-{r}")
            run_stages(
                [
                    _design(
                        args,
                        stores[-1],
                        args.split,
                        args.num_images,
                        search="dagger",
                        epe_net=args.out / f"net-{r - 1}",
                    )
                ]
            )
        run_stages(_round_stages(args, r, list(stores)))
        rows.append(_row(args, r))
        regret = rows[-1][3]
        best, stale = (regret, 0) if regret < best else (best, stale + 1)
        if stale >= args.patience:
            break
    floor = _noise_floor(args)
    record = {
        "columns": COLUMNS,
        "formats": FORMATS,
        "rows": rows,
        "noise_floor": {k: floor[k] for k in ("mean_regret", "median_regret")} if floor else None,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "results"))
    from render import render_table, save_record

    save_record(args.out / "dagger.json", record)
    print(render_table(record))
    if floor:
        print(
            f"noise floor (an exhaustive search on independent completions): mean regret "
            f"{floor['mean_regret']:.1%}, median {floor['median_regret']:.1%}"
        )
    return record


if __name__ == "__main__":
    main()
