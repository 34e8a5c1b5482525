"""Comparing stochastic image completions on held-out images (the paper's section 4 and appendix A.3).

For each held-out image, method and number of glimpses t (the first t of one glimpse sequence per image), the
sampler draws ``n`` weighted completions, measured by :mod:`.metrics` (log-likelihood of the unseen pixels, glimpse
RMSE, diversity, label agreement), with the completions' probability of the true label against the AVP's given the
same glimpses (``p_true_avp``), the effective sample size ``ess`` and, for MCMC samplers, Pyro's R-hat and ESS.
:mod:`.report` writes the table and figures.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Optional, Sequence

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..config import config_to_dict, setting
from ..sensor import Sensor
from ..runtime import derive_seed, generator as make_generator
from .base import Completion, CompletionSamples
from .metrics import (
    glimpse_rmse,
    label_agreement,
    mixture_log_likelihood,
    pairwise_diversity,
    summarise,
    unobserved_region,
)

if TYPE_CHECKING:
    from ..posterior.network import AVP

__all__ = [
    "CompareConfig",
    "Comparison",
    "choose_locations",
    "compare_completions",
    "avp_classifier",
    "avp_label_posterior",
    "train_label_classifier",
]

log = logging.getLogger(__name__)


@dataclass
class CompareConfig:
    """What to compare on: how many held-out images, glimpse counts, samples per draw, kernel."""

    num_images: int = setting(20, "held-out images to complete")
    glimpse_counts: tuple[int, ...] = setting((1, 2, 3, 4), "numbers of glimpses t")
    num_samples: int = setting(16, "completions drawn per (image, t, method)")
    kernel: str = setting("gaussian", "pixel kernel of the log-likelihood", choices=["gaussian", "bernoulli"])
    kernel_sigma: float = setting(0.2, "std of the Gaussian kernel (pixels in [0,1])")
    locations: str = setting(
        "ink",
        "how glimpse locations are drawn: 'ink' (probability proportional to the pixel mass seen, so "
        "glimpses land on the digit) or 'uniform'",
        choices=["ink", "uniform"],
    )
    figure_images: int = setting(2, "held-out images shown in the sample grid")
    figure_samples: int = setting(6, "samples per row of the sample grid")
    figure_glimpses: tuple[int, ...] = setting(
        (1, 3), "glimpse counts shown in the sample grid (those also in glimpse_counts)"
    )
    seed: int = setting(0, "seed of the comparison")

    def __post_init__(self):
        self.glimpse_counts = tuple(int(t) for t in self.glimpse_counts)
        self.figure_glimpses = tuple(int(t) for t in self.figure_glimpses)
        if self.num_images <= 0 or self.num_samples <= 0:
            raise ValueError(f"num_images and num_samples must be positive, got {self.num_images}, {self.num_samples}")
        if not self.glimpse_counts or min(self.glimpse_counts) < 1:
            raise ValueError(f"`glimpse_counts` must be positive ints, got {self.glimpse_counts}")
        if self.kernel not in ("gaussian", "bernoulli"):
            raise ValueError(f"`kernel` must be 'gaussian' or 'bernoulli', got {self.kernel!r}")
        if not self.kernel_sigma > 0:
            raise ValueError(f"`kernel_sigma` must be positive, got {self.kernel_sigma}")
        if self.locations not in ("ink", "uniform"):
            raise ValueError(f"`locations` must be 'ink' or 'uniform', got {self.locations!r}")


def choose_locations(
    images: torch.Tensor, grid: Sensor, T: int, generator: torch.Generator, policy: str = "ink"
) -> torch.Tensor:
    """``T`` distinct locations per image, (B, T): uniformly, or with probability proportional to the pixel
    mass each glimpse would see (plus a little, so blank images still get glimpses)."""
    if not 1 <= T <= grid.num_locations:
        raise ValueError(f"T must lie in [1, {grid.num_locations}], got {T}")
    B, L = images.shape[0], grid.num_locations
    if policy == "uniform":
        weights = torch.ones(B, L)
    elif policy == "ink":
        patches = grid.crop(images, grid.all_locations().expand(B, L))  # (B, L, C, h, w): the foveae's ink
        mass = patches.flatten(2).sum(-1).cpu().double()
        weights = mass + 1e-3 * mass.sum(-1, keepdim=True) / L + 1e-12
    else:
        raise ValueError(f"`policy` must be 'ink' or 'uniform', got {policy!r}")
    return torch.multinomial(weights, T, replacement=False, generator=generator)


# -------------------------------------------------------------------------------------- classifiers
def avp_classifier(avp: AVP) -> Callable[[torch.Tensor], torch.Tensor]:
    """The AVP as a classifier of complete images: everything observed (the sensor's "whole" input, every scale's
    channels the full image, mask of ones, as the AVP was trained), label logits out."""

    def classify(images: torch.Tensor) -> torch.Tensor:
        device = next(avp.parameters()).device
        images = images.float().to(device)
        B = images.shape[0]
        none = torch.zeros(B, 0, dtype=torch.long, device=device)
        with torch.no_grad():
            canvas, mask = avp.grid.observe(images, none, whole=torch.ones(B, dtype=torch.bool))
            return avp.label_logits(avp(avp.make_input(canvas, mask))).cpu()

    return classify


def avp_label_posterior(
    avp: AVP, grid: Sensor, batch_size: int = 512
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The AVP as the reference of a comparison: ``f(images (B, C, H, W), locations (B, t))`` -> its label
    posterior (B, num_classes) given those glimpses of those images (the sensor's canvas and mask)."""

    @torch.no_grad()
    def posterior(images: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        device = next(avp.parameters()).device
        out = []
        for i in range(0, images.shape[0], batch_size):
            canvas, mask = grid.observe(images[i : i + batch_size].to(device), locations[i : i + batch_size].to(device))
            out.append(torch.softmax(avp.label_logits(avp(avp.make_input(canvas, mask))), -1).cpu())
        return torch.cat(out)

    return posterior


class _DigitClassifier(nn.Module):
    def __init__(self, channels: int, num_classes: int, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 5, 2, 2),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * width, num_classes),
        )

    def forward(self, x):
        return self.net(x)


def train_label_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    epochs: int = 3,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = False,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A small CNN trained on complete images, for when no AVP is given: it labels completed images."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "compare-classifier"))
        net = _DigitClassifier(images.shape[1], num_classes)
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        g = make_generator(derive_seed(seed, "compare-classifier-batches"))
        for _ in tqdm(range(epochs), desc="label classifier", disable=not progress):
            order = torch.randperm(images.shape[0], generator=g)
            for i in range(0, images.shape[0], batch_size):
                idx = order[i : i + batch_size]
                loss = nn.functional.cross_entropy(net(images[idx].float()), labels[idx].long())
                opt.zero_grad()
                loss.backward()
                opt.step()
    net.eval()

    def classify(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(x.float().cpu())

    return classify


# ---------------------------------------------------------------------------------------- comparison
@dataclass
class Comparison:
    """Per-draw ``rows``, the aggregated ``table`` (one row per method and t) and sample-grid ``examples``."""

    rows: list
    table: list
    examples: list
    config: dict

    def methods(self) -> list:
        return sorted({r["method"] for r in self.table})


def _check_inputs(samplers, images, labels, grid):
    if not isinstance(samplers, Mapping) or not samplers:
        raise ValueError("`samplers` must be a non-empty mapping of method name -> Completion")
    for name, s in samplers.items():
        if not hasattr(s, "sample"):
            raise ValueError(f"samplers[{name!r}] has no sample() method; expected a Completion")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or tuple(images.shape[-2:]) != grid.image_size:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"`images` must have shape (B, C, {grid.image_size[0]}, {grid.image_size[1]}), got {got}")
    if not bool(torch.isfinite(images).all()) or float(images.min()) < 0 or float(images.max()) > 1:
        raise ValueError("`images` must hold finite pixels in [0, 1]")
    labels = torch.as_tensor(labels)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"`labels` must have shape ({images.shape[0]},) to match images, got {tuple(labels.shape)}")
    return labels.long()


def _measure(
    s: CompletionSamples,
    image: torch.Tensor,
    label: int,
    loc: torch.Tensor,
    glimpses: torch.Tensor,
    grid: Sensor,
    cfg: CompareConfig,
    classifier: Optional[Callable],
) -> dict:
    """The metrics of one draw of completions ``s`` of ``image`` given ``glimpses`` at ``loc``."""
    region = unobserved_region(grid.mask(loc.unsqueeze(0))[:, :1])  # pixels no fovea saw
    row = {
        "loglik_per_pixel": mixture_log_likelihood(s.images, s.weights, image, region, cfg.kernel, cfg.kernel_sigma),
        "glimpse_rmse": glimpse_rmse(s.images, s.weights, grid, loc, glimpses),
        "diversity": pairwise_diversity(s.images, s.weights, region),
        "label_agreement": None,
        "label_agreement_db": None,
    }
    if classifier is not None:
        row["label_agreement"] = label_agreement(classifier(s.images).argmax(-1), s.weights, label)
    if s.labels is not None and s.labels.dim() == 1:
        row["label_agreement_db"] = label_agreement(s.labels, s.weights, label)
    row["p_true_label"] = row["label_agreement_db"] if row["label_agreement_db"] is not None else row["label_agreement"]
    return row


def _sequences(images: torch.Tensor, grid: Sensor, cfg: CompareConfig, locations) -> torch.Tensor:
    """One glimpse sequence per image, (B, >= max t): the given ``locations`` checked, or drawn by
    ``cfg.locations``."""
    B, T = images.shape[0], max(cfg.glimpse_counts)
    if locations is None:
        return choose_locations(
            images, grid, T, make_generator(derive_seed(cfg.seed, "compare-locations")), cfg.locations
        )
    locations = torch.as_tensor(locations)
    if locations.dim() != 2 or locations.shape[0] < B or locations.shape[1] < T:
        raise ValueError(
            f"`locations` must have shape ({B}, >= {T}) (one sequence per image, at least "
            f"max(glimpse_counts) long), got {tuple(locations.shape)}"
        )
    grid.cell(locations[:B])  # refuses float locations or locations off the grid, naming the argument
    return locations[:B].long()


def compare_completions(
    samplers: Mapping[str, Completion],
    images: torch.Tensor,
    labels: torch.Tensor,
    grid: Sensor,
    cfg: CompareConfig = CompareConfig(),
    classifier: Optional[Callable] = None,
    locations: Optional[torch.Tensor] = None,
    progress: bool = True,
    reference: Optional[Callable] = None,
    sequences: str = "drawn",
    max_images: Optional[Mapping[str, int]] = None,
) -> Comparison:
    """Run every sampler on every (image, t) and measure the completions (see the module docstring).

    ``locations`` (B, T >= max t) fixes the glimpse sequences; otherwise they are drawn by ``cfg.locations``.
    ``classifier`` maps images (n, C, H, W) to logits; it labels the completions for ``label_agreement``.
    ``reference`` maps (images (B, C, H, W), locations (B, t)) to label probabilities (B, K), e.g.
    :func:`avp_label_posterior`: the ``p_true_avp`` column.  ``sequences`` names the glimpse sequences in the rows
    and table (e.g. "random", "near-optimal").  ``max_images`` limits slow methods to the first k images.
    """
    labels = _check_inputs(samplers, images, labels, grid)
    images = images[: cfg.num_images].float()
    labels = labels[: cfg.num_images]
    B, T = images.shape[0], max(cfg.glimpse_counts)
    locations = _sequences(images, grid, cfg, locations)
    glimpses = grid.extract(images, locations[:, :T])  # (B, T, k*C, h, w)
    limits = _limits(max_images, samplers)
    p_ref = _reference_p_true(reference, images, labels, locations, cfg.glimpse_counts)
    rows, examples = [], []
    work = [(name, i, t) for i in range(B) for t in cfg.glimpse_counts for name in samplers if i < limits.get(name, B)]
    for name, i, t in tqdm(work, desc="comparing completions", disable=not progress):
        key = (name,) if sequences == "drawn" else (sequences, name)
        gen = make_generator(derive_seed(cfg.seed, "compare", *key, i, t))
        loc = locations[i, :t]
        start = time.perf_counter()
        s: CompletionSamples = samplers[name].sample(
            loc, glimpses[i, :t], cfg.num_samples, generator=gen, true_image=images[i]
        )
        seconds = time.perf_counter() - start
        ident = dict(sequences=sequences, method=name, image=i, glimpses=t)
        row = {
            **ident,
            "true_label": int(labels[i]),
            "n": len(s),
            "ess": s.ess,
            "seconds_per_sample": seconds / max(len(s), 1),
            **_measure(s, images[i], int(labels[i]), loc, glimpses[i, :t], grid, cfg, classifier),
        }
        rows.append(_with_reference(row, float(p_ref[t][i]) if p_ref else None, s.diagnostics or {}))
        if i < cfg.figure_images and t in cfg.figure_glimpses:
            # Show the most probable samples first (weighted samplers), at most figure_samples of them.
            top = torch.argsort(s.weights, descending=True)[: cfg.figure_samples]
            shown = dict(true_image=images[i], locations=loc, samples=s.images[top], weights=s.weights[top])
            examples.append({**ident, **shown})
    return Comparison(rows, summarise(rows), examples, config_to_dict(cfg))


def _limits(max_images: Optional[Mapping[str, int]], samplers: Mapping[str, Completion]) -> dict[str, int]:
    """``max_images`` checked: method names of ``samplers`` to positive ints."""
    limits = dict(max_images or {})
    for name, k in limits.items():
        if name not in samplers or isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"`max_images` must map method names of samplers to positive ints, got {name!r}: {k!r}")
    return limits


def _reference_p_true(
    reference: Optional[Callable],
    images: torch.Tensor,
    labels: torch.Tensor,
    locations: torch.Tensor,
    counts: Sequence[int],
) -> dict[int, torch.Tensor]:
    """The reference's P(true label) of every image after each t glimpses, all images at once per t (empty
    without a reference)."""
    if reference is None:
        return {}
    B = images.shape[0]
    return {t: reference(images, locations[:, :t])[torch.arange(B), labels].double() for t in counts}


def _with_reference(row: dict, p_avp: Optional[float], diagnostics: dict) -> dict:
    """``row`` with the reference's P(true label), the completions' margin over it and the MCMC diagnostics."""
    row["p_true_avp"] = p_avp
    row["p_true_minus_avp"] = (
        row["p_true_label"] - p_avp if p_avp is not None and row["p_true_label"] is not None else None
    )
    row["r_hat_max"] = diagnostics.get("r_hat_max")
    row["mcmc_ess_min"] = diagnostics.get("ess_min")
    return row
