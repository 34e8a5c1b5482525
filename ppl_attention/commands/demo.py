"""``ppl-attention demo``: the whole pipeline on cluttered MNIST with no arguments (see ppl_attention/demo.py)."""
from __future__ import annotations

from ..config import add_config_arguments, build_config


def register(sub, common):
    from ..demo import STAGES, DemoConfig

    p = sub.add_parser("demo", parents=[common], help="end to end on cluttered MNIST: train the AVP, build the "
                       "prior, generate near-optimal sequences, train RAM and PS-NOGS, print the table",
                       description="Stages: " + "; ".join(STAGES) + ". Finished stages are cached in --out, so a "
                       "second run is quick and an interrupted one resumes.")
    add_config_arguments(p, DemoConfig)
    p.set_defaults(func=run)


def run(args):
    from ..demo import DemoConfig, run_demo

    cfg = build_config(DemoConfig, args)
    run_demo(cfg, device=args.device, seed=args.seed)
    return 0
