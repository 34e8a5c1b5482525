"""``ppl-attention train-epe-net | evaluate-epe-net``: amortised near-optimal design.

``train-epe-net`` distils the EPE maps that ``generate --search exhaustive`` stored into a network that predicts the
EPE of every location in one pass (``design.amortised``); ``generate --search amortised|hybrid --epe-net DIR`` uses
it.  ``evaluate-epe-net`` measures, on held-out images, the regret of the amortised and hybrid choices against the
exhaustive search and the seconds per sequence of every search, in one run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..completion.base import DEFAULT_K1
from ..config import GLIMPSES, add_config_arguments, build_config, config_to_dict
from ._common import add_command, check_in_dir, check_int, check_out_dir, write_summary
from ._dataset import add_dataset_arguments, resolve_dataset


def register(sub, common):
    from ..design.distill import TrainEPENetConfig

    p = add_command(sub, common, "train-epe-net", run_train, out="output directory")
    p.add_argument(
        "--store",
        action="append",
        required=True,
        type=Path,
        metavar="DIR",
        help="sequence store built with --search exhaustive or dagger (repeatable)",
    )
    p.add_argument("--avp", required=True, type=Path, help="the AVP directory the stores were generated with")
    add_config_arguments(p, TrainEPENetConfig)
    add_dataset_arguments(p, reads="the stores and the AVP")
    _register_evaluate(sub, common)


#: how the evaluation draws its completions, as ``generate`` draws them (a reference store is checked for both)
_COMPLETION_FLAGS = {
    "--pooled-draws": {
        "type": int,
        "default": 1,
        "help": "independent draws of --num-samples completions pooled at each step, as generate's (default: 1)",
    },
    "--sigma": {
        "type": float,
        "nargs": "+",
        "default": None,
        "help": "glimpse noise std after 1, 2, ... glimpses, 0..255, as generate's (default: the prior's own)",
    },
    "--noise-from": {"type": Path, "default": None, "help": "a calibrate-noise directory: its chosen --sigma"},
}


def _register_evaluate(sub, common) -> None:
    """The ``evaluate-epe-net`` subcommand and its flags."""
    e = add_command(sub, common, "evaluate-epe-net", run_evaluate, out="output directory")
    e.add_argument("epe_net", type=Path, help="EPE-map network directory (train-epe-net)")
    e.add_argument("--avp", required=True, type=Path, help="AVP directory (the network's)")
    e.add_argument("--prior", required=True, type=Path, help="prior directory (the network's)")
    e.add_argument("--split", default="test", choices=["train", "valid", "test"], help="held-out split (default: test)")
    e.add_argument("--num-images", type=int, default=200, help="the first N images of the split (default: 200)")
    e.add_argument("--first-image", type=int, default=0, help="start at this image of the split (default: 0)")
    e.add_argument(
        "--glimpses", dest="T", type=int, default=GLIMPSES, help="glimpses per sequence (default: %(default)s)"
    )
    e.add_argument("-T", dest="T", type=int, default=GLIMPSES, help=argparse.SUPPRESS)  # the earlier spelling
    e.add_argument("--num-samples", type=int, default=100, help="completions per step (default: 100)")
    for flag, spec in _COMPLETION_FLAGS.items():
        e.add_argument(flag, **spec)
    e.add_argument(
        "--first-num-samples",
        type=int,
        default=None,
        help="prior samples of the first-glimpse map (default: --num-samples)",
    )
    e.add_argument(
        "--k1", type=int, default=DEFAULT_K1, help="proposal draws of the importance sampler (default: %(default)s)"
    )
    e.add_argument(
        "--precision",
        default=None,
        choices=["float32", "bfloat16"],
        help="of the AVP's passes in every BOED search, the reference included (default: bfloat16 on "
        "CUDA, float32 on the CPU)",
    )
    e.add_argument(
        "--searches",
        nargs="+",
        default=["halving", "hybrid", "amortised"],
        choices=["halving", "coarse", "race", "hybrid", "amortised", "exhaustive-independent"],
        help="searches compared with the exhaustive one (default: halving hybrid amortised); "
        "exhaustive-independent: the exhaustive search on an independent draw of the completions "
        "(the estimator's own Monte-Carlo noise floor)",
    )
    _add_evaluate_search_arguments(e)
    add_dataset_arguments(e, reads="the AVP and the prior")


def _add_evaluate_search_arguments(e) -> None:
    """``evaluate-epe-net``'s flags of the hybrid search, the reference store and the AVP's batches."""
    e.add_argument(
        "--hybrid-top",
        type=int,
        nargs="+",
        default=[4],
        help="candidates the network proposes to the hybrid search; several values compare several "
        "hybrids (default: 4)",
    )
    e.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="a sequence store of the same images by generate --search exhaustive (same --seed, "
        "--num-samples, --k1, --precision, AVP and prior): its maps are the reference, so the "
        "exhaustive search is not rerun (nor timed)",
    )
    e.add_argument("--batch-size", type=int, default=128, help="(candidate, sample) pairs per AVP pass")


def _check_store(store, path: Path, avp_sum: str, avp_grid, avp_path: Path):
    from ..artifacts import ArtifactError
    from ..sensor import check_sensor

    from ..design.search import MAP_SEARCHES

    search = store.config.get("search")
    if search not in MAP_SEARCHES:
        raise ArtifactError(
            f"--store {path} was built with --search {search}; train on stores of the "
            f"{' or '.join(MAP_SEARCHES)} search (their maps estimate every location on every "
            "completion)"
        )
    check_sensor(store.grid, avp_grid, f"--store {path}", f"--avp {avp_path}'s sensor")
    if store.config.get("avp") != avp_sum:
        raise ArtifactError(
            f"--store {path} was generated with another AVP ({store.config.get('avp')}) than "
            f"--avp {avp_path} ({avp_sum})"
        )


def _reference_store(args, indices, sigma):
    """The --reference store, checked against the evaluation's settings (so its maps are the exhaustive search's on
    the very completions the evaluation draws again)."""
    from ..artifacts import check_compatible, dir_checksum
    from ..design.store import SequenceStore

    check_in_dir(args.reference, "--reference", "a sequence store directory")
    store = SequenceStore.open(args.reference)
    c = store.config
    expected = {
        "search": "exhaustive",
        "split": args.split,
        "num_samples": args.num_samples,
        "k1": args.k1,
        "precision": args.precision,
        "seed": args.seed,
        "avp": dir_checksum(args.avp),
        "prior": dir_checksum(args.prior),
        "first_num_samples": args.first_num_samples or args.num_samples,
        "sigma": list(sigma),
    }
    stored = {**c, "pooled_draws": c.get("pooled_draws", 1)}  # a store of one draw does not record it
    expected["pooled_draws"] = args.pooled_draws
    check_compatible(f"--reference {args.reference} was", stored, expected, keys=sorted(expected))
    if store.T < args.T:
        raise ValueError(
            f"--reference {args.reference} holds {store.T} glimpses per image, --glimpses asks for {args.T}"
        )
    missing = [i for i in indices if not store.has(i)]
    if missing:
        raise ValueError(
            f"--reference {args.reference} has no record for images {missing[:5]}{'...' if len(missing) > 5 else ''}"
        )
    return store


def run_train(args):
    """Distil the per-step EPE maps of sequence stores built by generate --search exhaustive (same AVP, prior and
    sensor) into an EPE-map network. Writes OUT/manifest.json first (it ties the network to the AVP, the prior and
    the sensor), OUT/checkpoint/last.safetensors after every epoch (a rerun resumes), then OUT/epe_net.safetensors
    (the best epoch by validation regret), history.json and summary.json."""
    import torch

    from ..artifacts import dir_checksum, write_manifest
    from ..design.amortised import EPE_NET_KIND, EPENetConfig, EPEMapNet, save_epe_net
    from ..design.distill import TrainEPENetConfig, load_store_maps, train_epe_net
    from ..posterior import load_avp
    from ..runtime import resolve_device, seed_everything

    cfg = build_config(TrainEPENetConfig, args).check()
    _check_train_paths(args)
    avp = load_avp(args.avp, resolve_device(args.device)).eval()  # the network trains on the AVP's device
    avp_sum = dir_checksum(args.avp)
    stores, prior = _open_train_stores(args, avp, avp_sum)
    spec = resolve_dataset(args, [*args.store, args.avp], default=None)
    fns = _store_image_fns(spec, stores)
    sizes = dict(width=cfg.width, embedding=cfg.embedding, hidden=cfg.hidden, positions=cfg.positions)
    net_cfg = EPENetConfig(
        grid=avp.grid.to_dict(), channels=avp.channels, num_outputs=int(avp.config.out_features), **sizes
    )
    run_config = _train_run_config(args, cfg, spec, avp, avp_sum, prior, stores)
    out = Path(args.out)
    _check_train_rerun(out, run_config)
    seed_everything(args.seed)
    data = load_store_maps(stores, fns, avp)
    print(f"  {len(data)} examples from {sum(len(s) for s in stores)} records")
    out.mkdir(parents=True, exist_ok=True)
    inputs = {"avp": str(args.avp), **{f"store{i}": str(p) for i, p in enumerate(args.store)}}
    write_manifest(out, EPE_NET_KIND, {**run_config, "net": net_cfg.to_dict()}, inputs)
    torch.manual_seed(args.seed)
    net = EPEMapNet(net_cfg)
    net, history = train_epe_net(
        data, avp, net, out, cfg, seed=args.seed, run_config=run_config, progress=not args.no_progress
    )
    save_epe_net(net, out, {**run_config}, inputs)
    summary = {"out": str(out), "examples": len(data), "train_examples": history["train_examples"]}
    summary.update(
        valid_examples=history["valid_examples"],
        best_epoch=history["best_epoch"],
        best_valid_mean_regret=history["best_mean_regret"],
        last=history["history"][-1],
    )
    write_summary(out, {**summary, "parameters": sum(p.numel() for p in net.parameters())})
    return 0


def _check_train_paths(args) -> None:
    """Refuse missing or repeated stores, a missing AVP and an unusable --out before anything is loaded."""
    for s in args.store:
        check_in_dir(s, "--store", "a sequence store directory")
    if len(set(map(str, args.store))) != len(args.store):
        raise ValueError(f"--store lists a store twice: {[str(s) for s in args.store]}")
    check_in_dir(args.avp, "--avp", "an AVP directory (train-avp)")
    check_out_dir(args.out)


def _open_train_stores(args, avp, avp_sum: str):
    """The sequence stores, each checked against the AVP, and the one prior they were all generated with."""
    from ..artifacts import ArtifactError
    from ..design.store import SequenceStore

    stores = [SequenceStore.open(s) for s in args.store]
    for store, path in zip(stores, args.store):
        _check_store(store, path, avp_sum, avp.grid, args.avp)
    priors = {store.config.get("prior") for store in stores}
    if len(priors) != 1:
        raise ArtifactError(
            f"the --store directories were generated with different priors {sorted(map(str, priors))}; "
            "one network is tied to one prior"
        )
    return stores, priors.pop()


def _store_image_fns(spec, stores) -> list:
    """For each store, index -> image of the split it was generated on (each split loaded once)."""
    splits = {}
    fns = []
    for store in stores:
        split = store.config.get("split", "train")
        if split not in splits:
            splits[split] = spec.load(split)
        fns.append(lambda i, d=splits[split]: d[int(i)]["image"])
    return fns


def _train_run_config(args, cfg, spec, avp, avp_sum: str, prior, stores) -> dict:
    """The network's recorded inputs and settings, so a rerun into the same --out can be checked against them."""
    from ..artifacts import dir_checksum
    from ..design.amortised import avp_weights_checksum

    store_info = [
        {"path": str(p), "manifest": dir_checksum(p), "records": len(s), "split": s.config.get("split")}
        for p, s in zip(args.store, stores)
    ]
    return {
        "dataset": spec.name,
        "data": spec.to_dict(),
        "grid": avp.grid.to_dict(),
        "avp": avp_sum,
        "avp_weights": avp_weights_checksum(args.avp),
        "prior": prior,
        "avp_dir": str(args.avp),
        "prior_dir": stores[0].manifest.get("inputs", {}).get("prior"),
        "stores": store_info,
        "train": config_to_dict(cfg),
        "seed": args.seed,
        "task": stores[0].config.get("task"),
    }


def _check_train_rerun(out: Path, run_config: dict) -> None:
    """A rerun into an existing network's --out must use the same inputs and settings; refused before writing."""
    from ..artifacts import check_compatible, read_manifest
    from ..design.amortised import EPE_NET_KIND

    if (out / "manifest.json").is_file():
        old = read_manifest(out, EPE_NET_KIND).get("config", {})
        check_compatible(
            f"--out {out} holds an EPE-map network", old, run_config, ignore=("net",), remedy="use another --out"
        )


def run_evaluate(args):
    """For each image (the first --num-images of --split), follow the exhaustive search's sequence; at every step
    after the first, draw the completions once and run the exhaustive search (the reference) and every --searches on
    them, each with its own AVP passes and timed. Reports mean relative EPE regret, argmin agreement, evaluations
    per step, seconds per sequence and speed-ups, and the AVP's accuracy along the amortised sequences. Writes
    OUT/evaluation.json (every step) and OUT/summary.json."""
    from ..artifacts import atomic_write_json
    from ..design.regret import evaluate_searches, summarise
    from ..design.sequential import first_glimpse_epe

    _check_evaluate_args(args)
    spec = resolve_dataset(args, [args.avp, args.prior, args.epe_net], default=None)
    data = spec.load(args.split)
    indices = list(range(args.first_image, args.first_image + args.num_images))
    if indices[-1] >= len(data):
        raise ValueError(
            f"--first-image + --num-images: the {args.split} split of {spec.name} has {len(data)} images, "
            f"asked for image {indices[-1]}"
        )
    problem, image_fn, sigma = _evaluation_problem(args, spec, data)
    reference = None
    if args.reference is not None:
        reference = _reference_store(args, indices, sigma)
        first = reference.first_glimpse_epe()
    else:
        first = first_glimpse_epe(problem, args.first_num_samples or args.num_samples, args.seed)
    searches = _evaluated_searches(args)
    result = evaluate_searches(
        problem,
        image_fn,
        indices,
        args.T,
        args.num_samples,
        args.seed,
        first,
        searches,
        labels=lambda i: data[int(i)]["label"],
        progress=not args.no_progress,
        reference=reference,
        pooled_draws=args.pooled_draws,
    )
    summary = summarise(result, list(searches))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = _evaluation_settings(args, spec, indices, sigma, searches)
    atomic_write_json(out / "evaluation.json", {"settings": settings, **result})
    write_summary(out, {"settings": settings, **summary})
    _print_search_summary(summary)
    return 0


def _evaluation_problem(args, spec, data) -> tuple:
    """The design problem (AVP, prior, EPE-map network) and the images, as ``generate`` builds them, with the
    completions' noise schedule: ``(problem, image_fn, sigma)``.  Sets ``args.precision`` to the device's default
    when it was not given."""
    from ..design.epe import default_precision
    from ..runtime import resolve_device
    from ..pipeline.design import GenerateConfig, image_factory, noise_schedule

    sigma, _ = noise_schedule(args.sigma, args.prior, data, spec.name, args.noise_from)  # as generate's
    device = resolve_device(args.device)
    args.precision = args.precision or default_precision(device)
    cfg = GenerateConfig(split=args.split, k1=args.k1, batch_size=args.batch_size, epe_net=str(args.epe_net))
    factory = image_factory(cfg, spec, args.avp, args.prior, device, [float(s) for s in sigma], args.precision)
    problem, image_fn = factory()
    return problem, image_fn, sigma


def _evaluation_settings(args, spec, indices: list[int], sigma, searches: dict) -> dict:
    """What ``evaluation.json`` and ``summary.json`` record of the evaluation's inputs and settings."""
    import torch

    settings = {"epe_net": str(args.epe_net), "avp": str(args.avp), "prior": str(args.prior), "split": args.split}
    settings.update(
        indices=[indices[0], indices[-1]],
        T=args.T,
        num_samples=args.num_samples,
        pooled_draws=args.pooled_draws,
        k1=args.k1,
        precision=args.precision,
        sigma=sigma,
        searches={k: list(v) for k, v in searches.items()},
    )
    settings.update(
        threads=torch.get_num_threads(),
        seed=args.seed,
        data=spec.to_dict(),
        reference=None if args.reference is None else str(args.reference),
    )
    return settings


def _check_evaluate_args(args) -> None:
    """Refuse missing inputs, an unusable --out and bad counts before the dataset or any network is loaded."""
    check_in_dir(args.epe_net, "epe_net", "an EPE-map network directory (train-epe-net)")
    check_in_dir(args.avp, "--avp", "an AVP directory (train-avp)")
    check_in_dir(args.prior, "--prior", "a prior directory (build-prior)")
    check_out_dir(args.out)
    check_int("--num-images", args.num_images)
    check_int("--first-image", args.first_image, minimum=0)
    check_int("--glimpses", args.T, minimum=2)
    check_int("--num-samples", args.num_samples)
    check_int("--pooled-draws", args.pooled_draws)
    check_int("--first-num-samples", args.first_num_samples, optional=True)
    check_int("--k1", args.k1)
    check_int("--batch-size", args.batch_size)
    for k in args.hybrid_top:
        check_int("--hybrid-top", k)
    if len(set(args.searches)) != len(args.searches):
        raise ValueError(f"--searches lists a search twice: {args.searches}")


def _evaluated_searches(args) -> dict:
    """Label -> (search, options) of each compared search; hybrid once per --hybrid-top."""
    searches = {}
    for name in args.searches:
        if name == "hybrid":
            for k in args.hybrid_top:
                searches[f"hybrid-top{k}"] = ("hybrid", {"top": k})
        else:
            searches[name] = (name, {})
    return searches


def _print_search_summary(summary: dict) -> None:
    """One line per search: its mean regret and agreement with the reference (when known) and its speed; then a
    random choice's mean regret."""
    for label, entry in summary["searches"].items():
        if "mean_regret" in entry:
            print(
                f"  {label:>14}: mean regret {100 * entry['mean_regret']:.2f} %, agreement "
                f"{100 * entry['agreement']:.1f} %, {entry['seconds_per_sequence']:.4f} s/sequence"
            )
        else:
            print(f"  {label:>14}: {entry['seconds_per_sequence']:.5f} s/sequence")
    if "random_choice" in summary:
        print(f"  {'random choice':>14}: mean regret {100 * summary['random_choice']['mean_regret']:.2f} %")
