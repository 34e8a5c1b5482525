"""The Pyro glimpse model against exact answers on a problem small enough to enumerate.

Problem: 6 random 6 x 6 images, 2 classes (3 rows each), 2 x 2 glimpses on a 3 x 3 grid, noise sigma 0.3; with one
scale (the paper's patch) and with a 2-scale retina (2 x 2 and 4 x 4 pooled to 2 x 2, zero outside the image).
Exact EPE(l) = E_y[H(label | y, l)]: the label posterior given y is exact (enumeration over the 6 rows), the
expectation over y is Monte Carlo with 20,000 draws (standard error ~0.0015 nats per design).
"""

import math

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro.contrib.oed.eig import nmc_eig, posterior_eig

from ppl_attention.sensor import Sensor
from ppl_attention.model import DecoderPrior, EmpiricalPrior, GlimpseModel, NoiseSchedule, label_entropy

SIGMA = 0.3


@pytest.fixture(params=[1, 2], ids=["one-scale", "retina"])
def problem(request):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 1, 6, 6, generator=g)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    grid = Sensor(6, 2, stride=2, scales=request.param)
    model = GlimpseModel(EmpiricalPrior(images, labels), grid, NoiseSchedule.constant(SIGMA, 1.0))
    return model, images, labels, grid


def reference_glimpses(images, grid, loc):
    """The sensor written out independently: per scale, crop the zero-padded image around the fovea's centre and
    average-pool it to the fovea's size; (N, t, k*C, h, w)."""
    h = grid.glimpse_size[0]
    pad = (grid.patch_sizes[-1][0] - h) // 2
    padded = F.pad(images, (pad, pad, pad, pad))
    out = []
    for l in loc.tolist():
        r, c = grid.pixels(torch.tensor(l)).tolist()
        scales = []
        for j, (side, _) in enumerate(grid.patch_sizes):
            top = r + pad - (side - h) // 2
            left = c + pad - (side - h) // 2
            scales.append(F.avg_pool2d(padded[:, :, top : top + side, left : left + side], grid.scale_factor**j))
        out.append(torch.cat(scales, 1))
    return torch.stack(out, 1)


def exact_label_posterior(images, labels, grid, loc, y, sigma, weights=None):
    """p(label | y) by brute force over rows, written independently of the model code: (..., 2)."""
    rows = reference_glimpses(images, grid, loc)  # (N, t, k*C, h, w)
    ll = -0.5 * ((y.unsqueeze(-5) - rows) ** 2).flatten(-4).sum(-1) / sigma**2  # (..., N)
    lw = ll + (torch.zeros(len(images)) if weights is None else weights.log())
    post = torch.softmax(lw, -1)
    return torch.stack([post[..., labels == k].sum(-1) for k in (0, 1)], -1)


def exact_epe(model, images, labels, grid, design, n=20000):
    pyro.set_rng_seed(1)
    with torch.no_grad():
        d = design.expand((n,) + design.shape)
        y = pyro.poutine.trace(model).get_trace(d).nodes["y"]["value"]  # (n, D, t, C, h, w)
        H = torch.stack(
            [
                label_entropy(exact_label_posterior(images, labels, grid, design[i], y[:, i], SIGMA))
                for i in range(len(design))
            ],
            1,
        )
    return H.mean(0), H.std(0) / math.sqrt(n)


def test_noise_schedule_presets_and_errors():
    s = NoiseSchedule.celeba()
    assert [s.sigma(t) * 255 for t in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 40]
    assert NoiseSchedule.geometric(5, 2, 4) == s
    with pytest.raises(ValueError, match="sigmas"):
        NoiseSchedule((0.0,))
    with pytest.raises(ValueError, match="t must be >= 0"):
        s.sigma(-1)


def test_sites_shapes_and_vectorisation(problem):
    model, images, labels, grid = problem
    design = torch.tensor([[[0, 4, 8], [1, 1, 2]]])  # batch (1, 2), 3 glimpses
    tr = pyro.poutine.trace(model).get_trace(design)
    assert tr.nodes["label"]["value"].shape == (1, 2)
    assert tr.nodes["image_index"]["value"].shape == (1, 2)
    assert tr.nodes["y"]["value"].shape == (1, 2, 3, grid.scales, 2, 2)  # scales stacked along channels
    assert torch.allclose(
        grid.extract(images, design[0, :1].expand(6, -1)), reference_glimpses(images, grid, design[0, 0])
    )
    tr.compute_log_prob()
    assert tr.nodes["y"]["log_prob"].shape == (1, 2)
    # the label of the row drawn is the label site
    assert torch.equal(labels[tr.nodes["image_index"]["value"]], tr.nodes["label"]["value"])


def test_nmc_and_posterior_eig_match_the_exact_epe(problem):
    model, images, labels, grid = problem
    design = torch.arange(9).unsqueeze(-1)  # every single-glimpse design
    epe, se = exact_epe(model, images, labels, grid, design)
    assert float(epe.max() - epe.min()) > 0.1  # the designs really differ
    # posterior_eig with the exact-posterior guide is an unbiased estimate of the EPE: 20,000 draws give a
    # standard error ~0.0015 per design; 0.015 is > 5 combined standard errors.
    pyro.set_rng_seed(2)
    pe = posterior_eig(
        model,
        design,
        ["y"],
        ["label"],
        num_samples=20000,
        num_steps=0,
        guide=model.exact_guide(),
        optim=None,
        eig=False,
    )
    assert pe.shape == (9,)
    assert torch.allclose(pe, epe, atol=0.015)
    # nmc_eig estimates EIG = H[label] - EPE.  N = 3000 outer samples (standard error ~0.01), M = M' = 100 inner
    # samples (bias O(1/M) of a few 1e-3 with only 6 rows); 0.05 covers both with margin.
    pyro.set_rng_seed(3)
    eig = nmc_eig(model, design, ["y"], ["label"], N=3000, M=100, M_prime=100)
    assert torch.allclose(math.log(2) - eig, epe, atol=0.05)
    # ... and both rank the best design among the truly best ones
    assert float(epe[int((math.log(2) - eig).argmin())]) <= float(epe.min()) + 0.03


def test_conditioning_on_past_glimpses_is_exact_bayes(problem):
    model, images, labels, grid = problem
    loc = torch.tensor([4, 0])
    truth = images[4:5]
    glimpses = grid.extract(truth, loc.unsqueeze(0))[0] + 0.1  # (2, k, 2, 2), a noisy view of row 4
    # 1. observed= adds the site "y_past": the model's joint over rows (enumerated by conditioning on every row
    #    at once through the design plate) gives the exact posterior.
    observed = GlimpseModel(model.prior, grid, model.noise, observed=(loc, glimpses))
    rows = torch.arange(6)
    cond = pyro.condition(observed, data={"label": labels, "image_index": rows})
    tr = pyro.poutine.trace(cond).get_trace(torch.zeros(6, 1, dtype=torch.long))
    tr.compute_log_prob()
    log_joint = sum(tr.nodes[n]["log_prob"] for n in ("label", "image_index", "y_past"))
    post_rows = torch.softmax(log_joint, 0)
    post_model = torch.stack([post_rows[labels == k].sum() for k in (0, 1)])
    expected = exact_label_posterior(images, labels, grid, loc, glimpses, model.noise.sigma(3))
    assert torch.allclose(post_model, expected, atol=1e-5)
    # 2. condition() folds the same past into the prior (sigma after all glimpses = 2 past + 1 new)
    folded = model.condition(loc, glimpses)
    assert folded.num_past == 2
    prior_after = exact_label_posterior(images, labels, grid, loc, glimpses, model.noise.sigma(2))
    assert torch.allclose(folded.prior.class_weights, prior_after, atol=1e-5)
    assert float((prior_after - 0.5).abs().max()) > 0.05  # the past really moved the label posterior
    # 3. the label posterior after a further glimpse = exact Bayes over all three glimpses
    new_loc = torch.tensor([[8]])
    y = grid.extract(truth, new_loc)
    post_next = folded.prior.label_posterior_logits(new_loc[0], y[0], folded.sigma(1), grid).exp()
    both = exact_label_posterior(
        images, labels, grid, torch.tensor([4, 0, 8]), torch.cat([glimpses, y[0]]), model.noise.sigma(3)
    )
    assert torch.allclose(post_next, both, atol=1e-5)
    # conditioning twice accumulates the past
    twice = model.condition(loc[:1], glimpses[:1]).condition(loc[1:], glimpses[1:])
    assert torch.allclose(twice.prior.weights, folded.prior.weights, atol=1e-6)


def test_decoder_prior_runs_under_plates():
    decoder = torch.nn.Sequential(torch.nn.Linear(3, 36), torch.nn.Sigmoid(), torch.nn.Unflatten(1, (1, 6, 6)))
    classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 2))
    grid = Sensor(6, 2, stride=2)
    model = GlimpseModel(DecoderPrior(decoder, 3, classifier, 2), grid, NoiseSchedule.constant(SIGMA, 1.0))
    design = torch.tensor([[0, 8], [4, 4], [2, 6]])
    tr = pyro.poutine.trace(model).get_trace(design)
    assert tr.nodes["z"]["value"].shape == (3, 3)
    assert tr.nodes["y"]["value"].shape == (3, 2, 1, 2, 2)
    assert tr.nodes["label"]["value"].shape == (3,)


def test_bad_input_is_refused(problem):
    model, images, labels, grid = problem
    with pytest.raises(ValueError, match="design holds locations outside"):
        model(torch.tensor([[9]]))
    with pytest.raises(ValueError, match="LongTensor"):
        model(torch.tensor([[0.5]]))
    with pytest.raises(ValueError, match="`labels` must lie in"):
        EmpiricalPrior(images, torch.tensor([0, 1, 2, 0, 1, 5]), num_classes=3)
    with pytest.raises(ValueError, match="`images` must be a float tensor"):
        EmpiricalPrior(images[0], labels)
    with pytest.raises(ValueError, match="observed glimpses must have shape"):
        GlimpseModel(model.prior, grid, observed=(torch.tensor([0]), torch.zeros(1, 1, 3, 3)))
    if grid.scales > 1:  # a one-scale glimpse is not what this sensor observes
        with pytest.raises(ValueError, match=r"observed glimpses must have shape \(1, 2, 2, 2\)"):
            GlimpseModel(model.prior, grid, observed=(torch.tensor([0]), torch.zeros(1, 1, 2, 2)))
    with pytest.raises(ValueError, match="weights"):
        EmpiricalPrior(images, labels, weights=torch.full((6,), float("nan")))


def test_observed_and_condition_score_the_past_with_one_noise(problem):
    """One noise per glimpse history: the t0 past glimpses are scored with sigma(t0) -- by ``observed=``, by
    ``condition()`` and by the completion samplers, which draw r(image | past) at sigma(t0) -- and the t_new designed
    glimpses with sigma(t0 + t_new).  A schedule that grows with t tells the conventions apart."""
    model, images, labels, grid = problem
    noise = NoiseSchedule((0.3, 0.6, 1.2), 1.0)
    loc = torch.tensor([4, 0])
    glimpses = grid.extract(images[4:5], loc.unsqueeze(0))[0] + 0.1
    observed = GlimpseModel(model.prior, grid, noise, observed=(loc, glimpses))
    rows = torch.arange(6)
    tr = pyro.poutine.trace(pyro.condition(observed, data={"label": labels, "image_index": rows})).get_trace(
        torch.zeros(6, 1, dtype=torch.long)
    )
    tr.compute_log_prob()
    post_rows = torch.softmax(sum(tr.nodes[n]["log_prob"] for n in ("label", "image_index", "y_past")), 0)
    post_observed = torch.stack([post_rows[labels == k].sum() for k in (0, 1)])
    folded = GlimpseModel(model.prior, grid, noise).condition(loc, glimpses)
    past = exact_label_posterior(images, labels, grid, loc, glimpses, noise.sigma(2))
    assert torch.allclose(folded.prior.class_weights, past, atol=1e-5)
    assert torch.allclose(post_observed, past, atol=1e-5)  # was sigma(3): the past re-scored at t0 + t_new
    assert not torch.allclose(
        past, exact_label_posterior(images, labels, grid, loc, glimpses, noise.sigma(3)), atol=1e-3
    )  # the two conventions really differ here
    # the designed glimpse's own noise is sigma(t0 + t_new) in both
    assert observed.sigma(1) == folded.sigma(1) == noise.sigma(3)
    assert tr.nodes["y"]["fn"].base_dist.scale.max() == noise.sigma(3)
