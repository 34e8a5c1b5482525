"""``ppl-attention plot epe | plot validity | plot epe-calibration``: the figures of a sequence store (under
``plot``, or as ``plot-*`` commands when another module owns ``plot``).
"""

from __future__ import annotations

from pathlib import Path

from ._common import add_command, check_in_dir, check_int, check_out_file
from ._dataset import add_dataset_arguments, resolve_dataset


def register(sub, common):
    """The EPE, validity and EPE-calibration figures: under `plot`, or as plot-* commands when `plot` is taken."""
    if "plot" in sub.choices:  # someone else owns a `plot` group: stay out of it
        q = sub.add_parser("plot-epe", parents=[common], help="EPE heatmaps of every step of one stored image")
        v = sub.add_parser("plot-validity", parents=[common], help="accuracy along generated vs baseline sequences")
        c = sub.add_parser("plot-epe-calibration", parents=[common], help="predicted EPE vs realised entropy")
    else:
        figures = "Figures of a sequence store: one image's EPE maps, accuracy along the sequences, EPE calibration."
        plot = add_command(sub, common, "plot", lambda args: plot.print_help() or 1, figures)
        plots = plot.add_subparsers(dest="figure", metavar="FIGURE")
        q = plots.add_parser("epe", parents=[common], help="EPE heatmaps of every step of one stored image")
        v = plots.add_parser(
            "validity",
            parents=[common],
            help="AVP accuracy after t glimpses along the store's "
            "sequences, random sequences and first-glimpse-heuristic sequences (PS-H1/H5)",
        )
        c = plots.add_parser(
            "epe-calibration",
            parents=[common],
            help="the EPE predicted for each chosen location "
            "against the realised posterior entropy, per step, with 95 %% intervals",
        )
    v.add_argument("store", type=Path, help="sequence store, generated for held-out images (--split valid/test)")
    v.add_argument("--avp", required=True, type=Path, help="AVP directory used to classify")
    v.add_argument("--out", required=True, type=Path, help="PNG to write (curves go to the same name .json)")
    add_dataset_arguments(v, reads="the store and the AVP")
    v.add_argument("--repeats", type=int, default=8, help="random / heuristic sequences per image (default 8)")
    v.set_defaults(func=run_plot_validity)

    c.add_argument("store", type=Path, help="sequence store with EPE maps (generate), e.g. for held-out images")
    c.add_argument("--avp", required=True, type=Path, help="AVP directory whose posterior entropy is realised")
    c.add_argument("--out", required=True, type=Path, help="PNG to write (figures go to the same name .json)")
    add_dataset_arguments(c, reads="the store and the AVP")
    c.set_defaults(func=run_plot_epe_calibration)

    q.add_argument("store", type=Path, help="sequence store directory")
    q.add_argument("--index", type=int, required=True, help="image index")
    q.add_argument("--out", required=True, type=Path, help="PNG to write")
    q.add_argument("--no-image", action="store_true", help="draw the EPE maps only (not the image)")
    add_dataset_arguments(q, reads="the store")
    q.set_defaults(func=run_plot_epe)


def run_plot_epe(args):
    from ..design.store import SequenceStore
    from ..plots.design import plot_epe_steps

    check_in_dir(args.store, "store", "a sequence store directory")
    check_out_file(args.out, suffixes=(".png", ".pdf", ".svg"))
    check_int("--index", args.index, minimum=0)
    store = SequenceStore.open(args.store)
    rec = store.record(args.index)
    image = None
    dataset = store.config.get("dataset")
    if not args.no_image and dataset not in (None, "toy"):
        # the store's dataset (name, root, split seed, options); a dataset it cannot find is an error, not a
        # figure silently drawn without its image
        spec = resolve_dataset(args, [args.store], default=None)
        dataset = spec.name
        image = spec.load(store.config.get("split", "train"))[args.index]["image"]
    path = plot_epe_steps(
        store.epe_maps(args.index),
        rec["locations"],
        store.grid,
        args.out,
        image,
        title=f"{dataset} image {args.index}: EPE of every candidate",
    )
    print(f"wrote {path}")
    return 0


def run_plot_validity(args):
    import torch

    from ..artifacts import atomic_write_json
    from ..design.evaluate import compare_sequences
    from ..plots.design import plot_accuracy_by_glimpse

    check_int("--repeats", args.repeats)
    store, seqs, avp, data, idx, images = _designed_images(args)
    labels = torch.stack([torch.as_tensor(data[i]["label"]) for i in idx])
    curves = compare_sequences(
        avp,
        images,
        labels,
        store.grid,
        torch.stack([seqs[i] for i in idx]),
        store.first_glimpse_epe(),
        seed=args.seed,
        repeats=args.repeats,
    )
    path = plot_accuracy_by_glimpse(
        curves, args.out, title=f"{store.config['dataset']} ({len(idx)} images, {store.config.get('split', 'train')})"
    )
    atomic_write_json(Path(args.out).with_suffix(".json"), {"images": len(idx), "curves": curves})
    for name, acc in curves.items():
        print(f"  {name}: " + ", ".join(f"{a:.3f}" for a in acc))
    print(f"wrote {path}")
    return 0


def _designed_images(args):
    """What `plot validity` and `plot epe-calibration` both read: the store (``args.store``), its sequences, the AVP
    (``args.avp``, checked against the store's sensor), the store's split of the dataset, its designed image indices
    and those images -- after checking the arguments and before writing anything (``args.out``)."""
    import torch

    from ..design.store import SequenceStore
    from ..posterior import load_avp
    from ..sensor import check_sensor

    check_in_dir(args.store, "store", "a sequence store directory")
    check_in_dir(args.avp, "--avp", "an AVP directory (train-avp)")
    check_out_file(args.out, suffixes=(".png", ".pdf", ".svg"))
    store = SequenceStore.open(args.store)
    seqs = store.sequences()
    if not seqs:
        raise ValueError(f"store {args.store} holds no sequences")
    avp = load_avp(args.avp)
    check_sensor(avp.grid, store.grid, f"--avp {args.avp}", f"the store {args.store}'s sensor")
    spec = resolve_dataset(args, [args.store, args.avp], default=None)
    data = spec.load(store.config.get("split", "train"))
    idx = sorted(seqs)
    return store, seqs, avp, data, idx, torch.stack([data[i]["image"] for i in idx])


def _independent_epe(store, idx):
    """(N, T) the records' ``independent_epe`` (step 1 and images without one NaN), or None if no record has it."""
    import torch

    rows = [store.record(i).get("independent_epe") for i in idx]
    if not any(rows):
        return None
    out = torch.full((len(idx), store.T), float("nan"), dtype=torch.float64)
    for n, row in enumerate(rows):
        for t, value in enumerate(row or [], start=1):  # the record's list starts at step 2
            if value is not None:
                out[n, t] = float(value)
    return out


def run_plot_epe_calibration(args):
    import torch

    from ..artifacts import atomic_write_json
    from ..design.evaluate import epe_calibration
    from ..plots.design import plot_epe_calibration

    store, seqs, avp, data, idx, images = _designed_images(args)
    maps = torch.stack([store.epe_maps(i) for i in idx])
    task = store.config.get("task", "label")
    result = epe_calibration(
        avp,
        images,
        store.grid,
        torch.stack([seqs[i] for i in idx]),
        maps,
        attribute=None if task in (None, "label") else int(task),
        independent=_independent_epe(store, idx),
    )
    path = plot_epe_calibration(
        result,
        args.out,
        title=f"{store.config['dataset']} ({len(idx)} images, "
        f"{store.config.get('split', 'train')}): predicted EPE vs realised entropy",
    )
    atomic_write_json(
        Path(args.out).with_suffix(".json"),
        {"store": str(args.store), "avp": str(args.avp), "images": len(idx), "steps": result["steps"]},
    )
    for s in result["steps"]:
        print(
            f"  t={s['t']}: predicted {s['predicted']['mean']:.3f} [{s['predicted']['lo']:.3f}, "
            f"{s['predicted']['hi']:.3f}], realised {s['realised']['mean']:.3f} [{s['realised']['lo']:.3f}, "
            f"{s['realised']['hi']:.3f}], relative {100 * s['relative']:+.1f} %"
            + (
                f"; independent draw {s['independent']['mean']:.3f}, relative {100 * s['independent_relative']:+.1f} %"
                if "independent" in s
                else ""
            )
        )
    print(f"wrote {path}")
    return 0
