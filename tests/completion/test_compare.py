"""Metrics and the end-to-end comparison of completions."""
import csv
import json
import math

import pytest
import torch

from ppl_attention.completion.base import Completion, CompletionSamples
from ppl_attention.completion.cgan import CGANCompletion, UNetGenerator
from ppl_attention.completion.compare import (CompareConfig, choose_locations, compare_completions, glimpse_rmse,
                                              label_agreement, mixture_log_likelihood, pairwise_diversity,
                                              train_label_classifier, write_comparison)
from ppl_attention.sensor import GlimpseGrid

GRID = GlimpseGrid.mnist()
LOG_NORM = -0.5 * math.log(2 * math.pi)


class Oracle(Completion):
    """Returns the true image n times, labelled with a fixed label: every metric is known exactly."""

    def __init__(self, label):
        self.grid, self.label = GRID, label

    def sample(self, locations, glimpses, n, generator=None, true_image=None):
        return CompletionSamples(true_image.expand(n, -1, -1, -1).clone(), torch.full((n,), 1.0 / n),
                                 torch.full((n,), self.label), {})


def test_mixture_log_likelihood_exact():
    target = torch.rand(1, 4, 4)
    region = torch.zeros(4, 4, dtype=torch.bool)
    region[:2] = True  # 8 pixels
    sigma = 0.3
    # A single sample equal to the target: each pixel contributes log N(0; 0, sigma).
    got = mixture_log_likelihood(target.unsqueeze(0), torch.ones(1), target, region, "gaussian", sigma)
    assert got == pytest.approx(-math.log(sigma) + LOG_NORM)
    # Two samples: the mixture log sum_k w_k prod_p N(x_p; s_kp, sigma), divided by the 8 pixels.
    s = torch.stack([target, target + 0.1]).clamp(0, 1)
    w = torch.tensor([0.25, 0.75])
    per = [torch.distributions.Normal(s[k, 0][region].double(), sigma).log_prob(target[0][region].double()).sum()
           for k in range(2)]
    want = float(torch.logsumexp(torch.stack([math.log(0.25) + per[0], math.log(0.75) + per[1]]), 0)) / 8
    assert mixture_log_likelihood(s, w, target, region, "gaussian", sigma) == pytest.approx(want, rel=1e-9)
    # Bernoulli kernel: the binary cross-entropy of a single sample.
    bern = mixture_log_likelihood(torch.full((1, 1, 4, 4), 0.8), torch.ones(1), torch.ones(1, 4, 4), region,
                                  "bernoulli")
    assert bern == pytest.approx(math.log(0.8))
    # Zero-weight samples are ignored; an empty region gives nan.
    assert mixture_log_likelihood(s, torch.tensor([1.0, 0.0]), target, region, "gaussian", sigma) == \
        pytest.approx(-math.log(sigma) + LOG_NORM)
    assert math.isnan(mixture_log_likelihood(s, w, target, torch.zeros(4, 4, dtype=torch.bool)))


def test_pairwise_diversity_exact():
    region = torch.ones(2, 2, dtype=torch.bool)
    a, b, c = torch.zeros(1, 2, 2), torch.ones(1, 2, 2), torch.full((1, 2, 2), 0.5)
    images = torch.stack([a, b, c])
    # RMS distances: d(a,b) = 1, d(a,c) = d(b,c) = 0.5; equal weights -> mean over the 3 distinct pairs.
    assert pairwise_diversity(images, torch.full((3,), 1 / 3), region) == pytest.approx(2 / 3)
    # Weighted: sum_{k != l} w_k w_l d_kl / sum_{k != l} w_k w_l, enumerated by hand.
    w = torch.tensor([0.5, 0.3, 0.2])
    d = torch.tensor([[0, 1, 0.5], [1, 0, 0.5], [0.5, 0.5, 0]])
    num = sum(float(w[k] * w[j] * d[k, j]) for k in range(3) for j in range(3) if k != j)
    den = sum(float(w[k] * w[j]) for k in range(3) for j in range(3) if k != j)
    assert pairwise_diversity(images, w, region) == pytest.approx(num / den)
    assert pairwise_diversity(images[:1], torch.ones(1), region) == 0.0
    assert pairwise_diversity(images, torch.tensor([1.0, 0, 0]), region) == 0.0


def test_glimpse_rmse_exact():
    """Weighted mean over samples of the RMS difference between their patches at the locations and the glimpses."""
    true = torch.rand(1, 60, 60)
    loc = torch.tensor([0, 40])
    obs = GRID.extract(true.unsqueeze(0), loc.unsqueeze(0))[0]
    shifted = (true + 0.3).clamp(max=1.0)
    blank = torch.zeros(1, 60, 60)
    images = torch.stack([true, shifted, blank])
    per = [0.0] + [float((GRID.extract(im.unsqueeze(0), loc.unsqueeze(0))[0] - obs).square().mean().sqrt())
                   for im in (shifted, blank)]
    w = torch.tensor([0.5, 0.3, 0.2])
    assert glimpse_rmse(images, w, GRID, loc, obs) == pytest.approx(0.3 * per[1] + 0.2 * per[2], rel=1e-6)
    assert glimpse_rmse(images[:1], torch.ones(1), GRID, loc, obs) == 0.0
    # A blank sample against glimpses of ones: RMSE 1.
    assert glimpse_rmse(blank.unsqueeze(0), torch.ones(1), GRID, loc[:1], torch.ones(1, 1, 12, 12)) == \
        pytest.approx(1.0)
    assert math.isnan(glimpse_rmse(images, w, GRID, loc[:0], obs[:0]))


def test_label_agreement_exact():
    assert label_agreement(torch.tensor([3, 1, 3]), torch.tensor([0.2, 0.5, 0.3]), 3) == pytest.approx(0.5)


def test_choose_locations_distinct_and_on_ink():
    images = torch.zeros(3, 1, 60, 60)
    images[:, :, 30:42, 30:42] = 1.0  # ink only in one 12 x 12 square
    locs = choose_locations(images, GRID, 4, torch.Generator().manual_seed(0), "ink")
    assert locs.shape == (3, 4)
    assert all(len(set(row.tolist())) == 4 for row in locs)
    # The 9 locations overlapping the square carry all but a 1e-3 share of the probability mass.
    seen = GRID.extract(images, locs).flatten(2).sum(-1)
    assert bool((seen > 0).all())
    uni = choose_locations(images, GRID, 81, torch.Generator().manual_seed(0), "uniform")
    assert sorted(uni[0].tolist()) == list(range(81))
    with pytest.raises(ValueError, match="T must"):
        choose_locations(images, GRID, 82, torch.Generator(), "ink")


def test_compare_end_to_end(tmp_path):
    from ppl_attention.data.mnist import load_digits, render_canvases

    digits, labels = load_digits("test")
    images, labels, _ = render_canvases(digits, labels, 3, torch.Generator().manual_seed(0), cluttered=False)
    images = images.float() / 255
    torch.manual_seed(0)
    samplers = {"oracle": Oracle(label=int(labels[0])), "cgan": CGANCompletion(UNetGenerator(width=4), GRID)}
    cfg = CompareConfig(num_images=2, glimpse_counts=(1, 2), num_samples=3, kernel_sigma=0.2, figure_images=1,
                        figure_samples=2, figure_glimpses=(2,))
    classify = train_label_classifier(images, labels, 10, epochs=1)
    result = compare_completions(samplers, images, labels, GRID, cfg, classifier=classify, progress=False)
    assert len(result.rows) == 2 * 2 * 2 and len(result.table) == 4
    for r in (r for r in result.rows if r["method"] == "oracle"):
        assert r["loglik_per_pixel"] == pytest.approx(-math.log(0.2) + LOG_NORM, rel=1e-6)
        assert r["diversity"] == 0.0 and r["glimpse_rmse"] == 0.0
        assert r["label_agreement_db"] == pytest.approx(1.0 if r["image"] == 0 else float(labels[1] == labels[0]))
        want = float(classify(images[r["image"]:r["image"] + 1]).argmax(-1)[0] == labels[r["image"]])
        assert r["label_agreement"] == pytest.approx(want)
    for r in (r for r in result.rows if r["method"] == "cgan"):
        assert r["loglik_per_pixel"] < -math.log(0.2) + LOG_NORM and r["diversity"] > 0
        assert r["label_agreement_db"] is None
        assert r["glimpse_rmse"] == pytest.approx(0.0, abs=1e-6)  # the cGAN pastes the glimpses in
    # Same config, same seeds: the same numbers.
    again = compare_completions(samplers, images, labels, GRID, cfg, classifier=classify, progress=False)
    assert [r["loglik_per_pixel"] for r in again.rows] == [r["loglik_per_pixel"] for r in result.rows]

    paths = write_comparison(result, tmp_path / "cmp", GRID)
    rows = list(csv.DictReader(open(paths["csv"])))
    assert {r["method"] for r in rows} == {"oracle", "cgan"} and len(rows) == 4
    table = json.loads(open(paths["json"]).read())["table"]
    assert table == json.loads(json.dumps(result.table))
    md = open(paths["markdown"]).read()
    assert "| oracle | 1 |" in md and "| cgan | 2 |" in md and "Gaussian kernel, std 0.2" in md
    assert "glimpse RMSE" in md and {"glimpse_rmse", "glimpse_rmse_sem"} <= set(rows[0])
    for key in ("samples_figure", "metrics_figure"):
        assert open(paths[key], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "cmp" / "manifest.json").read_text())["kind"] == "completion-comparison"


def test_compare_given_locations_and_bad_input():
    images = torch.rand(2, 1, 60, 60)
    labels = torch.tensor([1, 2])
    samplers = {"oracle": Oracle(1)}
    cfg = CompareConfig(num_images=2, glimpse_counts=(2,), num_samples=2, figure_images=0)
    res = compare_completions(samplers, images, labels, GRID, cfg, locations=torch.tensor([[0, 80], [5, 6]]),
                              progress=False)
    assert [r["label_agreement_db"] for r in res.rows] == pytest.approx([1.0, 0.0])
    with pytest.raises(ValueError, match="locations must have shape"):
        compare_completions(samplers, images, labels, GRID, cfg, locations=torch.tensor([[0], [1]]))
    with pytest.raises(ValueError, match="outside the grid"):
        compare_completions(samplers, images, labels, GRID, cfg, locations=torch.tensor([[0, 81], [1, 2]]))
    with pytest.raises(ValueError, match="labels must have shape"):
        compare_completions(samplers, images, torch.tensor([1]), GRID, cfg)
    with pytest.raises(ValueError, match="images must have shape"):
        compare_completions(samplers, torch.rand(2, 1, 28, 28), labels, GRID, cfg)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        compare_completions(samplers, torch.full((2, 1, 60, 60), float("nan")), labels, GRID, cfg)
    with pytest.raises(ValueError, match="non-empty mapping"):
        compare_completions({}, images, labels, GRID, cfg)
    with pytest.raises(ValueError, match="glimpse_counts"):
        CompareConfig(glimpse_counts=(0, 1))
    with pytest.raises(ValueError, match="kernel"):
        CompareConfig(kernel="laplace")


def test_cli_refuses_missing_artefacts_and_bad_flags(tmp_path, capsys):
    from ppl_attention.cli import main

    assert main(["compare-completion", "--out", str(tmp_path / "o"), "--prior", str(tmp_path / "nope")]) == 2
    assert "--prior" in capsys.readouterr().err
    assert main(["compare-completion", "--out", str(tmp_path / "o"), "--vae", str(tmp_path / "nope")]) == 2
    assert "--vae" in capsys.readouterr().err
    assert main(["compare-completion", "--out", str(tmp_path / "o"), "--nuts-sigma", "0"]) == 2
    assert "--nuts-sigma" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["compare-completion", "--out", str(tmp_path / "o"), "--size", "huge"])
