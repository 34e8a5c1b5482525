"""How often the generative prior's heaviest completion of a training canvas is the canvas's own digit (the
oracle), with and without leaving the design image's digits out, and the completions' ESS and distinct count.

Two glimpses per canvas: the first at a fixed location, the second on the digit (the location whose fovea is
nearest the digit's centre), as in a designed sequence.  Prints one JSON object.

    PYTHONPATH=. python benchmarks/oracle_share.py --prior DIR --num-images 50 --scales 1 4
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch


def _second_location(grid, bbox):
    """The location whose fovea centre is nearest the digit's centre."""
    tops = grid.footprints(grid.all_locations())[:, 0].float()  # (L, 2) top-left of the fovea
    centre = tops + torch.tensor(grid.glimpse_size, dtype=torch.float) / 2
    digit = bbox[:2] + bbox[2:] / 2
    return int((centre - digit).square().sum(1).argmin())


def main(argv=None):
    from ppl_attention.completion.generative import open_generative_prior
    from ppl_attention.completion.noise_calibration import with_noise_scale
    from ppl_attention.data.spec import DatasetSpec
    from ppl_attention.runtime import derive_seed, generator

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", required=True, help="generative prior directory (build-prior)")
    ap.add_argument("--num-images", type=int, default=50)
    ap.add_argument("--num-samples", type=int, default=40)
    ap.add_argument("--k1", type=int, default=1000)
    ap.add_argument("--first", type=int, default=None, help="first location (default: the grid's centre)")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    comp = open_generative_prior(args.prior, k1=args.k1)
    spec = DatasetSpec.from_dict(comp.manifest["config"]["data"])
    data = spec.load("train")
    grid = comp.grid
    first = args.first if args.first is not None else grid.num_locations // 2
    own = data.source_digits(torch.arange(args.num_images))
    out = {
        "prior": args.prior,
        "dataset": spec.name,
        "locations": grid.num_locations,
        "images": args.num_images,
        "num_samples": args.num_samples,
        "k1": args.k1,
        "first": first,
        "scales": {},
    }
    for scale in args.scales:
        base = with_noise_scale(comp, scale)
        row = {}
        for mode in ("oracle", "honest"):
            hits, ess, distinct, p_true = 0, [], [], []
            for i in range(args.num_images):
                item = data[i]
                loc = torch.tensor([first, _second_location(grid, item["bbox"])])
                y = grid.extract(item["image"].unsqueeze(0), loc.view(1, -1))[0]
                sampler = base if mode == "oracle" else base.excluding(own[i])
                s = sampler.sample(loc, y, args.num_samples, generator=generator(derive_seed(0, "oracle-share", i)))
                hits += int(s.diagnostics["digit"][s.weights.argmax()]) == int(own[i, 0])
                ess.append(s.diagnostics["ess"])
                distinct.append(len(s))
                p_true.append(float(s.label_posterior(10)[int(item["label"])]))
            row[mode] = {
                "oracle_share": hits / args.num_images,
                "median_ess": statistics.median(ess),
                "median_distinct": statistics.median(distinct),
                "mean_p_true": statistics.fmean(p_true),
            }
        out["scales"][str(scale)] = row
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
