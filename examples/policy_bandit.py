"""A one-glimpse bandit: how each policy head imitates supervision targets split between two places.

The state (what the policy reads) is noise: it says nothing about which of two far-apart places A and B the
supervision target of an example is (each is drawn with probability 1/2).  Both places are rewarded: a glimpse
within ``--radius`` cells (Chebyshev) of A or B scores 1, anything else 0.  Each batch, a share of the examples
(``--supervised-share``) is supervised (``-lambda log pi(target)``), the rest sample a location and are trained by
REINFORCE with a learned baseline -- the trainer's own loss (:func:`ppl_attention.attention.trainer.policy_terms`)
on the library's heads (:class:`ppl_attention.attention.policy.LocationPolicy`).

A head that keeps both modes (dense, factorised) puts its greedy glimpse on one of the places; the fixed-width
gaussian's imitation term is an L2 regression of its mean, so at a high lambda its mode lands between A and B, on
nothing, unless REINFORCE (a low lambda) pulls it to one of them.  Prints the greedy and sampled reward of each
head (JSON on stdout, a table on stderr).

    .venv/bin/python examples/policy_bandit.py [--iterations 1500] [--heads dense:1 gaussian:1 gaussian:0.1 ...]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from ppl_attention.attention.policy import LocationPolicy
from ppl_attention.attention.trainer import policy_terms
from ppl_attention.sensor import Sensor

DEFAULT_HEADS = ("dense:1", "gaussian:1", "gaussian:0.1", "factorised:1")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--heads",
        nargs="+",
        default=list(DEFAULT_HEADS),
        metavar="KIND:LAMBDA",
        help="policy heads and their supervision weights",
    )
    p.add_argument("--side", type=int, default=60, help="image side; the grid is every pixel (60: 49 x 49 = 2,401)")
    p.add_argument(
        "--places",
        type=int,
        nargs=4,
        default=(18, 18, 30, 30),
        metavar=("R_A", "C_A", "R_B", "C_B"),
        help="grid cells of the two target places",
    )
    p.add_argument("--radius", type=int, default=2, help="a glimpse within this many cells of a place is rewarded")
    p.add_argument("--iterations", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--supervised-share", type=float, default=0.25, help="supervised examples per batch")
    p.add_argument("--reduction", default="mean", choices=["mean", "sum"], help="the supervised term's reduction")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--hidden", type=int, default=16, help="size of the (noise) state")
    p.add_argument("--policy-std", type=float, default=0.2, help="the gaussian head's standard deviation")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def reward_of(loc: torch.Tensor, places: torch.Tensor, n_cols: int, radius: int) -> torch.Tensor:
    """1 where a flat location lies within ``radius`` cells of any place (P, 2), else 0."""
    rc = torch.stack([loc // n_cols, loc % n_cols], -1)  # (B, 2)
    dist = (rc[:, None, :] - places[None]).abs().amax(-1)  # (B, P) Chebyshev
    return (dist <= radius).any(1).float()


def train_head(kind: str, lam: float, args, grid: Sensor, places: torch.Tensor) -> dict:
    """Train one head on the bandit; its greedy and sampled reward on fresh states."""
    torch.manual_seed(args.seed)
    policy = LocationPolicy(grid, args.hidden, 32, kind, args.policy_std)
    baseline = torch.nn.Parameter(torch.zeros(()))
    opt = torch.optim.Adam([*policy.parameters(), baseline], lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    B, n_sup = args.batch_size, round(args.supervised_share * args.batch_size)
    flat = places[:, 0] * grid.n_cols + places[:, 1]
    for _ in range(args.iterations):
        dist = policy.distribution(torch.randn(B, args.hidden, generator=g))
        loc = dist.sample(g)
        loc[:n_sup] = flat[torch.randint(0, len(flat), (n_sup,), generator=g)]  # teacher-forced targets
        teacher = (torch.arange(B) < n_sup).float().unsqueeze(1)
        reward = reward_of(loc, places, grid.n_cols, args.radius)
        terms = policy_terms(dist.log_prob(loc).unsqueeze(1), teacher, reward, baseline.expand(B, 1), args.reduction)
        loss = terms["reinforce"] + terms["baseline_mse"] + lam * terms["supervised_nll"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        dist = policy.distribution(torch.randn(2000, args.hidden, generator=g))
        greedy, sampled = dist.mode(), dist.sample(g)
    return {
        "head": kind,
        "lambda": lam,
        "greedy_reward": float(reward_of(greedy, places, grid.n_cols, args.radius).mean()),
        "sampled_reward": float(reward_of(sampled, places, grid.n_cols, args.radius).mean()),
        "greedy_cell": [int(greedy[0] // grid.n_cols), int(greedy[0] % grid.n_cols)],
    }


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    grid = Sensor(args.side, 12, stride=1)
    places = torch.tensor(args.places).view(2, 2)
    if bool(((places < 0) | (places >= torch.tensor([grid.n_rows, grid.n_cols]))).any()):
        raise ValueError(f"places must be cells of the {grid.n_rows} x {grid.n_cols} grid, got {args.places}")
    rows = []
    for spec in args.heads:
        kind, _, lam = spec.partition(":")
        rows.append(train_head(kind, float(lam or 1.0), args, grid, places))
        r = rows[-1]
        print(
            f"{kind:<11} lambda {r['lambda']:<5} greedy reward {r['greedy_reward']:.2f}  sampled "
            f"{r['sampled_reward']:.2f}  greedy cell {r['greedy_cell']}",
            file=sys.stderr,
        )
    print(json.dumps({"places": args.places, "grid": [grid.n_rows, grid.n_cols], "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
