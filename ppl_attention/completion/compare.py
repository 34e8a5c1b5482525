"""Comparing stochastic image completions on held-out images (the paper's section 4 and appendix A.3).

For each held-out image, method and number of glimpses t (the first t of one glimpse sequence per image), the
sampler draws ``n`` weighted completions and we measure

- ``loglik_per_pixel``: log-likelihood of the true *unobserved* pixels under a kernel mixture over the weighted
  samples, ``log sum_k w_k prod_p K(x_p | s_kp)``, divided by the number of unobserved pixels (nats / pixel).
  The kernel is a Gaussian of std ``kernel_sigma`` (default) or a Bernoulli with the sample as its mean.
- ``glimpse_rmse``: how well the samples reproduce what was observed: the weighted mean over samples of the RMS
  difference between each sample's patches at the observed locations and the observed glimpses (pixels in
  [0, 1]; 0 for a sampler that pastes the glimpses in, as the cGAN does).
- ``diversity``: the mean pairwise RMS distance between samples in the unobserved region (pairs of distinct
  samples, weighted by ``w_k w_l``).
- ``label_agreement``: the weighted fraction of samples whose label matches the true label; labels are the
  classifier's (the AVP's, with everything observed) predictions on the completed images.  ``label_agreement_db``
  uses the samples' own labels where the sampler knows them (the database labels of importance sampling).
- ``p_true_label``: the completions' probability of the true label: the weighted histogram of the samples' own
  labels where the sampler knows them (``label_agreement_db``), the classifier's ``label_agreement`` otherwise.
- ``p_true_avp``: the reference: the posterior network's (AVP's) probability of the true label given the same
  glimpses (``reference``), and ``p_true_minus_avp`` the paired difference.
- ``ess``: the effective sample size ``1 / sum_k w_k^2`` of the returned weights (n for equal weights).
- ``r_hat_max`` / ``mcmc_ess_min``: for MCMC samplers, the largest split R-hat and the smallest ESS over the latent
  dimensions (Pyro's diagnostics over the chains, :mod:`.nuts`); None for the others.
- ``seconds_per_sample``: wall-clock seconds of the ``sample`` call divided by the samples returned.

The table gives, per (sequences, method, t), the mean over images, its standard error and a 95 % normal interval
(``_lo`` / ``_hi``: 1.96 standard errors); ``r_hat_max_worst`` and ``r_hat_ok`` (the fraction of completions with
``r_hat_max < 1.05``) summarise the chains' mixing.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..artifacts import atomic_write_json, atomic_write_text, write_manifest
from ..config import config_to_dict
from ..sensor import GlimpseGrid
from ..runtime import derive_seed, generator as make_generator
from .base import Completion, CompletionSamples

__all__ = ["CompareConfig", "Comparison", "choose_locations", "mixture_log_likelihood", "pairwise_diversity",
           "label_agreement", "glimpse_rmse", "compare_completions", "write_comparison", "avp_classifier",
           "avp_label_posterior", "train_label_classifier", "markdown_table", "METRICS", "R_HAT_OK"]

log = logging.getLogger(__name__)

METRICS = ("loglik_per_pixel", "glimpse_rmse", "diversity", "label_agreement", "label_agreement_db", "p_true_label",
           "p_true_avp", "p_true_minus_avp", "ess", "r_hat_max", "mcmc_ess_min", "seconds_per_sample")

#: R-hat below which chains count as mixed (the issue's target).
R_HAT_OK = 1.05


@dataclass
class CompareConfig:
    """What to compare on: how many held-out images, glimpse counts, samples per draw, kernel."""

    num_images: int = field(default=20, metadata={"help": "held-out images to complete"})
    glimpse_counts: tuple[int, ...] = field(default=(1, 2, 3, 4), metadata={"help": "numbers of glimpses t"})
    num_samples: int = field(default=16, metadata={"help": "completions drawn per (image, t, method)"})
    kernel: str = field(default="gaussian", metadata={"help": "pixel kernel of the log-likelihood",
                                                      "choices": ["gaussian", "bernoulli"]})
    kernel_sigma: float = field(default=0.2, metadata={"help": "std of the Gaussian kernel (pixels in [0,1])"})
    locations: str = field(default="ink", metadata={
        "help": "how glimpse locations are drawn: 'ink' (probability proportional to the pixel mass seen, so "
                "glimpses land on the digit) or 'uniform'", "choices": ["ink", "uniform"]})
    figure_images: int = field(default=2, metadata={"help": "held-out images shown in the sample grid"})
    figure_samples: int = field(default=6, metadata={"help": "samples per row of the sample grid"})
    figure_glimpses: tuple[int, ...] = field(default=(1, 3), metadata={
        "help": "glimpse counts shown in the sample grid (those also in glimpse_counts)"})
    seed: int = field(default=0, metadata={"help": "seed of the comparison"})

    def __post_init__(self):
        self.glimpse_counts = tuple(int(t) for t in self.glimpse_counts)
        self.figure_glimpses = tuple(int(t) for t in self.figure_glimpses)
        if self.num_images <= 0 or self.num_samples <= 0:
            raise ValueError(f"num_images and num_samples must be positive, got {self.num_images}, {self.num_samples}")
        if not self.glimpse_counts or min(self.glimpse_counts) < 1:
            raise ValueError(f"glimpse_counts must be positive ints, got {self.glimpse_counts}")
        if self.kernel not in ("gaussian", "bernoulli"):
            raise ValueError(f"kernel must be 'gaussian' or 'bernoulli', got {self.kernel!r}")
        if not self.kernel_sigma > 0:
            raise ValueError(f"kernel_sigma must be positive, got {self.kernel_sigma}")
        if self.locations not in ("ink", "uniform"):
            raise ValueError(f"locations must be 'ink' or 'uniform', got {self.locations!r}")


# ------------------------------------------------------------------------------------------- metrics
def choose_locations(images: torch.Tensor, grid: GlimpseGrid, T: int, generator: torch.Generator,
                     policy: str = "ink") -> torch.Tensor:
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
        raise ValueError(f"policy must be 'ink' or 'uniform', got {policy!r}")
    return torch.multinomial(weights, T, replacement=False, generator=generator)


def _region(mask: torch.Tensor) -> torch.Tensor:
    """Boolean (H, W) of the unobserved pixels from a (1, H, W) or (1, 1, H, W) mask."""
    return mask.reshape(mask.shape[-2:]) < 0.5


def mixture_log_likelihood(images: torch.Tensor, weights: torch.Tensor, target: torch.Tensor, region: torch.Tensor,
                           kernel: str = "gaussian", sigma: float = 0.2) -> float:
    """Per-pixel log-likelihood of ``target`` (C, H, W) in ``region`` (H, W) bool under the mixture
    ``sum_k w_k prod_p K(target_p | images_kp)``; nan when the region is empty."""
    P = int(region.sum()) * target.shape[0]
    if P == 0:
        return float("nan")
    s = images.double()[:, :, region].flatten(1)  # (n, P)
    x = target.double()[:, region].flatten().unsqueeze(0)  # (1, P)
    if kernel == "gaussian":
        per = -0.5 * ((x - s) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)
    elif kernel == "bernoulli":
        s = s.clamp(1e-4, 1 - 1e-4)
        per = x * s.log() + (1 - x) * (1 - s).log()
    else:
        raise ValueError(f"kernel must be 'gaussian' or 'bernoulli', got {kernel!r}")
    w = weights.double()
    keep = w > 0
    total = torch.logsumexp(w[keep].log() + per[keep].sum(-1), dim=0)
    return float(total) / P


def glimpse_rmse(images: torch.Tensor, weights: torch.Tensor, grid: GlimpseGrid, locations: torch.Tensor,
                 glimpses: torch.Tensor) -> float:
    """``sum_k w_k RMS(glimpses(images_k, locations) - glimpses)``: how far the samples (n, C, H, W) are from the
    observed ``glimpses`` (t, k*C, h, w) at ``locations`` (t,), every scale; nan when nothing was observed."""
    if locations.numel() == 0:
        return float("nan")
    patches = grid.extract(images.float(), locations.reshape(1, -1).expand(images.shape[0], -1))  # (n, t, kC, h, w)
    rmse = (patches - glimpses.to(patches).unsqueeze(0)).double().square().flatten(1).mean(1).sqrt()
    return float(weights.double().to(rmse.device) @ rmse)


def pairwise_diversity(images: torch.Tensor, weights: torch.Tensor, region: torch.Tensor) -> float:
    """``sum_{k != l} w_k w_l d_kl / sum_{k != l} w_k w_l`` with ``d`` the RMS pixel distance in ``region``
    (the plain mean over distinct pairs for equal weights); 0 for a single sample or an empty region."""
    P = int(region.sum()) * images.shape[1]
    w = weights.double()
    off = 1.0 - float(w.pow(2).sum())
    if P == 0 or images.shape[0] < 2 or off <= 1e-12:
        return 0.0
    x = images.double()[:, :, region].flatten(1)
    d = torch.cdist(x, x) / math.sqrt(P)
    return float(w @ d @ w) / off


def label_agreement(labels: torch.Tensor, weights: torch.Tensor, true_label: int) -> float:
    """Weighted fraction of samples whose label is ``true_label``."""
    return float((weights.double() * (labels.long().cpu() == int(true_label)).double().to(weights.device)).sum())


# -------------------------------------------------------------------------------------- classifiers
def avp_classifier(avp) -> Callable[[torch.Tensor], torch.Tensor]:
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


def avp_label_posterior(avp, grid: GlimpseGrid, batch_size: int = 512) -> Callable[[torch.Tensor, torch.Tensor],
                                                                              torch.Tensor]:
    """The AVP as the reference of a comparison: ``f(images (B, C, H, W), locations (B, t))`` -> its label
    posterior (B, num_classes) given those glimpses of those images (the sensor's canvas and mask)."""
    @torch.no_grad()
    def posterior(images: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        device = next(avp.parameters()).device
        out = []
        for i in range(0, images.shape[0], batch_size):
            canvas, mask = grid.observe(images[i:i + batch_size].to(device), locations[i:i + batch_size].to(device))
            out.append(torch.softmax(avp.label_logits(avp(avp.make_input(canvas, mask))), -1).cpu())
        return torch.cat(out)
    return posterior


class _DigitClassifier(nn.Module):
    def __init__(self, channels: int, num_classes: int, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, width, 5, 2, 2), nn.ReLU(), nn.Conv2d(width, 2 * width, 3, 2, 1),
                                 nn.ReLU(), nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.ReLU(),
                                 nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes))

    def forward(self, x):
        return self.net(x)


def train_label_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int = 3,
                           batch_size: int = 64, seed: int = 0, progress: bool = False
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
                idx = order[i:i + batch_size]
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
        raise ValueError("samplers must be a non-empty mapping of method name -> Completion")
    for name, s in samplers.items():
        if not hasattr(s, "sample"):
            raise ValueError(f"samplers[{name!r}] has no sample() method; expected a Completion")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or tuple(images.shape[-2:]) != grid.image_size:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must have shape (B, C, {grid.image_size[0]}, {grid.image_size[1]}), got {got}")
    if not bool(torch.isfinite(images).all()) or float(images.min()) < 0 or float(images.max()) > 1:
        raise ValueError("images must hold finite pixels in [0, 1]")
    labels = torch.as_tensor(labels)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},) to match images, got {tuple(labels.shape)}")
    return labels.long()


def _summarise(rows: list) -> list:
    groups: dict = {}
    for r in rows:
        groups.setdefault((r.get("sequences", "drawn"), r["method"], r["glimpses"]), []).append(r)
    table = []
    for (sequences, method, t), rs in sorted(groups.items()):
        entry = {"sequences": sequences, "method": method, "glimpses": t, "images": len(rs)}
        for m in METRICS:
            vals = torch.tensor([r[m] for r in rs if r.get(m) is not None and not math.isnan(r[m])],
                                dtype=torch.float64)
            entry[m] = float(vals.mean()) if len(vals) else None
            sem = float(vals.std() / math.sqrt(len(vals))) if len(vals) > 1 else None
            entry[m + "_sem"] = sem
            entry[m + "_lo"] = entry[m] - 1.96 * sem if sem is not None else None
            entry[m + "_hi"] = entry[m] + 1.96 * sem if sem is not None else None
        r_hat = [r["r_hat_max"] for r in rs if r.get("r_hat_max") is not None]
        entry["r_hat_max_worst"] = max(r_hat) if r_hat else None
        entry["r_hat_ok"] = sum(v < R_HAT_OK for v in r_hat) / len(r_hat) if r_hat else None
        table.append(entry)
    return table


def compare_completions(samplers: Mapping[str, Completion], images: torch.Tensor, labels, grid: GlimpseGrid,
                        cfg: CompareConfig = CompareConfig(), classifier: Optional[Callable] = None,
                        locations: Optional[torch.Tensor] = None, progress: bool = True,
                        reference: Optional[Callable] = None, sequences: str = "drawn",
                        max_images: Optional[Mapping[str, int]] = None) -> Comparison:
    """Run every sampler on every (image, t) and measure the completions (see the module docstring).

    ``locations`` (B, T >= max t) fixes the glimpse sequences; otherwise they are drawn by ``cfg.locations``.
    ``classifier`` maps images (n, C, H, W) to logits; it labels the completions for ``label_agreement``.
    ``reference`` maps (images (B, C, H, W), locations (B, t)) to label probabilities (B, K), e.g.
    :func:`avp_label_posterior`: the ``p_true_avp`` column.  ``sequences`` names the glimpse sequences in the rows
    and table (e.g. "random", "near-optimal").  ``max_images`` limits slow methods to the first k images.
    """
    labels = _check_inputs(samplers, images, labels, grid)
    images = images[:cfg.num_images].float()
    labels = labels[:cfg.num_images]
    B, T = images.shape[0], max(cfg.glimpse_counts)
    if locations is None:
        locations = choose_locations(images, grid, T, make_generator(derive_seed(cfg.seed, "compare-locations")),
                                     cfg.locations)
    else:
        locations = torch.as_tensor(locations)
        if locations.dim() != 2 or locations.shape[0] < B or locations.shape[1] < T:
            raise ValueError(f"locations must have shape ({B}, >= {T}) (one sequence per image, at least "
                             f"max(glimpse_counts) long), got {tuple(locations.shape)}")
        grid.cell(locations[:B])  # refuses float locations or locations off the grid, naming the argument
        locations = locations[:B].long()
    glimpses = grid.extract(images, locations[:, :T])  # (B, T, k*C, h, w)
    limits = dict(max_images or {})
    for name, k in limits.items():
        if name not in samplers or isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"max_images must map method names of samplers to positive ints, got {name!r}: {k!r}")
    p_ref = {}
    if reference is not None:  # the reference's P(true label), all images at once per t
        for t in cfg.glimpse_counts:
            probs = reference(images, locations[:, :t])
            p_ref[t] = probs[torch.arange(B), labels].double()
    rows, examples = [], []
    work = [(name, i, t) for i in range(B) for t in cfg.glimpse_counts for name in samplers
            if i < limits.get(name, B)]
    for name, i, t in tqdm(work, desc="comparing completions", disable=not progress):
        gen = make_generator(derive_seed(cfg.seed, "compare", name, i, t) if sequences == "drawn"
                             else derive_seed(cfg.seed, "compare", sequences, name, i, t))
        loc = locations[i, :t]
        start = time.perf_counter()
        s: CompletionSamples = samplers[name].sample(loc, glimpses[i, :t], cfg.num_samples, generator=gen,
                                                     true_image=images[i])
        seconds = time.perf_counter() - start
        region = _region(grid.mask(loc.unsqueeze(0))[:, :1])  # pixels no fovea saw
        row = {"sequences": sequences, "method": name, "image": i, "glimpses": t, "true_label": int(labels[i]),
               "n": len(s),
               "ess": s.ess, "seconds_per_sample": seconds / max(len(s), 1),
               "loglik_per_pixel": mixture_log_likelihood(s.images, s.weights, images[i], region, cfg.kernel,
                                                          cfg.kernel_sigma),
               "glimpse_rmse": glimpse_rmse(s.images, s.weights, grid, loc, glimpses[i, :t]),
               "diversity": pairwise_diversity(s.images, s.weights, region),
               "label_agreement": None, "label_agreement_db": None}
        if classifier is not None:
            row["label_agreement"] = label_agreement(classifier(s.images).argmax(-1), s.weights, labels[i])
        if s.labels is not None and s.labels.dim() == 1:
            row["label_agreement_db"] = label_agreement(s.labels, s.weights, labels[i])
        row["p_true_label"] = row["label_agreement_db"] if row["label_agreement_db"] is not None \
            else row["label_agreement"]
        row["p_true_avp"] = float(p_ref[t][i]) if p_ref else None
        row["p_true_minus_avp"] = row["p_true_label"] - row["p_true_avp"] \
            if p_ref and row["p_true_label"] is not None else None
        d = s.diagnostics or {}
        row["r_hat_max"] = d.get("r_hat_max")
        row["mcmc_ess_min"] = d.get("ess_min")
        rows.append(row)
        if i < cfg.figure_images and t in cfg.figure_glimpses:
            # Show the most probable samples first (weighted samplers), at most figure_samples of them.
            top = torch.argsort(s.weights, descending=True)[:cfg.figure_samples]
            examples.append({"sequences": sequences, "method": name, "image": i, "glimpses": t,
                             "true_image": images[i],
                             "locations": loc, "samples": s.images[top], "weights": s.weights[top]})
    return Comparison(rows, _summarise(rows), examples, config_to_dict(cfg))


# ------------------------------------------------------------------------------------------- outputs
def _fmt(v, sem=None, digits=3):
    if v is None:
        return "-"
    text = f"{v:.{digits}g}" if abs(v) < 1e-2 and v != 0 else f"{v:.{digits}f}"
    return text + (f" ± {sem:.{digits}f}" if sem is not None else "")


def _ci(r: dict, m: str, digits: int = 3) -> str:
    if r.get(m) is None:
        return "-"
    if r.get(m + "_lo") is None:
        return _fmt(r[m], None, digits)
    return f"{r[m]:.{digits}f} [{r[m + '_lo']:.{digits}f}, {r[m + '_hi']:.{digits}f}]"


def markdown_table(table: list) -> str:
    """The comparison table: P(true label) with 95 % intervals against the reference, then the sample metrics."""
    head = ["sequences", "method", "t", "images", "P(true label)", "AVP P(true label)", "method - AVP",
            "log-lik / pixel", "glimpse RMSE", "diversity", "label agreement (classifier)", "ESS",
            "R-hat (mean; worst; share < 1.05)", "MCMC ESS (min dim)", "seconds / sample"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        r_hat = "-" if r.get("r_hat_max") is None else (
            f"{r['r_hat_max']:.3f}; {r['r_hat_max_worst']:.3f}; {r['r_hat_ok']:.2f}")
        lines.append("| " + " | ".join([
            r.get("sequences", "drawn"), r["method"], str(r["glimpses"]), str(r["images"]), _ci(r, "p_true_label"),
            _ci(r, "p_true_avp"), _ci(r, "p_true_minus_avp"),
            _fmt(r["loglik_per_pixel"], r["loglik_per_pixel_sem"]), _fmt(r["glimpse_rmse"], r["glimpse_rmse_sem"]),
            _fmt(r["diversity"], r["diversity_sem"]), _fmt(r["label_agreement"], r["label_agreement_sem"], 2),
            _fmt(r["ess"], None, 1), r_hat, _fmt(r.get("mcmc_ess_min"), None, 1),
            _fmt(r["seconds_per_sample"], None, 4)])
            + " |")
    return "\n".join(lines) + "\n"


def write_comparison(result: Comparison, out_dir, grid: GlimpseGrid, inputs: Optional[dict] = None,
                     note: str = "") -> dict:
    """Write ``comparison.csv`` / ``.json`` / ``.md``, ``rows.json``, the figures and a manifest; returns paths."""
    from ..plots.completion import plot_completion_grid, plot_comparison_metrics

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    fields = ["sequences", "method", "glimpses", "images"] + [k for m in METRICS for k in (m, m + "_sem", m + "_lo",
                                                                                           m + "_hi")] \
        + ["r_hat_max_worst", "r_hat_ok"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(result.table)
    paths = {"csv": atomic_write_text(out_dir / "comparison.csv", buf.getvalue()),
             "json": atomic_write_json(out_dir / "comparison.json", {"config": result.config, "table": result.table}),
             "rows": atomic_write_json(out_dir / "rows.json", result.rows)}
    kernel = (f"Gaussian kernel, std {result.config['kernel_sigma']}" if result.config["kernel"] == "gaussian"
              else "Bernoulli kernel")
    md = (f"# Image completion: comparison on held-out images\n\n"
          f"Log-likelihood: of the true unobserved pixels under a mixture over the weighted samples ({kernel}), "
          f"nats per unobserved pixel. Glimpse RMSE: weighted mean over samples of the RMS difference between "
          f"the sample's patches at the observed locations and the observed glimpses (pixels in [0, 1]; 0 when a "
          f"sampler pastes the glimpses in). Diversity: mean pairwise RMS pixel distance between samples in the "
          f"unobserved region. Label agreement: weighted fraction of samples classified as the true label by the "
          f"classifier. P(true label): the weighted histogram of the samples' own labels where the sampler knows "
          f"them (importance sampling), the classifier's label agreement otherwise; AVP P(true label): the posterior "
          f"network's, given the same glimpses; method - AVP: the paired difference. Means with 95 % intervals "
          f"[1.96 standard errors] or ± one standard error over images. R-hat: the largest split R-hat over the "
          f"latent dimensions (Pyro's, over the chains), its mean and worst over images and the share below "
          f"{R_HAT_OK}. {note}\n\n"
          + markdown_table(result.table))
    paths["markdown"] = atomic_write_text(out_dir / "comparison.md", md)
    paths["metrics_figure"] = plot_comparison_metrics(result.table, out_dir / "comparison_metrics.png")
    by_key: dict = {}
    for e in result.examples:
        by_key.setdefault((e.get("sequences", "drawn"), e["image"], e["glimpses"]), {})[e["method"]] = e
    panels = [{"true_image": next(iter(ms.values()))["true_image"], "locations": next(iter(ms.values()))["locations"],
               "samples": {m: e["samples"] for m, e in ms.items()},
               "title": f"held-out image {i}, {t} glimpse{'s' if t > 1 else ''}"
                        + ("" if seq == "drawn" else f" ({seq} sequence)")}
              for (seq, i, t), ms in sorted(by_key.items())]
    if panels:  # none when cfg.figure_images is 0
        paths["samples_figure"] = plot_completion_grid(panels, grid, out_dir / "completion_samples.png")
    write_manifest(out_dir, "completion-comparison", result.config, inputs or {})
    return {k: str(v) for k, v in paths.items()}
