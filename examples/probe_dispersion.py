"""Dispersion: how scattered are the supervision targets of neighbouring hidden states, and where does the greedy
choice sit?

The trained network is walked along the supervision sequences of the training images; before each glimpse its
hidden state (what the policy reads) and the sequence's next target are recorded.  For each state, its k nearest
states of the same step: the mean distance (grid cells) between its target and theirs, against random states'
(``neighbour_spread`` vs ``random_spread``: near-equal means the target is not predictable from the state); and
where the network's greedy choice sits: its distance to the nearest neighbour target and to their mean cell, and
how often it lies within a cell of one of them.  A greedy choice close to the centroid but far from every target
lands between the candidates -- what a fixed-width gaussian head does when the targets of a state are split.

    python examples/probe_dispersion.py --out runs/probe-dispersion [--run RUN --sequences STORE] [--k 10]

Writes ``OUT/dispersion.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import sys

from ppl_attention.artifacts import atomic_write_json
from ppl_attention.attention.probes import dispersion, forced_states

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _probe_setup import add_arguments, print_table, setup


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    p.add_argument("--k", type=int, default=10, help="neighbours per state")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    s = setup(args)
    hidden, modes, _ = forced_states(s["net"], s["images"], s["sequences"])
    result = {
        "run": s["run"],
        "sequences": s["source"],
        "head": s["net"].policy.kind,
        "states": len(hidden),
        **dispersion(hidden, s["sequences"], modes, s["grid"], k=args.k, seed=args.seed),
    }
    atomic_write_json(args.out / "dispersion.json", result)
    print(f"sequences: {s['source']}; {len(hidden)} images; head {result['head']}; k = {args.k}", file=sys.stderr)
    print_table(
        result["steps"],
        {
            "step": "step",
            "neighbour_spread": "neighbour spread:.2f",
            "random_spread": "random spread:.2f",
            "greedy_to_nearest_target": "greedy to nearest target:.2f",
            "greedy_to_centroid": "greedy to centroid:.2f",
            "greedy_on_a_target": "greedy on a target:.3f",
        },
    )
    return result


if __name__ == "__main__":
    main()
