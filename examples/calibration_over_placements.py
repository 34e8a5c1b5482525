"""The completions' calibration on many held-out canvases: the same held-out digits placed again, pooled.

``ppl-attention calibrate-noise`` scores one set of held-out canvases, as many as the split holds (500 test canvases
of cluttered MNIST).  There the binned ECE of calibrated predictions spreads by about 0.01, so a worst step 0.01
above a 0.05 target is not decided.  Cluttered MNIST's canvases are drawn from the split's digits with a seeded
placement and clutter; the digit split itself does not depend on that seed, so other canvas seeds place the same
held-out digits again, never a training digit (checked below).  This runs the library's ``calibrate_noise`` once per
canvas seed (one file each, so an interrupted run resumes), then pools every image's predicted label distribution
into one ECE per step, beside the ECE perfectly calibrated predictions with the same confidences would show (the
floor) and the spread of the per-seed ECEs.

    python examples/calibration_over_placements.py --prior runs/prior81 --scales 3 --canvas-seeds 0 1 2 3 4 5 6 7 8 9 \
        --out runs/calplace81-3x

``--label-estimate scored`` scores the label histogram of every candidate the sampler weighted rather than of the
40 completions it resampled from them.  With several ``--scales`` on the validation split it also prints the
per-step schedule of the library's rule (``per_step_scales``: the sharpest calibrated multiplier at each step), as
the ``--sigma`` to test on the test split.

Writes ``OUT/seed-K.safetensors`` per canvas seed, ``OUT/pooled.json`` and a reliability figure per scale
(``OUT/reliability-3x.png``); prints the pooled table.  The canvases of
one digit share it, so the pooled ECE's spread is somewhat larger than the floor's sd on as many independent images.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from ppl_attention.artifacts import atomic_write_bytes, atomic_write_json
from ppl_attention.completion.noise_calibration import (
    LABEL_ESTIMATES,
    calibrate_noise,
    label_calibration,
    per_step_scales,
    random_glimpses,
    scaled_schedule,
)
from ppl_attention.completion.prior import open_completion
from ppl_attention.data.spec import DatasetSpec, recorded_spec
from ppl_attention.pipeline.design import noise_schedule
from ppl_attention.posterior.evaluation import fetch_batch
from ppl_attention.plots.completion import plot_label_reliability
from ppl_attention.runtime import derive_seed, generator


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prior", type=Path, required=True, help="a generative prior directory (build-prior)")
    p.add_argument("--out", type=Path, required=True, help="output directory (resumed where it holds seed files)")
    p.add_argument("--split", choices=["valid", "test"], default="test")
    p.add_argument("--canvas-seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--num-images", type=int, default=500, help="canvases per seed")
    p.add_argument("--glimpses", type=int, default=5)
    p.add_argument("--scales", type=float, nargs="+", default=[3.0], help="multipliers of the noise schedule")
    p.add_argument(
        "--sigma",
        type=float,
        nargs="+",
        default=None,
        help="the noise schedule (0..255 after 1, 2, ... glimpses; "
        "default: the prior's own), e.g. one multiplier per step chosen on the validation canvases",
    )
    p.add_argument("--num-samples", type=int, default=40)
    p.add_argument("--pooled-draws", type=int, default=1)
    p.add_argument(
        "--label-estimate",
        choices=list(LABEL_ESTIMATES),
        default="completions",
        help="the label histogram of the completions, or of every candidate the sampler weighted (scored)",
    )
    p.add_argument("--bins", type=int, default=10)
    p.add_argument("--avp", type=Path, default=None, help="an AVP on the prior's sensor: its own ECE beside")
    return p.parse_args(argv)


def held_out_canvases(prior: Path, split: str, canvas_seed: int):
    """The prior's dataset with another canvas seed; refuses one whose held-out digits differ from seed 0's."""
    _, spec = recorded_spec(prior)
    if spec is None:
        raise ValueError(f"`prior` {prior} records no dataset")
    base = DatasetSpec.from_dict(spec)
    data = DatasetSpec.make(base.name, base.root, canvas_seed, dict(base.kwargs)).load(split)
    reference = DatasetSpec.make(base.name, base.root, 0, dict(base.kwargs)).load(split)
    if not hasattr(data, "digits") or not torch.equal(data.digits, reference.digits):
        raise ValueError(f"dataset {base.name!r}: another canvas seed changes the {split} images, not their placement")
    return data


def seed_inputs(args, canvas_seed: int):
    """One canvas seed's held-out canvases, labels and random glimpse locations (M, T), and the sampler."""
    data = held_out_canvases(args.prior, args.split, canvas_seed)
    sigma, _ = noise_schedule(args.sigma, args.prior, data, data.name)
    sampler = open_completion(args.prior, sigma=sigma)
    M = min(args.num_images, len(data))
    images, labels, _ = fetch_batch(data, torch.arange(M))
    g = generator(derive_seed(canvas_seed, "calibration-over-placements-locations"))
    locations = random_glimpses(sampler.grid.num_locations, M, args.glimpses, g)
    return data, sampler, images, labels.long(), locations


def run_seed(args, canvas_seed: int) -> dict[str, torch.Tensor]:
    """Predictions (S, T, M, K) and labels (M,) of one canvas seed, from its file or computed and saved."""
    from safetensors.torch import load_file, save

    path = args.out / f"seed-{canvas_seed}.safetensors"
    if path.exists():
        return load_file(path)
    data, sampler, images, labels, locations = seed_inputs(args, canvas_seed)
    out = calibrate_noise(
        sampler,
        images,
        labels,
        locations,
        args.scales,
        args.num_samples,
        data.num_classes,
        seed=canvas_seed,
        min_ess=0.0,
        pooled_draws=args.pooled_draws,
        keep_predictions=True,
        label_estimate=args.label_estimate,
    )
    ess = [[step["median_ess"] for step in scale["steps"]] for scale in out["scales"]]
    tensors = {
        "predictions": out["predictions"].float().contiguous(),
        "labels": labels,
        "median_ess": torch.tensor(ess),
    }
    atomic_write_bytes(path, save(tensors))
    return tensors


def avp_predictions(args, avp, canvas_seed: int) -> torch.Tensor:
    """The AVP's label distributions (T, M, K) on the true canvases of one seed, after the same glimpses."""
    from ppl_attention.design.evaluate import posterior_logits
    from ppl_attention.sensor import check_sensor

    _, sampler, images, _, locations = seed_inputs(args, canvas_seed)
    check_sensor(avp.grid, sampler.grid, f"`avp` {args.avp}", "the prior's sensor")
    steps = range(1, locations.shape[1] + 1)  # T batched passes over the canvases
    return torch.stack([torch.softmax(posterior_logits(avp, images, locations[:, :t], sampler.grid), 1) for t in steps])


def pooled_table(runs: dict[int, dict[str, torch.Tensor]], scales: list[float], bins: int, avp=None) -> list[dict]:
    """One row per (scale, step): the pooled ECE, its floor and floor sd, P(true label), the per-seed ECEs and median
    ESS; with ``avp`` ({seed: (T, M, K)}), the AVP's own ECE and P(true label) on the same canvases and glimpses."""
    labels = torch.cat([r["labels"] for r in runs.values()])
    rows = []
    for s, scale in enumerate(scales):
        for t in range(next(iter(runs.values()))["predictions"].shape[1]):
            probs = torch.cat([r["predictions"][s, t] for r in runs.values()])
            cal = label_calibration(probs, labels, bins)
            per_seed = [label_calibration(r["predictions"][s, t], r["labels"], bins)["ece"] for r in runs.values()]
            rows.append(
                {
                    "scale": scale,
                    "t": t + 1,
                    "canvases": len(labels),
                    "ece": cal["ece"],
                    "ece_floor": cal["ece_floor"],
                    "ece_floor_sd": cal["ece_floor_sd"],
                    "p_true": cal["p_true"],
                    "nll": cal["nll"],
                    "per_seed_ece_mean": statistics.fmean(per_seed),
                    "per_seed_ece_sd": statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0,
                    "curve": cal["curve"],
                }
            )
            if all("median_ess" in r for r in runs.values()):  # the median over seeds of each seed's median ESS
                rows[-1]["median_ess"] = float(torch.stack([r["median_ess"][s, t] for r in runs.values()]).median())
            if avp is not None:
                own = label_calibration(torch.cat([avp[k][t] for k in runs]), labels, bins)
                rows[-1].update(avp_ece=own["ece"], avp_p_true=own["p_true"])
    return rows


def per_step_schedule(args, rows: list[dict]) -> dict:
    """The multiplier of each step chosen from the pooled rows (the library's rule: least NLL of those of ECE <=
    0.05) and the schedule it makes, 0..255 after 1, 2, ... glimpses: what ``--sigma`` takes for the test split."""
    data = held_out_canvases(args.prior, args.split, args.canvas_seeds[0])
    scales = per_step_scales(rows)
    sigma, _ = noise_schedule(args.sigma, args.prior, data, data.name)
    return {"scales": scales, "sigma": scaled_schedule(sigma, scales)}


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = {}
    for k in args.canvas_seeds:  # one calibrate_noise run per seed: its file is the unit of resumption
        runs[k] = run_seed(args, k)
        print(f"canvas seed {k}: done", flush=True)
    avp = None
    if args.avp is not None:
        from ppl_attention.posterior import load_avp

        net = load_avp(args.avp)  # once; each seed's canvases are scored by one batched pass per step
        avp = {k: avp_predictions(args, net, k) for k in args.canvas_seeds}
    rows = pooled_table(runs, args.scales, args.bins, avp)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    per_step = per_step_schedule(args, rows)
    atomic_write_json(args.out / "pooled.json", {"settings": settings, "rows": rows, "per_step": per_step})
    for scale in args.scales:  # one reliability figure per noise scale
        steps = [r for r in rows if r["scale"] == scale]
        schedule = (
            "the given schedule (sigma " + " / ".join(f"{v:g}" for v in args.sigma) + ")" if args.sigma else "noise"
        )
        drawn = f"{args.pooled_draws} x {args.num_samples} completions"
        if args.label_estimate == "scored":
            drawn = "labels of every scored candidate"
        title = f"{args.prior.name}: {scale:g}x {schedule}, {drawn}"
        title += f", {steps[0]['canvases']} held-out canvases"
        plot_label_reliability(steps, args.out / f"reliability-{scale:g}x.png", title)
    print("scale  t  canvases  ECE    floor (sd)      P(true)  per-seed ECE     AVP: ECE  P(true)")
    for r in rows:
        print(
            f"{r['scale']:>5}  {r['t']}  {r['canvases']:>8}  {r['ece']:.3f}  "
            f"{r['ece_floor']:.3f} ({r['ece_floor_sd']:.3f})  {r['p_true']:.3f}    "
            f"{r['per_seed_ece_mean']:.3f} +/- {r['per_seed_ece_sd']:.3f}"
            + (f"    {r['avp_ece']:.3f}  {r['avp_p_true']:.3f}" if "avp_ece" in r else "")
            + (f"    ESS {r['median_ess']:.1f}" if "median_ess" in r else "")
        )
    print("per step, the sharpest calibrated noise:", " / ".join(f"{m:g}x" for m in per_step["scales"]))
    print("--sigma", " ".join(f"{v:g}" for v in per_step["sigma"]))
    return rows


if __name__ == "__main__":
    main()
