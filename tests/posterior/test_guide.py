"""The AVP as the guide of Pyro's posterior_eig on the small glimpse model."""

import math

import pyro
import pyro.optim
import torch
from pyro.contrib.oed.eig import posterior_eig

from ppl_attention.sensor import Sensor
from ppl_attention.model import EmpiricalPrior, GlimpseModel, NoiseSchedule
from ppl_attention.posterior import AVP, AVPConfig, AVPGuide


def setup():
    g = torch.Generator().manual_seed(0)
    grid = Sensor(6, 2, stride=2)
    images, labels = torch.rand(6, 1, 6, 6, generator=g), torch.tensor([0, 0, 0, 1, 1, 1])
    model = GlimpseModel(EmpiricalPrior(images, labels), grid, NoiseSchedule.constant(0.3, 1.0))
    avp = AVP(AVPConfig(grid=grid.to_dict(), num_classes=2, width=4, dropout=0.0, mean=(0.5,), std=(0.3,)))
    return model, avp, grid


def test_guide_pastes_glimpses_where_the_design_says():
    model, avp, grid = setup()
    design = torch.tensor([[[0, 8]], [[4, 4]]])  # batch (2, 1), 2 glimpses
    y = torch.rand(2, 1, 2, 1, 2, 2)
    canvas, mask, batch = AVPGuide(avp).canvas(y, design)
    assert batch == (2, 1)
    assert torch.equal(canvas, grid.paste(y.reshape(2, 2, 1, 2, 2), design.reshape(2, 2)))
    assert torch.equal(mask, grid.mask(design.reshape(2, 2)))
    past = (torch.tensor([2]), torch.ones(1, 1, 2, 2))
    canvas, mask, _ = AVPGuide(avp, past=past).canvas(y, design)
    assert torch.equal(mask, grid.mask(torch.cat([torch.tensor([[2], [2]]), design.reshape(2, 2)], 1)))


def test_uninformative_guide_scores_log2_and_training_inside_posterior_eig_lowers_the_loss():
    model, avp, grid = setup()
    torch.nn.init.zeros_(avp.backbone.classifier[-1].weight)
    torch.nn.init.zeros_(avp.backbone.classifier[-1].bias)
    avp.eval()
    guide = AVPGuide(avp)
    design = torch.arange(9).unsqueeze(-1)
    pyro.clear_param_store()
    # constant logits: q = (1/2, 1/2) for every y, so the posterior cross-entropy is exactly log 2
    loss = posterior_eig(
        model, design, ["y"], ["label"], num_samples=50, num_steps=0, guide=guide, optim=None, eig=False
    )
    assert loss.shape == (9,) and torch.allclose(loss, torch.full((9,), math.log(2)), atol=1e-6)
    # with num_steps > 0 posterior_eig trains the AVP through pyro.module: the loss must drop below log 2
    before = avp.backbone.classifier[-1].weight.detach().clone()
    avp.train()
    pyro.set_rng_seed(0)
    posterior_eig(
        model,
        design,
        ["y"],
        ["label"],
        num_samples=64,
        num_steps=30,
        guide=guide,
        optim=pyro.optim.Adam({"lr": 0.01}),
        eig=False,
    )
    assert not torch.equal(before, avp.backbone.classifier[-1].weight)
    avp.eval()
    pyro.set_rng_seed(1)
    after = posterior_eig(
        model, design, ["y"], ["label"], num_samples=500, num_steps=0, guide=guide, optim=None, eig=False
    )
    assert float(after.detach().mean()) < math.log(2) - 0.02
