"""NUTS (several chains) against importance sampling on the same glimpses: R-hat, ESS, diversity, P(true label).

    PYTHONPATH=. python examples/nuts_vs_importance.py --avp runs/avp-cluttered --db-prior runs/prior-cluttered \\
        --gen-prior runs/gp-cluttered-48 --vae runs/vae-cluttered --num-images 6 --out runs/nuts_vs_is.jsonl

For each of the first ``--num-images`` test canvases of the AVP's dataset and t = 1..4 uniformly random distinct
glimpses, 16 completions from the database prior, from the generative prior and from NUTS in the VAE's latent space
(``--chains`` chains, ``--warmup`` + ``--draws`` iterations each, with the database prior's noise model:
``NUTSCompletion.matching``).  One JSON line per (image, t, method), appended as it is measured (a slow NUTS run
can be read before it ends); ``--summary`` prints the table of a finished or partial file.  The VAE is trained
with ``completion.vae.train_vae`` (e.g. on the AVP's training canvases, glyph decoder, width 16, 10 epochs).
"""

import argparse
import json
import time
from pathlib import Path

import torch


def measure(args):
    from ppl_attention.artifacts import read_manifest
    from ppl_attention.completion.compare import avp_classifier, choose_locations
    from ppl_attention.completion.metrics import glimpse_rmse, label_agreement, pairwise_diversity, unobserved_region
    from ppl_attention.completion.generative import open_generative_prior
    from ppl_attention.completion.importance import ImportanceCompletion
    from ppl_attention.completion.nuts import NUTSCompletion, NUTSConfig
    from ppl_attention.completion.vae import load_vae
    from ppl_attention.data.spec import DatasetSpec
    from ppl_attention.posterior import load_avp
    from ppl_attention.runtime import derive_seed, generator

    avp = load_avp(args.avp)
    grid = avp.grid
    vae, _ = load_vae(args.vae)
    spec = DatasetSpec.from_dict(read_manifest(args.avp)["config"]["data"], f"--avp {args.avp}")
    data = spec.load("test")
    B = args.num_images
    x, labels = data.images[:B].float(), data.labels[:B]
    db = ImportanceCompletion.from_prior(args.db_prior, grid=grid, k1=1000)
    gen = open_generative_prior(args.gen_prior, grid=grid, k1=1000)
    nuts = NUTSCompletion.matching(
        vae,
        db,
        NUTSConfig(
            warmup_steps=args.warmup, num_samples=args.draws, num_chains=args.chains, chain_method=args.chain_method
        ),
    )
    samplers = {"database": db, "generative": gen, "nuts": nuts}
    classify = avp_classifier(avp)
    loc = choose_locations(x, grid, 4, generator(derive_seed(args.seed, "nuts-measure")), "uniform")
    with open(args.out, "a") as f:
        for i in range(B):
            for t in range(1, 5):
                y = grid.extract(x[i : i + 1], loc[i : i + 1, :t])[0]
                region = unobserved_region(grid.mask(loc[i : i + 1, :t])[:, :1])
                for name, s in samplers.items():
                    start = time.perf_counter()
                    o = s.sample(
                        loc[i, :t],
                        y,
                        16,
                        generator=generator(derive_seed(args.seed, "nm", name, i, t)),
                        true_image=x[i],
                    )
                    row = {
                        "image": i,
                        "t": t,
                        "method": name,
                        "seconds": time.perf_counter() - start,
                        "diversity": pairwise_diversity(o.images, o.weights, region),
                        "glimpse_rmse": glimpse_rmse(o.images, o.weights, grid, loc[i, :t], y),
                        "label_agreement": label_agreement(classify(o.images).argmax(-1), o.weights, labels[i]),
                        "p_true_own": float(o.label_posterior(10)[labels[i]]) if o.labels is not None else None,
                        "ess": o.ess,
                    }
                    row.update(
                        {
                            k: o.diagnostics[k]
                            for k in ("r_hat_max", "ess_min", "ess_mean", "divergences", "sigma", "sigma_p")
                            if k in o.diagnostics
                        }
                    )
                    f.write(json.dumps(row) + "\n")
                    f.flush()


def summary(path):
    """Per t, over the (image, t) pairs NUTS finished: R-hat, ESS and diversity of NUTS against the samplers'."""
    rows = [json.loads(line) for line in open(path)]
    done = {(r["image"], r["t"]) for r in rows if r["method"] == "nuts"}
    print(
        "| t | pairs | NUTS R-hat max (mean; worst) | share < 1.05 | NUTS ESS (min dim, mean) | diversity NUTS | "
        "database | generative | NUTS / database | P(true): NUTS (AVP labels) | database (own) | "
        "generative (own) | NUTS s / completion |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in sorted({k[1] for k in done}):
        keys = sorted(k for k in done if k[1] == t)
        by = {
            m: [next(r for r in rows if r["method"] == m and (r["image"], r["t"]) == k) for k in keys]
            for m in ("nuts", "database", "generative")
        }
        mean = lambda v: sum(v) / len(v)  # noqa: E731
        rh = [r["r_hat_max"] for r in by["nuts"]]
        ratio = mean([a["diversity"] / b["diversity"] for a, b in zip(by["nuts"], by["database"])])
        print(
            f"| {t} | {len(keys)} | {mean(rh):.3f}; {max(rh):.3f} | {mean([v < 1.05 for v in rh]):.2f} | "
            f"{mean([r['ess_min'] for r in by['nuts']]):.0f} | {mean([r['diversity'] for r in by['nuts']]):.3f} | "
            f"{mean([r['diversity'] for r in by['database']]):.3f} | "
            f"{mean([r['diversity'] for r in by['generative']]):.3f} | {ratio:.2f} | "
            f"{mean([r['label_agreement'] for r in by['nuts']]):.2f} | "
            f"{mean([r['p_true_own'] for r in by['database']]):.2f} | "
            f"{mean([r['p_true_own'] for r in by['generative']]):.2f} | "
            f"{mean([r['seconds'] for r in by['nuts']]):.0f} |"
        )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--avp", type=Path)
    ap.add_argument("--db-prior", type=Path)
    ap.add_argument("--gen-prior", type=Path)
    ap.add_argument("--vae", type=Path)
    ap.add_argument("--num-images", type=int, default=6)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--chain-method", default="sequential", choices=["sequential", "vectorized"])
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--draws", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--summary", action="store_true", help="print the table of --out and stop")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.summary:
        summary(args.out)
        return 0
    for name in ("avp", "db_prior", "gen_prior", "vae"):
        if getattr(args, name) is None or not getattr(args, name).is_dir():
            ap.error(f"--{name.replace('_', '-')} must be an existing directory, got {getattr(args, name)}")
    measure(args)
    summary(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
