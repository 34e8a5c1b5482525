"""``ppl-attention train`` (one hard-attention run) and ``ppl-attention plot-attention`` (compare runs)."""

from __future__ import annotations

from pathlib import Path

from ..config import add_config_arguments
from ..runtime import resolve_device, seed_everything
from ._common import check_in_dir, check_int, check_out_dir, check_out_file, write_summary
from ._dataset import add_dataset_arguments, resolve_dataset


def register(sub, common):
    from ..attention.network import NetworkConfig
    from ..attention.run import RunConfig
    from ..attention.trainer import TrainConfig

    p = sub.add_parser(
        "train",
        parents=[common],
        help="train a hard-attention network (RAM, RAM+, PS-NOGS, PS-H1/H5, PS-HGS)",
        description="Train a hard-attention network with partial supervision. Running the same "
        "command again resumes from OUT/checkpoint and gives the same curves as an uninterrupted run.",
    )
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument(
        "--pretrain",
        action="store_const",
        const=True,
        default=None,
        help="pretrain embedder, core and classifier with fixed location distributions, then freeze "
        "them while the policy trains (RAM+)",
    )
    add_config_arguments(p, RunConfig, skip=("dataset", "data_seed"))
    add_dataset_arguments(p, default="cluttered-mnist, or the --sequences store's (for nogs, also its split seed)")
    add_config_arguments(p, TrainConfig)
    add_config_arguments(p, NetworkConfig)
    p.set_defaults(func=run_train)

    q = sub.add_parser(
        "plot-attention",
        parents=[common],
        help="validation curves of several training runs on one plot, grouped by method",
        description="Read OUT/log.csv of each run directory and "
        "draw their validation accuracy (mean +- std over runs of the same label).",
    )
    q.add_argument("runs", nargs="+", metavar="LABEL=DIR", help="run directories, e.g. ram=runs/ram-s0")
    q.add_argument("--out", required=True, type=Path, help="figure path (.png)")
    q.add_argument("--metric", default="val_greedy_acc", help="column of log.csv to draw")
    q.set_defaults(func=run_plot)


def _configs(args):
    """(RunConfig, TrainConfig, NetworkConfig): defaults < one YAML file holding fields of any of them < flags."""
    import dataclasses

    from ..attention.network import NetworkConfig
    from ..attention.run import RunConfig
    from ..attention.trainer import TrainConfig
    from ..config import config_from_dict, load_yaml

    classes = (RunConfig, TrainConfig, NetworkConfig)
    data = {k.replace("-", "_"): v for k, v in (load_yaml(args.config) if args.config else {}).items()}
    names = [{f.name for f in dataclasses.fields(c)} for c in classes]
    from ..config import DATASET_KEYS

    unknown = sorted(set(data) - set().union(*names) - set(DATASET_KEYS))
    if unknown:
        raise ValueError(f"--config {args.config}: unknown field(s) {unknown}")
    out = []
    for cls, fields in zip(classes, names):
        values = {k: v for k, v in data.items() if k in fields}
        values.update({k: getattr(args, k) for k in fields if getattr(args, k, None) is not None})
        out.append(config_from_dict(cls, values))
    return out


def _check_early(run, cfg=None, net_cfg=None) -> int | None:
    """Refuse a wrong supervision source or setting before loading any data; returns the store's data seed."""
    if cfg is not None:
        cfg.check()
    if net_cfg is not None:
        for name in ("hidden", "glimpse_dim", "policy_hidden", "backbone_layers"):
            check_int(f"--{name.replace('_', '-')}", getattr(net_cfg, name))
        from ..attention.policy import check_policy

        check_policy(net_cfg.policy, net_cfg.policy_std)
        if net_cfg.backbone_weights is not None and Path(net_cfg.backbone_weights).suffix != ".safetensors":
            raise ValueError(
                f"--backbone-weights {net_cfg.backbone_weights} must be a .safetensors file (nothing is ever unpickled)"
            )
        if net_cfg.backbone_weights is not None and not Path(net_cfg.backbone_weights).is_file():
            raise FileNotFoundError(
                f"--backbone-weights {net_cfg.backbone_weights} does not exist (expected a .safetensors file)"
            )
    check_int("--num-supervised", run.num_supervised, minimum=0, optional=True)
    check_int("--pretrain-iterations", run.pretrain_iterations)
    if run.supervision == "nogs" and run.sequences is None:
        raise ValueError("--supervision nogs needs --sequences DIR (a store written by `ppl-attention generate`)")
    if run.sequences is not None:
        from ..design.store import SequenceStore

        check_in_dir(run.sequences, "--sequences", "a sequence store directory (generate)")
        store = SequenceStore.open(run.sequences)  # FileNotFoundError / ArtifactError (a ValueError)
        if store.config.get("dataset") != run.dataset:
            raise ValueError(
                f"--sequences {run.sequences} was built for dataset {store.config.get('dataset')!r}, "
                f"expected {run.dataset!r}"
            )
        if cfg is not None and run.supervision == "nogs" and store.T < cfg.glimpses:
            raise ValueError(
                f"--sequences {run.sequences} holds sequences of T = {store.T} glimpses, fewer than "
                f"--glimpses {cfg.glimpses}; use --glimpses <= {store.T} or a longer store"
            )
        return store.config.get("seed")
    if run.epe_first is not None and not Path(run.epe_first).exists():
        raise FileNotFoundError(
            f"--epe-first {run.epe_first} does not exist (expected a first_glimpse.json or a sequence store)"
        )
    return None


def run_train(args):
    from ..attention.run import train_run

    run, cfg, net_cfg = _configs(args)
    check_out_dir(args.out)
    if run.supervision == "nogs" and run.sequences is None:
        raise ValueError("--supervision nogs needs --sequences DIR (a store written by `ppl-attention generate`)")
    # The dataset: the store's (name, root, options; for nogs also its split seed, the images its sequences were
    # made for) and a resumed run's; flags may only repeat them.  Other runs use --data-seed, else --seed.
    artefacts = []
    if run.sequences is not None:
        from ..data.spec import recorded_spec

        check_in_dir(run.sequences, "--sequences", "a sequence store directory (generate)")
        label, recorded = recorded_spec(run.sequences)
        if recorded and run.supervision != "nogs":
            recorded = {k: v for k, v in recorded.items() if k != "seed"}
        artefacts.append((label, recorded))
    if (args.out / "manifest.json").is_file():
        artefacts.append(args.out)
    spec = resolve_dataset(args, artefacts, default=run.dataset)
    run.dataset, run.data_seed = spec.name, spec.seed
    _check_early(run, cfg, net_cfg)
    seed_everything(args.seed)
    device = resolve_device(args.device)
    datasets = {s: spec.load(s) for s in ("train", "valid", "test")}
    summary = train_run(run, cfg, net_cfg, datasets, args.out, args.seed, device, progress=not args.no_progress)
    write_summary(args.out, summary)
    return 0


def run_plot(args):
    import csv

    from ..plots.attention import plot_validation_curves

    check_out_file(args.out, suffixes=(".png", ".pdf", ".svg"))
    groups: dict[str, list] = {}
    for spec in args.runs:
        if "=" not in spec:
            raise ValueError(f"runs take LABEL=DIR, got {spec!r}")
        label, folder = spec.split("=", 1)
        path = Path(folder) / "log.csv"
        if not path.is_file():
            raise FileNotFoundError(f"run {folder!r} has no log.csv (expected a `ppl-attention train` output)")
        try:
            with open(path, encoding="utf-8") as f:
                rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
        except (UnicodeDecodeError, ValueError, TypeError, csv.Error) as e:
            raise ValueError(f"{path} is not a log.csv of numbers (written by `ppl-attention train`): {e}") from None
        if rows and args.metric not in rows[0]:
            raise ValueError(f"--metric {args.metric!r} is not a column of {path}; columns: {sorted(rows[0])}")
        groups.setdefault(label, []).append(rows)
    fig = plot_validation_curves(groups, args.out, metric=args.metric, ylabel=args.metric)
    print(f"figure written to {fig}")
    return 0
