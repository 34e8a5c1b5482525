"""``ppl-attention compare-completion``: importance sampling vs NUTS in a VAE vs a conditional GAN.

Builds (or reuses) a prior database with its PCA index, a VAE and a cGAN on MNIST canvases, then completes
held-out test canvases after 1..4 glimpses with each method and writes the tables and figures
(:mod:`ppl_attention.completion.compare`).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from ..completion.compare import CompareConfig
from ..config import add_config_arguments, build_config, config_to_dict
from ..sensor import check_sensor
from ._common import write_summary

log = logging.getLogger(__name__)

#: Sizes of everything the comparison trains or builds.  "small" trains on the CPU in a few minutes; "tiny" is
#: for smoke tests (seconds, meaningless numbers).
SIZES = {
    "tiny": {"prior_rows": 2000, "pca_components": 16, "k1": 100, "train_images": 128, "vae_epochs": 1, "vae_width": 8,
             "cgan_epochs": 1, "nuts_warmup": 15, "nuts_samples": 15, "classifier_epochs": 1,
             "compare": {"num_images": 2, "num_samples": 4, "glimpse_counts": (1, 2)}},
    "small": {"prior_rows": 20_000, "pca_components": 64, "k1": 500, "train_images": 2000, "vae_epochs": 10,
              "vae_width": 16,
              "cgan_epochs": 4, "nuts_warmup": 60, "nuts_samples": 60, "classifier_epochs": 3,
              "compare": {"num_images": 6, "num_samples": 16}},
    "full": {"prior_rows": 200_000, "pca_components": 256, "k1": 1000, "train_images": 20_000, "vae_epochs": 20,
             "vae_width": 32,
             "cgan_epochs": 10, "nuts_warmup": 200, "nuts_samples": 200, "classifier_epochs": 5,
             "compare": {"num_images": 50, "num_samples": 32}},
}


def register(sub, common):
    p = sub.add_parser("compare-completion", parents=[common],
                       help="compare image completions: importance sampling, NUTS in a VAE, conditional GAN",
                       description="Complete held-out MNIST canvases after 1..4 glimpses with the paper's "
                       "importance sampler, NUTS in a VAE's latent space and a pix2pix-style conditional GAN; "
                       "write log-likelihood, diversity, label agreement and time tables (CSV, JSON, markdown) "
                       "and sample grids. Trains or builds what is not given (and reuses it in --out).")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--size", default="small", choices=sorted(SIZES), help="size of what is built and compared "
                   "(default: small)")
    p.add_argument("--prior", type=Path, default=None, help="a prior directory (build-prior) to reuse")
    p.add_argument("--avp", type=Path, default=None, help="an AVP directory: labels completions with it "
                   "(default: a small CNN trained on complete training canvases)")
    p.add_argument("--vae", type=Path, default=None, help="a VAE directory to reuse")
    p.add_argument("--cgan", type=Path, default=None, help="a conditional GAN directory to reuse")
    p.add_argument("--cluttered", action="store_true", help="cluttered MNIST canvases (default: translated)")
    for key in ("prior_rows", "train_images", "vae_epochs", "vae_width", "cgan_epochs", "nuts_warmup",
                "nuts_samples"):
        p.add_argument("--" + key.replace("_", "-"), type=int, default=None,
                       help=f"override the size's {key} (small: {SIZES['small'][key]}, full: {SIZES['full'][key]})")
    p.add_argument("--nuts-sigma", type=float, default=0.1, help="std of NUTS's Gaussian glimpse likelihood")
    p.add_argument("--vae-decoder", default="glyph", choices=["glyph", "conv"],
                   help="VAE decoder (default: glyph, a decoded digit translated onto the canvas; see "
                        "completion.vae)")
    add_config_arguments(p, CompareConfig, skip=("seed",))  # --seed is the shared option
    p.set_defaults(func=run)


def _require_dir(path, flag):
    if path is not None and not Path(path).is_dir():
        raise FileNotFoundError(f"{flag} {path} does not exist (expected an artefact directory)")


def run(args):
    from ..completion.cgan import CGANCompletion, CGANConfig, load_cgan, train_cgan
    from ..completion.compare import avp_classifier, compare_completions, train_label_classifier, write_comparison
    from ..completion.database import mnist_canvas_source
    from ..completion.importance import ImportanceCompletion
    from ..completion.nuts import NUTSCompletion, NUTSConfig
    from ..completion.pca_index import PCAIndexConfig
    from ..completion.prior import build_prior
    from ..completion.vae import VAEConfig, evaluate_vae, load_vae, train_vae
    from ..data.mnist import load_digits, render_canvases
    from ..sensor import GlimpseGrid
    from ..plots.completion import plot_vae_diagnostics
    from ..runtime import derive_seed, generator, resolve_device, seed_everything

    from ._common import check_out_dir

    for path, flag in ((args.prior, "--prior"), (args.avp, "--avp"), (args.vae, "--vae"), (args.cgan, "--cgan")):
        _require_dir(path, flag)
    check_out_dir(args.out)
    if not args.nuts_sigma > 0:
        raise ValueError(f"--nuts-sigma must be positive, got {args.nuts_sigma}")
    size = dict(SIZES[args.size])
    for key in ("prior_rows", "train_images", "vae_epochs", "vae_width", "cgan_epochs", "nuts_warmup",
                "nuts_samples"):
        value = getattr(args, key, None)
        if value is not None:
            if value < (0 if key.endswith("epochs") or key == "nuts_warmup" else 1):
                raise ValueError(f"--{key.replace('_', '-')} must be a positive int, got {value}")
            size[key] = value
    cfg = build_config(CompareConfig, args, **{k: v for k, v in size["compare"].items()
                                              if getattr(args, k, None) is None})
    seed_everything(args.seed)
    device = resolve_device(args.device)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    grid = GlimpseGrid.mnist()
    cluttered = bool(args.cluttered)
    timings, inputs = {}, {}

    # Training canvases (train split) and held-out canvases (test split), rendered once per seed.
    digits, labels = load_digits("train")
    train_images, train_labels, _ = render_canvases(digits, labels, size["train_images"],
                                                    generator(derive_seed(args.seed, "completion-train")),
                                                    cluttered=cluttered)
    train_images = train_images.float() / 255
    test_digits, test_labels_all = load_digits("test")
    test_images, test_labels, _ = render_canvases(test_digits, test_labels_all, cfg.num_images,
                                                  generator(derive_seed(args.seed, "completion-test")),
                                                  cluttered=cluttered)
    test_images = test_images.float() / 255

    # 1. The paper's importance sampler over a PCA-indexed database.
    prior_dir = args.prior or out / "prior"
    if args.prior is None and not (prior_dir / "manifest.json").is_file():
        t0 = time.perf_counter()
        build_prior(prior_dir, mnist_canvas_source("train", cluttered=cluttered), size["prior_rows"], grid,
                    PCAIndexConfig(components=size["pca_components"]), seed=args.seed)
        timings["build_prior_s"] = round(time.perf_counter() - t0, 1)
    importance = ImportanceCompletion.from_prior(prior_dir, grid=grid, k1=size["k1"], device=device)
    inputs["prior"] = str(prior_dir)

    # 2. NUTS in a VAE's latent space.
    vae_dir = args.vae or out / "vae"
    if args.vae is None and not (vae_dir / "manifest.json").is_file():
        t0 = time.perf_counter()
        train_vae(train_images, grid, VAEConfig(epochs=size["vae_epochs"], width=size["vae_width"],
                                                decoder=args.vae_decoder, seed=args.seed), device=device,
                  out_dir=vae_dir)
        timings["train_vae_s"] = round(time.perf_counter() - t0, 1)
    vae, vae_grid = load_vae(vae_dir, device=device)
    check_sensor(vae_grid, grid, f"--vae {vae_dir}", "the comparison's sensor")
    # Whether the VAE uses its latent (posterior collapse gives 0 active units and recon_ratio ~1).
    vae_held = render_canvases(test_digits, test_labels_all, 200, generator(derive_seed(args.seed, "completion-vae")),
                               cluttered=cluttered)[0].float() / 255
    vae_eval = evaluate_vae(vae, vae_held)
    vae_summary = {"active_units": vae_eval["active_units"], "latent_dim": vae.latent_dim,
                   "recon_ratio": round(vae_eval["recon_ratio"], 4), "kl_total": round(vae_eval["kl_total"], 3),
                   "kl_per_dim": [round(float(v), 3) for v in vae_eval["kl_per_dim"]], "decoder": vae.decoder}
    paths_vae = plot_vae_diagnostics(vae, vae_held[:8], vae_eval["kl_per_dim"], out / "vae_diagnostics.png",
                                     generator(derive_seed(args.seed, "completion-vae-prior")))
    nuts = NUTSCompletion(vae, grid, NUTSConfig(sigma=args.nuts_sigma, warmup_steps=size["nuts_warmup"],
                                                num_samples=size["nuts_samples"]))
    inputs["vae"] = str(vae_dir)

    # 3. The conditional GAN.
    cgan_dir = args.cgan or out / "cgan"
    if args.cgan is None and not (cgan_dir / "manifest.json").is_file():
        t0 = time.perf_counter()
        train_cgan(train_images, grid, CGANConfig(epochs=size["cgan_epochs"], seed=args.seed), device=device,
                   out_dir=cgan_dir)
        timings["train_cgan_s"] = round(time.perf_counter() - t0, 1)
    G, cgan_grid, noise_std = load_cgan(cgan_dir, device=device)
    check_sensor(cgan_grid, grid, f"--cgan {cgan_dir}", "the comparison's sensor")
    inputs["cgan"] = str(cgan_dir)

    # Who labels the completions: the AVP (everything observed) or a small CNN on complete canvases.
    if args.avp is not None:
        from ..posterior import load_avp

        avp = load_avp(args.avp, device=device)
        check_sensor(avp.grid, grid, f"--avp {args.avp}", "the comparison's sensor")
        classifier, labeller = avp_classifier(avp), "AVP (all pixels observed)"
        inputs["avp"] = str(args.avp)
    else:
        classifier = train_label_classifier(train_images, train_labels, 10, epochs=size["classifier_epochs"],
                                            seed=args.seed)
        labeller = "a small CNN trained on complete training canvases"

    samplers = {"importance": importance, "nuts-vae": nuts, "cgan": CGANCompletion(G, grid, noise_std)}
    t0 = time.perf_counter()
    result = compare_completions(samplers, test_images, test_labels, grid, cfg, classifier=classifier)
    timings["compare_s"] = round(time.perf_counter() - t0, 1)
    kind = "cluttered" if cluttered else "translated"
    paths = write_comparison(result, out, grid, inputs,
                             note=f"Labels of completions from {labeller}. Held-out {kind} "
                                  f"MNIST test canvases; size '{args.size}'. The VAE ({vae.decoder} decoder) has "
                                  f"{vae_summary['active_units']} of {vae.latent_dim} active latent units and "
                                  f"reconstructs held-out canvases with {vae_summary['recon_ratio']:.2f} x the "
                                  f"squared error of their mean image (1 would be posterior collapse).")
    paths["vae_figure"] = str(paths_vae)
    summary = {"size": args.size, "sizes": {k: v for k, v in size.items() if k != "compare"}, "device": str(device),
               "cluttered": cluttered, "labeller": labeller, "vae": vae_summary, "timings": timings, "files": paths,
               "config": config_to_dict(cfg),
               "table": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                          if not k.endswith("_sem")} for r in result.table]}
    write_summary(out, summary)
    return 0
