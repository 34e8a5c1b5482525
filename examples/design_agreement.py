"""Two designs of the same images: how often they choose the same glimpse at each step.

Two sequence stores of the same images (the same dataset, split and sensor; e.g. the same settings and another
design ``--seed``, or another noise) are compared image by image.  Per step: the share of images whose two choices
are the same location, within one cell (Chebyshev), the mean distance in cells, and the agreement among the images
whose two designs agreed on every earlier glimpse (the same state, so a disagreement there is the design's own
noise).  A uniform guess agrees with probability 1 / L.  Low agreement at a step means the design's choice there is
not a reproducible function of the image and the glimpses so far -- and so cannot be imitated from them.

    python examples/design_agreement.py runs/seqs-a runs/seqs-b [--out agreement.json]

Prints a table; ``--out`` also writes it as JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ppl_attention.artifacts import atomic_write_json
from ppl_attention.attention.probes import cell_distance
from ppl_attention.design.store import SequenceStore

#: what two stores must share to be designs of the same images on the same sensor
SAME = ("dataset", "data", "split", "task", "grid", "T")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path, help="a sequence store")
    p.add_argument("b", type=Path, help="another store of the same images")
    p.add_argument("--out", type=Path, default=None, help="write the table as JSON here")
    return p.parse_args(argv)


def agreement_by_step(a: torch.Tensor, b: torch.Tensor, grid) -> list[dict]:
    """Per step of two designs ``a``, ``b`` (N, T) of the same N images: ``same``, ``within_1_cell``,
    ``distance`` (mean cells), and ``same_given_agreed`` with ``agreed_before`` (images agreeing on every earlier
    step; None where there are none)."""
    same = a == b  # (N, T)
    dist = cell_distance(a, b, grid).double()
    before = torch.cat([torch.ones_like(same[:, :1]), same.long().cumprod(1)[:, :-1].bool()], 1)  # agreed on steps < t
    rows = []
    for t in range(a.shape[1]):  # T rows of a table; each is one batched reduction over the images
        kept = before[:, t]
        rows.append(
            {
                "step": t + 1,
                "same": float(same[:, t].double().mean()),
                "within_1_cell": float((dist[:, t] <= 1).double().mean()),
                "distance": float(dist[:, t].mean()),
                "agreed_before": int(kept.sum()),
                "same_given_agreed": float(same[kept, t].double().mean()) if bool(kept.any()) else None,
            }
        )
    return rows


def main(argv=None) -> dict:
    args = parse_args(argv)
    stores = [SequenceStore.open(d) for d in (args.a, args.b)]
    for key in SAME:
        if stores[0].config.get(key) != stores[1].config.get(key):
            raise SystemExit(f"{args.a} and {args.b} differ in {key!r}: they are not designs of the same images")
    seqs = [s.sequences() for s in stores]
    common = sorted(set(seqs[0]) & set(seqs[1]))
    if not common:
        raise SystemExit(f"{args.a} and {args.b} hold no image in common")
    a, b = (torch.stack([s[i] for i in common]) for s in seqs)
    grid = stores[0].grid
    result = {
        "a": str(args.a),
        "b": str(args.b),
        "images": len(common),
        "uniform": 1.0 / grid.num_locations,
        "steps": agreement_by_step(a, b, grid),
    }
    print(f"{len(common)} images designed in both; a uniform guess agrees with probability {result['uniform']:.4f}")
    print("| step | same location | within 1 cell | mean distance (cells) | same, given every earlier step agreed |")
    print("|---|---|---|---|---|")
    for r in result["steps"]:
        given = "-" if r["same_given_agreed"] is None else f"{r['same_given_agreed']:.3f} of {r['agreed_before']}"
        print(f"| {r['step']} | {r['same']:.3f} | {r['within_1_cell']:.3f} | {r['distance']:.2f} | {given} |")
    if args.out is not None:
        atomic_write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
