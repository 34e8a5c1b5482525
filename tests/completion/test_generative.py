"""The generative-process prior of MNIST canvases: exact weights on an enumerable case, valid importance weights,
the sensor's observations, no NaN on inconsistent observations, the artefact and its plumbing into generate."""

import json
import math

import pyro
import pyro.poutine as poutine
import pytest
import torch

from ppl_attention.completion.canvas import CanvasPrior, DigitIndex
from ppl_attention.completion.clutter_noise import ClutterNoise, clutter_log_likelihood
from ppl_attention.completion.generative import GenerativeCompletion, build_generative_prior, open_generative_prior
from ppl_attention.completion.prior import prior_type
from ppl_attention.data.spec import DatasetSpec
from ppl_attention.sensor import Sensor, SensorMismatch

NOISE = ClutterNoise((0.1, 0.2), (3.0, 5.0))


def _tiny(cluttered=True, noise=NOISE, **kw):
    """3 digits on 30 x 30 canvases (3 x 3 offsets: 27 candidates), a 2-scale sensor of 6 x 6 foveae."""
    g = torch.Generator().manual_seed(0)
    digits = (torch.rand(3, 28, 28, generator=g) > 0.7).float() * torch.rand(3, 28, 28, generator=g)
    grid = Sensor(30, 6, stride=6, scales=2)
    prior = CanvasPrior(
        digits, torch.tensor([0, 1, 2]), grid, canvas_size=30, cluttered=cluttered, n_clutter=1, clutter_size=4
    )
    index = DigitIndex.fit(digits, components=2, prototypes=2)
    return prior, GenerativeCompletion(prior, index, noise if cluttered else None, **kw)


def _exact_posterior(prior, loc, y, sigma, noise):
    """log p(y | digit, offset) of every pair by conditioning the Pyro program on all 27 pairs at once."""
    d = torch.arange(prior.num_digits).repeat_interleave(prior.num_offsets)
    o = torch.arange(prior.num_offsets).repeat(prior.num_digits)
    cond = poutine.condition(prior.model, {"digit": d, "offset": o})
    tr = poutine.trace(cond).get_trace(loc, y, sigma, noise, candidates=len(d))
    node = tr.nodes["y"]
    return d, o, torch.softmax(node["fn"].log_prob(node["value"]), 0)


def _observe(prior, digit, offset, loc, generator):
    canvas = prior.add_clutter(
        prior.render(prior.digits[[digit]], torch.tensor([offset])), torch.tensor([digit]), generator
    )
    return prior.grid.extract(canvas, loc.view(1, -1))[0]


def test_enumerated_weights_are_the_exact_posterior_of_the_pyro_program():
    prior, comp = _tiny(k1=27, sigma=[400.0])
    loc = torch.tensor([4, 12])
    y = _observe(prior, 1, 4, loc, torch.Generator().manual_seed(3))
    s = comp.sample(loc, y, 27, generator=torch.Generator().manual_seed(0))
    assert s.diagnostics["mode"] == "enumerate" and len(s) == 27
    d, o, post = _exact_posterior(prior, loc, y, 400.0 / 255, NOISE)
    got = torch.zeros(3, 9, dtype=torch.float64)
    got[s.diagnostics["digit"], s.diagnostics["offset"]] = s.weights.double()
    want = torch.zeros(3, 9, dtype=torch.float64)
    want[d, o] = post.double()
    assert torch.allclose(got, want, atol=1e-6)
    assert want.max() < 0.99  # a posterior with some spread, so the comparison means something
    # the label posterior follows: digit 1 carries label 1
    assert s.label_posterior(3)[1] == pytest.approx(float(want[1].sum()), abs=1e-6)


def test_the_scored_label_posterior_is_the_exact_one_however_few_completions_are_returned():
    """Every candidate is scored when they are enumerable: their label histogram is the exact posterior, where the
    histogram of one returned completion is one-hot (the resampling's noise, not the posterior's)."""
    prior, comp = _tiny(k1=27, sigma=[400.0])
    loc = torch.tensor([4, 12])
    y = _observe(prior, 1, 4, loc, torch.Generator().manual_seed(3))
    _, _, post = _exact_posterior(prior, loc, y, 400.0 / 255, NOISE)
    exact = post.view(3, 9).sum(1).double()
    assert exact.max() < 0.99
    for n in (1, 3, 27):
        s = comp.sample(loc, y, n, generator=torch.Generator().manual_seed(n))
        assert torch.allclose(s.label_posterior(3, scored=True), exact, atol=1e-6)
    assert s.label_posterior(3).max() < 0.99 and comp.sample(loc, y, 1).label_posterior(3).max() == 1.0
    # with importance draws: the labels of every distinct pair drawn, with its weight (count x p / q)
    prior, comp = _tiny(k1=12, offset_draws=4, sigma=[400.0])
    s = comp.sample(loc, y, 2, generator=torch.Generator().manual_seed(1))
    c, scored = s.diagnostics["candidates"], s.diagnostics["scored"]
    assert len(s) <= 2 < len(c["digit"]) and torch.equal(scored["labels"], prior.labels[c["digit"]])
    assert torch.allclose(scored["weights"], torch.softmax(c["log_p"] - c["log_q"] + c["counts"].log(), 0))


def test_importance_weights_are_likelihood_over_proposal_and_estimate_the_posterior():
    prior, comp = _tiny(k1=12, offset_draws=4, sigma=[400.0])
    loc = torch.tensor([4, 12])
    y = _observe(prior, 2, 0, loc, torch.Generator().manual_seed(5))
    sigma_q = comp._sigma_q(2, 400.0 / 255)
    # q(o) q(d | o) is a distribution over all 27 pairs
    log_qo = comp.offset_log_proposal(loc, y, sigma_q)
    log_qd = comp.digit_log_proposal(torch.arange(9), loc, y, sigma_q)  # (9 offsets, 3 digits)
    assert float(torch.logsumexp((log_qo.unsqueeze(1) + log_qd).flatten(), 0)) == pytest.approx(0.0, abs=1e-5)
    s = comp.sample(loc, y, 1000, generator=torch.Generator().manual_seed(1))
    c = s.diagnostics["candidates"]
    assert s.diagnostics["mode"] == "importance" and len(s) == len(c["digit"])  # all distinct pairs returned
    # each weight is count * p / q (self-normalised), with the exact log q of the drawn pair
    assert torch.allclose(c["log_q"], log_qo[c["offset"]] + log_qd[c["offset"], c["digit"]], atol=1e-5)
    w = torch.softmax(c["log_p"] - c["log_q"] + c["counts"].log(), 0)
    assert torch.allclose(s.weights.double(), w, atol=1e-6)
    # and the estimate of P(digit | y) converges to the exact one over repeated draws
    _, _, post = _exact_posterior(prior, loc, y, 400.0 / 255, NOISE)
    exact = post.view(3, 9).sum(1).double()
    est = torch.stack(
        [comp.sample(loc, y, 1000, generator=torch.Generator().manual_seed(k)).label_posterior(3) for k in range(60)]
    ).mean(0)
    assert torch.allclose(est, exact, atol=0.05)


def test_adaptive_candidates_grow_until_the_ess_target_or_the_cap():
    prior, comp = _tiny(k1=6, offset_draws=3, sigma=[400.0], min_ess=1e9, max_k1=24)
    loc = torch.tensor([4])
    y = _observe(prior, 0, 8, loc, torch.Generator().manual_seed(2))
    s = comp.sample(loc, y, 50, generator=torch.Generator().manual_seed(0))
    assert s.diagnostics["rounds"] == 4 and s.diagnostics["draws"] == 24  # capped: 4 rounds of 6
    comp.min_ess = 1.0  # met at once
    s = comp.sample(loc, y, 50, generator=torch.Generator().manual_seed(0))
    assert s.diagnostics["rounds"] == 1 and s.diagnostics["draws"] == 6


def test_predictions_are_what_the_sensor_returns():
    prior, _ = _tiny()
    d = torch.tensor([0, 1, 2, 1, 0])
    o = torch.tensor([0, 8, 4, 2, 6])
    loc = torch.tensor([0, 24, 12, 20])
    want = prior.grid.extract(prior.render(prior.digits[d], o), loc.view(1, -1).expand(5, -1))
    assert torch.allclose(prior.predict(d, o, loc), want.reshape(5, 4, 2, -1), atol=1e-6)


@pytest.mark.parametrize("scales", [1, 3])
def test_offset_proposal_scores_every_prototype_at_every_offset_as_the_sensor_sees_it(scales):
    g = torch.Generator().manual_seed(0)
    digits = torch.rand(5, 28, 28, generator=g) * (torch.rand(5, 28, 28, generator=g) > 0.6)
    grid = Sensor.mnist(scales=scales, canvas_size=44)
    prior = CanvasPrior(digits, torch.arange(5), grid, canvas_size=44, cluttered=False)
    comp = GenerativeCompletion(prior, DigitIndex.fit(digits, components=3, prototypes=5))
    loc = torch.tensor([0, 15, 7, 24])
    y = torch.rand(4, scales, 12, 12, generator=g)
    P, O = comp.index.prototypes.shape[0], prior.num_offsets
    pred = prior.predict(
        torch.arange(P).repeat_interleave(O), torch.arange(O).repeat(P), loc, prior.box_filtered(comp.index.prototypes)
    )  # rendered and seen, one by one
    want = (pred - y.reshape(1, 4, scales, -1)).double().square().sum((1, 2, 3)).view(P, prior.side, prior.side)
    assert torch.allclose(comp.prototype_sse(loc, y), want, rtol=1e-4, atol=1e-2)


def test_an_observation_no_candidate_explains_gets_finite_weights_never_nan():
    prior, comp = _tiny(cluttered=False, k1=27, sigma=[2.0])  # a sharp Gaussian, no clutter
    loc = torch.tensor([4, 12])
    y = torch.ones(2, 2, 6, 6)  # all white: no digit x offset renders that
    s = comp.sample(loc, y, 27)
    assert torch.isfinite(s.weights).all() and float(s.weights.sum()) == pytest.approx(1.0)
    assert s.diagnostics["ess"] >= 1.0 and math.isfinite(s.diagnostics["log_evidence"])
    assert s.diagnostics["log_evidence"] < -1e4  # the documented sign of an inconsistent observation
    with pytest.raises(ValueError, match="NaN or infinite"):
        comp.sample(loc, torch.full((2, 2, 6, 6), float("nan")), 5)
    # the clutter term is finite far into both tails
    r = torch.tensor([-50.0, -1.0, 0.0, 1.0, 50.0]).view(1, 1, 5).expand(1, 2, 5)
    assert torch.isfinite(clutter_log_likelihood(r, 0.01, NOISE)).all()


def test_bad_settings_are_refused():
    prior, _ = _tiny()
    index = DigitIndex.fit(prior.digits, components=2, prototypes=2)
    for kw, msg in (
        ({"k1": 0}, "`k1` must be"),
        ({"min_ess": 0.5}, "`min_ess` must be"),
        ({"k1": 10, "max_k1": 5}, "`max_k1` must be"),
        ({"uniform_mix": 0.0}, "uniform_mix"),
    ):
        with pytest.raises(ValueError, match=msg):
            GenerativeCompletion(prior, index, **kw)
    with pytest.raises(ValueError, match="scales"):
        GenerativeCompletion(prior, index, ClutterNoise((0.1,), (1.0,)))
    with pytest.raises(ValueError, match="`n` must be an int >= 1"):
        GenerativeCompletion(prior, index).sample(torch.tensor([0]), torch.zeros(1, 2, 6, 6), 0)


def test_prior_draws_are_canvases_of_the_process():
    prior, comp = _tiny()
    s = comp.sample(
        torch.zeros(0, dtype=torch.long), torch.zeros(0, 2, 6, 6), 7, generator=torch.Generator().manual_seed(0)
    )
    assert s.images.shape == (7, 1, 30, 30) and s.diagnostics["mode"] == "prior"
    assert torch.equal(s.labels, prior.labels[s.diagnostics["digit"]])
    pyro.set_rng_seed(0)
    canvas = prior.model(torch.tensor([0]), candidates=3)  # forward: canvases with their clutter
    assert canvas.shape == (3, 1, 30, 30) and float(canvas.max()) <= 1.0


@pytest.fixture(scope="module")
def translated_prior(tmp_path_factory):
    out = tmp_path_factory.mktemp("gp") / "prior"
    summary = build_generative_prior(out, DatasetSpec("translated-mnist", None, 0, ()), components=8, prototypes=8)
    return out, summary


def test_artefact_records_its_kind_and_refuses_another_sensor(translated_prior):
    out, summary = translated_prior
    assert summary["equivalent_canvases"] == 4000 * 33 * 33
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "prior" and manifest["config"]["prior"] == "generative" == prior_type(out)
    assert manifest["config"]["clutter"]["rho"] == [0.0, 0.0, 0.0]  # translated: no clutter
    assert manifest["config"]["data"]["name"] == "translated-mnist"
    comp = open_generative_prior(out, k1=200)
    assert comp.grid == Sensor.retina()
    with pytest.raises(SensorMismatch, match="3 scales"):
        open_generative_prior(out, grid=Sensor.mnist())
    # a test canvas: completions of 2 glimpses weight the true label well above chance
    data = DatasetSpec("translated-mnist", None, 0, ()).load("test")
    loc = torch.tensor([30, 40])
    s = comp.sample(
        loc, comp.grid.extract(data.images[:1], loc.view(1, -1))[0], 50, generator=torch.Generator().manual_seed(0)
    )
    assert s.images.shape[1:] == (1, 60, 60) and torch.isfinite(s.weights).all()


def test_build_prior_cli_makes_the_datasets_default_kind(tmp_path):
    from ppl_attention.cli import main

    out = tmp_path / "gp"
    assert (
        main(
            [
                "build-prior",
                "--dataset",
                "translated-mnist",
                "--out",
                str(out),
                "--prototypes",
                "4",
                "--digit-components",
                "4",
            ]
        )
        == 0
    )
    assert prior_type(out) == "generative"
    assert json.loads((out / "summary.json").read_text())["kind"] == "generative"
    assert main(["build-prior", "--dataset", "translated-mnist", "--out", str(out), "--prototypes", "0"]) == 2


def test_build_prior_refuses_database_settings_for_the_generative_prior(tmp_path, capsys):
    """--database-size / --components belong to the database prior: with the generative kind they are refused."""
    from ppl_attention.cli import main

    out = tmp_path / "gp"
    assert main(["build-prior", "--dataset", "translated-mnist", "--out", str(out), "--database-size", "1000"]) == 2
    err = capsys.readouterr().err
    assert "--database-size" in err and "generative prior" in err and "--kind database" in err
    assert not (out / "manifest.json").exists()
