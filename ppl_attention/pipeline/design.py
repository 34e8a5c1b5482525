"""``design_sequences``: near-optimal glimpse sequences by greedy EPE minimisation (the paper's Algorithm 1)
into a resumable sequence store.

Which images it designs: the first ``num_images`` of the ``split`` (default: training) split, or exactly
``indices``; ``shard="i/n"`` keeps every n-th of those starting at i, so n machines can share a run into one store
(each image has its own seed, so the result does not depend on the sharding).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

from ..checks import check_in_dir, check_int, check_number, check_out_dir
from ..completion.base import DEFAULT_K1
from ..config import GLIMPSES, build_config, config_to_dict, setting
from ._stage import DATASET_OPTIONS, dataset_flags, resolve_dataset, running, split_options, write_summary
from .handles import PathArg, SequencesHandle

if TYPE_CHECKING:
    import torch

    from ..data.spec import DatasetSpec
    from ..design.images import ImageFactory

__all__ = [
    "GenerateConfig",
    "DesignIncomplete",
    "design_sequences",
    "noise_schedule",
    "image_factory",
    "check_no_oracle",
]

#: design.search.NETWORK_SEARCHES, spelled out to keep the CLI's start-up free of torch (a test checks)
NETWORK_SEARCH_NAMES = ("amortised", "hybrid", "dagger")


@dataclass
class GenerateConfig:
    """Settings of ``ppl-attention generate`` (flags, or a ``--config`` YAML file with these keys)."""

    avp: Optional[str] = setting(None, "trained AVP directory (train-avp); required")
    prior: Optional[str] = setting(None, "prior directory (image database + PCA index); required")
    out: Optional[str] = setting(None, "sequence store directory; required")
    split: str = setting("train", "split whose images are designed", choices=["train", "valid", "test"])
    task: str = setting("label", "'label', or the attribute index of a multi-label AVP (e.g. 20 = Male on CelebA-HQ)")
    num_images: int = setting(600, "design the first N images of the split")
    indices: Optional[list[int]] = setting(None, "design exactly these images instead")
    shard: Optional[str] = setting(None, "i/n: only every n-th image, starting at i")
    executor: str = setting("local", "where to run", choices=["local", "ray"])
    # the choices are design.search.SEARCHES, spelled out to keep the CLI's start-up free of torch (a test checks)
    search: str = setting(
        "halving",
        "candidate search: halving (successive halving, ~6x fewer AVP passes than the paper's exhaustive "
        "grid search at 0.2-0.5 %% mean EPE regret on cluttered MNIST), exhaustive, coarse, pyramid "
        "(exhaustive on a pyramid of lattices, for fine grids), race, amortised (the argmin of an EPE-map "
        "network's prediction, one pass per step; needs --epe-net) or hybrid (the "
        "network's top candidates, raced by the BOED estimator; option top=K; needs --epe-net) or dagger (the "
        "exhaustive map, the network's choice: labels the states the network reaches; needs --epe-net)",
        choices=["exhaustive", "halving", "coarse", "race", "amortised", "hybrid", "pyramid", "dagger"],
    )
    epe_net: Optional[str] = setting(
        None,
        "EPE-map network directory (train-epe-net) for --search amortised / hybrid / dagger; it must have "
        "been trained for this AVP, prior and sensor",
    )
    search_options: Optional[list[str]] = setting(
        None,
        "KEY=VALUE options of the search, e.g. initial_samples=4 growth=4 keep=0.25 min_keep=1 (halving "
        "about 20 %% faster than its defaults, at ~0.7-0.9 %% mean regret instead of 0.15-0.5 %%)",
    )
    T: int = setting(GLIMPSES, "glimpses per sequence")
    num_samples: int = setting(100, "completions per step (N)")
    pooled_draws: int = setting(
        1,
        "independent draws of N completions pooled at each step, each weighing 1/draws: the EPE is the mean of "
        "the draws' EPEs (a sharp likelihood puts one draw's weight on one or two completions, which more "
        "completions in one draw do not spread)",
    )
    first_num_samples: Optional[int] = setting(None, "prior samples for the cached first-glimpse EPE (default N)")
    k1: int = setting(DEFAULT_K1, "proposal draws of the importance sampler")
    sigma: Optional[list[float]] = setting(
        None,
        "exact-stage glimpse noise std after 1, 2, ... glimpses, 0..255 scale (the last repeats); "
        "default: the dataset's own schedule (MNIST and folder: 192*sqrt(t); "
        "CelebA-HQ: the paper's 5 10 20 40; "
        "CUB: 80; a folder's can be set with --dataset-option noise_schedule=...)",
    )
    sigma_q: Optional[list[float]] = setting(
        None, "proposal noise std schedule (default: --sigma, as in the paper's CelebA-HQ runs)"
    )
    noise_from: Optional[str] = setting(
        None, "a calibrate-noise directory of this prior: its chosen schedule is --sigma"
    )
    target_ess: Optional[float] = setting(
        None, "temper the proposal so its ESS is this fraction of k1 (the paper's CUB setting, e.g. 0.8)"
    )
    shift: int = setting(
        0,
        "marginalise each glimpse over shifts of up to this many pixels (the prior's index must have been "
        "built with at least this --shift)",
    )
    min_ess: Optional[float] = setting(
        None,
        "generative prior: draw more (digit, offset) candidates, k1 at a time, until the completions' "
        "effective sample size reaches this (capped by --max-k1); default: one round of k1",
    )
    max_k1: Optional[int] = setting(None, "cap on the candidates --min-ess may grow to (default 8 x k1)")
    first_glimpse_from: Optional[str] = setting(
        None,
        "copy the cached first-glimpse map from this store (made with the same AVP, prior, sensor, seed, "
        "precision and --first-num-samples; the noise and k1 do not enter it) instead of computing it: on the "
        "49 x 49 grid it costs 2,401 x N AVP passes",
    )
    allow_repeat: bool = setting(False, "allow choosing a location twice")
    independent_draw: bool = setting(
        False,
        "also score each chosen location on a second, independent draw of completions (recorded as "
        "independent_epe; `plot epe-calibration` compares it with the realised entropy): an estimate free of "
        "the optimiser's curse, at one more draw per step",
    )
    allow_oracle: bool = setting(
        False,
        "diagnosis only: design with an AVP trained on the design images and completions that may propose "
        "the image itself (recorded in the store's manifest); default: refuse such an AVP or prior",
    )
    images_per_task: int = setting(4, "images handed to a Ray worker at a time")
    ray_address: Optional[str] = setting(
        None,
        "--executor ray: the cluster to join (HOST:PORT of `ray start --head`, auto, or ray://HOST:10001); "
        "default $RAY_ADDRESS, else a Ray started on this machine",
    )
    gpus_per_worker: Optional[float] = setting(
        None,
        "--executor ray: GPUs of each worker, whatever --device says (default: 1 when the cluster has "
        "GPUs, else 0; 0.5 puts two workers on a GPU)",
    )
    ray_workers: Optional[int] = setting(
        None,
        "--executor ray: how many workers (each loads the AVP and prior once; default: as many as the "
        "cluster's GPUs, or its CPUs, hold)",
    )
    cpus_per_worker: float = setting(1.0, "--executor ray: CPUs (and torch threads) of each worker")
    batch_size: int = setting(128, "(candidate, sample) pairs per AVP pass")
    # the choices are design.epe.PRECISIONS (spelled out for the same reason as --search's)
    precision: str | None = setting(
        None,
        "precision of the AVP's passes in the EPE loop (default: bfloat16 on CUDA, float32 on the CPU, "
        "design.epe.default_precision): bfloat16 is ~5x faster on CPUs with AMX / "
        "AVX512-BF16 and on recent GPUs (slower elsewhere); it moves the EPE by ~0.001 nats",
        choices=["float32", "bfloat16"],
    )


class DesignIncomplete(RuntimeError):
    """Some images failed and were skipped; ``failures`` maps each to its error.  What was designed is kept in
    the store, and designing into it again designs the rest."""

    def __init__(self, message: str, failures: dict):
        super().__init__(message)
        self.failures = failures


def design_sequences(
    out: PathArg | None = None,
    avp: PathArg | None = None,
    prior: PathArg | None = None,
    *,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = False,
    **options,
) -> SequencesHandle:
    """Near-optimal glimpse sequences by greedy EPE minimisation for the first ``num_images`` training images,
    into a resumable sequence store ``out`` (``ppl-attention generate``): options are :class:`GenerateConfig`'s
    fields (``num_images``, ``glimpses``, ``num_samples``, ``search``...) and the dataset's, which may only repeat
    what ``avp`` and ``prior`` record.  Raises :class:`DesignIncomplete` when some images failed."""
    options = {"out": out, "avp": avp, "prior": prior, **options}  # None: read from `config`
    options = {("T" if k == "glimpses" else k): v for k, v in options.items()}  # `glimpses` is T, as its flag
    (values,), rest = split_options("generate", options, [GenerateConfig], ("dataset", *DATASET_OPTIONS))
    with running(quiet, **rest):
        cfg = build_config(GenerateConfig, yaml_path=rest.get("config"), **values)
        summary, failures = _generate(cfg, seed, device, rest)
        if failures:
            _report_failures(Path(cfg.out), failures)
    if failures:
        raise DesignIncomplete(
            f"generate into {cfg.out} did not finish: {len(failures)} image(s) failed; designing into it again "
            "designs them",
            failures,
        )
    return SequencesHandle(Path(cfg.out), summary)


def check_no_oracle(
    avp: Path,
    prior: Path,
    data: Any,
    split: str,
    indices: Iterable[int],
    allow_oracle: bool = False,
    search: str = "exhaustive",
) -> None:
    """Refuse an AVP trained on a design image or a prior that holds one it cannot leave out (no oracle), unless
    ``allow_oracle``.  The amortised search draws no completion and makes no AVP pass: nothing to check."""
    from ..design.honest import check_avp, check_prior

    if search == "amortised":
        return
    if allow_oracle:
        print("  --allow-oracle true: a diagnosis, not a BOED design (the AVP / completions may hold the images)")
        return
    check_avp(avp, data, split, indices)
    check_prior(prior, split)


def _task_attribute(task: str):
    if task == "label":
        return None
    try:
        return int(task)
    except ValueError:
        raise ValueError(f"`task` must be 'label' or an attribute index, got {task!r}") from None


def noise_schedule(
    sigma: Iterable[float] | None, prior: Path, data: Any, dataset: str, noise_from: PathArg | None = None
) -> tuple[list[float], str]:
    """The completions' glimpse noise (0..255 stds after 1, 2, ... glimpses) and its source: ``sigma`` when given,
    else calibrate-noise's choice in ``noise_from``, else the generative prior's own (in its manifest), else the
    dataset's default; every command that draws completions for a design asks here."""
    from ..artifacts import read_manifest
    from ..completion.noise_calibration import calibrated_sigma
    from ..completion.prior import prior_kind

    if sigma and noise_from is not None:
        raise ValueError("give `sigma` or `noise_from`, not both")
    if sigma:
        return [float(v) for v in sigma], "--sigma"  # the recorded source, as stores have it
    if noise_from is not None:
        return calibrated_sigma(noise_from, prior), f"calibrate-noise {noise_from}"
    kind = prior_kind(prior)
    if kind.own_noise:
        return [float(v) for v in read_manifest(prior)["config"]["sigma"]], f"the {kind.name} prior {prior}"
    if getattr(data, "noise_schedule", None):
        return [float(v) for v in data.noise_schedule], f"the {dataset} dataset's default"
    raise ValueError(
        f"dataset {dataset!r} has no default noise schedule: give `sigma` (0..255 stds after 1, 2, ... glimpses)"
    )


def _generate(cfg: GenerateConfig, seed: int, device, rest: dict) -> tuple[dict, dict]:
    """Check, resolve the dataset, design every image into the store and write its summary: (summary, failures)."""
    from ..design.executors import parse_shard, shard_indices
    from ..design.search import parse_search_options
    from ..design.sequential import DesignSettings
    from ..design.epe import default_precision
    from ..runtime import resolve_device

    avp, prior, out = _check_generate_paths(cfg)
    shard = parse_shard(cfg.shard)
    indices = cfg.indices if cfg.indices is not None else range(cfg.num_images)
    device = resolve_device(device)
    precision = cfg.precision or default_precision(device)
    # the dataset (name, root, split seed, options) is the AVP's and the prior's; flags may only repeat it
    flags = dataset_flags(rest.get("dataset"), **{k: rest.get(k) for k in (*DATASET_OPTIONS, "config")})
    artefacts = [avp, prior] + ([out] if (out / "manifest.json").is_file() else [])
    spec = resolve_dataset(flags, artefacts, default=None, seed=seed)
    data = spec.load(cfg.split)
    from ..completion.prior import prior_type

    kind = prior_type(prior)
    sigma, sigma_from = noise_schedule(cfg.sigma, prior, data, spec.name, cfg.noise_from)
    print(f"  noise schedule (sigma, 0..255 after 1, 2, ... glimpses): {sigma} ({sigma_from})")
    search_options = parse_search_options(cfg.search, cfg.search_options)
    settings = DesignSettings(
        T=cfg.T,
        num_samples=cfg.num_samples,
        pooled_draws=cfg.pooled_draws,
        search=cfg.search,
        allow_repeat=cfg.allow_repeat,
        search_options=search_options,
        independent_draw=cfg.independent_draw,
    )
    factory = image_factory(cfg, spec, avp, prior, device, sigma, precision)
    _check_oracle(cfg, avp, prior, data, indices)
    problem, image_fn = factory()
    _check_generate_indices(cfg, spec, problem, image_fn, indices)
    config = _generate_store_config(cfg, seed, spec, problem, search_options, sigma, precision, avp, prior)
    store, counts = _design_into_store(
        cfg, seed, out, config, avp, prior, factory, shard_indices(indices, shard), settings
    )
    summary = write_summary(
        out,
        {
            "store": str(out),
            "data": spec.describe(),
            "noise_schedule": sigma,
            "noise_schedule_from": sigma_from,
            "prior_kind": kind,
            "ess": _ess_summary(store, shard_indices(indices, shard)),
            "shard": f"{shard[0]}/{shard[1]}",
            **counts,
            "first_location": int(store.first_glimpse_epe().argmin()),
            "config": config_to_dict(cfg),
        },
    )
    return summary, counts["failures"]


def _check_generate_paths(cfg: GenerateConfig) -> tuple[Path, Path, Path]:
    """The AVP, prior and store directories, refused before anything is loaded when missing or inconsistent."""
    for name in ("avp", "prior", "out"):
        if getattr(cfg, name) is None:
            raise ValueError(f"`{name}` is required")
    avp, prior, out = Path(cfg.avp), Path(cfg.prior), Path(cfg.out)
    for name, path in (("avp", avp), ("prior", prior)):
        check_in_dir(path, name)
    network_search = cfg.search in NETWORK_SEARCH_NAMES
    if network_search and cfg.epe_net is None:
        raise ValueError(f"`search` {cfg.search} needs `epe_net` DIR (a network trained by train-epe-net)")
    if cfg.epe_net is not None:
        if not network_search:
            raise ValueError(
                f"`epe_net` is read only by `search` {' / '.join(NETWORK_SEARCH_NAMES)}, not by `search` {cfg.search}"
            )
        check_in_dir(Path(cfg.epe_net), "`epe_net`", "an EPE-map network directory (train-epe-net)")
    check_out_dir(out)
    _check_generate(cfg)
    return avp, prior, out


def image_factory(
    cfg: GenerateConfig,
    spec: DatasetSpec,
    avp: Path,
    prior: Path,
    device: torch.device | str,
    sigma: Sequence[float],
    precision: str,
) -> ImageFactory:
    """The picklable maker of each image's design problem, so local and Ray workers (and ``evaluate-epe-net``)
    build the same one."""
    from ..design.images import ImageFactory

    return ImageFactory(
        spec.name,
        str(avp),
        str(prior),
        cfg.split,
        spec.root,
        spec.seed,
        _task_attribute(cfg.task),
        cfg.k1,
        cfg.batch_size,
        str(device),
        sigma=tuple(sigma),
        options=spec.options,
        sigma_q=tuple(cfg.sigma_q) if cfg.sigma_q else None,
        target_ess=cfg.target_ess,
        shift=cfg.shift,
        precision=precision,
        min_ess=cfg.min_ess,
        max_k1=(cfg.max_k1 or 8 * cfg.k1) if cfg.min_ess is not None else None,
        epe_net=cfg.epe_net,
        allow_oracle=cfg.allow_oracle,
    )


def _check_generate_indices(cfg: GenerateConfig, spec, problem, image_fn, indices) -> None:
    """Refuse more glimpses than locations (without repeats) and images beyond the split, before any design."""
    L, size = problem.grid.num_locations, getattr(image_fn, "size", None)
    if cfg.T > L and not cfg.allow_repeat:
        raise ValueError(f"`T` must be <= {L} (the grid's locations) without `allow_repeat`, got {cfg.T}")
    if size is not None:
        bad = [i for i in indices if i >= size]
        if bad:
            what = "`indices`" if cfg.indices is not None else "`num_images`"
            raise ValueError(
                f"{what}: the {cfg.split} split of {spec.name} has {size} images (indices 0.."
                f"{size - 1}), got "
                f"{'index ' + str(bad[0]) if cfg.indices is not None else cfg.num_images}"
            )


def _generate_store_config(
    cfg: GenerateConfig, seed: int, spec, problem, search_options, sigma, precision, avp: Path, prior: Path
) -> dict:
    """The store's config: everything a record depends on, so a store built with another one is refused."""
    from ..artifacts import dir_checksum

    config = {
        "dataset": spec.name,
        "data": spec.to_dict(),
        "split": cfg.split,
        "task": cfg.task,
        "grid": problem.grid.to_dict(),
        "T": cfg.T,
        "num_samples": cfg.num_samples,
        "search": cfg.search,
        "search_options": search_options,
        "allow_repeat": cfg.allow_repeat,
        "seed": seed,
        "k1": cfg.k1,
        "sigma": sigma,
        "sigma_q": cfg.sigma_q,
        "target_ess": cfg.target_ess,
        "shift": cfg.shift,
        "first_num_samples": cfg.first_num_samples or cfg.num_samples,
        "precision": precision,
        "avp": dir_checksum(avp),
        "prior": dir_checksum(prior),
    }
    if cfg.min_ess is not None:  # recorded only when used: a store without them drew one round of k1
        config.update({"min_ess": cfg.min_ess, "max_k1": cfg.max_k1 or 8 * cfg.k1})
    if cfg.pooled_draws > 1:  # only then, like `min_ess`: a store of one draw per step keeps its config
        config["pooled_draws"] = cfg.pooled_draws
    if cfg.independent_draw:  # only then, like `min_ess`: the records gain a field, the sequences are the same
        config["independent_draw"] = True
    if cfg.allow_oracle:  # only then, like `min_ess`: an honest store's config is unchanged
        config["allow_oracle"] = True
    if cfg.epe_net is not None:  # only then: the configs of the stores of the other searches are unchanged
        config["epe_net"] = dir_checksum(Path(cfg.epe_net))
    return config


def _design_into_store(
    cfg: GenerateConfig, seed: int, out: Path, config: dict, avp: Path, prior: Path, factory, indices, settings
):
    """Open (or resume) the store and design its images; a store that failed before writing anything is removed."""
    from ..design.executors import generate_sequences
    from ..design.store import SequenceStore

    existed = out.exists()
    source = _first_glimpse_source(cfg, config)  # checked before `out` is touched
    store = SequenceStore.create(out, config, inputs={"avp": str(avp), "prior": str(prior)})
    try:
        if source is not None and not store.has_first_glimpse():
            info = {k: v for k, v in source.first_glimpse().items() if k != "epe"}
            store.write_first_glimpse(source.first_glimpse_epe(), **info, copied_from=str(cfg.first_glimpse_from))
        counts = generate_sequences(
            store,
            factory,
            indices,
            settings,
            seed,
            cfg.executor,
            cfg.images_per_task,
            cfg.gpus_per_worker,
            cfg.first_num_samples,
            ray_address=cfg.ray_address,
            workers=cfg.ray_workers,
            cpus_per_worker=cfg.cpus_per_worker,
        )
    except Exception:
        if not existed:  # failed before writing anything: leave `out` as it was
            store.remove_if_empty()
        raise
    return store, counts


def _report_failures(out: Path, failures: dict) -> None:
    """Name the failed images and their errors on stderr."""
    from ..design.executors import FAILURES

    shown = list(failures.items())[:10]
    lines = "".join(f"\n  image {i}: {e}" for i, e in shown) + (
        f"\n  ... and {len(failures) - 10} more" if len(failures) > 10 else ""
    )
    print(
        f"generate: {len(failures)} image(s) failed and were skipped: {sorted(map(int, failures))}{lines}\n"
        f"(listed in {out / FAILURES}; the command run again designs them)",
        file=sys.stderr,
    )


def _check_oracle(cfg, avp: Path, prior: Path, data, indices) -> None:
    """Refuse an AVP trained on a design image or a prior holding one (no oracle), unless `allow_oracle`."""
    check_no_oracle(avp, prior, data, cfg.split, indices, cfg.allow_oracle, cfg.search)


#: The settings a first-glimpse map depends on: two stores that agree on them compute the same map.  Not the split,
#: the search or T; and, as it is drawn with nothing observed, where both priors sample the prior itself, neither
#: the observation model (sigma, sigma_q, shift) nor the proposal's sizes (k1, target_ess, min_ess, max_k1).
FIRST_GLIMPSE_KEYS = ("dataset", "data", "task", "grid", "seed", "first_num_samples", "precision", "avp", "prior")


def _first_glimpse_source(cfg, config: dict):
    """The store ``first_glimpse_from`` names, checked: it holds a first-glimpse map made with this run's
    settings (``FIRST_GLIMPSE_KEYS``); None without it."""
    if cfg.first_glimpse_from is None:
        return None
    from ..artifacts import ArtifactError, check_compatible
    from ..design.store import SequenceStore

    path = Path(cfg.first_glimpse_from)
    check_in_dir(path, "`first_glimpse_from`", "a sequence store directory")
    source = SequenceStore.open(path)
    if not source.has_first_glimpse():
        raise ArtifactError(f"`first_glimpse_from` {path} holds no first_glimpse.json")
    theirs = json.loads(json.dumps(source.config, sort_keys=True, default=str))
    mine = json.loads(json.dumps(config, sort_keys=True, default=str))
    check_compatible(
        f"`first_glimpse_from` {path}: its first-glimpse map was",
        theirs,
        mine,
        keys=FIRST_GLIMPSE_KEYS,
        remedy="it is not this run's",
    )
    return source


def _ess_summary(store, indices) -> dict:
    """Effective sample size of the completions per image (its median over steps 2..T) and per step (median and
    10th percentile over images), from the records of ``indices`` that hold it."""
    import statistics

    per_image, per_step = {}, {}
    for i in indices:
        if not store.has(i):
            continue
        values = store.record(i).get("ess") or []
        values = [v for v in values if v is not None]
        if values:
            per_image[int(i)] = round(statistics.median(values), 2)
            for step, v in enumerate(values, start=2):
                per_step.setdefault(step, []).append(v)
    steps = {
        str(k): {"median": round(statistics.median(v), 2), "p10": round(sorted(v)[len(v) // 10], 2), "images": len(v)}
        for k, v in sorted(per_step.items())
    }
    return {"per_image": per_image, "per_step": steps}


def _check_generate(cfg) -> None:
    """Every setting of ``generate`` that can be checked without loading anything."""
    if cfg.indices is None:
        check_int("num_images", cfg.num_images)
    else:
        if not cfg.indices:
            raise ValueError("`indices` needs at least one image index")
        for i in cfg.indices:
            check_int("indices", i, minimum=0)
        if len(set(cfg.indices)) != len(cfg.indices):
            raise ValueError(f"`indices` holds duplicates: {sorted(cfg.indices)}")
    check_int("T", cfg.T)
    check_int("num_samples", cfg.num_samples)
    check_int("pooled_draws", cfg.pooled_draws)
    check_int("first_num_samples", cfg.first_num_samples, optional=True)
    check_int("k1", cfg.k1)
    check_int("batch_size", cfg.batch_size)
    check_int("images_per_task", cfg.images_per_task)
    check_number("gpus_per_worker", cfg.gpus_per_worker, optional=True)
    check_int("ray_workers", cfg.ray_workers, optional=True)
    check_number("cpus_per_worker", cfg.cpus_per_worker, strict=True)
    if cfg.executor != "ray":
        given = [
            flag
            for flag, v in (
                ("`ray_address`", cfg.ray_address),
                ("`gpus_per_worker`", cfg.gpus_per_worker),
                ("`ray_workers`", cfg.ray_workers),
            )
            if v is not None
        ]
        if given:
            raise ValueError(f"{', '.join(given)} apply to `executor` ray, not to `executor` {cfg.executor}")
    check_int("shift", cfg.shift, minimum=0)
    check_int("max_k1", cfg.max_k1, optional=True)
    if cfg.min_ess is not None:
        check_number("min_ess", cfg.min_ess, strict=True)
        if cfg.min_ess < 1:
            raise ValueError(f"`min_ess` must be >= 1 (an effective number of samples), got {cfg.min_ess}")
        if cfg.max_k1 is not None and cfg.max_k1 < cfg.k1:
            raise ValueError(f"`max_k1` must be >= `k1` ({cfg.k1}), got {cfg.max_k1}")
    for flag, values in (("`sigma`", cfg.sigma), ("`sigma_q`", cfg.sigma_q)):
        for v in values or ():
            check_number(flag, v, strict=True)
    if cfg.target_ess is not None and not (isinstance(cfg.target_ess, (int, float)) and 0 < cfg.target_ess <= 1):
        raise ValueError(f"`target_ess` must be a fraction in (0, 1], got {cfg.target_ess!r}")
    _task_attribute(str(cfg.task))
