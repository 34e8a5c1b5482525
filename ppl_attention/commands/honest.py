"""``ppl-attention calibrate-noise`` / ``evaluate-design``: an honest design's two measurements -- the glimpse noise
at which the completions' label distribution is calibrated on held-out images, and the BOED estimator's noise
floor (two exhaustive searches on independent completions, and each against a high-sample reference)."""

from __future__ import annotations

import json
from pathlib import Path

from ..completion.noise_calibration import NoiseCalibrationConfig
from ..config import add_config_arguments, build_config
from ..design.noise_floor import NoiseFloorConfig
from ._common import add_command, check_in_dir, check_out_dir, write_summary
from ._dataset import add_dataset_arguments, resolve_dataset


def register(sub, common):
    c = add_command(sub, common, "calibrate-noise", run_calibrate_noise, out="output directory")
    c.add_argument("--prior", required=True, type=Path, help="prior directory (build-prior)")
    add_dataset_arguments(c, reads="the prior")
    add_config_arguments(c, NoiseCalibrationConfig)

    e = add_command(sub, common, "evaluate-design", run_evaluate_design, out="output directory")
    e.add_argument("--avp", required=True, type=Path, help="AVP directory")
    e.add_argument("--prior", required=True, type=Path, help="prior directory")
    add_dataset_arguments(e, reads="the AVP and the prior")
    add_config_arguments(e, NoiseFloorConfig)


def run_calibrate_noise(args):
    """Draw completions of held-out images after 1..T random glimpses with the prior's noise schedule times each
    --scales value; report the ECE of their label distribution, its reliability curve, the mean P(true label) and
    its NLL, the median ESS and distinct completions (with --avp, the EPE of the next glimpse against the AVP's
    entropy after it); choose, among the scales whose median ESS reaches --min-ess, the one of least NLL (a proper
    score) or, with --criterion epe, of least worst-step EPE error; with --per-step, at each step the multiplier of
    least NLL among those of ECE <= 0.05. Writes OUT/calibration.json and OUT/summary.json."""
    import torch

    from ..artifacts import atomic_write_json, dir_checksum
    from ..completion.prior import open_completion
    from ..completion.noise_calibration import calibrate_noise, random_glimpses, scaled_schedule
    from ..posterior.evaluation import fetch_batch
    from ..runtime import derive_seed, generator
    from ..pipeline.design import noise_schedule

    cfg = build_config(NoiseCalibrationConfig, args)
    check_in_dir(args.prior, "--prior", "a prior directory (build-prior)")
    check_out_dir(args.out)
    spec = resolve_dataset(args, [args.prior], default=None)
    data = spec.load(cfg.split)
    sigma, sigma_from = noise_schedule(list(cfg.sigma) if cfg.sigma else None, args.prior, data, spec.name)
    sampler = open_completion(args.prior, k1=cfg.k1, sigma=sigma)
    posterior = _calibration_avp(cfg.avp, sampler.grid, args.device)
    M = min(cfg.num_images, len(data))
    images, labels, _ = fetch_batch(data, torch.arange(M))
    g = generator(derive_seed(args.seed, "calibrate-noise-locations"))
    locations = random_glimpses(sampler.grid.num_locations, M, cfg.glimpses, g)
    result = calibrate_noise(
        sampler,
        images,
        labels.long(),
        locations,
        list(cfg.scales),
        cfg.num_samples,
        int(getattr(data, "num_classes", int(labels.max()) + 1)),
        seed=args.seed,
        min_ess=cfg.min_ess,
        posterior=posterior,
        criterion=cfg.criterion,
        pooled_draws=cfg.pooled_draws,
        label_estimate=cfg.label_estimate,
    )
    chosen = scaled_schedule(sigma, result["per_step"] if cfg.per_step else [result["chosen"]])
    calibration = {**result, "sigma": sigma, "sigma_from": sigma_from, "chosen_sigma": chosen}
    calibration["prior"] = dir_checksum(args.prior)  # generate --noise-from reads `chosen_sigma` for this prior only
    atomic_write_json(Path(args.out) / "calibration.json", calibration)
    _print_scales(result["scales"])
    summary = {"prior": str(args.prior), "split": cfg.split, "images": M, "T": cfg.glimpses}
    summary.update(num_samples=cfg.num_samples, sigma=sigma, chosen_scale=result["chosen"], chosen_sigma=chosen)
    summary["pooled_draws"] = cfg.pooled_draws
    summary["criterion"] = cfg.criterion
    summary.update(label_estimate=cfg.label_estimate, per_step_scales=result["per_step"])
    for key in ("worst_ece", "nll", "median_ess", "worst_epe_error"):
        if key in result["scales"][0]:
            summary[key] = {str(r["scale"]): r[key] for r in result["scales"]}
    write_summary(args.out, summary)
    return 0


def _calibration_avp(avp, grid, device):
    """The AVP of ``--avp`` on the prior's sensor, or None without one."""
    if avp is None:
        return None
    from ..posterior import load_avp
    from ..runtime import resolve_device
    from ..sensor import check_sensor

    check_in_dir(avp, "--avp", "an AVP directory (train-avp)")
    posterior = load_avp(avp, resolve_device(device))
    check_sensor(posterior.grid, grid, f"--avp {avp}", "the prior's sensor")
    return posterior


def _print_scales(scales: list[dict]) -> None:
    """One line per noise scale: its NLL, worst-step ECE and median ESS (and worst EPE error), then each step's."""
    for r in scales:
        steps = ", ".join(
            f"t={s['t']}: ECE {s['ece']:.3f} (calibrated: {s['ece_floor']:.3f} +/- {s['ece_floor_sd']:.3f}) "
            f"P(true) {s['p_true']:.3f} "
            f"distinct {s['median_distinct']:g}"
            + (f" (AVP's P(true) {s['avp_p_true']:.3f})" if s.get("avp_p_true") is not None else "")
            + (f" EPE of glimpse {s['t'] + 1} {100 * s['epe']['relative']:+.1f} %" if "epe" in s else "")
            for s in r["steps"]
        )
        epe = f"worst EPE error {100 * r['worst_epe_error']:.1f} %, " if "worst_epe_error" in r else ""
        print(
            f"  x{r['scale']:g}: NLL {r['nll']:.3f}, worst-step ECE {r['worst_ece']:.3f}, "
            f"median ESS {r['median_ess']:.2f}, " + epe + steps
        )


def run_evaluate_design(args):
    """Along each image's greedy exhaustive sequence on --reference-samples completions, draw two independent sets
    of --num-samples completions per step and compare the exhaustive searches on them with each other and with the
    reference (EPE regret). The completions leave each image out (no oracle). Writes OUT/noise_floor.json (after
    every image: an interrupted run resumes from the images it finished), OUT/summary.json."""
    from ..design.images import ImageFactory
    from ..design.noise_floor import noise_floor, parse_searches, summarise_noise_floor
    from ..design.sequential import first_glimpse_epe
    from ..runtime import resolve_device
    from ..pipeline.design import check_no_oracle, noise_schedule

    cfg = build_config(NoiseFloorConfig, args)
    for flag in ("avp", "prior"):
        check_in_dir(getattr(args, flag), f"--{flag}")
    check_out_dir(args.out)
    spec = resolve_dataset(args, [args.avp, args.prior], default=None)
    data = spec.load(cfg.split)
    indices = list(range(min(cfg.num_images, len(data))))
    check_no_oracle(args.avp, args.prior, data, cfg.split, indices)
    sigma, _ = noise_schedule(list(cfg.sigma) if cfg.sigma else None, args.prior, data, spec.name)
    device = resolve_device(args.device)
    factory = ImageFactory(
        spec.name,
        str(args.avp),
        str(args.prior),
        cfg.split,
        spec.root,
        spec.seed,
        None,
        cfg.k1,
        cfg.batch_size,
        str(device),
        sigma=tuple(sigma),
        options=spec.options,
    )
    problem, image_fn = factory()
    settings = _floor_settings(args, cfg, sigma)
    resume_key = {"seed": args.seed, "searches": cfg.searches, "first_num_samples": cfg.first_num_samples}
    record = _NoiseFloorRecord(Path(args.out), {**settings, **resume_key})
    first = first_glimpse_epe(problem, cfg.first_num_samples or cfg.reference_samples, args.seed)
    rows = noise_floor(
        problem,
        image_fn,
        indices,
        cfg.glimpses,
        cfg.num_samples,
        cfg.reference_samples,
        args.seed,
        first,
        getattr(image_fn, "exclusions", None),
        searches=parse_searches(cfg.searches),
        pooled_draws=cfg.pooled_draws,
        done=record.done(),
        on_image=record.add,
    )
    summary = summarise_noise_floor(rows)
    record.save(summary)
    _print_noise_floor(summary["all"], cfg)
    write_summary(args.out, {**settings, **summary})
    return 0


def _floor_settings(args, cfg: NoiseFloorConfig, sigma) -> dict:
    """What a noise floor was measured with (its summary's settings)."""
    settings = {"avp": str(args.avp), "prior": str(args.prior), "split": cfg.split, "num_samples": cfg.num_samples}
    settings.update(
        reference_samples=cfg.reference_samples, T=cfg.glimpses, sigma=sigma, k1=cfg.k1, pooled_draws=cfg.pooled_draws
    )
    return settings


class _NoiseFloorRecord:
    """OUT/noise_floor.json, rewritten after every image: a measurement cut short resumes from the images it
    finished (with the same settings; an earlier file made with others is refused, one without settings replaced)."""

    def __init__(self, out: Path, settings: dict):
        from ..artifacts import check_compatible, read_json

        # through JSON, so that tuples compare equal to the lists read back
        self.path, self.settings, self.rows = out / "noise_floor.json", json.loads(json.dumps(settings)), []
        stored = read_json(self.path) if self.path.is_file() else {}
        if "settings" in stored:
            check_compatible(f"--out {out} holds a noise floor that was", stored["settings"], self.settings)
            self.rows = stored["rows"]

    def done(self) -> dict[int, list[dict]]:
        """The finished images' rows by image index."""
        out = {}
        for row in self.rows:
            out.setdefault(int(row["index"]), []).append(row)
        return out

    def add(self, index: int, rows: list[dict]) -> None:
        """``noise_floor``'s ``on_image``: keep one more image's rows and save them."""
        self.rows.extend(rows)
        self.save()

    def save(self, summary: dict | None = None) -> None:
        from ..artifacts import atomic_write_json

        record = {"settings": self.settings, "rows": self.rows}
        atomic_write_json(self.path, record if summary is None else {**record, "summary": summary})


def _print_noise_floor(a: dict, cfg: NoiseFloorConfig) -> None:
    """The noise floor between two searches and each search's regret against the exhaustive one."""
    print(
        f"  noise floor (two searches on {cfg.pooled_draws} x {cfg.num_samples} completions): mean regret "
        f"{100 * a['between']['mean']:.1f} %; against {cfg.reference_samples}: "
        f"{100 * a['vs_reference']['mean']:.1f} %; a draw's chosen EPE {100 * a['optimism']['mean']:+.1f} % on the "
        "other draw (optimism)"
    )
    for label, r in a["searches"].items():
        print(
            f"  {label}: mean regret {100 * r['regret']['mean']:.2f} % against the exhaustive search on the same "
            f"completions, at {100 * r['evaluations']['mean']:.1f} % of its evaluations"
        )
