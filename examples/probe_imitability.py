"""Imitability: can a policy head learn the supervision sequences from N of them, on a trained network's states?

A fresh head of each kind (dense, gaussian, factorised) is trained by behaviour cloning alone (``-log pi(target)``
along N sequences) on the frozen trunk of a trained network, so the states are those of a good classifier and
nothing but the head moves.  Per (head, N): the held-out ``-log pi(target)`` per glimpse (against ``log L``, a
uniform head's), agreement of its greedy choice with the target on held-out sequences
(exact, and within one cell), and the test accuracy of the network with that head driving it (greedy and one
sampled rollout).  The trained run's own head is the first row.  A head that cannot reach a high held-out
agreement from N sequences cannot be taught where to look by them, however long the supervision lasts.

    python examples/probe_imitability.py --out runs/probe-imitability [--run RUN --sequences STORE]
        [--sizes 600 4000] [--heads dense gaussian factorised] [--bc-iterations 1500]

Writes ``OUT/imitability.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch

from ppl_attention.artifacts import atomic_write_json
from ppl_attention.attention.probes import agreement, behaviour_clone, cell_distance, forced_states
from ppl_attention.runtime import derive_seed, generator

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _probe_setup import add_arguments, print_table, setup


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    p.add_argument("--sizes", type=int, nargs="+", default=[600, 4000], help="N: sequences the head learns from")
    p.add_argument("--heads", nargs="+", default=["dense", "gaussian", "factorised"])
    p.add_argument("--held-out", type=int, default=500, help="sequences kept for the agreement")
    p.add_argument("--bc-iterations", type=int, default=1500)
    p.add_argument("--lr", type=float, default=3e-3)
    return p.parse_args(argv)


@torch.no_grad()
def test_accuracy(net, images, labels, T: int, policy: str, seed: int) -> float:
    ro = net(images, T, policy=policy, generator=generator(derive_seed(seed, "probe", policy)))
    return float((ro.logits[:, -1].argmax(-1) == labels).float().mean())


def row(name, n, net, s, held) -> dict:
    _, modes, log_probs = forced_states(net, s["images"][held], s["sequences"][held])
    targets = s["sequences"][held]
    return {
        "head": name,
        "N": n,
        "held_out_nll": float(-log_probs.mean()),
        "held_out_agreement": agreement(modes, targets, s["grid"]),
        "held_out_agreement_1_cell": agreement(modes, targets, s["grid"], tolerance=1),
        # per glimpse: a store's first glimpse is often one location for every image, so it agrees by construction
        "held_out_agreement_by_step": (cell_distance(modes, targets, s["grid"]) == 0).float().mean(0).tolist(),
        "test_greedy_acc": test_accuracy(net, s["test_images"], s["test_labels"], s["T"], "greedy", 0),
        "test_sampled_acc": test_accuracy(net, s["test_images"], s["test_labels"], s["T"], "sample", 0),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    s = setup(args)
    n_all = len(s["sequences"])
    perm = torch.randperm(n_all, generator=generator(derive_seed(args.seed, "imitability-split")))
    held, pool = perm[: min(args.held_out, n_all // 2)], perm[min(args.held_out, n_all // 2) :]
    rows = [row(f"trained ({s['net'].policy.kind})", "-", s["net"], s, held)]
    for n in args.sizes:
        train = pool[:n]
        for kind in args.heads:
            clone = behaviour_clone(
                s["net"],
                kind,
                s["images"][train],
                s["sequences"][train],
                args.bc_iterations,
                lr=args.lr,
                seed=args.seed,
            ).eval()
            rows.append(row(kind, len(train), clone, s, held))
    result = {
        "run": s["run"],
        "sequences": s["source"],
        "T": s["T"],
        "held_out": len(held),
        "bc_iterations": args.bc_iterations,
        "rows": rows,
    }
    atomic_write_json(args.out / "imitability.json", result)
    print(f"sequences: {s['source']}; held out {len(held)}; T = {s['T']}", file=sys.stderr)
    print(
        f"held-out NLL per glimpse against log L = {math.log(s['grid'].num_locations):.2f} (uniform)", file=sys.stderr
    )
    print_table(
        rows,
        {
            "head": "head",
            "N": "N",
            "held_out_nll": "held-out NLL:.2f",
            "held_out_agreement": "held-out agreement:.3f",
            "held_out_agreement_1_cell": "within 1 cell:.3f",
            "test_greedy_acc": "test greedy:.3f",
            "test_sampled_acc": "test sampled:.3f",
        },
    )
    return result


if __name__ == "__main__":
    main()
