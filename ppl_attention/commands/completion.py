"""``ppl-attention compare-completion``: importance sampling (database prior, generative-process prior) vs NUTS
in a VAE vs a conditional GAN, beside the AVP's own P(true label) on the same glimpses.

Builds (or reuses) what it compares -- a database prior with its PCA index, the generative-process prior, a VAE
and (when asked for) a cGAN -- then completes held-out test canvases after t glimpses with each method, along
random (or ink) sequences and, with ``--sequences STORE``, along a store's near-optimal ones, and writes the tables
and figures (:mod:`ppl_attention.completion.compare`).  With ``--avp`` the dataset, the sensor and the test images
are the AVP's (so a store made with that AVP indexes the same images) and the AVP is the reference column.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from ..completion.compare import CompareConfig
from ..config import add_config_arguments, build_config, config_to_dict
from ..sensor import check_sensor
from ._common import add_command, write_summary

log = logging.getLogger(__name__)

#: Sizes of everything the comparison trains or builds.  "small" trains on the CPU in a few minutes; "tiny" is
#: for smoke tests (seconds, meaningless numbers).
SIZES = {
    "tiny": {
        "prior_rows": 2000,
        "pca_components": 16,
        "k1": 100,
        "train_images": 128,
        "vae_epochs": 1,
        "vae_width": 8,
        "cgan_epochs": 1,
        "nuts_warmup": 15,
        "nuts_samples": 15,
        "classifier_epochs": 1,
        "compare": {"num_images": 2, "num_samples": 4, "glimpse_counts": (1, 2)},
    },
    "small": {
        "prior_rows": 20_000,
        "pca_components": 64,
        "k1": 500,
        "train_images": 2000,
        "vae_epochs": 10,
        "vae_width": 16,
        "cgan_epochs": 4,
        "nuts_warmup": 60,
        "nuts_samples": 60,
        "classifier_epochs": 3,
        "compare": {"num_images": 6, "num_samples": 16},
    },
    "full": {
        "prior_rows": 200_000,
        "pca_components": 256,
        "k1": 1000,
        "train_images": 20_000,
        "vae_epochs": 20,
        "vae_width": 32,
        "cgan_epochs": 10,
        "nuts_warmup": 200,
        "nuts_samples": 200,
        "classifier_epochs": 5,
        "compare": {"num_images": 50, "num_samples": 32},
    },
}


#: Methods compare-completion knows; DEFAULT_METHODS run unless --methods says otherwise.  The cGAN is not a default:
#: its completions ignore the glimpses beyond pasting them in (docs/generative_prior.md, "Choices and why").
METHODS = ("importance", "generative", "nuts-vae", "cgan")
DEFAULT_METHODS = ("importance", "generative", "nuts-vae")
SLOW_METHODS = ("nuts-vae", "cgan")


def register(sub, common):
    p = add_command(sub, common, "compare-completion", run, out="output directory")
    p.add_argument(
        "--scale",
        default="small",
        choices=sorted(SIZES),
        help="preset of how much is built and compared (default: small)",
    )
    p.add_argument("--prior", type=Path, default=None, help="a prior directory (build-prior) to reuse")
    p.add_argument(
        "--avp",
        type=Path,
        default=None,
        help="an AVP directory: labels completions with it "
        "(default: a small CNN trained on complete training canvases)",
    )
    p.add_argument("--vae", type=Path, default=None, help="a VAE directory to reuse")
    p.add_argument("--cgan", type=Path, default=None, help="a conditional GAN directory to reuse")
    p.add_argument("--cluttered", action="store_true", help="cluttered MNIST canvases (default: translated)")
    for key in ("prior_rows", "train_images", "vae_epochs", "vae_width", "cgan_epochs", "nuts_warmup", "nuts_samples"):
        p.add_argument(
            "--" + key.replace("_", "-"),
            type=int,
            default=None,
            help=f"override the size's {key} (small: {SIZES['small'][key]}, full: {SIZES['full'][key]})",
        )
    _add_method_arguments(p)
    add_config_arguments(p, CompareConfig, skip=("seed",))  # --seed is the shared option


def _add_method_arguments(p) -> None:
    """The flags that choose the methods and tune each one (NUTS, the VAE, the generative prior, a store)."""
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(DEFAULT_METHODS),
        choices=METHODS,
        help="methods to compare (default: %(default)s; 'generative' needs MNIST canvases, 'cgan' is "
        "opt-in: it does not condition on the glimpses)",
    )
    p.add_argument(
        "--gen-prior",
        type=Path,
        default=None,
        help="a generative-process prior directory (build-prior "
        "--kind generative) to reuse (default: built in --out, 3 s)",
    )
    p.add_argument(
        "--sequences",
        type=Path,
        default=None,
        help="a sequence store (generate --split test): also "
        "compare along its near-optimal sequences (needs --avp, the store's AVP)",
    )
    p.add_argument(
        "--slow-images", type=int, default=None, help="run NUTS and the cGAN on the first N images only (default: all)"
    )
    p.add_argument(
        "--nuts-sigma",
        type=float,
        default=None,
        help="a fixed std of NUTS's glimpse likelihood (pixels in [0,1]; default: the noise model of --nuts-noise)",
    )
    p.add_argument(
        "--nuts-noise",
        default="importance",
        choices=["importance", "generative"],
        help="whose noise model NUTS uses: the database prior's schedule (Gaussian) or the generative "
        "prior's (schedule and clutter) (default: importance; see docs/generative_prior.md)",
    )
    p.add_argument("--nuts-chains", type=int, default=4, help="NUTS chains per completion (default: 4)")
    p.add_argument(
        "--nuts-chain-method",
        default="sequential",
        choices=["sequential", "vectorized"],
        help="independent chains one after the other, or one NUTS over their product space "
        "(default: sequential; vectorized is ~2.5x faster but mixes worse, see completion.nuts)",
    )
    p.add_argument(
        "--vae-decoder",
        default="glyph",
        choices=["glyph", "conv"],
        help="VAE decoder (default: glyph, a decoded digit translated onto the canvas; see completion.vae)",
    )


def _require_dir(path, flag):
    if path is not None and not Path(path).is_dir():
        raise FileNotFoundError(f"{flag} {path} does not exist (expected an artefact directory)")


def _check_args(args, size):
    for path, flag in (
        (args.prior, "--prior"),
        (args.avp, "--avp"),
        (args.vae, "--vae"),
        (args.cgan, "--cgan"),
        (args.gen_prior, "--gen-prior"),
        (args.sequences, "--sequences"),
    ):
        _require_dir(path, flag)
    if args.nuts_sigma is not None and not args.nuts_sigma > 0:
        raise ValueError(f"--nuts-sigma must be positive, got {args.nuts_sigma}")
    if args.nuts_chains < 1:
        raise ValueError(f"--nuts-chains must be a positive int, got {args.nuts_chains}")
    if args.slow_images is not None and args.slow_images < 1:
        raise ValueError(f"--slow-images must be a positive int, got {args.slow_images}")
    if args.sequences is not None and args.avp is None:
        raise ValueError("--sequences needs --avp (the AVP whose dataset and sensor the store was made with)")
    if args.gen_prior is not None and "generative" not in args.methods:
        raise ValueError(f"--gen-prior was given but --methods {args.methods} leaves out 'generative'")
    if args.nuts_noise == "generative" and "generative" not in args.methods and args.nuts_sigma is None:
        raise ValueError("--nuts-noise generative needs the 'generative' method (its prior's noise model)")
    if (
        args.nuts_noise == "importance"
        and "importance" not in args.methods
        and args.nuts_sigma is None
        and "nuts-vae" in args.methods
    ):
        raise ValueError(
            "--nuts-noise importance needs the 'importance' method (its noise schedule); "
            "give --nuts-sigma or --nuts-noise generative"
        )
    for key in ("prior_rows", "train_images", "vae_epochs", "vae_width", "cgan_epochs", "nuts_warmup", "nuts_samples"):
        value = getattr(args, key, None)
        if value is not None:
            if value < (0 if key.endswith("epochs") or key == "nuts_warmup" else 1):
                raise ValueError(f"--{key.replace('_', '-')} must be a positive int, got {value}")
            size[key] = value
    return size


def _data(args, cfg, seed):
    """(grid, spec or None, train images, train labels, test images, test labels, what the images are)."""
    from ..data.mnist import load_digits, render_canvases
    from ..runtime import derive_seed, generator
    from ..sensor import Sensor

    if args.avp is not None:  # the AVP's dataset, sensor and test split, images in their order
        from ..artifacts import read_manifest
        from ..data.spec import DatasetSpec

        spec = DatasetSpec.from_dict(read_manifest(args.avp)["config"]["data"], f"--avp {args.avp}")
        train, test = spec.load("train"), spec.load("test")
        n = min(args.train_images_n, len(train))
        return (
            test.grid,
            spec,
            train.images[:n].float(),
            train.labels[:n],
            test.images.float(),
            test.labels,
            f"{spec.name} test images 0..",
        )
    digits, labels = load_digits("train")
    cluttered = bool(args.cluttered)
    train_images, train_labels, _ = render_canvases(
        digits, labels, args.train_images_n, generator(derive_seed(seed, "completion-train")), cluttered=cluttered
    )
    test_digits, test_labels_all = load_digits("test")
    test_images, test_labels, _ = render_canvases(
        test_digits,
        test_labels_all,
        cfg.num_images,
        generator(derive_seed(seed, "completion-test")),
        cluttered=cluttered,
    )
    kind = "cluttered" if cluttered else "translated"
    return (
        Sensor.mnist(),
        None,
        train_images.float() / 255,
        train_labels,
        test_images.float() / 255,
        test_labels,
        f"rendered {kind} MNIST test canvases",
    )


def _sampler_importance(args, out, grid, cluttered, size, device, timings):
    """The paper's importance sampler over a PCA-indexed database (built into ``out/prior`` unless given)."""
    from ..completion.database import mnist_canvas_source
    from ..completion.importance import ImportanceCompletion
    from ..completion.pca_index import PCAIndexConfig
    from ..completion.prior import build_prior

    prior_dir = args.prior or out / "prior"
    if args.prior is None and not (prior_dir / "manifest.json").is_file():
        t0 = time.perf_counter()
        build_prior(
            prior_dir,
            mnist_canvas_source("train", cluttered=cluttered),
            size["prior_rows"],
            grid,
            PCAIndexConfig(components=size["pca_components"]),
            seed=args.seed,
        )
        timings["build_prior_s"] = round(time.perf_counter() - t0, 1)
    return ImportanceCompletion.from_prior(prior_dir, grid=grid, k1=size["k1"], device=device), prior_dir


def _sampler_generative(args, out, grid, spec, cluttered, size, timings):
    """Importance sampling over the canvases' generative process (digit x offset x clutter)."""
    from ..completion.generative import build_generative_prior, open_generative_prior
    from ..data.spec import DatasetSpec

    gen_dir = args.gen_prior or out / "gen-prior"
    if args.gen_prior is None and not (gen_dir / "manifest.json").is_file():
        spec_gen = (
            spec
            if spec is not None
            else DatasetSpec.make(
                "cluttered-mnist" if cluttered else "translated-mnist", options={"scales": grid.scales}
            )
        )
        t0 = time.perf_counter()
        build_generative_prior(gen_dir, spec_gen, seed=args.seed)
        timings["build_gen_prior_s"] = round(time.perf_counter() - t0, 1)
    return open_generative_prior(gen_dir, grid=grid, k1=size["k1"]), gen_dir


def _vae_held_out(args, spec, test_images, cluttered):
    """Held-out canvases for the VAE's diagnostics: the AVP's test split's last 200 (the comparison uses the first)."""
    if spec is not None:
        return test_images[-200:]
    from ..data.mnist import load_digits, render_canvases
    from ..runtime import derive_seed, generator

    d, lab = load_digits("test")
    return (
        render_canvases(d, lab, 200, generator(derive_seed(args.seed, "completion-vae")), cluttered=cluttered)[
            0
        ].float()
        / 255
    )


def _sampler_nuts(args, out, grid, spec, cluttered, size, device, timings, train_images, test_images, samplers):
    """NUTS in a VAE's latent space with the noise model of one of the importance samplers; also the VAE's
    diagnostics (active units, reconstruction ratio: posterior collapse gives 0 and ~1) and their figure."""
    from ..completion.nuts import NUTSCompletion, NUTSConfig
    from ..completion.vae import VAEConfig, evaluate_vae, load_vae, train_vae
    from ..plots.completion import plot_vae_diagnostics
    from ..runtime import derive_seed, generator

    vae_dir = args.vae or out / "vae"
    if args.vae is None and not (vae_dir / "manifest.json").is_file():
        t0 = time.perf_counter()
        train_vae(
            train_images,
            grid,
            VAEConfig(epochs=size["vae_epochs"], width=size["vae_width"], decoder=args.vae_decoder, seed=args.seed),
            device=device,
            out_dir=vae_dir,
        )
        timings["train_vae_s"] = round(time.perf_counter() - t0, 1)
    vae, vae_grid = load_vae(vae_dir, device=device)
    check_sensor(vae_grid, grid, f"--vae {vae_dir}", "the comparison's sensor")
    vae_held = _vae_held_out(args, spec, test_images, cluttered)
    vae_eval = evaluate_vae(vae, vae_held)
    vae_summary = {
        "active_units": vae_eval["active_units"],
        "latent_dim": vae.latent_dim,
        "recon_ratio": round(vae_eval["recon_ratio"], 4),
        "kl_total": round(vae_eval["kl_total"], 3),
        "kl_per_dim": [round(float(v), 3) for v in vae_eval["kl_per_dim"]],
        "decoder": vae.decoder,
    }
    figure = plot_vae_diagnostics(
        vae,
        vae_held[:8],
        vae_eval["kl_per_dim"],
        out / "vae_diagnostics.png",
        generator(derive_seed(args.seed, "completion-vae-prior")),
    )
    nuts_cfg = NUTSConfig(
        sigma=args.nuts_sigma,
        warmup_steps=size["nuts_warmup"],
        num_samples=size["nuts_samples"],
        num_chains=args.nuts_chains,
        chain_method=args.nuts_chain_method,
    )
    sampler = (
        NUTSCompletion(vae, grid, nuts_cfg)
        if args.nuts_sigma is not None
        else NUTSCompletion.matching(vae, samplers[args.nuts_noise], nuts_cfg)
    )
    return sampler, vae_dir, vae_summary, figure


def _sampler_cgan(args, out, grid, size, device, timings, train_images):
    """The conditional GAN (opt-in)."""
    from ..completion.cgan import CGANCompletion, CGANConfig, load_cgan, train_cgan

    cgan_dir = args.cgan or out / "cgan"
    if args.cgan is None and not (cgan_dir / "manifest.json").is_file():
        t0 = time.perf_counter()
        train_cgan(
            train_images, grid, CGANConfig(epochs=size["cgan_epochs"], seed=args.seed), device=device, out_dir=cgan_dir
        )
        timings["train_cgan_s"] = round(time.perf_counter() - t0, 1)
    G, cgan_grid, noise_std = load_cgan(cgan_dir, device=device)
    check_sensor(cgan_grid, grid, f"--cgan {cgan_dir}", "the comparison's sensor")
    return CGANCompletion(G, grid, noise_std), cgan_dir


def _labeller(args, grid, device, size, train_images, train_labels, inputs):
    """Who labels the completions: the AVP (everything observed, also the reference column: its P(true label)
    given the same glimpses) or a small CNN trained on complete canvases."""
    from ..completion.compare import avp_classifier, avp_label_posterior, train_label_classifier

    if args.avp is None:
        return (
            train_label_classifier(train_images, train_labels, 10, epochs=size["classifier_epochs"], seed=args.seed),
            "a small CNN trained on complete training canvases",
            None,
        )
    from ..posterior import load_avp

    avp = load_avp(args.avp, device=device)
    check_sensor(avp.grid, grid, f"--avp {args.avp}", "its dataset's sensor")
    inputs["avp"] = str(args.avp)
    return avp_classifier(avp), "AVP (all pixels observed)", avp_label_posterior(avp, grid)


def _store_pass(args, cfg, size, grid, spec, test_images, test_labels):
    """The comparison pass along a sequence store's near-optimal sequences of the test canvases."""
    from ..design.store import SequenceStore

    store = SequenceStore.open(args.sequences)
    check_sensor(store.grid, grid, f"--sequences {args.sequences}", f"--avp {args.avp}'s sensor")
    if store.config.get("split", "test") != "test" or store.config.get("dataset") != spec.name:
        raise ValueError(
            f"--sequences {args.sequences} holds {store.config.get('dataset')} "
            f"{store.config.get('split')} sequences; --avp {args.avp} compares on {spec.name} test"
        )
    seqs = store.sequences()
    idx = sorted(i for i in seqs if i < len(test_images))[: cfg.num_images]
    counts = tuple(t for t in cfg.glimpse_counts if t <= store.T)
    if not idx or not counts:
        raise ValueError(
            f"--sequences {args.sequences}: no usable sequences ({len(seqs)} images, T = "
            f"{store.T}, glimpse counts {cfg.glimpse_counts})"
        )
    store_cfg = build_config(
        CompareConfig,
        args,
        **{
            **{k: v for k, v in size["compare"].items() if getattr(args, k, None) is None},
            "glimpse_counts": counts,
            "num_images": len(idx),
        },
    )
    return (
        "near-optimal",
        test_images[idx],
        test_labels[idx],
        torch.stack([seqs[i][: store.T] for i in idx]),
        store_cfg,
    )


def _note(args, labeller, described, samplers, vae_summary, limit) -> str:
    note = f"Labels of completions from {labeller}. Held-out {described}; scale '{args.scale}'."
    if vae_summary is not None:
        nuts = samplers["nuts-vae"]
        noise = (
            f"fixed sigma {args.nuts_sigma}"
            if args.nuts_sigma is not None
            else f"the {args.nuts_noise} sampler's noise model"
        )
        note += (
            f" NUTS: {nuts.cfg.num_chains} {nuts.cfg.chain_method} chains, {nuts.cfg.warmup_steps} warm-up + "
            f"{nuts.cfg.num_samples} draws each, {noise}. The VAE ({vae_summary['decoder']} decoder) has "
            f"{vae_summary['active_units']} of {vae_summary['latent_dim']} active latent units and "
            f"reconstructs held-out canvases with {vae_summary['recon_ratio']:.2f} x the squared error of their "
            f"mean image (1 would be posterior collapse)."
        )
    if limit:
        note += f" {', '.join(limit)}: the first {args.slow_images} images of each sequence kind only."
    return note


def run(args):
    """Complete held-out MNIST canvases after 1..4 glimpses with the paper's importance sampler, NUTS in a VAE's
    latent space and a pix2pix-style conditional GAN; write log-likelihood, diversity, label agreement and time
    tables (CSV, JSON, markdown) and sample grids. Trains or builds what is not given (and reuses it in --out)."""
    from ..completion.report import write_comparison
    from ..runtime import resolve_device, seed_everything
    from ._common import check_out_dir

    check_out_dir(args.out)
    size = _check_args(args, dict(SIZES[args.scale]))
    preset = {k: v for k, v in size["compare"].items() if getattr(args, k, None) is None}
    cfg = build_config(CompareConfig, args, **preset)
    seed_everything(args.seed)
    device = resolve_device(args.device)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    methods = list(dict.fromkeys(args.methods))
    args.train_images_n = size["train_images"]
    grid, spec, train_images, train_labels, test_images, test_labels, described = _data(args, cfg, args.seed)
    cluttered = bool(args.cluttered) if spec is None else spec.name.startswith("cluttered")
    timings, inputs, samplers = {}, {}, {}
    setting = (out, grid, spec, cluttered, size, device)
    vae_summary, paths_vae = _build_samplers(
        args, methods, setting, (train_images, test_images), (samplers, inputs, timings)
    )
    inputs = {k: str(v) for k, v in inputs.items()}
    classifier, labeller, reference = _labeller(args, grid, device, size, train_images, train_labels, inputs)
    limit = {m: args.slow_images for m in SLOW_METHODS if m in samplers and args.slow_images is not None}
    passes = _passes(args, cfg, size, grid, spec, test_images, test_labels, inputs)
    t0 = time.perf_counter()
    options = dict(classifier=classifier, reference=reference, max_images=limit)
    config = {**config_to_dict(cfg), "sequences": [p[0] for p in passes], "slow_images": args.slow_images}
    result = _compare(samplers, passes, grid, options, {**config, "methods": methods})
    timings["compare_s"] = round(time.perf_counter() - t0, 1)
    note = _note(args, labeller, described, samplers, vae_summary, limit)
    paths = write_comparison(result, out, grid, inputs, note=note)
    if paths_vae is not None:
        paths["vae_figure"] = str(paths_vae)
    sizes = {k: v for k, v in size.items() if k != "compare"}
    summary = dict(scale=args.scale, sizes=sizes, device=str(device), cluttered=cluttered, labeller=labeller)
    summary.update(methods=methods, vae=vae_summary, timings=timings, files=paths, config=result.config)
    write_summary(out, {**summary, "table": _rounded(result.table)})
    return 0


def _passes(args, cfg, size, grid, spec, test_images, test_labels, inputs: dict) -> list[tuple]:
    """The kinds of sequence compared: random (or ink) locations, and a store's near-optimal sequences."""
    n, kind = cfg.num_images, "random" if cfg.locations == "uniform" else cfg.locations
    passes = [(kind, test_images[:n], test_labels[:n], None, cfg)]
    if args.sequences is not None:
        passes.append(_store_pass(args, cfg, size, grid, spec, test_images, test_labels))
        inputs["sequences"] = str(args.sequences)
    return passes


def _rounded(table: list[dict]) -> list[dict]:
    """The summary's copy of the table: its means, rounded (the intervals are in the written tables)."""
    kept = [{k: v for k, v in r.items() if not k.endswith(("_sem", "_lo", "_hi"))} for r in table]
    return [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in kept]


def _build_samplers(args, methods: list[str], setting: tuple, images: tuple, into: tuple) -> tuple:
    """Build (or reuse) the sampler of every method into ``samplers``, its input directory into ``inputs`` and its
    build time into ``timings`` (``into``); returns the VAE's summary and figure (None without NUTS)."""
    out, grid, spec, cluttered, size, device = setting
    train_images, test_images = images
    samplers, inputs, timings = into
    if "importance" in methods:
        samplers["importance"], inputs["prior"] = _sampler_importance(args, out, grid, cluttered, size, device, timings)
    if "generative" in methods:
        samplers["generative"], inputs["gen_prior"] = _sampler_generative(
            args, out, grid, spec, cluttered, size, timings
        )
    vae_summary, paths_vae = None, None
    if "nuts-vae" in methods:
        samplers["nuts-vae"], inputs["vae"], vae_summary, paths_vae = _sampler_nuts(
            args, out, grid, spec, cluttered, size, device, timings, train_images, test_images, samplers
        )
    if "cgan" in methods:
        samplers["cgan"], inputs["cgan"] = _sampler_cgan(args, out, grid, size, device, timings, train_images)
    return vae_summary, paths_vae


def _compare(samplers: dict, passes: list[tuple], grid, options: dict, config: dict):
    """One comparison over every pass (a kind of sequence and its images), its rows and examples pooled."""
    from ..completion.compare import Comparison, compare_completions
    from ..completion.metrics import summarise

    results = [
        compare_completions(samplers, images, labels, grid, pcfg, locations=loc, sequences=name, **options)
        for name, images, labels, loc, pcfg in passes
    ]
    rows = [r for res in results for r in res.rows]
    return Comparison(rows, summarise(rows), [e for res in results for e in res.examples], config)
