"""Metrics and the end-to-end comparison of completions."""

import csv
import json
import math

import pytest
import torch

from ppl_attention.completion.base import Completion, CompletionSamples
from ppl_attention.completion.cgan import CGANCompletion, UNetGenerator
from ppl_attention.completion.compare import (
    CompareConfig,
    choose_locations,
    compare_completions,
    train_label_classifier,
)
from ppl_attention.completion.metrics import glimpse_rmse, label_agreement, mixture_log_likelihood, pairwise_diversity
from ppl_attention.completion.report import write_comparison
from ppl_attention.sensor import Sensor
from tests._helpers import generate_argv

GRID = Sensor.mnist()
LOG_NORM = -0.5 * math.log(2 * math.pi)


class Oracle(Completion):
    """Returns the true image n times, labelled with a fixed label: every metric is known exactly."""

    channels = 1

    def __init__(self, label):
        self.grid, self.label = GRID, label

    def _sample(self, locations, glimpses, n, generator, true_image):
        return CompletionSamples(
            true_image.expand(n, -1, -1, -1).clone(), torch.full((n,), 1.0 / n), torch.full((n,), self.label), {}
        )


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
    per = [
        torch.distributions.Normal(s[k, 0][region].double(), sigma).log_prob(target[0][region].double()).sum()
        for k in range(2)
    ]
    want = float(torch.logsumexp(torch.stack([math.log(0.25) + per[0], math.log(0.75) + per[1]]), 0)) / 8
    assert mixture_log_likelihood(s, w, target, region, "gaussian", sigma) == pytest.approx(want, rel=1e-9)
    # Bernoulli kernel: the binary cross-entropy of a single sample.
    bern = mixture_log_likelihood(
        torch.full((1, 1, 4, 4), 0.8), torch.ones(1), torch.ones(1, 4, 4), region, "bernoulli"
    )
    assert bern == pytest.approx(math.log(0.8))
    # Zero-weight samples are ignored; an empty region gives nan.
    assert mixture_log_likelihood(s, torch.tensor([1.0, 0.0]), target, region, "gaussian", sigma) == pytest.approx(
        -math.log(sigma) + LOG_NORM
    )
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
    per = [0.0] + [
        float((GRID.extract(im.unsqueeze(0), loc.unsqueeze(0))[0] - obs).square().mean().sqrt())
        for im in (shifted, blank)
    ]
    w = torch.tensor([0.5, 0.3, 0.2])
    assert glimpse_rmse(images, w, GRID, loc, obs) == pytest.approx(0.3 * per[1] + 0.2 * per[2], rel=1e-6)
    assert glimpse_rmse(images[:1], torch.ones(1), GRID, loc, obs) == 0.0
    # A blank sample against glimpses of ones: RMSE 1.
    assert glimpse_rmse(blank.unsqueeze(0), torch.ones(1), GRID, loc[:1], torch.ones(1, 1, 12, 12)) == pytest.approx(
        1.0
    )
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
    cfg = CompareConfig(
        num_images=2,
        glimpse_counts=(1, 2),
        num_samples=3,
        kernel_sigma=0.2,
        figure_images=1,
        figure_samples=2,
        figure_glimpses=(2,),
    )
    classify = train_label_classifier(images, labels, 10, epochs=1)
    result = compare_completions(samplers, images, labels, GRID, cfg, classifier=classify, progress=False)
    assert len(result.rows) == 2 * 2 * 2 and len(result.table) == 4
    for r in (r for r in result.rows if r["method"] == "oracle"):
        assert r["loglik_per_pixel"] == pytest.approx(-math.log(0.2) + LOG_NORM, rel=1e-6)
        assert r["diversity"] == 0.0 and r["glimpse_rmse"] == 0.0
        assert r["label_agreement_db"] == pytest.approx(1.0 if r["image"] == 0 else float(labels[1] == labels[0]))
        want = float(classify(images[r["image"] : r["image"] + 1]).argmax(-1)[0] == labels[r["image"]])
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
    res = compare_completions(
        samplers, images, labels, GRID, cfg, locations=torch.tensor([[0, 80], [5, 6]]), progress=False
    )
    assert [r["label_agreement_db"] for r in res.rows] == pytest.approx([1.0, 0.0])
    with pytest.raises(ValueError, match="`locations` must have shape"):
        compare_completions(samplers, images, labels, GRID, cfg, locations=torch.tensor([[0], [1]]))
    with pytest.raises(ValueError, match="outside the grid"):
        compare_completions(samplers, images, labels, GRID, cfg, locations=torch.tensor([[0, 81], [1, 2]]))
    with pytest.raises(ValueError, match="`labels` must have shape"):
        compare_completions(samplers, images, torch.tensor([1]), GRID, cfg)
    with pytest.raises(ValueError, match="`images` must have shape"):
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
        main(["compare-completion", "--out", str(tmp_path / "o"), "--scale", "huge"])


class Chains(Completion):
    """Stands in for an MCMC sampler: blank samples and chain diagnostics in ``diagnostics``."""

    channels = 1

    def __init__(self):
        self.grid = GRID

    def _sample(self, locations, glimpses, n, generator, true_image):
        return CompletionSamples(
            torch.zeros(n, 1, 60, 60),
            torch.full((n,), 1.0 / n),
            None,
            {"r_hat_max": 1.0 + 0.02 * locations.numel(), "ess_min": 40.0},
        )


def test_compare_reports_p_true_label_beside_the_reference_with_intervals(tmp_path):
    """P(true label) (own labels, else the classifier's), the reference's on the same glimpses, the paired
    difference, 95 % intervals, R-hat columns of MCMC samplers, sequence kinds and per-method image limits."""
    images, labels = torch.rand(3, 1, 60, 60), torch.tensor([1, 2, 1])
    seen = []

    def reference(imgs, locs):  # P(label k) = 0.1 + 0.05 t for the true label's class 1, uniform rest
        seen.append(locs.shape[1])
        p = torch.full((imgs.shape[0], 10), 0.0)
        p[:, 1] = 0.1 + 0.05 * locs.shape[1]
        p[:, 0] = 1 - p[:, 1]
        return p

    classify = lambda x: torch.nn.functional.one_hot(torch.full((x.shape[0],), 2), 10).float()  # noqa: E731
    cfg = CompareConfig(num_images=3, glimpse_counts=(1, 2), num_samples=2, figure_images=0)
    res = compare_completions(
        {"oracle": Oracle(1), "chains": Chains()},
        images,
        labels,
        GRID,
        cfg,
        classifier=classify,
        reference=reference,
        sequences="random",
        max_images={"chains": 2},
        progress=False,
    )
    assert seen == [1, 2]
    assert sum(r["method"] == "chains" for r in res.rows) == 2 * 2 and len(res.rows) == 3 * 2 + 4
    for r in res.rows:
        assert r["sequences"] == "random"
        want_ref = (0.1 + 0.05 * r["glimpses"]) if r["true_label"] == 1 else 0.0
        assert r["p_true_avp"] == pytest.approx(want_ref)
        own = (1.0 if r["true_label"] == 1 else 0.0) if r["method"] == "oracle" else float(r["true_label"] == 2)
        assert r["p_true_label"] == pytest.approx(own)
        assert r["p_true_minus_avp"] == pytest.approx(own - want_ref)
    rows = {(r["method"], r["glimpses"]): r for r in res.table}
    assert rows[("chains", 2)]["r_hat_max"] == pytest.approx(1.04) and rows[("chains", 2)]["r_hat_ok"] == 1.0
    assert rows[("chains", 2)]["mcmc_ess_min"] == 40.0 and rows[("oracle", 1)]["r_hat_max"] is None
    o = rows[("oracle", 1)]
    assert o["images"] == 3 and all(
        math.isfinite(o[k]) for k in ("p_true_label_lo", "p_true_label_hi", "p_true_avp_lo", "p_true_minus_avp_hi")
    )
    assert o["p_true_label_lo"] < o["p_true_label"] < o["p_true_label_hi"]
    with pytest.raises(ValueError, match="max_images"):
        compare_completions({"oracle": Oracle(1)}, images, labels, GRID, cfg, max_images={"nuts": 1})
    paths = write_comparison(res, tmp_path / "cmp", GRID)
    md = open(paths["markdown"]).read()
    assert "AVP P(true label)" in md and "| random | chains | 2 | 2 |" in md and "1.040; 1.040; 1.00" in md
    assert {"p_true_label_lo", "p_true_avp", "r_hat_ok", "sequences"} <= set(next(csv.DictReader(open(paths["csv"]))))


def test_avp_reference_and_classifier_on_a_multiscale_sensor():
    """The AVP reads the sensor's canvas of the glimpses (the reference) or the whole image in every scale's
    channels (the classifier of completions), as it was trained."""
    from ppl_attention.completion.compare import avp_classifier, avp_label_posterior
    from ppl_attention.posterior.network import AVPConfig, build_avp

    grid = Sensor.retina()
    avp = build_avp(AVPConfig(grid=grid.to_dict(), width=4)).eval()
    images, loc = torch.rand(3, 1, 60, 60), torch.tensor([[0, 5], [40, 41], [80, 3]])
    p = avp_label_posterior(avp, grid, batch_size=2)(images, loc)
    with torch.no_grad():
        want = torch.softmax(avp.label_logits(avp(avp.make_input(*grid.observe(images, loc)))), -1)
    assert p.shape == (3, 10) and torch.allclose(p, want, atol=1e-6)
    logits = avp_classifier(avp)(images)
    with torch.no_grad():
        whole = avp.make_input(images.repeat(1, 3, 1, 1), torch.ones(3, 3, 60, 60))
        assert torch.allclose(logits, avp.label_logits(avp(whole)), atol=1e-5)


def test_cli_compares_both_priors_and_nuts_along_random_and_store_sequences(tmp_path):
    """compare-completion --avp (a tiny untrained AVP on 40-canvas splits) with a store made by generate: the
    generative prior, the database prior and multi-chain NUTS, P(true label) beside the AVP's, the store's
    near-optimal pass limited to its T, NUTS on --slow-images images only; the cGAN is not a default."""
    from ppl_attention.cli import main
    from ppl_attention.data.spec import DatasetSpec
    from ppl_attention.posterior.network import AVPConfig, build_avp, save_avp

    grid = Sensor.retina()
    spec = DatasetSpec.make("cluttered-mnist", options={"size": 40})
    save_avp(
        build_avp(AVPConfig(grid=grid.to_dict(), width=4)),
        tmp_path / "avp",
        "cluttered-mnist",
        2,
        extra_config={"data": spec.to_dict()},
    )
    out = tmp_path / "cc"
    assert main(["build-prior", "--dataset-from", str(tmp_path / "avp"), "--out", str(tmp_path / "gp")]) == 0
    sizes = ["--num-images", "2", "--glimpses", "1", "--num-samples", "4", "--k1", "50", "--search", "exhaustive"]
    generate = generate_argv(tmp_path / "avp", tmp_path / "gp")
    assert main([*generate, "--split", "test", *sizes, "--out", str(tmp_path / "store")]) == 0
    assert (
        main(
            [
                "compare-completion",
                "--device",
                "cpu",
                "--scale",
                "tiny",
                "--out",
                str(out),
                "--avp",
                str(tmp_path / "avp"),
                "--gen-prior",
                str(tmp_path / "gp"),
                "--sequences",
                str(tmp_path / "store"),
                "--nuts-warmup",
                "4",
                "--nuts-samples",
                "4",
                "--nuts-chains",
                "2",
                "--slow-images",
                "1",
                "--locations",
                "uniform",
                "--prior-rows",
                "300",
            ]
        )
        == 0
    )
    result = json.loads((out / "comparison.json").read_text())
    table = {(r["sequences"], r["method"], r["glimpses"]): r for r in result["table"]}
    assert set(table) == {
        (s, m, t)
        for m in ("importance", "generative", "nuts-vae")
        for s, t in (("random", 1), ("random", 2), ("near-optimal", 1))
    }
    for (s, m, t), r in table.items():
        assert r["images"] == (1 if m == "nuts-vae" else 2)
        for k in ("p_true_label", "p_true_avp", "p_true_minus_avp", "diversity"):
            assert math.isfinite(r[k]), (s, m, t, k)
        assert (r["r_hat_max"] is not None) == (m == "nuts-vae")
    md = (out / "comparison.md").read_text()
    assert "AVP P(true label)" in md and "2 sequential chains" in md and "nuts-vae: the first 1 images" in md
    assert main(["compare-completion", "--out", str(tmp_path / "o2"), "--sequences", str(tmp_path / "store")]) == 2
