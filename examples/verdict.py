"""The verdict on the paper's claim, run as the paper ran it: RAM against PS-NOGS with honest near-optimal sequences,
the dense categorical head and the paper's loss, and the controls that say what the supervision is worth.

One grid per call (``fine-60-patch``: cluttered MNIST, one 12 x 12 patch at each of 49 x 49 = 2,401 locations;
``mnist-81``: cluttered MNIST's default 9 x 9 grid and retina).  The stages are :mod:`ppl_attention.pipeline`
functions, each skipped once finished and each resuming on its own (examples/_paper_pipeline.py):

    train-avp --exclude-design N      the AVP never sees the N canvases it designs for (no oracle)
    build-prior                       the dataset's own prior (the canvases' generative process)
    generate --glimpses 5             near-optimal sequences for the first N training canvases (exhaustive search on
                                      81 locations, the pyramid search on 2,401)

then, for every seed, one training run per arm (``OUT/GRID/{arm}-s{seed}/``):

    ram                  RAM (no supervision), the dense head
    ps-nogs              PS-NOGS on the honest sequences, the dense head, the paper's loss (the supervised term summed
                         over the batch, 2.2 % of each batch supervised)
    ps-ram               PS-NOGS's settings on a trained RAM's own greedy sequences of the same N canvases
                         (``OUT/GRID/ps-ram-sequences-s{seed}``, written by ``policy-sequences`` from ``ram-s{seed}``)
    ram-canvases         PS-NOGS's settings with ``imitate=False``: the frozen supervised canvases, nothing imitated
    ps-nogs-gaussian     PS-NOGS with the discretised-gaussian head
    ps-nogs-factorised   PS-NOGS with the factorised (rows x columns) head

and the table (``OUT/GRID/verdict.md`` and ``verdict.json``, see examples/_verdict_table.py) and the validation
curves (``verdict.png``) from the runs' logs.

    python examples/verdict.py --grid fine-60-patch --scale paper --out runs/verdict --device cuda
    python examples/verdict.py --grid mnist-81 --scale paper --out runs/verdict
    python examples/verdict.py --grid mnist-81 --scale paper --out runs/verdict --report-only   # the table so far
    python examples/verdict.py --grid mnist-81 --noise 3x --pooled-draws 4 ...                 # a lower noise floor
    python examples/verdict.py --grid mnist-81 --scale tiny --out runs/verdict-tiny             # a smoke run
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _verdict_table as table  # noqa: E402
from _paper_pipeline import Stage, add_scale_flags, run_stages, scale_settings, shrunk  # noqa: E402

from ppl_attention import pipeline  # noqa: E402
from ppl_attention.artifacts import read_json  # noqa: E402

#: T, the paper's glimpses per sequence and per run
GLIMPSES = 5
#: the paper's loss: the supervised term -lambda log pi(target) summed over the batch, 2.2 % of each batch supervised
#: (600 of the authors' 27,000 training images)
PAPER_LOSS = {"supervision_reduction": "sum", "supervised_fraction": 0.022}


@dataclass(frozen=True)
class Grid:
    dataset: str
    options: dict
    search: str  # the design's candidate search
    location_embedding: str  # where-embedding of the hard-attention network
    levels: tuple[float, ...] = table.THRESHOLDS  # the validation accuracies whose first reaching the table reports


GRIDS = {
    # RAM ends near 73 % here: the lower levels show the early part of the curves
    "fine-60-patch": Grid(
        "cluttered-mnist", {"stride": 1, "scales": 1}, "pyramid", "mlp", (0.5, 0.6, *table.THRESHOLDS)
    ),
    "mnist-81": Grid("cluttered-mnist", {}, "exhaustive", "table"),
}


@dataclass(frozen=True)
class Arm:
    label: str
    policy: str = "dense"
    sequences: str | None = None  # None (RAM), "design" (the honest store) or "policy" (the seed's RAM run's)
    imitate: bool = True


ARMS = {
    "ram": Arm("RAM"),
    "ps-nogs": Arm("PS-NOGS, dense head", sequences="design"),
    "ps-ram": Arm("PS-RAM", sequences="policy"),
    "ram-canvases": Arm("RAM on the frozen canvases", sequences="design", imitate=False),
    "ps-nogs-gaussian": Arm("PS-NOGS, gaussian head", "gaussian", "design"),
    "ps-nogs-factorised": Arm("PS-NOGS, factorised head", "factorised", "design"),
}


@dataclass(frozen=True)
class Scale:
    """Every size of one verdict: ``paper`` is the paper's (20,000 iterations, 600 designed images, 3 seeds),
    ``tiny`` a smoke run of every stage and arm."""

    avp: dict = field(default_factory=lambda: {"epochs": 12})  # train-avp options
    design_images: int = 600
    design_samples: int = 100  # completions per design step (generate --num-samples)
    first_num_samples: int | None = None
    iterations: int = 20_000
    validate_every: int = 100
    batch_size: int = 64
    mc_samples: int = 10
    network: dict = field(default_factory=dict)  # train options of the network (default: the CLI's)
    seeds: tuple[int, ...] = (0, 1, 2)
    calibration: dict = field(default_factory=dict)  # calibrate-noise options (--noise calibrated)


SCALES = {
    "paper": Scale(),
    "tiny": shrunk(
        Scale(),
        avp={"epochs": 1, "width": 2, "train_size": 64, "max_glimpses": 2, "calibrate": False},
        design_images=3,
        design_samples=2,
        # 2.2 % of 24 rounds to one supervised example per batch
        batch_size=24,
        mc_samples=2,
        network={"hidden": 16, "glimpse_dim": 8},
        seeds=(0, 1),
        calibration={"num_images": 2, "num_samples": 2, "scales": (1.0, 2.0), "k1": 20, "min_ess": 1.0},
    ),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", required=True, choices=list(GRIDS))
    p.add_argument("--out", type=Path, default=Path("runs/verdict"))
    add_scale_flags(p, SCALES, "paper", "seeds of every arm")
    p.add_argument("--seed", type=int, default=0, help="seed of the design stages and of the data")
    p.add_argument(
        "--noise",
        default="prior",
        help="the completions' glimpse noise: the prior's own (prior), the one calibrate-noise chooses on held-out "
        "canvases by the EPE's error against the AVP's entropy (calibrated: runs in OUT/GRID-calibrated), or a "
        "multiple of the prior's (e.g. 3x: runs in OUT/GRID-3x)",
    )
    p.add_argument(
        "--pooled-draws",
        type=int,
        default=1,
        help="design (and calibrate the noise) with K pooled independent draws of completions per step, each of "
        "the scale's completions / K: the same AVP passes, a lower noise floor (its runs go to OUT/GRID[-calibrated]"
        "-pooledK)",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.add_argument("--report-only", action="store_true", help="run nothing: the table of the runs finished so far")
    args = p.parse_args(argv)
    args.settings = scale_settings(p, args, SCALES)
    if args.noise not in NOISES and noise_multiple(args.noise) is None:
        p.error(f"--noise must be prior, calibrated or a positive multiple such as 3x, got {args.noise!r}")
    if args.pooled_draws < 1 or args.settings.design_samples % args.pooled_draws:
        p.error(f"--pooled-draws must divide the {args.settings.design_samples} completions of a design step")
    return args


def out_dir(args: argparse.Namespace) -> Path:
    """``OUT/GRID``, ``-calibrated`` for the calibrated noise and ``-pooledK`` for K pooled draws."""
    pooled = f"-pooled{args.pooled_draws}" if args.pooled_draws > 1 else ""
    noise = NOISES.get(args.noise, f"-{args.noise}")
    return args.out / f"{args.grid}{noise}{pooled}"


#: Where the design's glimpse noise comes from: the prior's own schedule, or calibrate-noise's choice on held-out
#: canvases (the folder each writes its runs to: OUT/GRID, OUT/GRID-calibrated)
NOISES = {"prior": "", "calibrated": "-calibrated"}


def noise_multiple(noise: str) -> float | None:
    """``"3x"`` -> 3.0: a multiple of the prior's noise schedule (None for anything else)."""
    try:
        k = float(noise[:-1]) if noise.endswith("x") else None
    except ValueError:
        return None
    return k if k is not None and k > 0 else None


def _design_at_multiple(store: Path, avp: Path, prior: Path, multiple: float, **options) -> dict:
    """``pipeline.design_sequences`` with the prior's noise schedule times ``multiple`` (read once the prior is
    built)."""
    sigma = read_json(prior / "manifest.json")["config"]["sigma"]
    return pipeline.design_sequences(store, avp, prior, sigma=[round(multiple * v, 1) for v in sigma], **options)


def design_stages(
    grid: str, s: Scale, out: Path, common: dict, noise: str = "prior", pooled_draws: int = 1
) -> list[Stage]:
    """The honest design: an AVP that never saw the designed canvases, the dataset's prior, (the glimpse noise
    chosen on held-out canvases,) T = 5 sequences; ``pooled_draws`` draws of ``design_samples / pooled_draws``
    completions each per step."""
    g = GRIDS[grid]
    avp, prior, store, calibration = out / "avp", out / "prior", out / "sequences", out / "noise"
    complete = partial(_store_holds, store, s.design_images)
    noise_from = {"noise_from": calibration} if noise == "calibrated" else {}
    multiple = noise_multiple(noise)
    pooled = {"pooled_draws": pooled_draws} if pooled_draws > 1 else {}
    # the noise at which the EPE the completions predict matches the entropy the design's own AVP then has
    calibrate = partial(
        pipeline.calibrate_noise,
        calibration,
        prior,
        split="valid",
        avp=avp,
        criterion="epe",
        **s.calibration,
        **pooled,
        **common,
    )
    calibrate_stage = Stage("calibrate the glimpse noise (held-out canvases)", calibration / "summary.json", calibrate)
    return [
        Stage(
            "train AVP (designed canvases held out)",
            avp / "summary.json",
            partial(
                pipeline.train_avp,
                avp,
                pipeline.Dataset(g.dataset, options=g.options),
                exclude_design=s.design_images,
                **s.avp,
                **common,
            ),
        ),
        Stage("build prior", prior / "summary.json", partial(pipeline.build_prior, prior, avp=avp, **common)),
        *([calibrate_stage] if noise_from else []),
        Stage(
            f"design {s.design_images} sequences (T = {GLIMPSES}, {g.search} search)",
            complete,
            partial(
                pipeline.design_sequences if multiple is None else partial(_design_at_multiple, multiple=multiple),
                store,
                avp,
                prior,
                split="train",
                num_images=s.design_images,
                glimpses=GLIMPSES,
                search=g.search,
                num_samples=s.design_samples // pooled_draws,
                first_num_samples=s.first_num_samples or s.design_samples,
                **noise_from,
                **pooled,
                **common,
            ),
        ),
    ]


def _store_holds(store: Path, n: int) -> bool:
    """The store is finished: its summary written and ``n`` sequences in it."""
    return (store / "summary.json").is_file() and len(list((store / "records").glob("*.json"))) >= n


def run_dir(out: Path, arm: str, seed: int) -> Path:
    return out / f"{arm}-s{seed}"


def policy_store(out: Path, seed: int) -> Path:
    """PS-RAM's supervision: the greedy sequences of ``ram-s{seed}``."""
    return out / f"ps-ram-sequences-s{seed}"


def arm_options(grid: str, arm: str, s: Scale, out: Path, seed: int, data_seed: int) -> dict:
    """``pipeline.train_attention``'s keyword arguments for one arm and seed (the store and the paper's loss for the
    supervised arms, the design's data for RAM)."""
    a, g = ARMS[arm], GRIDS[grid]
    options = {
        "iterations": s.iterations,
        "validate_every": s.validate_every,
        "batch_size": s.batch_size,
        "glimpses": GLIMPSES,
        "mc_samples": s.mc_samples,
        "policy": a.policy,
        "location_embedding": g.location_embedding,
        "tensorboard": False,
        **s.network,
    }
    if a.sequences is None:
        return {
            **options,
            "dataset": pipeline.Dataset(g.dataset, options=g.options),
            "data_seed": data_seed,
            "supervision": "none",
        }
    store = out / "sequences" if a.sequences == "design" else policy_store(out, seed)
    return {**options, "sequences": store, "imitate": a.imitate, **PAPER_LOSS}


def _finished(run: Path, iterations: int) -> bool:
    summary = run / "summary.json"
    return summary.is_file() and read_json(summary).get("iterations", 0) >= iterations


def _from_run(store: Path, run: Path) -> bool:
    """PS-RAM's store is finished, and written by ``run``'s final network (a RAM run trained on after its store was
    written is refused: its PS-RAM arm would be supervised by an older policy)."""
    if not (store / "summary.json").is_file():
        return False
    from ppl_attention.artifacts import file_checksum

    if read_json(store / "manifest.json")["config"].get("network") != file_checksum(run / "best.safetensors"):
        raise ValueError(
            f"`store` {store} holds the sequences of an earlier {run.name}; delete it and the "
            f"{run.name.replace('ram-', 'ps-ram-')} run to supervise PS-RAM by the finished RAM"
        )
    return True


def training_stages(
    grid: str, s: Scale, out: Path, common: dict, threads: int, progress: bool, data_seed: int
) -> list[Stage]:
    """Per seed: RAM, its greedy sequences (PS-RAM's store), then every other arm."""
    stages = []
    for k in s.seeds:
        run = {"seed": k, "threads": threads, "no_progress": not progress, **common}
        for arm in ARMS:
            d = run_dir(out, arm, k)
            stages.append(
                Stage(
                    f"train {arm} (seed {k})",
                    partial(_finished, d, s.iterations),
                    partial(pipeline.train_attention, d, **run, **arm_options(grid, arm, s, out, k, data_seed)),
                )
            )
            if arm == "ram":
                store = policy_store(out, k)
                stages.append(
                    Stage(
                        f"PS-RAM sequences of ram-s{k}",
                        partial(_from_run, store, d),
                        partial(pipeline.policy_sequences, store, d, indices_of=out / "sequences", **common),
                    )
                )
    return stages


def main(argv=None) -> dict:
    import torch

    args = parse_args(argv)
    s, out = args.settings, out_dir(args)
    given = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    command = " ".join(["python examples/verdict.py", *given])
    common = {"device": args.device, "quiet": not args.progress}
    timings = {}
    if not args.report_only:
        torch.set_num_threads(args.threads)
        out.mkdir(parents=True, exist_ok=True)
        stages = design_stages(args.grid, s, out, {"seed": args.seed, **common}, args.noise, args.pooled_draws)
        stages += training_stages(args.grid, s, out, common, args.threads, args.progress, args.seed)
        timings = run_stages(stages)
    elif not any((run_dir(out, "ram", k) / "summary.json").is_file() for k in s.seeds):
        raise SystemExit(f"--report-only: no finished RAM run under {out} yet")
    labels = {arm: a.label for arm, a in ARMS.items()}
    record = table.verdict(out, labels, s.seeds, thresholds=GRIDS[args.grid].levels)
    record.update(
        command=command,
        grid=args.grid,
        noise=args.noise,
        pooled_draws=args.pooled_draws,
        scale=args.scale,
        glimpses=GLIMPSES,
        paper_loss=PAPER_LOSS,
        settings=asdict(s),
        grid_settings=asdict(GRIDS[args.grid]),
        seconds=timings,
    )
    table.write(out, record)
    table.figure(out, record)
    return record


if __name__ == "__main__":
    main()
