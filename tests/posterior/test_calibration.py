"""Calibration: temperatures per observed fraction, applied inside the AVP's forward, fitted and kept only when
they help; checkpoints from before they existed still load."""

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from ppl_attention.artifacts import ArtifactError
from ppl_attention.sensor import Sensor
from ppl_attention.posterior import AVP, AVPConfig, calibrate_avp, fit_temperature, load_avp, save_avp
from ppl_attention.posterior.calibration import fit_fraction_temperatures, fraction_knots, fraction_log_temperature
from ppl_attention.posterior.metrics import confidences, ece_noise_floor, expected_calibration_error

GRID = Sensor(24, 8, stride=4)


def small(**kw):
    torch.manual_seed(0)
    return AVP(AVPConfig(**{"grid": GRID.to_dict(), "width": 4, "num_classes": 4, **kw})).eval()


def test_log_temperature_is_piecewise_linear_between_knots_and_constant_beyond():
    knots, values = torch.tensor([0.0, 0.2, 1.0]), torch.tensor([1.0, -1.0, 0.0])
    f = torch.tensor([0.0, 0.1, 0.2, 0.6, 1.0, 1.5, -0.5])
    expected = torch.tensor([1.0, 0.0, -1.0, -0.5, 0.0, 0.0, 1.0])
    assert torch.allclose(fraction_log_temperature(f, knots, values), expected)
    assert torch.equal(fraction_log_temperature(f, knots[:1], values[:1]), torch.ones(7))
    # knots at the fractions of t = 0..T non-overlapping 8 x 8 glimpses of 24 x 24 (1/9 each) and the whole image
    assert torch.allclose(fraction_knots(GRID, 3), torch.tensor([0.0, 1 / 9, 2 / 9, 3 / 9, 1.0]), atol=1e-6)


def test_forward_divides_by_the_temperature_at_the_observed_fraction():
    avp = small()
    images = torch.rand(3, 1, 24, 24)
    loc = torch.tensor([[-1, -1], [0, -1], [0, 8]])  # nothing, one glimpse, two disjoint glimpses
    x = avp.make_input(images, GRID.mask(loc))
    assert torch.allclose(avp.observed_fraction(x), torch.tensor([0.0, 1 / 9, 2 / 9]))
    raw = avp.backbone(x)
    assert torch.equal(avp(x), raw)  # uncalibrated by default
    avp.temperature.fill_(2.0)
    avp.set_fraction_temperatures([0.0, 2 / 9], [math.log(4.0), 0.0])
    t = torch.tensor([8.0, 4.0, 2.0])  # 2 x exp(log 4 x (1 - f / (2/9)))
    assert torch.allclose(avp(x), raw / t.unsqueeze(1), rtol=1e-5)
    assert torch.allclose(avp.predict(images, loc), avp(x))
    assert torch.equal(avp.uncalibrated(x), raw)
    with pytest.raises(ValueError, match="increase strictly"):
        avp.set_fraction_temperatures([0.5, 0.1], [0.0, 0.0])
    with pytest.raises(ValueError, match="same length"):
        avp.set_fraction_temperatures([0.0, 0.1], [0.0])
    avp.set_fraction_temperatures(None, None)
    assert torch.allclose(avp(x), raw / 2)


def miscalibrated(n=12000, seed=0):
    """Logits whose calibration depends on the observed fraction: under-confident (x 0.5) after a few glimpses,
    right with none, over-confident (x 2) on whole images; labels drawn from the true posterior."""
    g = torch.Generator().manual_seed(seed)
    f = torch.tensor([0.0, 0.1, 0.2, 1.0])[torch.randint(4, (n,), generator=g)]
    true = (0.5 + 10 * f).unsqueeze(1) * torch.randn(n, 10, generator=g)
    labels = torch.multinomial(true.softmax(-1), 1, generator=g).squeeze(1)
    scale = torch.where(f == 0, 1.0, torch.where(f < 1, 0.5, 2.0)).unsqueeze(1)
    return true * scale, f, labels


def test_fraction_temperatures_fix_what_one_temperature_cannot():
    logits, f, labels = miscalibrated()
    knots = torch.tensor([0.0, 0.1, 0.2, 1.0])
    values = fit_fraction_temperatures(logits, f, labels, "categorical", knots)
    assert torch.allclose(values[1:].exp(), torch.tensor([0.5, 0.5, 2.0]), rtol=0.1)
    one = fit_temperature(logits, labels, "categorical")
    fixed = logits / fraction_log_temperature(f, knots, values).exp().unsqueeze(1)

    def ece(z, sel):
        return expected_calibration_error(*confidences(z[sel], labels[sel], "categorical"))

    for level in (0.1, 0.2, 1.0):  # at the noise floor of perfect calibration, unlike the raw or single-T logits
        sel = f == level
        floor, sd = ece_noise_floor(
            confidences(fixed[sel], labels[sel], "categorical")[0], generator=torch.Generator().manual_seed(0)
        )
        assert ece(fixed, sel) < floor + 3 * sd < min(ece(logits, sel), ece(logits / one, sel))
    nll = torch.nn.functional.cross_entropy
    assert nll(fixed, labels) < nll(logits / one, labels) < nll(logits, labels)


def test_calibrate_avp_keeps_only_what_helps_on_held_out_images(toy):
    data = toy(64, 0, "valid")
    avp = small(mean=(float(data.mean),), std=(float(data.std),))
    with torch.no_grad():  # make the untrained network over-confident: a large logit scale
        avp.backbone.classifier[-1].weight.mul_(200.0)
    out = calibrate_avp(avp, data, 2, draws=3)
    assert out["method"] in ("temperature", "fraction") and out["kept"]
    assert out["after"]["nll"] < out["before"]["nll"] and out["after"]["ece"] <= out["before"]["ece"] + 1e-4
    assert set(out["before"]["ece_by_t"]) == {"0", "1", "2", "full"}
    if out["method"] == "fraction":
        assert avp.calibration_fractions.numel() == 4 and float(avp.temperature) == 1.0
    else:
        assert avp.calibration_fractions.numel() == 0 and float(avp.temperature) == pytest.approx(out["temperature"])
    assert float(avp.temperature_at(torch.tensor([0.5]))) > 1  # it cools the over-confident logits
    # a perfectly scaled network is left alone when nothing helps: an all-zero head is already uniform
    with torch.no_grad():
        avp.backbone.classifier[-1].weight.zero_()
        avp.backbone.classifier[-1].bias.zero_()
    flat = calibrate_avp(avp, data, 1, draws=2, methods=("temperature",))
    assert flat["method"] == "none" and not flat["kept"] and float(avp.temperature) == 1.0
    with pytest.raises(ValueError, match="methods"):
        calibrate_avp(avp, data, 1, methods=("isotonic",))


def test_fraction_temperatures_are_saved_and_old_checkpoints_still_load(tmp_path):
    avp = small()
    avp.set_fraction_temperatures([0.0, 0.5, 1.0], [0.3, -0.2, 0.1])
    save_avp(avp, tmp_path / "new", "toy", T=2)
    loaded = load_avp(tmp_path / "new")
    x = torch.cat([torch.randn(4, 1, 24, 24), GRID.mask(torch.tensor([[0, 5], [3, -1], [-1, -1], [7, 9]]))], 1)
    assert torch.equal(loaded(x), avp(x)) and loaded.calibration_fractions.numel() == 3
    # a checkpoint written before fraction temperatures existed: no such tensors
    old = load_file(tmp_path / "new" / "avp.safetensors")
    del old["calibration_fractions"], old["calibration_log_temperatures"]
    save_file(old, str(tmp_path / "new" / "avp.safetensors"))
    legacy = load_avp(tmp_path / "new")
    assert legacy.calibration_fractions.numel() == 0 and torch.equal(legacy(x), avp.backbone(x))
    legacy.load_state_dict(avp.state_dict())  # and a model takes any number of knots from a state dict
    assert torch.equal(legacy(x), avp(x))
    bad = dict(old, calibration_fractions=torch.tensor([0.5, 0.2]), calibration_log_temperatures=torch.zeros(2))
    save_file(bad, str(tmp_path / "new" / "avp.safetensors"))
    with pytest.raises(ArtifactError, match="invalid fraction temperatures"):
        load_avp(tmp_path / "new")
