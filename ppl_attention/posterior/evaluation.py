"""Evaluate an AVP against the number of random glimpses: accuracy, NLL and ECE per glimpse count.

Every image is seen under ``draws`` independent random glimpse sets per glimpse count (one batched forward per
chunk of images), so the ECE is measured on ``draws x N`` predictions; its sampling error is reported as a
bootstrap interval over images and as the noise floor (the ECE a perfectly calibrated predictor with the same
confidences would show).  With one draw of 500 images the floor is ~0.05, larger than the targets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..runtime import derive_seed, generator
from .glimpses import random_locations
from .metrics import confidences, ece_bootstrap_interval, ece_noise_floor, expected_calibration_error, head_loss

if TYPE_CHECKING:
    from torch.utils.data import Dataset
    from .network import AVP

__all__ = ["fetch_batch", "collect_draws", "collect_by_glimpses", "evaluate_avp"]


def fetch_batch(dataset: Dataset, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(images, labels, attributes or None) of ``dataset`` rows ``index``; uses ``.images``/``.labels`` when the
    dataset exposes them (one tensor gather instead of one ``__getitem__`` per item)."""
    images, labels = getattr(dataset, "images", None), getattr(dataset, "labels", None)
    if isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor) and not hasattr(dataset, "attributes"):
        return images[index].float(), labels[index], None
    items = [dataset[int(i)] for i in index]
    attrs = torch.stack([it["attributes"] for it in items]) if "attributes" in items[0] else None
    return (
        torch.stack([it["image"] for it in items]).float(),
        torch.stack([torch.as_tensor(it["label"]) for it in items]),
        attrs,
    )


def check_labels(avp, labels: torch.Tensor, name: str = "labels") -> torch.Tensor:
    """Refuse labels the AVP's head cannot score (class index outside the head, wrong attribute count)."""
    if avp.head == "multilabel":
        if labels.dim() != 2 or labels.shape[1] != avp.num_attributes:
            raise ValueError(
                f"`{name}` must be (B, {avp.num_attributes}) attribute vectors for a multilabel head, "
                f"got shape {tuple(labels.shape)}"
            )
        if bool(((labels != 0) & (labels != 1)).any()):
            raise ValueError(f"{name} of a multilabel head must be 0 or 1")
        return labels.float()
    if labels.dim() != 1 or labels.dtype.is_floating_point and bool((labels != labels.round()).any()):
        raise ValueError(
            f"`{name}` must be (B,) class indices for a {avp.head} head, got {labels.dtype} {tuple(labels.shape)}"
        )
    labels = labels.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= avp.num_classes):
        raise ValueError(
            f"`{name}` must lie in [0, {avp.num_classes - 1}] (the head's classes), got range "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    return labels


@torch.no_grad()
def collect_draws(
    avp: AVP | torch.nn.parallel.DistributedDataParallel,
    dataset: Dataset,
    num_glimpses: int | tuple[str, int],
    seed: int,
    draws: int = 1,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    full: bool = False,
) -> dict:
    """Uncalibrated predictions of every item of ``dataset`` under ``draws`` independent random glimpse sets.

    ``num_glimpses``: an int t, or ``("mix", T)`` for t ~ U{0..T} per draw; ``full=True``: the whole image (one
    draw, it is deterministic).  Rows are image-major (image i, draw r at row i * draws + r); each forward sees
    ``batch_size`` rows.  Returns ``{"logits"`` (raw, no temperature), ``"labels"``, ``"attributes"`` (or None),
    ``"image"`` (row -> item index), ``"fraction"`` (observed fraction of the image)``}`` on the CPU.
    """
    if draws < 1:
        raise ValueError(f"`draws` must be >= 1, got {draws}")
    model = avp.module if hasattr(avp, "module") else avp
    model.eval()
    draws = 1 if full else int(draws)
    g = generator(derive_seed(seed, "avp-eval", str(num_glimpses)))
    out = {"logits": [], "labels": [], "attributes": [], "image": [], "fraction": []}
    n = len(dataset)
    per_chunk = max(1, batch_size // draws)
    for start in range(0, n, per_chunk):
        idx = torch.arange(start, min(n, start + per_chunk))
        images, labels, attrs = fetch_batch(dataset, idx)
        labels = check_labels(model, labels)
        images = model.check_images(images).to(device)
        rows = len(idx) * draws
        if draws > 1:
            images = images.repeat_interleave(draws, 0)
        if full:
            x = model.make_input(
                *model.grid.observe(
                    images, torch.zeros(rows, 0, dtype=torch.long), whole=torch.ones(rows, dtype=torch.bool)
                )
            )
        else:
            T, t = (num_glimpses[1], None) if isinstance(num_glimpses, tuple) else (num_glimpses, num_glimpses)
            x = model.make_input(*model.grid.observe(images, random_locations(model.grid, rows, T, g, t).to(device)))
        out["logits"].append(model.uncalibrated(x).cpu())
        out["fraction"].append(model.observed_fraction(x).cpu())
        out["labels"].append(labels.repeat_interleave(draws, 0))
        out["image"].append(idx.repeat_interleave(draws))
        if attrs is not None:
            out["attributes"].append(attrs.repeat_interleave(draws, 0))
    return {k: (torch.cat(v) if v else None) for k, v in out.items()}


def collect_by_glimpses(
    model: AVP, dataset: Dataset, max_glimpses: int, seed: int, draws: int, **options: Any
) -> list[dict]:
    """:func:`collect_draws` for t = 0..``max_glimpses`` glimpses (``draws`` glimpse sets each), then for the whole
    image (the last entry): what evaluation and calibration score.  ``options``: ``batch_size``, ``device``."""
    chunks = [collect_draws(model, dataset, t, seed, draws, **options) for t in range(max_glimpses + 1)]
    return chunks + [collect_draws(model, dataset, 0, seed, 1, full=True, **options)]


def calibration_scores(
    model,
    logits,
    labels,
    attrs=None,
    groups=None,
    bins: int = 15,
    seed: int = 0,
    resamples: int = 1000,
    simulations: int = 20,
) -> dict:
    """Accuracy, NLL, mean confidence and ECE of (calibrated) ``logits``; with ``groups`` (row -> image) also the
    bootstrap 95 % interval of the ECE over images and the ECE noise floor of a perfectly calibrated predictor."""
    conf, hits = confidences(logits, labels, model.head, model.num_classes)
    nll = head_loss(logits, labels, model.head, model.num_classes, attrs)
    out = {
        "accuracy": float(hits.mean()),
        "nll": float(nll),
        "confidence": float(conf.mean()),
        "ece": expected_calibration_error(conf, hits, bins),
        "n": int(len(labels)),
    }
    if groups is not None:
        per_row = conf.numel() // len(labels)  # multilabel: one (conf, hit) pair per attribute
        g = groups.repeat_interleave(per_row)
        lo, hi = ece_bootstrap_interval(conf, hits, g, bins, resamples, generator=generator(derive_seed(seed, "boot")))
        floor, floor_sd = ece_noise_floor(conf, bins, simulations, generator(derive_seed(seed, "floor")))
        out.update(
            images=int(groups.unique().numel()),
            ece_low=lo,
            ece_high=hi,
            ece_noise_floor=floor,
            ece_noise_floor_sd=floor_sd,
        )
    return out


@torch.no_grad()
def evaluate_avp(
    avp: AVP | torch.nn.parallel.DistributedDataParallel,
    dataset: Dataset,
    max_glimpses: int,
    seed: int = 0,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    bins: int = 15,
    draws: int = 20,
) -> dict:
    """``{"per_glimpses": [row for t = 0..T], "full_image": row, ...}`` with the AVP's calibration applied.

    Every image is seen under ``draws`` random glimpse sets per t (locations uniform over the grid, seeded per
    t).  A row holds ``accuracy``, ``nll``, ``confidence`` (mean), ``ece``, its bootstrap 95 % interval over
    images (``ece_low``, ``ece_high``), the ``ece_noise_floor`` (+ ``_sd``) of a perfectly calibrated predictor
    with the same confidences, ``n`` = draws x images predictions, ``images``, the mean observed ``fraction``
    and ``uncalibrated`` ``{"nll", "ece"}`` (without any temperature).
    """
    if max_glimpses < 0:
        raise ValueError(f"`max_glimpses` must be >= 0, got {max_glimpses}")
    model = avp.module if hasattr(avp, "module") else avp

    def score(d, key):
        calibrated = model.calibrate_logits(d["logits"], d["fraction"])
        row = calibration_scores(
            model, calibrated, d["labels"], d["attributes"], d["image"], bins, derive_seed(seed, key)
        )
        raw = calibration_scores(model, d["logits"], d["labels"], d["attributes"], None, bins)
        return {**row, "fraction": float(d["fraction"].mean()), "uncalibrated": {"nll": raw["nll"], "ece": raw["ece"]}}

    *per_t, whole = collect_by_glimpses(model, dataset, max_glimpses, seed, draws, batch_size=batch_size, device=device)
    rows = [{"t": t, "draws": draws, **score(d, t)} for t, d in enumerate(per_t)]
    full = score(whole, "full")
    calibration = {"temperature": float(model.temperature)}
    if model.fraction_temperatures() is not None:
        calibration["fraction_temperatures"] = model.fraction_temperatures()
    return {
        "per_glimpses": rows,
        "full_image": full,
        "temperature": float(model.temperature),
        "calibration": calibration,
        "bins": bins,
        "draws": draws,
    }
