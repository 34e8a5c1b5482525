"""Choosing the completions' glimpse noise on held-out images so that their label distribution is calibrated.

The likelihood of a glimpse treats every pooled value as independent Gaussian noise around the prediction; too
small a sigma makes the importance weights collapse on one completion (ESS ~ 1, an over-confident label
distribution), too large a one ignores what was seen.  :func:`calibrate_noise` scores a grid of multipliers of a
sampler's noise schedule on held-out images with known labels, step by step along given glimpse sequences:

- the expected calibration error (ECE) of P(label) from the completions (top label, equal-width bins), and its
  reliability curve; P(label) is the weighted label histogram of the ``n`` completions, or with
  ``label_estimate="scored"`` of every candidate the sampler weighted before resampling ``n`` of them: the same
  posterior without the resampling's noise, which alone makes a flat posterior look peaked (40 equal-weight
  draws over 10 equally likely labels give the most frequent one 0.18 on average);
- the mean P(true label), its negative log (NLL, floored at ``1e-3``), the median effective sample size and the
  median number of distinct completions;

- given the AVP (``posterior``), the EPE the completions predict for the next random glimpse against the entropy
  the AVP has once that glimpse is taken: the design's own prediction, at a location no search chose (so free of
  the optimiser's curse);

and picks, among the multipliers whose median ESS reaches ``min_ess`` (the largest ESS when none does), the one of
least mean NLL (``criterion="nll"``) or of least worst-step relative EPE error (``criterion="epe"``).
:func:`per_step_scales` picks one multiplier per step instead: the sharpest calibrated one.  The NLL is
a proper score: it rewards calibration and sharpness together, where the ECE alone is smallest for completions
that ignore the glimpses (the label frequencies).  :func:`label_calibration` is the metric alone.
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import torch

from ..checks import check_choice, check_int, check_number
from ..config import GLIMPSES, setting
from .base import DEFAULT_K1, pool_draws
from .importance import _schedule, _sigma

if TYPE_CHECKING:
    from .base import Completion

__all__ = [
    "label_calibration",
    "with_noise_scale",
    "random_glimpses",
    "calibrate_noise",
    "per_step_scales",
    "scaled_schedule",
    "calibrated_sigma",
    "NoiseCalibrationConfig",
]

#: how ``calibrate_noise`` chooses among the scales of a usable ESS: the NLL of the true label, or the EPE's error
CRITERIA = ("nll", "epe")
#: whose label histogram is scored: the ``n`` completions, or every candidate the sampler weighted
LABEL_ESTIMATES = ("completions", "scored")


def label_calibration(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> dict:
    """ECE of categorical predictions ``probs`` (M, K) against ``labels`` (M,): the count-weighted mean gap between
    top-label confidence and accuracy over ``bins`` equal-width bins; ``ece_floor``, the mean ECE a perfectly
    calibrated predictor with the same confidences shows on M predictions (the binned estimator is biased up, by
    much on a few dozen images), and ``ece_floor_sd``, its spread: an ECE within a few of these of a target is not
    resolved by M predictions; the reliability curve (one entry per non-empty bin) and the mean P(true label)."""
    from ..posterior.metrics import ece_noise_floor, expected_calibration_error

    if probs.dim() != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(f"`probs` must be (M, K) and labels (M,), got {tuple(probs.shape)} and {tuple(labels.shape)}")
    if bins < 1:
        raise ValueError(f"`bins` must be >= 1, got {bins}")
    p = probs.double() / probs.double().sum(1, keepdim=True)
    conf, pred = p.max(1)
    correct = (pred == labels.long()).double()
    which = (conf * bins).long().clamp(max=bins - 1)
    count = torch.bincount(which, minlength=bins).double()
    conf_sum = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, conf)
    acc_sum = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, correct)
    used = count > 0
    curve = [
        {"confidence": float(c / n), "accuracy": float(a / n), "count": int(n)}
        for c, a, n in zip(conf_sum[used], acc_sum[used], count[used])
    ]
    p_true = p[torch.arange(len(labels)), labels.long()]
    floor, floor_sd = ece_noise_floor(conf, bins, simulations=200, generator=torch.Generator().manual_seed(0))
    return {
        "ece": expected_calibration_error(conf, correct, bins),
        "ece_floor": floor,
        "ece_floor_sd": floor_sd,
        "curve": curve,
        "p_true": float(p_true.mean()),
        "nll": float(-p_true.clamp(min=1e-3).log().mean()),
    }


def with_noise_scale(sampler: Completion, scale: float) -> Completion:
    """A copy of a completion whose glimpse noise schedule (``.sigma``) is multiplied by ``scale``."""
    if not scale > 0:
        raise ValueError(f"`scale` must be positive, got {scale!r}")
    base = sampler.sigma
    out = copy.copy(sampler)
    out.sigma = lambda t: float(scale) * 255.0 * _sigma(base, t)  # 0..255, as a callable schedule
    return out


def random_glimpses(num_locations: int, M: int, T: int, generator: torch.Generator) -> torch.Tensor:
    """(M, T) distinct uniformly random locations per image: the glimpses the calibration is scored after."""
    return torch.rand(M, num_locations, generator=generator).argsort(1)[:, :T]


def calibrate_noise(
    sampler: Completion,
    images: torch.Tensor,
    labels: torch.Tensor,
    locations: torch.Tensor,
    scales: Sequence[float],
    num_samples: int,
    num_classes: int,
    seed: int = 0,
    min_ess: float = 10.0,
    bins: int = 10,
    posterior: Callable | None = None,
    criterion: str = "nll",
    pooled_draws: int = 1,
    keep_predictions: bool = False,
    label_estimate: str = "completions",
) -> dict:
    """Score ``sampler``'s noise schedule times each of ``scales`` on held-out ``images`` (M, C, H, W) with
    ``labels`` (M,), after 1 .. T glimpses at ``locations`` (M, T) (module docstring).  Returns ``{"scales":
    [{"scale", "steps": [{"t", "ece", "curve", "p_true", "nll", "median_ess", "median_distinct"}], "worst_ece",
    "nll", "median_ess"}], "chosen": scale}``; ``pooled_draws`` > 1 pools that many independent draws of ``num_samples``
    completions (:func:`~.base.pool_draws`, as the design pools them); with ``posterior`` (an AVP on the sampler's
    sensor) each step also holds the AVP's own ``avp_p_true`` on the true images, each step t < T ``epe``:
    ``{"predicted", "realised", "relative"}`` for glimpse t + 1, and each scale ``worst_epe_error``, the largest
    ``|relative|``.  ``keep_predictions`` adds ``"predictions"``: the completions' label distributions, (S, T, M, K)
    over scales, steps and images, so that runs on disjoint images can be pooled into one calibration;
    ``label_estimate`` is one of :data:`LABEL_ESTIMATES` (module docstring)."""

    _check_arguments(images, labels, locations, scales, criterion, posterior, label_estimate)
    scored = label_estimate == "scored"
    grid = sampler.grid
    glimpses = grid.extract(images, locations)  # (M, T, k*C, h, w)
    # the AVP on the true images does not depend on the noise: once per step, not once per scale
    reference = None if posterior is None else _avp_reference(posterior, images, labels, locations, grid, num_classes)
    results, predictions = [], []
    for scale in scales:
        comp = with_noise_scale(sampler, scale)
        steps = []
        for t in range(1, locations.shape[1] + 1):
            draw = partial(comp.sample, n=num_samples)
            probs, ess, distinct, samples = _draw_step(
                draw, t, locations, glimpses, num_classes, seed, pooled_draws, scored
            )
            predicted = []
            if posterior is not None and t < locations.shape[1]:
                predicted = [
                    _next_glimpse_epe(posterior, s, locations[m, : t + 1], grid) for m, s in enumerate(samples)
                ]
            predictions.append(torch.stack(probs))
            step = {"t": t, **label_calibration(predictions[-1], labels, bins)}
            step.update(median_ess=statistics.median(ess), median_distinct=statistics.median(distinct))
            steps.append(_with_avp(step, reference, predicted))
        results.append(_scale_result(scale, steps))
    out = {"scales": results, "chosen": _chosen(results, min_ess, criterion), "min_ess": float(min_ess)}
    out["criterion"] = criterion
    out["per_step"] = per_step_scales([{"scale": r["scale"], **step} for r in results for step in r["steps"]])
    if keep_predictions:
        out["predictions"] = torch.stack(predictions).reshape(len(scales), locations.shape[1], *predictions[0].shape)
    return out


def _draw_step(
    draw: Callable, t: int, locations, glimpses, num_classes: int, seed: int, pooled_draws: int, scored: bool
):
    """Each image's completions after its first ``t`` glimpses: label distributions (of the ``scored`` candidates,
    or of the completions), ESS, distinct completions and the samples themselves (for the next glimpse's EPE)."""
    from ..runtime import derive_seed, generator

    probs, ess, distinct, samples = [], [], [], []
    for m in range(locations.shape[0]):  # one seeded draw per (image, step): independent of the batching
        g = generator(derive_seed(seed, "noise-calibration", m, t))
        s = pool_draws(lambda: draw(locations[m, :t], glimpses[m, :t], generator=g), pooled_draws)
        probs.append(s.label_posterior(num_classes, scored))
        ess.append(float(s.diagnostics.get("ess", s.ess)))
        distinct.append(len(s))  # pooled draws: the completions of all of them
        samples.append(s)
    return probs, ess, distinct, samples


def _with_avp(step: dict, reference: dict | None, predicted: list[float]) -> dict:
    """``step`` with the AVP's own P(true label) and, where the next glimpse's EPE was ``predicted``, its error
    against the entropy the AVP has after that glimpse."""
    t = step["t"]
    if reference is not None:
        step["avp_p_true"] = reference["p_true"][t - 1]
    if predicted:
        p, r = statistics.fmean(predicted), reference["entropy"][t]  # the AVP's entropy after glimpse t + 1
        step["epe"] = {"predicted": p, "realised": r, "relative": r / p - 1.0 if p > 0 else float("nan")}
    return step


def _check_arguments(images, labels, locations, scales, criterion: str, posterior, label_estimate: str) -> None:
    """:func:`calibrate_noise`'s arguments agree, or a ValueError naming the one at fault."""
    if locations.dim() != 2 or locations.shape[0] != images.shape[0] or labels.shape != (images.shape[0],):
        raise ValueError(
            f"images (M, C, H, W), labels (M,) and locations (M, T) must agree on M, got "
            f"{tuple(images.shape)}, {tuple(labels.shape)} and {tuple(locations.shape)}"
        )
    if not scales:
        raise ValueError("`scales` must hold at least one multiplier of the noise schedule")
    check_choice("criterion", criterion, CRITERIA)
    check_choice("label_estimate", label_estimate, LABEL_ESTIMATES)
    if criterion == "epe" and posterior is None:
        raise ValueError("`criterion` 'epe' needs the AVP (`posterior`) that scores the completions")


def _chosen(results: list[dict], min_ess: float, criterion: str) -> float:
    """The scale of least NLL (or worst EPE error) among those whose median ESS reaches ``min_ess``; the scale of
    largest ESS when none does."""
    usable = [r for r in results if r["median_ess"] >= min_ess]
    key = (lambda r: r["nll"]) if criterion == "nll" else (lambda r: r["worst_epe_error"])
    return (min(usable, key=key) if usable else max(results, key=lambda r: r["median_ess"]))["scale"]


def per_step_scales(rows: Sequence[dict], max_ece: float = 0.05) -> list[float]:
    """One noise multiplier per step from scored ``rows`` (``{"scale", "t", "ece", "nll"}``, e.g. the steps of
    :func:`calibrate_noise`'s scales): at each step, of the scales whose ECE is at most ``max_ece``, the one of least
    NLL (the sharpest calibrated noise; the least ECE alone favours completions that ignore the glimpses); the
    scale of least ECE where none is that calibrated."""
    check_number("max_ece", max_ece, strict=True)
    steps = sorted({int(r["t"]) for r in rows})
    if not steps:
        raise ValueError("`rows` must hold at least one scored (scale, step)")
    chosen = []
    for t in steps:
        at = [r for r in rows if r["t"] == t]
        calibrated = [r for r in at if r["ece"] <= max_ece]
        best = min(calibrated, key=lambda r: r["nll"]) if calibrated else min(at, key=lambda r: r["ece"])
        chosen.append(float(best["scale"]))
    return chosen


def scaled_schedule(sigma: Sequence[float], multipliers: Sequence[float]) -> list[float]:
    """The noise schedule (0..255 after 1, 2, ... glimpses) ``sigma`` times ``multipliers``: one multiplier for the
    whole schedule, or one per step t = 1..T (the base schedule's value at each step, its last value beyond it)."""
    if len(multipliers) == 1:
        return [round(s * multipliers[0], 2) for s in sigma]
    base = _schedule(list(sigma))
    return [round(255.0 * _sigma(base, t) * m, 2) for t, m in enumerate(multipliers, 1)]


def _scale_result(scale: float, steps: list[dict]) -> dict:
    """One noise scale's summary over its steps."""
    out = {
        "scale": float(scale),
        "steps": steps,
        "worst_ece": max(s["ece"] for s in steps),
        "nll": statistics.fmean(s["nll"] for s in steps),
        "median_ess": statistics.median(s["median_ess"] for s in steps),
    }
    errors = [abs(s["epe"]["relative"]) for s in steps if "epe" in s]
    if errors:
        out["worst_epe_error"] = max(errors)
    return out


def _next_glimpse_epe(posterior: Callable, samples, locations: torch.Tensor, grid) -> float:
    """The completions' EPE of glimpse ``locations[-1]`` after ``locations[:-1]`` (the first attribute of a
    multi-attribute posterior, as :func:`~ppl_attention.design.evaluate.posterior_entropy`)."""
    from ..design.epe import expected_posterior_entropy
    from ..design.sequential import posterior_device

    device = posterior_device(posterior)
    loc = locations.to(device)
    epe = expected_posterior_entropy(posterior, samples.images.to(device), samples.weights, loc[:-1], loc[-1:], grid)
    return float(epe[0] if epe.dim() == 1 else epe[0, 0])


def _avp_reference(posterior: Callable, images, labels, locations: torch.Tensor, grid, num_classes: int) -> dict:
    """The AVP on the true images after t = 1 .. T glimpses: its mean P(true label) (None for a posterior of other
    outputs than ``num_classes`` label logits) and its mean entropy, lists indexed by t - 1."""
    from ..design.evaluate import logits_entropy, posterior_logits
    from ..design.sequential import posterior_device

    images = images.to(posterior_device(posterior))
    p_true, entropy = [], []
    for t in range(1, locations.shape[1] + 1):  # T passes over the images, each one batched
        logits = posterior_logits(posterior, images, locations[:, :t], grid)
        label_logits = logits.dim() == 2 and logits.shape[1] == num_classes
        p = torch.softmax(logits.double(), 1)[torch.arange(len(labels)), labels.long()] if label_logits else None
        p_true.append(None if p is None else float(p.mean()))
        entropy.append(float(logits_entropy(posterior, logits).mean()))
    return {"p_true": p_true, "entropy": entropy}


def calibrated_sigma(calibration: str | Path, prior: str | Path) -> list[float]:
    """The noise schedule that ``calibrate-noise`` chose in the directory ``calibration`` (its ``calibration.json``)
    for the prior ``prior``; refused when it was calibrated on another prior (its checksum differs)."""
    from ..artifacts import dir_checksum, read_json

    path = Path(calibration) / "calibration.json"
    if not path.is_file():
        raise FileNotFoundError(f"`noise_from` {calibration} holds no calibration.json: run calibrate-noise into it")
    record = read_json(path)
    if record.get("prior") != dir_checksum(prior):
        raise ValueError(
            f"`noise_from` {calibration} was calibrated on another prior than {prior}: "
            "calibrate this prior's noise (calibrate-noise), or give `sigma`"
        )
    return [float(v) for v in record["chosen_sigma"]]


@dataclass(frozen=True)
class NoiseCalibrationConfig:
    """Settings of a noise calibration (``ppl-attention calibrate-noise``), checked when built."""

    split: str = setting("valid", "held-out split", choices=["valid", "test"])
    num_images: int = setting(50, "held-out images")
    glimpses: int = setting(GLIMPSES, "random glimpses per image", old_flags=("-T",))
    scales: tuple[float, ...] = setting((0.5, 1.0, 2.0, 3.0, 4.0, 8.0), "multipliers of the noise schedule to score")
    sigma: Optional[tuple[float, ...]] = setting(
        None, "base noise schedule (0..255 after 1, 2, ... glimpses; default: the prior's or the dataset's)"
    )
    num_samples: int = setting(40, "completions per draw")
    pooled_draws: int = setting(1, "independent draws of --num-samples completions pooled (as generate's)")
    k1: int = setting(DEFAULT_K1, "proposal draws of the importance sampler")
    min_ess: float = setting(10.0, "median ESS a chosen scale must reach")
    avp: Optional[str] = setting(
        None,
        "an AVP directory (train-avp, on the prior's sensor): also measure the EPE the completions predict for the "
        "next random glimpse against the entropy the AVP then has",
    )
    criterion: str = setting(
        "nll",
        "choose the scale of least NLL of the true label (nll) or of least worst-step EPE error (epe, needs --avp)",
        choices=list(CRITERIA),
    )
    per_step: bool = setting(
        False,
        "write as the chosen noise one multiplier per step (the sharpest calibrated one: least NLL of those of "
        "ECE <= 0.05) instead of the one scale of least NLL",
    )
    label_estimate: str = setting(
        "completions",
        "score the label histogram of the --num-samples completions, or of every candidate the sampler weighted "
        "before resampling them (scored: the same posterior without the resampling's noise)",
        choices=list(LABEL_ESTIMATES),
    )

    def __post_init__(self):
        check_choice("split", self.split, ("valid", "test"))
        for name in ("num_images", "glimpses", "num_samples", "pooled_draws", "k1"):
            check_int(name, getattr(self, name))
        check_number("min_ess", self.min_ess)
        check_choice("criterion", self.criterion, CRITERIA)
        check_choice("label_estimate", self.label_estimate, LABEL_ESTIMATES)
        if self.criterion == "epe" and self.avp is None:
            raise ValueError("`criterion` 'epe' needs `avp` (the AVP whose entropy the EPE predicts)")
        if not self.scales:
            raise ValueError("`scales` must hold at least one multiplier of the noise schedule")
        for v in self.scales:
            check_number("scales", v, strict=True)
        for v in self.sigma or ():
            check_number("sigma", v, strict=True)
