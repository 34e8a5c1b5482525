"""Choosing the glimpse noise: on a case with a known posterior, the completions' label distribution is calibrated
at the true noise, over-confident below it and under-confident above it, and calibrate_noise picks it."""

import math

import pytest
import torch

from ppl_attention.completion.base import Completion, CompletionSamples
from ppl_attention.completion.importance import _schedule, _sigma
from ppl_attention.completion.noise_calibration import calibrate_noise, label_calibration, with_noise_scale
from ppl_attention.sensor import Sensor

MEANS = (0.48, 0.52)  # two classes: flat images of these grey levels, seen through pixel noise
SIGMA0 = 0.1  # the noise the held-out images are made with


class TwoMeans(Completion):
    """Completions of a two-class image: both class images, weighted by the exact Gaussian likelihood of the
    glimpses at the sampler's noise -- the exact posterior when that noise is the data's."""

    channels = 1

    def __init__(self, grid):
        self.grid, self.sigma = grid, _schedule([SIGMA0 * 255.0])

    def _sample(self, loc, y, n, generator, true_image):
        s = _sigma(self.sigma, len(loc))
        ll = torch.stack([-(y.double() - m).square().sum() / (2 * s * s) for m in MEANS])
        images = torch.stack([torch.full((1, *self.grid.image_size), m) for m in MEANS])
        return CompletionSamples(images, torch.softmax(ll, 0).float(), torch.tensor([0, 1]), {"ess": 1.0})


def _held_out(M=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    grid = Sensor(8, 2, stride=2, scales=1)
    labels = torch.randint(2, (M,), generator=g)
    images = (torch.tensor(MEANS)[labels].view(M, 1, 1, 1) + SIGMA0 * torch.randn(M, 1, 8, 8, generator=g)).clamp(0, 1)
    locations = torch.stack([torch.randperm(grid.num_locations, generator=g)[:3] for _ in range(M)])
    return grid, images, labels, locations


def test_label_calibration_of_calibrated_and_overconfident_predictions():
    g = torch.Generator().manual_seed(1)
    p1 = torch.rand(4000, generator=g)
    labels = (torch.rand(4000, generator=g) < p1).long()  # drawn from the predicted probabilities
    probs = torch.stack([1 - p1, p1], 1)
    good = label_calibration(probs, labels)
    assert good["ece"] < 0.03 and sum(c["count"] for c in good["curve"]) == 4000
    sharp = torch.stack([1 - (p1 > 0.5).double(), (p1 > 0.5).double()], 1)  # certain, right only ~75 % of the time
    assert label_calibration(sharp, labels)["ece"] > 0.2
    flat = label_calibration(torch.full((4000, 2), 0.5), labels)  # the label frequencies: calibrated, not sharp
    assert flat["ece"] < 0.03 and flat["nll"] > good["nll"] + 0.05
    with pytest.raises(ValueError, match="`probs` must be"):
        label_calibration(probs, labels[:3])


def test_the_ece_floor_says_what_a_calibrated_predictor_shows_on_so_few_images():
    """On 50 predictions a perfectly calibrated predictor's binned ECE is far above zero; the floor reports it."""
    g = torch.Generator().manual_seed(2)
    eces, floors = [], []
    for _ in range(40):
        p1 = torch.rand(50, generator=g)
        labels = (torch.rand(50, generator=g) < p1).long()
        cal = label_calibration(torch.stack([1 - p1, p1], 1), labels)
        eces.append(cal["ece"])
        floors.append(cal["ece_floor"])
    ece, floor = torch.tensor(eces).mean(), torch.tensor(floors).mean()
    assert floor > 0.08 and abs(float(ece - floor)) < 0.03  # the floor is what calibrated predictions measure
    # ... and its spread is the spread of their ECE over draws of 50 predictions
    assert 0.5 < cal["ece_floor_sd"] / float(torch.tensor(eces).std()) < 2.0
    p1 = torch.rand(4000, generator=g)
    big = label_calibration(torch.stack([1 - p1, p1], 1), (torch.rand(4000, generator=g) < p1).long())
    assert big["ece_floor"] < 0.03


def test_the_true_noise_is_calibrated_and_chosen():
    grid, images, labels, locations = _held_out()
    out = calibrate_noise(
        TwoMeans(grid), images, labels, locations, [0.25, 1.0, 4.0], num_samples=2, num_classes=2, min_ess=1.0
    )
    by = {r["scale"]: r for r in out["scales"]}
    assert out["chosen"] == 1.0 and by[1.0]["nll"] < min(by[0.25]["nll"], by[4.0]["nll"])
    assert by[1.0]["worst_ece"] < 0.06
    assert by[0.25]["worst_ece"] > 2 * by[1.0]["worst_ece"] and by[4.0]["worst_ece"] > 2 * by[1.0]["worst_ece"]
    # over-confident below the true noise: the top label's confidence exceeds its accuracy, and the reverse above
    low, high = by[0.25]["steps"][-1]["curve"], by[4.0]["steps"][-1]["curve"]
    assert sum(c["count"] * (c["confidence"] - c["accuracy"]) for c in low) > 0
    assert sum(c["count"] * (c["confidence"] - c["accuracy"]) for c in high) < 0
    assert [s["t"] for s in by[1.0]["steps"]] == [1, 2, 3] and by[1.0]["steps"][0]["median_distinct"] == 2


class OneOfTwoMeans(TwoMeans):
    """TwoMeans returning one completion drawn from the exact posterior, with both candidates it scored."""

    def _sample(self, loc, y, n, generator, true_image):
        both = super()._sample(loc, y, n, generator, true_image)
        k = int(torch.multinomial(both.weights, 1, generator=generator))
        scored = {"labels": both.labels, "weights": both.weights}
        return CompletionSamples(both.images[k : k + 1], torch.ones(1), both.labels[k : k + 1], {"scored": scored})


def test_the_scored_candidates_are_calibrated_where_one_resampled_completion_is_not():
    """One completion drawn from the exact posterior has a one-hot label histogram (certain, right as often as the
    posterior's top label is); the candidates the sampler scored give the posterior itself."""
    grid, images, labels, locations = _held_out()
    sampler = OneOfTwoMeans(grid)
    kw = dict(num_samples=1, num_classes=2, min_ess=0.0)
    one = calibrate_noise(sampler, images, labels, locations, [1.0], **kw)["scales"][0]
    scored = calibrate_noise(sampler, images, labels, locations, [1.0], label_estimate="scored", **kw)["scales"][0]
    assert scored["worst_ece"] < 0.06 < 0.15 < one["worst_ece"]
    assert scored["nll"] < one["nll"]
    with pytest.raises(ValueError, match="`label_estimate`"):
        calibrate_noise(sampler, images, labels, locations, [1.0], label_estimate="drawn", **kw)
    with pytest.raises(ValueError, match="`scored`"):  # a sampler that records no scored candidates
        calibrate_noise(TwoMeans(grid), images, labels, locations, [1.0], label_estimate="scored", **kw)


def test_per_step_scales_are_the_sharpest_calibrated_noise_of_each_step():
    from ppl_attention.completion.noise_calibration import per_step_scales

    rows = [
        {"scale": 1.0, "t": 1, "ece": 0.10, "nll": 1.0},  # sharpest, not calibrated
        {"scale": 2.0, "t": 1, "ece": 0.04, "nll": 1.2},  # the sharpest calibrated one
        {"scale": 4.0, "t": 1, "ece": 0.01, "nll": 1.5},  # best calibrated: the glimpses nearly ignored
        {"scale": 1.0, "t": 2, "ece": 0.09, "nll": 0.9},
        {"scale": 2.0, "t": 2, "ece": 0.07, "nll": 1.1},  # none calibrated: the least ECE
    ]
    assert per_step_scales(rows) == [2.0, 2.0]
    assert per_step_scales(rows, max_ece=0.095) == [2.0, 1.0]
    with pytest.raises(ValueError, match="`rows`"):
        per_step_scales([])
    with pytest.raises(ValueError, match="`max_ece`"):
        per_step_scales(rows, max_ece=0.0)
    from ppl_attention.completion.noise_calibration import scaled_schedule

    assert scaled_schedule([10.0, 20.0, 30.0], [2.0]) == [20.0, 40.0, 60.0]  # one multiplier: the whole schedule
    assert scaled_schedule([10.0, 20.0], [2.0, 3.0, 0.5]) == [20.0, 60.0, 10.0]  # per step; the last value beyond
    grid, images, labels, locations = _held_out(M=200)
    out = calibrate_noise(TwoMeans(grid), images, labels, locations, [0.25, 1.0, 4.0], 2, 2, min_ess=0.0)
    assert len(out["per_step"]) == 3 and set(out["per_step"]) <= {0.25, 1.0, 4.0}


def test_with_noise_scale_multiplies_the_schedule_of_a_copy():
    grid = Sensor(8, 2, stride=2, scales=1)
    base = TwoMeans(grid)
    twice = with_noise_scale(base, 2.0)
    assert math.isclose(_sigma(twice.sigma, 3), 2 * _sigma(base.sigma, 3)) and base.sigma is not twice.sigma
    with pytest.raises(ValueError, match="`scale` must be positive"):
        with_noise_scale(base, 0.0)


class ExactPixels(TwoMeans):
    """Exact completions of a two-class image of flat grey levels ``SPREAD`` under pixel noise ``SIGMA0``: a label
    drawn from its posterior given the glimpses (at the sampler's noise), then fresh noisy pixels around its level,
    the glimpses pasted back."""

    def _sample(self, loc, y, n, generator, true_image):
        s = _sigma(self.sigma, len(loc))
        ll = torch.stack([-(y.double() - m).square().sum() / (2 * s * s) for m in SPREAD])
        labels = torch.multinomial(torch.softmax(ll, 0).float(), n, replacement=True, generator=generator)
        noise = SIGMA0 * torch.randn(n, 1, *self.grid.image_size, generator=generator)
        images = (torch.tensor(SPREAD, dtype=torch.float32)[labels].view(n, 1, 1, 1) + noise).clamp(0, 1)
        if len(loc):
            seen = self.grid.mask(loc.view(1, -1)).bool().expand_as(images)
            glimpses = self.grid.paste(y.unsqueeze(0).float(), loc.view(1, -1)).expand_as(images)
            images = torch.where(seen, glimpses, images)
        return CompletionSamples(images, torch.full((n,), 1.0 / n, dtype=torch.float64), labels)


SPREAD = (0.45, 0.55)  # class levels one SIGMA0 apart: a glimpse of 4 pixels informs the label, not settles it


def exact_posterior(x: torch.Tensor) -> torch.Tensor:
    """Logits of the exact label posterior given ``cat(image * mask, mask)`` under noise ``SIGMA0``."""
    pixels, mask = x[:, :1], x[:, 1:]
    return torch.stack([(-(pixels - m).square() * mask).flatten(1).sum(1) / (2 * SIGMA0**2) for m in SPREAD], 1)


def test_the_epe_criterion_chooses_the_noise_at_which_the_predicted_epe_is_the_realised_entropy():
    """The EPE the completions predict for the next glimpse matches the entropy the (exact) posterior then has at
    the true noise; below it the completions are over-confident and predict too little entropy, above it too
    much.  ``criterion="epe"`` picks the true noise."""
    g = torch.Generator().manual_seed(3)
    M, grid = 400, Sensor(8, 2, stride=2, scales=1)
    labels = torch.randint(2, (M,), generator=g)
    images = torch.tensor(SPREAD)[labels].view(M, 1, 1, 1) + SIGMA0 * torch.randn(M, 1, 8, 8, generator=g)
    images = images.clamp(0, 1)  # SPREAD is 4.5 SIGMA0 from each end: clamping changes almost nothing
    locations = torch.stack([torch.randperm(grid.num_locations, generator=g)[:3] for _ in range(M)])
    out = calibrate_noise(
        ExactPixels(grid), images, labels, locations, [0.25, 1.0, 4.0], num_samples=16, num_classes=2,
        min_ess=1.0, posterior=exact_posterior, criterion="epe",
    )  # fmt: skip
    by = {r["scale"]: r for r in out["scales"]}
    assert out["chosen"] == 1.0 and out["criterion"] == "epe"
    assert list(by[1.0]["steps"][0]["epe"]) == ["predicted", "realised", "relative"]
    assert "epe" not in by[1.0]["steps"][-1]  # the last glimpse has no next one
    assert by[1.0]["worst_epe_error"] < 0.1
    # the exact posterior's P(true label) is what calibrated completions give, on average
    assert all(abs(s["p_true"] - s["avp_p_true"]) < 0.02 for s in by[1.0]["steps"])
    assert all(s["epe"]["relative"] > 0.05 for s in by[0.25]["steps"][:-1])  # over-confident: too little entropy
    assert all(s["epe"]["relative"] < -0.1 for s in by[4.0]["steps"][:-1])
    with pytest.raises(ValueError, match="`criterion` 'epe' needs the AVP"):
        calibrate_noise(ExactPixels(grid), images, labels, locations, [1.0], 2, 2, criterion="epe")


def test_kept_predictions_are_the_label_distributions_each_step_was_scored_on():
    """Runs on disjoint images pool into one calibration only if each run hands back what it scored."""
    grid, images, labels, locations = _held_out(M=60)
    out = calibrate_noise(
        TwoMeans(grid), images, labels, locations, [0.5, 2.0], 2, 2, min_ess=0.0, keep_predictions=True
    )
    preds = out["predictions"]
    assert preds.shape == (2, 3, 60, 2) and torch.allclose(preds.sum(-1), torch.ones(2, 3, 60).to(preds))
    for s, scale in enumerate(out["scales"]):
        for t, step in enumerate(scale["steps"]):
            assert math.isclose(label_calibration(preds[s, t], labels)["ece"], step["ece"], rel_tol=1e-9)
    assert "predictions" not in calibrate_noise(TwoMeans(grid), images, labels, locations, [1.0], 2, 2, min_ess=0.0)


def test_the_reliability_figure_draws_one_panel_per_step(tmp_path):
    from ppl_attention.plots.completion import plot_label_reliability

    grid, images, labels, locations = _held_out(M=60)
    out = calibrate_noise(TwoMeans(grid), images, labels, locations, [1.0], 2, 2, min_ess=0.0)
    path = plot_label_reliability(out["scales"][0]["steps"], tmp_path / "rel.png", "two means")
    assert path.stat().st_size > 0 and path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="`steps` must hold"):
        plot_label_reliability([], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_random_glimpses_are_distinct_per_image_and_seeded():
    from ppl_attention.completion.noise_calibration import random_glimpses

    a = random_glimpses(81, 50, 5, torch.Generator().manual_seed(3))
    assert a.shape == (50, 5) and all(len(set(row.tolist())) == 5 for row in a) and int(a.max()) < 81
    assert torch.equal(a, random_glimpses(81, 50, 5, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, random_glimpses(81, 50, 5, torch.Generator().manual_seed(4)))
