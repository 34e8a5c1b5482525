"""Calibration of the AVP: temperature scaling (Guo et al. 2017), optionally as a function of how much of the
image is observed.

A single temperature cannot fix an AVP whose miscalibration changes with the number of glimpses (the small CNN
trained on cluttered MNIST is under-confident after 1-5 glimpses, fitted T ~ 0.86-0.95, slightly over-confident
on whole images, T ~ 1.12, and not quite uniform with no glimpse, where the fit flattens it, T ~ 20).
The observed fraction of the image is what the network sees of "how many glimpses" (the mean of its mask
channel), so the calibrated logits are ``raw / T(fraction)`` with log T piecewise linear between knots at the
fractions of t = 0..T non-overlapping glimpses and at the whole image.  The AVP applies it inside ``forward``
(:meth:`~ppl_attention.posterior.network.AVP.temperature_at`), so every caller gets calibrated logits.

:func:`calibrate_avp` fits a single temperature and the fraction temperatures by NLL on the validation images
(every image under several random glimpse draws per t), judges them by two-fold cross-fitting over images (each
half scored with the fit on the other half), keeps the one with the lowest held-out ECE among those that lower
the NLL without raising the mean ECE over t, and refits it on all images.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import torch

from ..runtime import derive_seed
from .evaluation import collect_by_glimpses
from .metrics import confidences, expected_calibration_error, head_loss

if TYPE_CHECKING:
    from typing import Sequence
    from torch.utils.data import Dataset
    from ..sensor import Sensor
    from .network import AVP

__all__ = [
    "fraction_log_temperature",
    "fraction_knots",
    "fit_temperature",
    "fit_fraction_temperatures",
    "choose_calibration",
    "calibrate_avp",
]

log = logging.getLogger(__name__)

#: |log T| stays below this (T in [1/100, 100]); with no glimpse the NLL optimum can be T -> infinity.
MAX_LOG_TEMPERATURE = math.log(100.0)


def fraction_log_temperature(fraction: torch.Tensor, knots: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """log T at observed ``fraction`` (B,): linear interpolation of ``values`` (K,) between increasing ``knots``
    (K,), constant beyond the first and last knot."""
    knots = knots.to(fraction)
    values = values.to(fraction)
    if knots.numel() == 1:
        return values.expand(fraction.shape)
    f = torch.minimum(torch.maximum(fraction, knots[0]), knots[-1])
    i = torch.searchsorted(knots, f.contiguous(), right=True).clamp(1, knots.numel() - 1)
    lo, hi = knots[i - 1], knots[i]
    w = (f - lo) / (hi - lo)
    return values[i - 1] + w * (values[i] - values[i - 1])


def fraction_knots(grid: Sensor, max_glimpses: int) -> torch.Tensor:
    """Knots at the observed fraction of t = 0..T non-overlapping glimpses and at the whole image (fraction 1)."""
    (H, W), (h, w) = grid.image_size, grid.glimpse_size
    area = h * w / (H * W)
    return torch.tensor(sorted({min(1.0, round(t * area, 6)) for t in range(max_glimpses + 1)} | {1.0}))


def _bounded(raw: torch.Tensor) -> torch.Tensor:
    return MAX_LOG_TEMPERATURE * torch.tanh(raw / MAX_LOG_TEMPERATURE)


def _lbfgs(param: torch.Tensor, loss_fn, max_iter: int) -> None:
    opt = torch.optim.LBFGS([param], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)


def fit_temperature(
    logits: torch.Tensor,
    labels: torch.Tensor,
    head: str,
    num_classes: int = 0,
    attributes: torch.Tensor | None = None,
    max_iter: int = 100,
) -> float:
    """The temperature minimising NLL(logits / T) (optimised over log T, so T stays positive)."""
    log_t = torch.zeros((), requires_grad=True)
    with torch.enable_grad():
        _lbfgs(log_t, lambda: head_loss(logits / log_t.exp(), labels, head, num_classes, attributes), max_iter)
    t = float(log_t.detach().exp())
    return t if math.isfinite(t) else 1.0


def fit_fraction_temperatures(
    logits: torch.Tensor,
    fraction: torch.Tensor,
    labels: torch.Tensor,
    head: str,
    knots: torch.Tensor,
    num_classes: int = 0,
    attributes: torch.Tensor | None = None,
    max_iter: int = 200,
) -> torch.Tensor:
    """log T at ``knots`` (K,) minimising NLL(logits / T(fraction)), log T interpolated between the knots.

    Knots without nearby data keep the value of their neighbours' fit only through the interpolation; |log T|
    is bounded by :data:`MAX_LOG_TEMPERATURE`.
    """
    if fraction.shape != logits.shape[:1]:
        raise ValueError(f"`fraction` must have shape ({logits.shape[0]},), got {tuple(fraction.shape)}")
    knots = torch.as_tensor(knots, dtype=logits.dtype)
    raw = torch.zeros(knots.numel(), dtype=logits.dtype, requires_grad=True)

    def loss():
        t = fraction_log_temperature(fraction, knots, _bounded(raw)).exp().unsqueeze(-1)
        return head_loss(logits / t, labels, head, num_classes, attributes)

    with torch.enable_grad():
        _lbfgs(raw, loss, max_iter)
    values = _bounded(raw.detach())
    return torch.where(torch.isfinite(values), values, torch.zeros_like(values))


def _judge(model, logits, labels, attrs, groups) -> dict:
    """NLL over all rows, ECE per group (glimpse count) and its mean: what a candidate calibration is judged by."""
    nll = float(head_loss(logits, labels, model.head, model.num_classes, attrs))
    per = {}
    for key in sorted(groups.unique().tolist(), key=lambda k: (k < 0, k)):  # 0..T, then the whole image
        sel = groups == key
        conf, hits = confidences(logits[sel], labels[sel], model.head, model.num_classes)
        per["full" if key < 0 else str(key)] = expected_calibration_error(conf, hits)
    return {"nll": nll, "ece": sum(per.values()) / len(per), "ece_by_t": per}


@torch.no_grad()
def choose_calibration(
    model: AVP, predictions: dict, knots: torch.Tensor, methods: Sequence[str] = ("temperature", "fraction")
) -> dict:
    """Fit, judge and set the calibration of ``model`` from uncalibrated validation ``predictions``.

    ``predictions``: ``{"logits"`` (raw), ``"fraction"``, ``"labels"``, ``"attributes"`` (or None), ``"image"``
    (row -> image), ``"t"`` (row -> glimpse count, -1 for the whole image)``}``.  Each candidate of ``methods``
    is judged by two-fold cross-fitting over images (the draws of one image are correlated): every image is
    scored with the calibration fitted on the other half.  Among the candidates that lower the held-out NLL
    without raising the mean held-out ECE over t, the one with the lowest ECE (the target; the NLLs of good
    candidates differ by ~1e-4 nats) is refitted on all images and set; if none qualifies the model is left
    uncalibrated (temperature 1, no fraction temperatures).
    """
    unknown = set(methods) - {"temperature", "fraction"}
    if unknown:
        raise ValueError(f"`methods` must be among ('temperature', 'fraction'), got {sorted(unknown)}")
    logits, fraction, labels, image, t_of_row = (predictions[k] for k in ("logits", "fraction", "labels", "image", "t"))
    attrs = predictions.get("attributes")
    knots = torch.as_tensor(knots, dtype=logits.dtype)

    def fit(method, rows):
        a = None if attrs is None else attrs[rows]
        if method == "temperature":
            return math.log(fit_temperature(logits[rows], labels[rows], model.head, model.num_classes, a)), None
        return 0.0, fit_fraction_temperatures(
            logits[rows], fraction[rows], labels[rows], model.head, knots, model.num_classes, a
        )

    def apply(rows, log_t, values):
        out = logits[rows] / math.exp(log_t)
        if values is not None:
            out = out / fraction_log_temperature(fraction[rows], knots, values).exp().unsqueeze(-1)
        return out

    folds = [image % 2 == k for k in range(2)]
    if not all(bool(f.any()) for f in folds):
        raise ValueError("calibration needs predictions of at least two images (one per cross-fitting fold)")
    order = torch.cat([torch.nonzero(f).squeeze(1) for f in folds])
    a_out = None if attrs is None else attrs[order]
    before = _judge(model, logits[order], labels[order], a_out, t_of_row[order])
    candidates = {}
    for method in methods:
        held_out = [apply(folds[k], *fit(method, folds[1 - k])) for k in range(2)]
        candidates[method] = _judge(model, torch.cat(held_out), labels[order], a_out, t_of_row[order])
    allowed = [m for m in methods if candidates[m]["nll"] < before["nll"] and candidates[m]["ece"] <= before["ece"]]
    method = min(allowed, key=lambda m: (candidates[m]["ece"], candidates[m]["nll"])) if allowed else "none"
    log_t, values = fit(method, torch.ones_like(folds[0])) if method != "none" else (0.0, None)
    model.temperature.fill_(math.exp(log_t))
    model.set_fraction_temperatures(None if values is None else knots, values)
    after = candidates.get(method, before)
    log.info(
        "calibration: %s (cross-fitted NLL %.4f -> %.4f, mean ECE over t %.4f -> %.4f)",
        method,
        before["nll"],
        after["nll"],
        before["ece"],
        after["ece"],
    )
    return _choice(method, log_t, values, knots, (before, after, candidates))


def _choice(method: str, log_t: float, values: torch.Tensor | None, knots: torch.Tensor, judged: tuple) -> dict:
    """What :func:`choose_calibration` returns: the method kept, its temperature(s) and the cross-fitted judgements
    (``judged``: before, after and of every candidate)."""
    before, after, candidates = judged
    fractions = None if values is None else {"fractions": knots.tolist(), "temperatures": values.exp().tolist()}
    out = {"method": method, "kept": method != "none", "temperature": math.exp(log_t)}
    return {**out, "fraction_temperatures": fractions, "before": before, "after": after, "candidates": candidates}


@torch.no_grad()
def calibrate_avp(
    avp: AVP | torch.nn.parallel.DistributedDataParallel,
    valid: Dataset,
    max_glimpses: int,
    seed: int = 0,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    draws: int = 4,
    methods: Sequence[str] = ("temperature", "fraction"),
) -> dict:
    """Calibrate ``avp`` on ``valid``: every image under ``draws`` random glimpse sets for each t = 0..T, plus
    the whole image; candidates (``methods``): a single ``temperature`` and per-``fraction`` temperatures at
    :func:`fraction_knots`; see :func:`choose_calibration`.

    Returns ``{"method"`` (``none``, ``temperature`` or ``fraction``), ``"kept", "temperature",
    "fraction_temperatures", "before", "after", "candidates", "draws"}``; ``before``/``after``/``candidates``
    hold the cross-fitted ``nll``, the mean ``ece`` over t and ``ece_by_t`` (``"0"``..``"T"``, ``"full"``).
    """
    model = avp.module if hasattr(avp, "module") else avp
    seed = derive_seed(seed, "calibrate")
    chunks = collect_by_glimpses(model, valid, max_glimpses, seed, draws, batch_size=batch_size, device=device)
    predictions = {k: torch.cat([c[k] for c in chunks]) for k in ("logits", "fraction", "labels", "image")}
    predictions["attributes"] = (
        torch.cat([c["attributes"] for c in chunks]) if chunks[0]["attributes"] is not None else None
    )
    predictions["t"] = torch.cat(
        [torch.full((len(c["labels"]),), t if t <= max_glimpses else -1) for t, c in enumerate(chunks)]
    )
    out = choose_calibration(model, predictions, fraction_knots(model.grid, max_glimpses), methods)
    return {**out, "draws": draws}
