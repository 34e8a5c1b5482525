"""``train_avp`` and ``evaluate``: train the attentional variational posterior g(label | glimpses), and measure
its accuracy, NLL and calibration against the number of random glimpses.

``train_avp`` runs under ``torchrun --nproc_per_node N`` too (DistributedDataParallel; rank 0 writes).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..checks import check_choice, check_in_dir, check_int, check_out_dir
from ..config import build_config, config_to_dict
from ._stage import DATASET_OPTIONS, dataset_flags, resolve_dataset, running, split_options, write_summary
from .handles import AVPHandle, DatasetArg, PathArg

__all__ = ["train_avp", "evaluate"]

#: What the dataset is read from, of a stage's options.
_DATASET_KEYS = (*DATASET_OPTIONS, "config")


def train_avp(
    out: PathArg,
    dataset: DatasetArg = "cluttered-mnist",
    *,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = False,
    **options,
) -> AVPHandle:
    """Train the AVP g(label | masked image, mask) on random glimpses into ``out`` (``ppl-attention train-avp``):
    options are :class:`~ppl_attention.posterior.training.TrainAVPConfig`'s fields (``epochs``, ``glimpses``...),
    ``train_size`` (MNIST canvases per epoch), ``exclude_design`` (leave the first N training images out, so that
    ``design_sequences(num_images=N)`` may design for them) and the dataset's (``root``, ``data_seed``...)."""
    from ..posterior.training import TrainAVPConfig

    extra = ("train_size", "exclude_design", *DATASET_OPTIONS)
    (values,), rest = split_options("train-avp", options, [TrainAVPConfig], extra)
    with running(quiet, **rest):
        summary = _train(Path(out), dataset, values, rest, seed, device)
    return AVPHandle(Path(out), summary)


def _init_distributed(device) -> bool:
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo" if device.type == "cpu" else "nccl")
        return True
    return False


def _train(out: Path, dataset, values: dict, rest: dict, seed: int, device) -> dict:
    """Check the settings, load the data, train (resuming ``out``'s checkpoint) and write the summary."""
    import torch.distributed as dist

    from ..posterior.training import TrainAVPConfig, check_train_avp_config, train_avp
    from ..runtime import resolve_device, seed_everything

    cfg = check_train_avp_config(build_config(TrainAVPConfig, yaml_path=rest.get("config"), **values))
    check_int("train_size", rest.get("train_size"), optional=True)
    check_out_dir(out)
    if cfg.pretrained is not None and not Path(cfg.pretrained).is_file():
        raise FileNotFoundError(
            f"`pretrained` {cfg.pretrained} does not exist (expected a torchvision state dict in .safetensors)"
        )
    device = resolve_device(device)
    started = _init_distributed(device)
    if device.type == "cuda" and started:
        import torch

        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    seed_everything(seed)
    spec, train, valid = _training_data(out, dataset, rest, seed)
    summary = {}
    try:
        model = train_avp(train, valid, out, cfg, seed=seed, device=device, dataset_name=spec.name)
        if (dist.get_rank() if started else 0) == 0:
            summary = _write_train_summary(out, spec, cfg, model)
    finally:
        if started:
            dist.destroy_process_group()
    return summary


def _training_data(out: Path, dataset, rest: dict, seed: int):
    """The dataset's spec and its training and validation splits (the design images held out)."""
    previous = [out] if (out / "manifest.json").is_file() else []  # a finished AVP: same data
    flags = dataset_flags(dataset, **{k: rest.get(k) for k in _DATASET_KEYS})
    spec = resolve_dataset(flags, previous, default="cluttered-mnist", seed=seed)
    kw = {"size": rest["train_size"]} if rest.get("train_size") is not None else {}
    train = spec.load("train", **kw)
    exclude = rest.get("exclude_design")
    if exclude:
        from ..design.honest import HeldOut

        check_int("exclude_design", exclude, minimum=0)
        try:  # the design images are the default split's (train_size only sets the canvases per epoch)
            train = HeldOut(train, exclude, spec.load("train") if kw else None)
        except ValueError as e:
            raise ValueError(f"`exclude_design`: {e}") from None
    return spec, train, spec.load("valid")


def _write_train_summary(out: Path, spec, cfg, model) -> dict:
    """``summary.json`` of a finished ``train_avp``: the data, the config and the best epoch's figures."""
    from ..artifacts import read_json

    hist = read_json(out / "history.json")
    summary = {"dataset": spec.name, "data": spec.describe(), "out": str(out), "config": config_to_dict(cfg)}
    summary.update(
        best_epoch=hist["best_epoch"],
        epochs_run=len(hist["history"]),
        best_valid_nll=min(h["valid_nll"] for h in hist["history"]),
        temperature=float(model.temperature),
    )
    return write_summary(out, summary)


# --------------------------------------------------------------------------- evaluation

#: ``evaluate``'s settings and their defaults.
EVALUATE_DEFAULTS = {
    "split": "test",
    "max_glimpses": None,
    "batch_size": 512,
    "draws": 20,
    "bins": 15,
    "recalibrate": False,
    "calibration_draws": 10,
}


def evaluate(avp: PathArg, *, seed: int = 0, device: str = "auto", quiet: bool = False, **options) -> dict:
    """Accuracy, NLL and calibration of an AVP against the number of random glimpses on its test split
    (``ppl-attention evaluate-avp``): the summary, and ``avp/evaluation.json`` in full.  Options: ``split``,
    ``glimpses`` (the largest t; default the AVP's T), ``batch_size``, ``draws`` (random glimpse sets per image
    and t), ``bins`` (of the ECE), ``recalibrate`` (refit the calibration on the validation split first, with
    ``calibration_draws``) and the dataset's, which may only repeat what the AVP records."""
    options = {("max_glimpses" if k == "glimpses" else k): v for k, v in options.items()}
    names = (*EVALUATE_DEFAULTS, "dataset", *DATASET_OPTIONS)
    _, rest = split_options("evaluate-avp", options, [], names)
    settings = {k: rest.get(k, v) for k, v in EVALUATE_DEFAULTS.items()}
    with running(quiet, **rest):
        return _evaluate(Path(avp), settings, rest, seed, device)


def _check_evaluate(directory: Path, s: dict) -> None:
    if not directory.exists():
        raise FileNotFoundError(f"AVP directory {directory} does not exist")
    check_in_dir(directory, "AVP directory", "an AVP directory (train-avp)")
    if s["draws"] < 1 or s["calibration_draws"] < 1 or s["bins"] < 1:
        raise ValueError(
            f"`draws`, `calibration_draws` and `bins` must be >= 1, got {s['draws']}, "
            f"{s['calibration_draws']}, {s['bins']}"
        )
    check_choice("split", s["split"], ("train", "valid", "test"))
    check_int("batch_size", s["batch_size"])
    check_int("max_glimpses", s["max_glimpses"], minimum=0, optional=True)
    check_out_dir(directory, "AVP directory")


def _evaluate(directory: Path, s: dict, rest: dict, seed: int, device) -> dict:
    """Check, evaluate (after recalibrating if asked), and write the evaluation, its figure and its summary."""
    from ..artifacts import atomic_write_json, read_manifest
    from ..plots.posterior import plot_avp_evaluation
    from ..posterior import evaluate_avp, load_avp
    from ..runtime import resolve_device
    from ..sensor import check_sensor

    _check_evaluate(directory, s)
    manifest = read_manifest(directory, "avp")
    device = resolve_device(device)
    avp = load_avp(directory, device)
    cfg = manifest["config"]
    T = cfg["T"] if s["max_glimpses"] is None else s["max_glimpses"]
    flags = dataset_flags(rest.get("dataset"), **{k: rest.get(k) for k in _DATASET_KEYS})
    spec = resolve_dataset(flags, [directory], default=None, seed=seed)
    data = spec.load(s["split"])
    check_sensor(avp.grid, data.grid, f"the AVP {directory}", f"the dataset {spec.describe()}'s sensor")
    calibration = _recalibrate(avp, directory, manifest, T, s, seed, device, spec) if s["recalibrate"] else None
    result = evaluate_avp(
        avp, data, T, seed=seed, batch_size=s["batch_size"], device=device, bins=s["bins"], draws=s["draws"]
    )
    result.update(dataset=cfg["dataset"], split=s["split"], seed=seed, data=spec.to_dict())
    if calibration is not None:
        result["recalibrated"] = calibration
    atomic_write_json(directory / "evaluation.json", result)
    figure = plot_avp_evaluation(
        result, directory / "avp_evaluation.png", title=f"AVP on {cfg['dataset']} ({s['split']})"
    )
    summary = _evaluation_summary(result, cfg["dataset"], spec, s, directory)
    return write_summary(directory, {**summary, "figure": str(figure)}, name="evaluation_summary.json")


def _recalibrate(avp, directory: Path, manifest: dict, T: int, s: dict, seed: int, device, spec) -> dict:
    """Refit ``avp``'s calibration on the validation split and rewrite ``directory`` (weights + manifest)."""
    from ..posterior import calibrate_avp, save_avp

    cfg = manifest["config"]
    valid = spec.load("valid")
    calibration = calibrate_avp(
        avp, valid, T, seed=seed, batch_size=s["batch_size"], device=device, draws=s["calibration_draws"]
    )
    own = {"dataset", "backbone", "head", "grid", "T", "normalisation", "temperature", "fraction_temperatures"}
    save_avp(
        avp,
        directory,
        cfg["dataset"],
        cfg["T"],
        extra_config={
            **{k: v for k, v in cfg.items() if k not in own},
            "data": spec.to_dict(),
            "calibration": calibration,
        },
        inputs=manifest.get("inputs"),
    )
    return calibration


def _evaluation_summary(result: dict, dataset: str, spec, s: dict, directory: Path) -> dict:
    """What ``evaluation_summary.json`` holds of an evaluation: accuracy, NLL and ECE per t, rounded."""
    rows = result["per_glimpses"]
    summary = {"dataset": dataset, "data": spec.describe(), "split": s["split"], "images": rows[0]["images"]}
    summary.update(draws=s["draws"], full_image_accuracy=round(result["full_image"]["accuracy"], 4))
    for key in ("accuracy", "nll", "ece"):
        summary[f"{key}_by_t"] = [round(r[key], 4) for r in rows]
    summary["ece_95_by_t"] = [[round(r["ece_low"], 4), round(r["ece_high"], 4)] for r in rows]
    summary["ece_noise_floor_by_t"] = [round(r["ece_noise_floor"], 4) for r in rows]
    summary["uncalibrated_ece_by_t"] = [round(r["uncalibrated"]["ece"], 4) for r in rows]
    return {**summary, "calibration": result["calibration"], "evaluation": str(directory / "evaluation.json")}
