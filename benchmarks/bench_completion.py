"""Importance-sampling completion: seconds per query (K1 = 1000, K2 = 200) against a brute-force baseline.

The baseline computes the exact likelihood of EVERY database image with numpy (streaming the memmap) and then
samples K2 rows from the exact posterior -- what the PCA proposal avoids.  Both run in this process on the same
queries (t = 1..5 glimpses of held-out test canvases).  Figures are printed as JSON.
    python benchmarks/bench_completion.py --prior runs/prior-1M        # an existing prior (e.g. 1,000,000 rows)
    python benchmarks/bench_completion.py --quick                      # builds a 20,000-canvas prior first
    python benchmarks/bench_completion.py --prior runs/prior-cluttered-mnist --tile 5   # 1,000,000 rows (timing)

``--gen-prior DIR`` (``build-prior --kind generative``) also times the generative-process prior
(:mod:`ppl_attention.completion.generative`: importance sampling over 4,000 digits x 1,089 offsets = 4.4 M
canvases, before clutter) on the same queries, side by side, with the same K1 and K2:
    python benchmarks/bench_completion.py --prior runs/prior-cluttered --gen-prior runs/gp-cluttered \
        --queries 50 --threads 1 --no-brute-force

``--tile K`` writes a temporary copy of the prior with every array repeated K times (database rows, codes,
energies; same PCA), for timing a larger database when there is no time to build one; its posterior figures
are those of the untiled prior (each row K times), so only the seconds are meaningful.
"""

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ppl_attention.completion.database import mnist_canvas_source
from ppl_attention.completion.importance import ImportanceCompletion, open_prior
from ppl_attention.completion.pca_index import PCAIndexConfig
from ppl_attention.completion.prior import build_prior
from ppl_attention.data.mnist import load_digits, render_canvases
from ppl_attention.sensor import Sensor


def brute_force(db, grid, loc, glimpses, sigma, k2, rng, chunk=65_536):
    """Exact Gaussian log-likelihood of every database image (numpy), then K2 draws from the posterior."""
    ids = np.arange(int(np.prod(db.image_shape))).reshape(1, *db.image_shape)
    pix = grid.extract(torch.from_numpy(ids), torch.as_tensor(loc)[None])[0].reshape(-1).numpy()  # observed pixels
    y = glimpses.reshape(-1).numpy() * 255.0
    flat = db.images.reshape(len(db), -1)
    ll = np.empty(len(db))
    for s in range(0, len(db), chunk):
        x = flat[s : s + chunk][:, pix].astype(np.float32)
        ll[s : s + chunk] = -((x - y) ** 2).sum(1) / (2 * (sigma * 255.0) ** 2)
    p = np.exp(ll - ll.max())
    p /= p.sum()
    rows = rng.choice(len(db), size=k2, p=p)
    return db.get_uint8(np.unique(rows))


def tile_prior(src: Path, dst: Path, k: int) -> Path:
    """A copy of prior ``src`` with every row repeated ``k`` times (timing only; see the module docstring)."""
    import shutil as sh

    from ppl_attention.artifacts import read_manifest, write_manifest

    for sub in ("database", "pca"):
        (dst / sub).mkdir(parents=True)
    for sub, name, axis in (
        ("database", "images.npy", 0),
        ("database", "labels.npy", 0),
        ("pca", "codes.npy", 0),
        ("pca", "energies.npy", 1),
    ):
        a = np.load(src / sub / name, mmap_mode="r")
        shape = list(a.shape)
        shape[axis] *= k
        out = np.lib.format.open_memmap(dst / sub / name, mode="w+", dtype=a.dtype, shape=tuple(shape))
        for r in range(k):
            sl = slice(r * a.shape[axis], (r + 1) * a.shape[axis])
            if axis == 0:
                out[sl] = a
            else:
                out[:, sl] = a
        out.flush()
        del out
    for name in ("pca.safetensors", "pca.json", "positions.npy"):
        sh.copy(src / "pca" / name, dst / "pca" / name)
    db_m, ix_m, pr_m = (read_manifest(src / "database"), read_manifest(src / "pca"), read_manifest(src))
    tag = f"-tiled-x{k}"
    write_manifest(
        dst / "database",
        db_m["kind"],
        db_m["config"],
        db_m["inputs"],
        rows=db_m["rows"] * k,
        image_shape=db_m["image_shape"],
        label_shape=db_m["label_shape"],
        label_dtype=db_m["label_dtype"],
        checksum=db_m["checksum"] + tag,
    )
    write_manifest(
        dst / "pca",
        ix_m["kind"],
        ix_m["config"],
        {"database": db_m["checksum"] + tag},
        rows=ix_m["rows"] * k,
        components=ix_m["components"],
        n_positions=ix_m["n_positions"],
        explained_variance=ix_m["explained_variance"],
        fit_rows=ix_m["fit_rows"],
        checksum=ix_m["checksum"] + tag,
    )
    write_manifest(
        dst, pr_m["kind"], pr_m["config"], {"database": db_m["checksum"] + tag, "index": ix_m["checksum"] + tag}
    )
    return dst


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="build and use a 20,000-canvas prior")
    p.add_argument("--prior", type=Path, default=None, help="an existing prior directory")
    p.add_argument("--queries", type=int, default=5)
    p.add_argument("--k1", type=int, default=1000)
    p.add_argument("--k2", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tile", type=int, default=1, help="repeat the prior's rows this many times (timing only)")
    p.add_argument("--gen-prior", type=Path, default=None, help="also time this generative prior (side by side)")
    p.add_argument(
        "--gen-sigma",
        type=float,
        nargs="+",
        default=None,
        help="the generative prior's noise schedule (default: its own)",
    )
    p.add_argument("--no-brute-force", action="store_true", help="skip the brute-force baseline")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tmp = None
    if args.prior is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench-completion-"))
        size = 20_000 if args.quick else 1_000_000
        build_prior(
            tmp,
            mnist_canvas_source("train"),
            size,
            Sensor.mnist(),
            PCAIndexConfig(components=256, fit_samples=10_000),
            progress=False,
        )
        args.prior = tmp
    tiled = None
    if args.tile > 1:
        tiled = Path(tempfile.mkdtemp(prefix="bench-tiled-"))
        args.prior = tile_prior(args.prior, tiled / "prior", args.tile)
    db, index = open_prior(args.prior)
    sampler = ImportanceCompletion(db, index, k1=args.k1)
    grid = sampler.grid
    digits, labels = load_digits("test")
    images, true_labels, _ = render_canvases(digits, labels, args.queries, torch.Generator().manual_seed(0))
    images = images.float() / 255
    path = torch.tensor([40, 31, 49, 39, 41])  # centre first, then around it
    # Warm-up (page cache, allocator) once, not timed.
    sampler.sample(path[:1], grid.extract(images[:1], path[None, :1])[0], args.k2)
    gen = None
    if args.gen_prior is not None:
        from ppl_attention.completion.generative import open_generative_prior

        gen = open_generative_prior(args.gen_prior, grid=grid, k1=args.k1, sigma=args.gen_sigma)
        gen.sample(path[:1], grid.extract(images[:1], path[None, :1])[0], args.k2)  # warm-up
    gen_s, gen_ess, gen_acc, gen_t, gen_cpu, ours_cpu = [], [], [], [], [], []
    ours, props, base, ess, acc = [], [], [], [], []
    rng = np.random.default_rng(0)
    for q in range(args.queries):
        t = q % 5 + 1
        loc = path[:t]
        g = grid.extract(images[q : q + 1], loc[None])[0]
        t0, c0 = time.perf_counter(), time.process_time()
        out = sampler.sample(loc, g, args.k2, generator=torch.Generator().manual_seed(q), true_image=images[q])
        ours.append(time.perf_counter() - t0)
        ours_cpu.append(time.process_time() - c0)
        props.append(out.diagnostics["proposal_seconds"])
        ess.append(out.diagnostics["ess"])
        acc.append(float(out.label_posterior(10)[true_labels[q]]))
        if gen is not None:  # the same query through the generative prior
            t0, c0 = time.perf_counter(), time.process_time()
            o2 = gen.sample(loc, g, args.k2, generator=torch.Generator().manual_seed(q))
            gen_s.append(time.perf_counter() - t0)
            gen_cpu.append(time.process_time() - c0)
            gen_ess.append(o2.diagnostics["ess"])
            gen_acc.append(float(o2.label_posterior(10)[true_labels[q]]))
            gen_t.append(t)
        if not args.no_brute_force:
            t0 = time.perf_counter()
            brute_force(db, grid, loc, g, out.diagnostics["sigma_p"] / 255.0, args.k2, rng)
            base.append(time.perf_counter() - t0)
    result = {
        "benchmark": "completion",
        "database_rows": len(db),
        "components": index.k,
        "k1": args.k1,
        "k2": args.k2,
        "threads": args.threads,
        "queries": args.queries,
        "seconds_per_query_median": round(statistics.median(ours), 4),
        "seconds_per_query_max": round(max(ours), 4),
        "cpu_seconds_per_query_median": round(statistics.median(ours_cpu), 4),
        "proposal_seconds_median": round(statistics.median(props), 4),
        "brute_force_seconds_median": round(statistics.median(base), 4) if base else None,
        "speedup_vs_brute_force": round(statistics.median(base) / statistics.median(ours), 2) if base else None,
        "final_ess_median": round(statistics.median(ess), 1),
        "true_label_posterior_mean": round(float(np.mean(acc)), 3),
        "target_seconds": 1.0,
    }
    result["tiled"] = args.tile
    if gen is not None:
        result["generative"] = {
            "prior": str(args.gen_prior),
            "digits": gen.prior.num_digits,
            "offsets": gen.prior.num_offsets,
            "equivalent_canvases": gen.num_candidates,
            "sensor": grid.describe(),
            "sigma": [round(gen.sigma.sigma(t) * 255, 1) for t in range(1, 6)],
            "seconds_per_query_median": round(statistics.median(gen_s), 4),
            # CPU seconds of this process (one thread): the wall time on an idle core, when the machine is shared
            "cpu_seconds_per_query_median": round(statistics.median(gen_cpu), 4),
            "seconds_per_query_max": round(max(gen_s), 4),
            "seconds_median_by_t": {
                t: round(statistics.median([s for s, u in zip(gen_s, gen_t) if u == t]), 4) for t in sorted(set(gen_t))
            },
            "cpu_seconds_median_by_t": {
                t: round(statistics.median([s for s, u in zip(gen_cpu, gen_t) if u == t]), 4)
                for t in sorted(set(gen_t))
            },
            "final_ess_median": round(statistics.median(gen_ess), 1),
            "true_label_posterior_mean": round(float(np.mean(gen_acc)), 3),
            "target_seconds": 0.05,
        }
        result["database_cpu_seconds_median_by_t"] = {
            t: round(statistics.median([s for s, u in zip(ours_cpu, gen_t) if u == t]), 4) for t in sorted(set(gen_t))
        }
        result["database_seconds_median_by_t"] = {
            t: round(statistics.median([s for s, u in zip(ours, gen_t) if u == t]), 4) for t in sorted(set(gen_t))
        }
    for d in (tmp, tiled):
        if d is not None:
            shutil.rmtree(d, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
