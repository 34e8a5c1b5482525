"""Temperature scaling of the AVP (Guo et al. 2017): one scalar T fitted by LBFGS on validation NLL over a mix of
glimpse counts.  T is fitted on half of the validation predictions and judged on the other half, and kept only
if it lowers the held-out NLL without raising the held-out ECE."""
from __future__ import annotations

import logging

import torch

from .evaluation import collect_logits
from .metrics import confidences, expected_calibration_error, head_loss

__all__ = ["fit_temperature", "calibrate_avp"]

log = logging.getLogger(__name__)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, head: str, num_classes: int = 0,
                    attributes=None, max_iter: int = 100) -> float:
    """The temperature minimising NLL(logits / T) (optimised over log T, so T stays positive)."""
    log_t = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = head_loss(logits / log_t.exp(), labels, head, num_classes, attributes)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    return t if torch.isfinite(torch.tensor(t)) else 1.0


def _nll_ece(model, logits, labels, attrs):
    conf, hits = confidences(logits, labels, model.head, model.num_classes)
    return (float(head_loss(logits, labels, model.head, model.num_classes, attrs)),
            expected_calibration_error(conf, hits))


@torch.no_grad()
def calibrate_avp(avp, valid, max_glimpses: int, seed: int = 0, batch_size: int = 512, device="cpu",
                  repeats: int = 2) -> dict:
    """Fit ``avp.temperature`` on ``valid`` with t ~ U{0..T}; sets it only if it helps on held-out predictions.

    Returns ``{"temperature", "kept", "before": {"nll", "ece"}, "after": {...}}`` (held-out half).
    """
    model = avp.module if hasattr(avp, "module") else avp
    chunks = [collect_logits(model, valid, ("mix", max_glimpses), seed + r, batch_size, device)
              for r in range(repeats)]
    logits = torch.cat([c[0] for c in chunks])
    labels = torch.cat([c[1] for c in chunks])
    attrs = torch.cat([c[2] for c in chunks]) if chunks[0][2] is not None else None
    fit = torch.arange(len(labels)) % 2 == 0
    held = ~fit
    with torch.enable_grad():
        t = fit_temperature(logits[fit], labels[fit], model.head, model.num_classes,
                            None if attrs is None else attrs[fit])
    a_held = None if attrs is None else attrs[held]
    before = _nll_ece(model, logits[held], labels[held], a_held)
    after = _nll_ece(model, logits[held] / t, labels[held], a_held)
    kept = after[0] < before[0] and after[1] <= before[1] + 1e-4
    if kept:
        model.temperature.fill_(t)
    else:
        model.temperature.fill_(1.0)
    log.info("temperature %.3f %s (held-out NLL %.4f -> %.4f, ECE %.4f -> %.4f)", t, "kept" if kept else "dropped",
             before[0], after[0], before[1], after[1])
    return {"temperature": t, "kept": kept, "before": {"nll": before[0], "ece": before[1]},
            "after": {"nll": after[0], "ece": after[1]}}
