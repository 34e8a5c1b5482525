"""Side by side on the same glimpses: P(true label) from the generative-process prior's completions, from the
database prior's completions, and the AVP's, after t = 1..T glimpses of held-out test canvases.

    PYTHONPATH=. python examples/compare_generative_prior.py --avp AVP --db-prior PRIOR --gen-prior GPRIOR \\
        --num-images 200 --policy random --out runs/compare-gen.json

``--policy`` picks the glimpse sequences: ``random`` (distinct uniform locations), ``ink`` (locations drawn with
probability proportional to the ink the fovea would see, ``completion.compare.choose_locations``) or ``store``
(the sequences of a sequence store, ``--store DIR``, e.g. near-optimal ones made by ``generate --split test``).
Each (image, t) gets n = 200 completions from each prior (k1 = 1000 candidates; the database prior scores its
proposal against the true image's PCA reconstruction, as ``generate`` does); the completions' weighted label
histogram gives P(true label).  Means with 95 % intervals (normal, 1.96 standard errors over images) and the paired
difference generative - database.  Results are written as JSON (per-image rows too) and printed as a table.

``ppl-attention compare-completion --avp AVP --prior PRIOR --gen-prior GPRIOR --sequences STORE`` does the same
comparison with the library's metrics (and NUTS beside it); this script stays for its n = 200 label histograms and
the generative - database difference.
"""

import argparse
import time
from pathlib import Path

import torch

from ppl_attention.design.evaluate import mean_ci


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--avp", required=True, type=Path)
    ap.add_argument("--db-prior", type=Path, default=None, help="database prior (build-prior --kind database)")
    ap.add_argument("--gen-prior", required=True, type=Path, help="generative prior (build-prior --kind generative)")
    ap.add_argument("--num-images", type=int, default=200)
    ap.add_argument("-T", "--glimpses", type=int, default=5)
    ap.add_argument("--policy", default="random", choices=["random", "ink", "store"])
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--num-samples", type=int, default=200)
    ap.add_argument("--k1", type=int, default=1000)
    ap.add_argument(
        "--gen-sigma",
        type=float,
        nargs="+",
        default=None,
        help="the generative prior's noise schedule (0..255 after 1, 2, ... glimpses; default: its own)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from ppl_attention.artifacts import atomic_write_json, read_manifest
    from ppl_attention.completion.compare import avp_label_posterior, choose_locations
    from ppl_attention.completion.generative import open_generative_prior
    from ppl_attention.completion.importance import ImportanceCompletion
    from ppl_attention.data.spec import DatasetSpec
    from ppl_attention.posterior import load_avp
    from ppl_attention.runtime import derive_seed, generator
    from ppl_attention.sensor import check_sensor

    avp = load_avp(args.avp)
    spec = DatasetSpec.from_dict(read_manifest(args.avp)["config"]["data"], f"--avp {args.avp}")
    data = spec.load("test")
    grid = avp.grid
    gen = open_generative_prior(args.gen_prior, grid=grid, k1=args.k1, sigma=args.gen_sigma)
    samplers = {"generative": gen}
    if args.db_prior is not None:
        samplers["database"] = ImportanceCompletion.from_prior(args.db_prior, grid=grid, k1=args.k1)
    B, T = min(args.num_images, len(data)), args.glimpses
    images, labels = data.images[:B], data.labels[:B]
    if args.policy == "store":
        from ppl_attention.design.store import SequenceStore

        store = SequenceStore.open(args.store)
        check_sensor(store.grid, grid, f"--store {args.store}", f"--avp {args.avp}'s sensor")
        seqs = store.sequences()
        idx = sorted(i for i in seqs if i < len(data))[:B]
        images, labels = data.images[idx], data.labels[idx]
        locations = torch.stack([seqs[i][:T] for i in idx])
        B = len(idx)
    else:
        g = generator(derive_seed(args.seed, "compare-generative", args.policy))
        locations = choose_locations(images, grid, T, g, "uniform" if args.policy == "random" else "ink")
    glimpses = grid.extract(images, locations)  # (B, T, k*C, h, w)
    rows = []
    t_start = time.perf_counter()
    reference = avp_label_posterior(avp, grid)
    for t in range(1, T + 1):  # the AVP on all images at once
        p = reference(images, locations[:, :t])
        for i in range(B):
            rows.append({"image": i, "t": t, "label": int(labels[i]), "avp": float(p[i, labels[i]])})
    by_key = {(r["image"], r["t"]): r for r in rows}
    for i in range(B):  # one completion per (image, t, prior): each call is batched inside
        for t in range(1, T + 1):
            r = by_key[(i, t)]
            for name, s in samplers.items():
                gen_ = generator(derive_seed(args.seed, "compare-generative", name, i, t))
                start = time.perf_counter()
                out = s.sample(
                    locations[i, :t], glimpses[i, :t], args.num_samples, generator=gen_, true_image=images[i]
                )
                r[name + "_seconds"] = time.perf_counter() - start
                r[name] = float(out.label_posterior(10)[labels[i]])
                r[name + "_ess"] = float(out.diagnostics.get("ess", out.ess))
        if (i + 1) % 20 == 0:
            print(f"  {i + 1}/{B} images, {time.perf_counter() - t_start:.0f} s", flush=True)
    table = []
    for t in range(1, T + 1):
        rs = [r for r in rows if r["t"] == t]
        entry = {"t": t, "avp": mean_ci([r["avp"] for r in rs])}
        for name in samplers:
            entry[name] = mean_ci([r[name] for r in rs])
            entry[name + "_median_ess"] = float(torch.tensor([r[name + "_ess"] for r in rs]).median())
            entry[name + "_seconds"] = float(torch.tensor([r[name + "_seconds"] for r in rs]).mean())
            entry[name + "_minus_avp"] = mean_ci([r[name] - r["avp"] for r in rs])
        if "database" in samplers:
            entry["generative_minus_database"] = mean_ci([r["generative"] - r["database"] for r in rs])
        table.append(entry)
    result = {
        "avp": str(args.avp),
        "gen_prior": str(args.gen_prior),
        "db_prior": str(args.db_prior),
        "dataset": spec.to_dict(),
        "policy": args.policy,
        "images": B,
        "num_samples": args.num_samples,
        "k1": args.k1,
        "seed": args.seed,
        "gen_sigma": list(gen.sigma.sigmas) if hasattr(gen.sigma, "sigmas") else None,
        "table": table,
        "rows": rows,
    }
    atomic_write_json(args.out, result)
    fmt = lambda c: f"{c['mean']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]"  # noqa: E731
    print(f"P(true label), {spec.name} test, {B} images, {args.policy} sequences (mean [95 % interval])")
    for e in table:
        line = f"t={e['t']}: AVP {fmt(e['avp'])}"
        for name in samplers:
            line += f" | {name} {fmt(e[name])} (median ESS {e[name + '_median_ess']:.1f}, {e[name + '_seconds']:.3f} s)"
        if "generative_minus_database" in e:
            line += f" | gen - db {fmt(e['generative_minus_database'])}"
        line += f" | gen - AVP {fmt(e['generative_minus_avp'])}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
