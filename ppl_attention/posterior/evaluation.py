"""Evaluate an AVP against the number of random glimpses: accuracy, NLL and ECE per glimpse count."""
from __future__ import annotations

import torch

from ..runtime import derive_seed, generator
from .glimpses import random_locations
from .metrics import confidences, expected_calibration_error, head_loss

__all__ = ["fetch_batch", "collect_logits", "evaluate_avp"]


def fetch_batch(dataset, index: torch.Tensor):
    """(images, labels, attributes or None) of ``dataset`` rows ``index``; uses ``.images``/``.labels`` when the
    dataset exposes them (one tensor gather instead of one ``__getitem__`` per item)."""
    images, labels = getattr(dataset, "images", None), getattr(dataset, "labels", None)
    if isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor) and not hasattr(dataset, "attributes"):
        return images[index].float(), labels[index], None
    items = [dataset[int(i)] for i in index]
    attrs = torch.stack([it["attributes"] for it in items]) if "attributes" in items[0] else None
    return (torch.stack([it["image"] for it in items]).float(),
            torch.stack([torch.as_tensor(it["label"]) for it in items]), attrs)


def check_labels(avp, labels: torch.Tensor, name: str = "labels") -> torch.Tensor:
    """Refuse labels the AVP's head cannot score (class index outside the head, wrong attribute count)."""
    if avp.head == "multilabel":
        if labels.dim() != 2 or labels.shape[1] != avp.num_attributes:
            raise ValueError(f"{name} must be (B, {avp.num_attributes}) attribute vectors for a multilabel head, "
                             f"got shape {tuple(labels.shape)}")
        if bool(((labels != 0) & (labels != 1)).any()):
            raise ValueError(f"{name} of a multilabel head must be 0 or 1")
        return labels.float()
    if labels.dim() != 1 or labels.dtype.is_floating_point and bool((labels != labels.round()).any()):
        raise ValueError(f"{name} must be (B,) class indices for a {avp.head} head, got {labels.dtype} "
                         f"{tuple(labels.shape)}")
    labels = labels.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= avp.num_classes):
        raise ValueError(f"{name} must lie in [0, {avp.num_classes - 1}] (the head's classes), got range "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return labels


@torch.no_grad()
def collect_logits(avp, dataset, num_glimpses, seed: int, batch_size: int = 512, device="cpu", full=False):
    """Raw logits (temperature removed), labels and attributes of every item of ``dataset`` observed through
    ``num_glimpses`` random glimpses (an int or ``"mix"`` = U{0..max}) or, with ``full=True``, the whole image."""
    model = avp.module if hasattr(avp, "module") else avp
    model.eval()
    g = generator(derive_seed(seed, "avp-eval", str(num_glimpses)))
    out_logits, out_labels, out_attrs = [], [], []
    n = len(dataset)
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(n, start + batch_size))
        images, labels, attrs = fetch_batch(dataset, idx)
        labels = check_labels(model, labels)
        images = model.check_images(images).to(device)
        if full:
            mask = torch.ones(len(idx), 1, *images.shape[-2:], device=device)
        else:
            T, t = (num_glimpses[1], None) if isinstance(num_glimpses, tuple) else (num_glimpses, num_glimpses)
            loc = random_locations(model.grid, len(idx), T, g, t)
            mask = model.grid.mask(loc, device=device)
        out_logits.append((model(model.make_input(images, mask)) * model.temperature).cpu())
        out_labels.append(labels)
        if attrs is not None:
            out_attrs.append(attrs)
    return torch.cat(out_logits), torch.cat(out_labels), (torch.cat(out_attrs) if out_attrs else None)


def _scores(model, logits, labels, attrs, bins=15) -> dict:
    conf, hits = confidences(logits, labels, model.head, model.num_classes)
    nll = head_loss(logits, labels, model.head, model.num_classes, attrs)
    return {"accuracy": float(hits.mean()), "nll": float(nll), "ece": expected_calibration_error(conf, hits, bins),
            "n": int(len(labels))}


@torch.no_grad()
def evaluate_avp(avp, dataset, max_glimpses: int, seed: int = 0, batch_size: int = 512, device="cpu",
                 bins: int = 15) -> dict:
    """``{"per_glimpses": [{"t", "accuracy", "nll", "ece", "n"} for t = 0..T], "full_image": {...}}`` with the
    AVP's temperature applied; glimpse locations are uniform over the grid, seeded per t."""
    model = avp.module if hasattr(avp, "module") else avp
    rows = []
    for t in range(max_glimpses + 1):
        logits, labels, attrs = collect_logits(model, dataset, t, seed, batch_size, device)
        rows.append({"t": t, **_scores(model, logits / model.temperature.cpu(), labels, attrs, bins)})
    logits, labels, attrs = collect_logits(model, dataset, 0, seed, batch_size, device, full=True)
    full = _scores(model, logits / model.temperature.cpu(), labels, attrs, bins)
    return {"per_glimpses": rows, "full_image": full, "temperature": float(model.temperature), "bins": bins}
