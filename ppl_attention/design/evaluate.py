"""Are the generated sequences any good?  Accuracy of a posterior after t glimpses along given sequences.

Compares near-optimal sequences with random ones and with the first-glimpse heuristic of the paper's appendix
B.2/B.3 (locations drawn independently at every step from ``softmax(-EPE_first / temperature)``, PS-H1/H5).
"""

from __future__ import annotations

from typing import Callable, TYPE_CHECKING

import torch

from ..sensor import NO_GLIMPSE, Sensor
from .epe import resolve_make_input

if TYPE_CHECKING:
    from typing import Sequence

__all__ = [
    "accuracy_along",
    "random_sequences",
    "heuristic_sequences",
    "compare_sequences",
    "epe_calibration",
    "posterior_entropy",
    "posterior_logits",
    "logits_entropy",
    "mean_ci",
]


@torch.no_grad()
def accuracy_along(
    posterior: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    sequences: torch.Tensor,
    grid: Sensor,
    make_input: Callable | None = None,
    batch_size: int = 512,
) -> torch.Tensor:
    """Accuracy after t = 1..T glimpses of each image at its sequence's first t locations: ``(T,)``.

    ``posterior`` maps ``make_input(images, mask)`` to class logits (a single logit = binary, > 0 means 1).
    """
    images = grid._check_images(images)
    labels = torch.as_tensor(labels, device=images.device)
    seq = grid._check_locations(torch.as_tensor(sequences), "sequences").to(images.device)
    if seq.dim() != 2 or seq.shape[0] != images.shape[0]:
        raise ValueError(f"`sequences` must have shape ({images.shape[0]}, T), got {tuple(seq.shape)}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"`labels` must have {images.shape[0]} rows, got {tuple(labels.shape)}")
    make_input = resolve_make_input(posterior, make_input)
    N, T = seq.shape
    correct = torch.zeros(T, dtype=torch.float64)
    # Every (image, t) pair is one row; the first t glimpses, NO_GLIMPSE (-1) padding the rest.
    steps = torch.arange(1, T + 1, device=images.device)
    pad = torch.where(
        torch.arange(T, device=images.device).unsqueeze(0) < steps.unsqueeze(1),
        torch.zeros(T, T, dtype=torch.long, device=images.device),
        -1,
    )  # (T, T): -1 = unseen
    all_loc = torch.where(pad.unsqueeze(0) == 0, seq.unsqueeze(1), pad.unsqueeze(0))  # (N, T, T)
    rows = all_loc.reshape(N * T, T)
    for start in range(0, N * T, batch_size):
        r = rows[start : start + batch_size]
        idx = torch.arange(start, start + len(r), device=images.device)
        logits = posterior(make_input(*grid.observe(images[idx // T], r)))
        if hasattr(posterior, "label_logits"):
            logits = posterior.label_logits(logits)
        pred = (
            (logits.reshape(len(r), -1)[:, 0] > 0).long()
            if logits.dim() == 1 or logits.shape[-1] == 1
            else logits.argmax(-1)
        )
        hit = (pred == labels[idx // T].long()).double()
        correct.index_add_(0, (idx % T).cpu(), hit.cpu())
    return correct / N


def random_sequences(
    n: int, T: int, grid: Sensor, generator: torch.Generator | None = None, allow_repeat: bool = False
) -> torch.Tensor:
    """``(n, T)`` uniformly random locations (without repeats within a sequence unless ``allow_repeat``)."""
    L = grid.num_locations
    if allow_repeat:
        return torch.randint(L, (n, T), generator=generator)
    if T > L:
        raise ValueError(f"T={T} exceeds the {L} locations; use allow_repeat=True")
    return torch.rand(n, L, generator=generator).argsort(1)[:, :T]


def heuristic_sequences(
    first_epe: torch.Tensor, n: int, T: int, inverse_temperature: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The paper's PS-H heuristic: ``(n, T)`` locations drawn independently from softmax(-gamma^-1 EPE_first)."""
    epe = torch.as_tensor(first_epe, dtype=torch.float64).flatten()
    if not bool(torch.isfinite(epe).all()):
        raise ValueError("first_epe holds NaN or infinite values")
    p = torch.softmax(-float(inverse_temperature) * epe, 0)
    return torch.multinomial(p.float(), n * T, replacement=True, generator=generator).view(n, T)


def compare_sequences(
    posterior: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    grid: Sensor,
    sequences: torch.Tensor,
    first_epe: torch.Tensor,
    seed: int = 0,
    inverse_temperatures: Sequence[float] = (1.0, 5.0),
    make_input: Callable | None = None,
    repeats: int = 1,
) -> dict:
    """Accuracy-by-t curves of the given (near-optimal) sequences, random ones and PS-H heuristics
    (``repeats`` random / heuristic sequences per image, to average over their randomness)."""
    n, T = torch.as_tensor(sequences).shape
    g = torch.Generator().manual_seed(int(seed))
    rep_images, rep_labels = images.repeat(repeats, 1, 1, 1), torch.as_tensor(labels).repeat(repeats)
    curves = {
        "near-optimal": accuracy_along(posterior, images, labels, sequences, grid, make_input),
        "random": accuracy_along(
            posterior, rep_images, rep_labels, random_sequences(n * repeats, T, grid, g), grid, make_input
        ),
    }
    for it in inverse_temperatures:
        h = heuristic_sequences(first_epe, n * repeats, T, it, g)
        curves[f"heuristic (1/gamma={it:g})"] = accuracy_along(posterior, rep_images, rep_labels, h, grid, make_input)
    return {k: v.tolist() for k, v in curves.items()}


def mean_ci(x: torch.Tensor | Sequence[float]) -> dict:
    """Mean and 95 % normal interval (1.96 standard errors) of the values ``x`` (n,), and ``n``."""
    x = torch.as_tensor(x, dtype=torch.float64)
    se = float(x.std() / len(x) ** 0.5) if len(x) > 1 else float("nan")
    m = float(x.mean())
    return {"mean": m, "lo": m - 1.96 * se, "hi": m + 1.96 * se, "n": len(x)}


@torch.no_grad()
def posterior_logits(
    posterior: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    locations: torch.Tensor,
    grid: Sensor,
    make_input: Callable | None = None,
    batch_size: int = 512,
) -> torch.Tensor:
    """The posterior's logits on each of ``images`` (B, C, H, W) after glimpses at its row of ``locations``
    (B, t; ``NO_GLIMPSE`` pads), ``batch_size`` images a pass, gathered on the CPU."""
    make_input = resolve_make_input(posterior, make_input)
    chunks = [
        posterior(
            make_input(*grid.observe(images[i : i + batch_size], locations[i : i + batch_size].to(images.device)))
        )
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat([c.cpu() for c in chunks])


def posterior_entropy(
    posterior: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    locations: torch.Tensor,
    grid: Sensor,
    make_input: Callable | None = None,
    attribute: int | None = None,
    batch_size: int = 512,
) -> torch.Tensor:
    """:func:`posterior_logits`' entropies, ``(B,)`` float64 on the CPU (:func:`logits_entropy`)."""
    return logits_entropy(
        posterior, posterior_logits(posterior, images, locations, grid, make_input, batch_size), attribute
    )


def logits_entropy(posterior: Callable, logits: torch.Tensor, attribute: int | None = None) -> torch.Tensor:
    """The entropy of each row of a posterior's ``logits``, float64: ``posterior.entropy`` if it has one, else a
    categorical softmax's; ``attribute`` picks one column of a multi-attribute posterior's, the first by default."""
    from ..model import entropy_from_logits

    H = posterior.entropy(logits) if hasattr(posterior, "entropy") else entropy_from_logits(logits)
    return (H[:, attribute or 0] if H.dim() > 1 else H).double()


@torch.no_grad()
def epe_calibration(
    posterior: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    grid: Sensor,
    sequences: torch.Tensor,
    epe_maps: torch.Tensor,
    make_input: Callable | None = None,
    attribute: int | None = None,
    batch_size: int = 512,
    independent: torch.Tensor | None = None,
) -> dict:
    """Predicted EPE of each chosen location against the realised posterior entropy, per step.

    ``sequences`` (N, T) and ``epe_maps`` (N, T, L) from a sequence store: step t's map scored every candidate
    given the first t - 1 glimpses, so ``epe_maps[:, t-1, sequences[:, t-1]]`` is what the design predicted the
    entropy after glimpse t would be; the realised entropy is the posterior's (``posterior.entropy``, or a softmax
    entropy) on the true image's first t glimpses.  Returns per step ``predicted`` / ``realised`` means with 95 %
    intervals, the paired ``difference`` (realised - predicted) and ``relative`` = realised / predicted - 1 (ratio
    of the means), and per-image ``rows``.  ``independent`` (N, T), NaN where not drawn: each chosen location's
    EPE on an independent draw of completions (a store's ``independent_epe``); the steps where every image has
    one also report it as ``independent`` and ``independent_relative`` = realised / independent - 1.
    """
    images = grid._check_images(images)
    seq = grid._check_locations(torch.as_tensor(sequences), "sequences")
    maps = torch.as_tensor(epe_maps, dtype=torch.float64)
    N, T = seq.shape
    if maps.shape[:2] != (N, T) or maps.shape[-1] != grid.num_locations:
        raise ValueError(
            f"`epe_maps` must have shape ({N}, {T}, {grid.num_locations}) to match the sequences, "
            f"got {tuple(maps.shape)}"
        )
    if independent is not None:
        independent = torch.as_tensor(independent, dtype=torch.float64)
        if independent.shape != (N, T):
            raise ValueError(f"`independent` must have shape ({N}, {T}), got {tuple(independent.shape)}")
    predicted = maps.gather(2, seq.unsqueeze(-1)).squeeze(-1)  # (N, T)
    if maps.dim() == 4:  # one map per attribute
        predicted = predicted[..., attribute or 0]
    # row (image, t): the image's first t + 1 locations, NO_GLIMPSE after them
    first = torch.arange(T).unsqueeze(0) <= torch.arange(T).unsqueeze(1)  # (T, T)
    rows = torch.where(first.unsqueeze(0), seq.unsqueeze(1), NO_GLIMPSE).reshape(N * T, T)
    realised = posterior_entropy(
        posterior, images.repeat_interleave(T, 0), rows, grid, make_input, attribute, batch_size
    ).view(N, T)
    steps = [_calibration_step(predicted[:, t], realised[:, t], independent, t) for t in range(T)]
    rows = {"predicted": predicted.tolist(), "realised": realised.tolist()}
    if independent is not None:
        rows["independent"] = independent.tolist()
    return {"images": N, "steps": steps, "rows": rows}


def _calibration_step(p: torch.Tensor, r: torch.Tensor, independent: torch.Tensor | None, t: int) -> dict:
    """Step ``t`` (0-based) of :func:`epe_calibration` from its predicted ``p`` and realised ``r`` entropies (N,)."""
    return {
        "t": t + 1,
        "predicted": mean_ci(p),
        "realised": mean_ci(r),
        "difference": mean_ci(r - p),
        "relative": _relative(r, p),
        **_independent_step(independent, t, r),
    }


def _relative(realised: torch.Tensor, predicted: torch.Tensor) -> float:
    """``realised / predicted - 1`` of the means (NaN when the prediction is 0)."""
    return float(realised.mean() / predicted.mean() - 1.0) if float(predicted.mean()) != 0 else float("nan")


def _independent_step(independent: torch.Tensor | None, t: int, realised: torch.Tensor) -> dict:
    """Step ``t``'s independent-draw estimate against the realised entropy, when every image has one."""
    if independent is None or bool(torch.isnan(independent[:, t]).any()):
        return {}
    i = independent[:, t]
    return {"independent": mean_ci(i), "independent_relative": _relative(realised, i)}
