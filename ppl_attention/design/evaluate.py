"""Are the generated sequences any good?  Accuracy of a posterior after t glimpses along given sequences.

Compares near-optimal sequences with random ones and with the first-glimpse heuristic of the paper's appendix
B.2/B.3 (locations drawn independently at every step from ``softmax(-EPE_first / temperature)``, PS-H1/H5).
"""
from __future__ import annotations

from typing import Callable

import torch

from ..sensor import GlimpseGrid
from .epe import resolve_make_input

__all__ = ["accuracy_along", "random_sequences", "heuristic_sequences", "compare_sequences"]


@torch.no_grad()
def accuracy_along(posterior, images: torch.Tensor, labels: torch.Tensor, sequences: torch.Tensor,
                   grid: GlimpseGrid, make_input: Callable | None = None, batch_size: int = 512) -> torch.Tensor:
    """Accuracy after t = 1..T glimpses of each image at its sequence's first t locations: ``(T,)``.

    ``posterior`` maps ``make_input(images, mask)`` to class logits (a single logit = binary, > 0 means 1).
    """
    images = grid._check_images(images)
    labels = torch.as_tensor(labels, device=images.device)
    seq = grid._check_locations(torch.as_tensor(sequences), "sequences").to(images.device)
    if seq.dim() != 2 or seq.shape[0] != images.shape[0]:
        raise ValueError(f"sequences must have shape ({images.shape[0]}, T), got {tuple(seq.shape)}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"labels must have {images.shape[0]} rows, got {tuple(labels.shape)}")
    make_input = resolve_make_input(posterior, make_input)
    N, T = seq.shape
    correct = torch.zeros(T, dtype=torch.float64)
    # Every (image, t) pair is one row; the first t glimpses, NO_GLIMPSE (-1) padding the rest.
    steps = torch.arange(1, T + 1, device=images.device)
    pad = torch.where(torch.arange(T, device=images.device).unsqueeze(0) < steps.unsqueeze(1),
                      torch.zeros(T, T, dtype=torch.long, device=images.device), -1)  # (T, T): -1 = unseen
    all_loc = torch.where(pad.unsqueeze(0) == 0, seq.unsqueeze(1), pad.unsqueeze(0))  # (N, T, T)
    rows = all_loc.reshape(N * T, T)
    for start in range(0, N * T, batch_size):
        r = rows[start:start + batch_size]
        idx = torch.arange(start, start + len(r), device=images.device)
        logits = posterior(make_input(*grid.observe(images[idx // T], r)))
        if hasattr(posterior, "label_logits"):
            logits = posterior.label_logits(logits)
        pred = (logits.reshape(len(r), -1)[:, 0] > 0).long() if logits.dim() == 1 or logits.shape[-1] == 1 \
            else logits.argmax(-1)
        hit = (pred == labels[idx // T].long()).double()
        correct.index_add_(0, (idx % T).cpu(), hit.cpu())
    return correct / N


def random_sequences(n: int, T: int, grid: GlimpseGrid, generator: torch.Generator | None = None,
                     allow_repeat: bool = False) -> torch.Tensor:
    """``(n, T)`` uniformly random locations (without repeats within a sequence unless ``allow_repeat``)."""
    L = grid.num_locations
    if allow_repeat:
        return torch.randint(L, (n, T), generator=generator)
    if T > L:
        raise ValueError(f"T={T} exceeds the {L} locations; use allow_repeat=True")
    return torch.rand(n, L, generator=generator).argsort(1)[:, :T]


def heuristic_sequences(first_epe: torch.Tensor, n: int, T: int, inverse_temperature: float = 1.0,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's PS-H heuristic: ``(n, T)`` locations drawn independently from softmax(-gamma^-1 EPE_first)."""
    epe = torch.as_tensor(first_epe, dtype=torch.float64).flatten()
    if not bool(torch.isfinite(epe).all()):
        raise ValueError("first_epe holds NaN or infinite values")
    p = torch.softmax(-float(inverse_temperature) * epe, 0)
    return torch.multinomial(p.float(), n * T, replacement=True, generator=generator).view(n, T)


def compare_sequences(posterior, images, labels, grid: GlimpseGrid, sequences: torch.Tensor,
                      first_epe: torch.Tensor, seed: int = 0, inverse_temperatures=(1.0, 5.0),
                      make_input: Callable | None = None, repeats: int = 1) -> dict:
    """Accuracy-by-t curves of the given (near-optimal) sequences, random ones and PS-H heuristics
    (``repeats`` random / heuristic sequences per image, to average over their randomness)."""
    n, T = torch.as_tensor(sequences).shape
    g = torch.Generator().manual_seed(int(seed))
    rep_images, rep_labels = images.repeat(repeats, 1, 1, 1), torch.as_tensor(labels).repeat(repeats)
    curves = {"near-optimal": accuracy_along(posterior, images, labels, sequences, grid, make_input),
              "random": accuracy_along(posterior, rep_images, rep_labels, random_sequences(n * repeats, T, grid, g),
                                       grid, make_input)}
    for it in inverse_temperatures:
        h = heuristic_sequences(first_epe, n * repeats, T, it, g)
        curves[f"heuristic (1/gamma={it:g})"] = accuracy_along(posterior, rep_images, rep_labels, h, grid,
                                                               make_input)
    return {k: v.tolist() for k, v in curves.items()}
