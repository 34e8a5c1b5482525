"""``ppl-attention demo``: the whole pipeline on cluttered MNIST with no arguments (see ppl_attention/demo.py)."""

from __future__ import annotations

from ..config import add_config_arguments, build_config
from ._common import add_command


def register(sub, common):
    from ..demo import STAGES, DemoConfig

    description = "Stages: " + "; ".join(STAGES) + ". Finished stages are cached in --out, so a second run is quick"
    p = add_command(sub, common, "demo", run, description + " and an interrupted one resumes.")
    p.add_argument(
        "--quick",
        action="store_true",
        help="the same pipeline scaled down to about a minute on two "
        "CPU cores, into runs/demo-quick (flags given still override its settings)",
    )
    add_config_arguments(p, DemoConfig, skip=("threads",))  # --threads is a shared option


def run(args):
    from ..demo import DemoConfig, run_demo

    cfg = build_config(DemoConfig, args)
    if args.quick:
        given = {k: v for k, v in vars(cfg).items() if getattr(args, k, None) is not None}
        cfg = DemoConfig.quick(**given)
    run_demo(cfg, device=args.device, seed=args.seed, progress=not args.no_progress)
    return 0
