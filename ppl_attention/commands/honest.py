"""``ppl-attention calibrate-noise`` / ``evaluate-design``: an honest design's two measurements -- the glimpse noise
at which the completions' label distribution is calibrated on held-out images, and the BOED estimator's noise
floor (two exhaustive searches on independent completions, and each against a high-sample reference)."""
from __future__ import annotations

from pathlib import Path

from ..completion.base import DEFAULT_K1
from ..config import GLIMPSES
from ._common import check_in_dir, check_int, check_number, check_out_dir, write_summary
from ._dataset import add_dataset_arguments, resolve_dataset


def register(sub, common):
    c = sub.add_parser("calibrate-noise", parents=[common], help="choose the completions' glimpse noise on held-out "
                       "images: ECE of P(label) from the completions, reliability curve, ESS, per noise multiplier",
                       description="Draw completions of held-out images after 1..T random glimpses with the prior's "
                       "noise schedule times each --scales value; report the ECE of their label distribution, its "
                       "reliability curve, the mean P(true label) and its NLL, the median ESS and distinct "
                       "completions; "
                       "choose the scale of least NLL (a proper score) whose median ESS reaches --min-ess. Writes OUT/"
                       "calibration.json and OUT/summary.json.")
    c.add_argument("--prior", required=True, type=Path, help="prior directory (build-prior)")
    c.add_argument("--out", required=True, type=Path, help="output directory")
    add_dataset_arguments(c, reads="the prior")
    c.add_argument("--split", default="valid", choices=["valid", "test"], help="held-out split (default valid)")
    c.add_argument("--num-images", type=int, default=50, help="held-out images (default 50)")
    c.add_argument("--glimpses", "-T", dest="T", type=int, default=GLIMPSES,
                   help="glimpses per image (default %(default)s)")
    c.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0, 8.0],
                   help="multipliers of the noise schedule to score (default 0.5 1 2 4 8)")
    c.add_argument("--sigma", type=float, nargs="+", default=None, help="base noise schedule (0..255 after 1, 2, ... "
                   "glimpses; default: the prior's or the dataset's)")
    c.add_argument("--num-samples", type=int, default=40, help="completions per draw (default 40)")
    c.add_argument("--k1", type=int, default=DEFAULT_K1, help="proposal draws of the importance sampler")
    c.add_argument("--min-ess", type=float, default=10.0, help="median ESS a chosen scale must reach (default 10)")
    c.set_defaults(func=run_calibrate_noise)

    e = sub.add_parser("evaluate-design", parents=[common], help="the BOED estimator's noise floor: regret between "
                       "two exhaustive searches on independent completions, and of each against a high-sample "
                       "reference, same images, one run",
                       description="Along each image's greedy exhaustive sequence on --reference-samples "
                       "completions, draw two independent sets of --num-samples completions per step and compare "
                       "the exhaustive searches on them with each other and with the reference (EPE regret). The "
                       "completions leave each image out (no oracle). Writes OUT/noise_floor.json, OUT/summary.json.")
    e.add_argument("--avp", required=True, type=Path, help="AVP directory")
    e.add_argument("--prior", required=True, type=Path, help="prior directory")
    e.add_argument("--out", required=True, type=Path, help="output directory")
    add_dataset_arguments(e, reads="the AVP and the prior")
    e.add_argument("--split", default="test", choices=["train", "valid", "test"], help="images' split (default test)")
    e.add_argument("--num-images", type=int, default=50, help="images (default 50)")
    e.add_argument("--glimpses", "-T", dest="T", type=int, default=GLIMPSES, help="steps (default %(default)s)")
    e.add_argument("--num-samples", type=int, default=40, help="completions of each compared search (default 40)")
    e.add_argument("--reference-samples", type=int, default=400, help="completions of the reference (default 400)")
    e.add_argument("--first-num-samples", type=int, default=None, help="prior samples of the first-glimpse map "
                   "(default --reference-samples)")
    e.add_argument("--k1", type=int, default=DEFAULT_K1, help="proposal draws of the importance sampler")
    e.add_argument("--sigma", type=float, nargs="+", default=None, help="noise schedule (default: the prior's or "
                   "the dataset's)")
    e.add_argument("--batch-size", type=int, default=128, help="(candidate, sample) pairs per AVP pass")
    e.set_defaults(func=run_evaluate_design)


def check_no_oracle(avp: Path, prior: Path, data, split: str, indices, allow_oracle: bool = False,
                    search: str = "exhaustive") -> None:
    """Refuse an AVP trained on a design image or a prior that holds one it cannot leave out (no oracle), unless
    ``allow_oracle``.  The amortised search draws no completion and makes no AVP pass: nothing to check."""
    from ..design.honest import check_avp, check_prior

    if search == "amortised":
        return
    if allow_oracle:
        print("  --allow-oracle true: a diagnosis, not a BOED design (the AVP / completions may hold the images)")
        return
    check_avp(avp, data, split, indices)
    check_prior(prior, split)


def _held_out_locations(grid, M: int, T: int, seed: int):
    """(M, T) distinct random locations per image (seeded)."""
    import torch

    from ..runtime import derive_seed, generator

    g = generator(derive_seed(seed, "calibrate-noise-locations"))
    return torch.rand(M, grid.num_locations, generator=g).argsort(1)[:, :T]


def run_calibrate_noise(args):
    import torch

    from ..artifacts import atomic_write_json
    from ..completion.prior import open_completion
    from ..completion.noise_calibration import calibrate_noise
    from .design import noise_schedule

    check_in_dir(args.prior, "--prior", "a prior directory (build-prior)")
    check_out_dir(args.out)
    for flag, v in (("--num-images", args.num_images), ("-T/--glimpses", args.T), ("--num-samples", args.num_samples),
                    ("--k1", args.k1)):
        check_int(flag, v)
    check_number("--min-ess", args.min_ess)
    for v in args.scales:
        check_number("--scales", v, strict=True)
    spec = resolve_dataset(args, [args.prior], default=None)
    data = spec.load(args.split)
    sigma, sigma_from = noise_schedule(args.sigma, args.prior, data, spec.name)
    sampler = open_completion(args.prior, k1=args.k1, sigma=sigma)
    M = min(args.num_images, len(data))
    images = torch.stack([data[i]["image"] for i in range(M)])
    labels = torch.stack([torch.as_tensor(data[i]["label"]) for i in range(M)]).long()
    locations = _held_out_locations(sampler.grid, M, args.T, args.seed)
    result = calibrate_noise(sampler, images, labels, locations, args.scales, args.num_samples,
                             int(getattr(data, "num_classes", int(labels.max()) + 1)), seed=args.seed,
                             min_ess=args.min_ess)
    chosen = [round(args_s * result["chosen"], 2) for args_s in sigma]
    atomic_write_json(Path(args.out) / "calibration.json", {**result, "sigma": sigma, "sigma_from": sigma_from,
                                                            "chosen_sigma": chosen})
    for r in result["scales"]:
        print(f"  x{r['scale']:g}: NLL {r['nll']:.3f}, worst-step ECE {r['worst_ece']:.3f}, "
              f"median ESS {r['median_ess']:.2f}, "
              + ", ".join(f"t={s['t']}: ECE {s['ece']:.3f} P(true) {s['p_true']:.3f} distinct "
                          f"{s['median_distinct']:g}" for s in r["steps"]))
    write_summary(args.out, {"prior": str(args.prior), "split": args.split, "images": M, "T": args.T,
                             "num_samples": args.num_samples, "sigma": sigma, "chosen_scale": result["chosen"],
                             "chosen_sigma": chosen, "worst_ece": {str(r["scale"]): r["worst_ece"]
                                                                    for r in result["scales"]},
                             "nll": {str(r["scale"]): r["nll"] for r in result["scales"]},
                             "median_ess": {str(r["scale"]): r["median_ess"] for r in result["scales"]}})
    return 0


def run_evaluate_design(args):
    from ..artifacts import atomic_write_json
    from ..design.images import ImageFactory
    from ..design.noise_floor import noise_floor, summarise_noise_floor
    from ..design.sequential import first_glimpse_epe
    from ..runtime import resolve_device
    from .design import noise_schedule

    for flag in ("avp", "prior"):
        check_in_dir(getattr(args, flag), f"--{flag}")
    check_out_dir(args.out)
    for flag, v in (("--num-images", args.num_images), ("-T/--glimpses", args.T), ("--num-samples", args.num_samples),
                    ("--reference-samples", args.reference_samples), ("--k1", args.k1),
                    ("--batch-size", args.batch_size)):
        check_int(flag, v)
    if args.T < 2:
        raise ValueError(f"-T/--glimpses must be >= 2 (the first step is the cached prior map), got {args.T}")
    if args.reference_samples < args.num_samples:
        raise ValueError(f"--reference-samples must be >= --num-samples ({args.num_samples}), got "
                         f"{args.reference_samples}")
    spec = resolve_dataset(args, [args.avp, args.prior], default=None)
    data = spec.load(args.split)
    indices = list(range(min(args.num_images, len(data))))
    check_no_oracle(args.avp, args.prior, data, args.split, indices)
    sigma, _ = noise_schedule(args.sigma, args.prior, data, spec.name)
    device = resolve_device(args.device)
    factory = ImageFactory(spec.name, str(args.avp), str(args.prior), args.split, spec.root, spec.seed, None, args.k1,
                           args.batch_size, str(device), sigma=tuple(sigma), options=spec.options)
    problem, image_fn = factory()
    first = first_glimpse_epe(problem, args.first_num_samples or args.reference_samples, args.seed)
    rows = noise_floor(problem, image_fn, indices, args.T, args.num_samples, args.reference_samples, args.seed,
                       first, getattr(image_fn, "exclusions", None))
    summary = summarise_noise_floor(rows)
    atomic_write_json(Path(args.out) / "noise_floor.json", {"rows": rows, "summary": summary})
    a = summary["all"]
    print(f"  noise floor (two searches on {args.num_samples} completions): mean regret "
          f"{100 * a['between']['mean']:.1f} %; against {args.reference_samples}: "
          f"{100 * a['vs_reference']['mean']:.1f} %")
    write_summary(args.out, {"avp": str(args.avp), "prior": str(args.prior), "split": args.split,
                             "num_samples": args.num_samples, "reference_samples": args.reference_samples,
                             "T": args.T, "sigma": sigma, **summary})
    return 0
