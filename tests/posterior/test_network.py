import math

import pytest
import torch

from ppl_attention.artifacts import ArtifactError, atomic_write_bytes
from ppl_attention.sensor import NO_GLIMPSE, Sensor
from ppl_attention.posterior import AVP, AVPConfig, entropy_from_logits, load_avp, save_avp
from ppl_attention.posterior.evaluation import check_labels
from ppl_attention.posterior.metrics import expected_calibration_error

GRID = Sensor(24, 8, stride=4).to_dict()


def small(**kw):
    kw = {"grid": GRID, "width": 4, "mean": (0.3,), "std": (0.5,), **kw}
    return AVP(AVPConfig(**kw)).eval()


def test_make_input_normalises_then_masks():
    avp = small()
    images = torch.rand(2, 1, 24, 24)
    loc = torch.tensor([[0, NO_GLIMPSE], [5, 24]])
    mask = avp.grid.mask(loc)
    x = avp.make_input(images, mask)
    assert x.shape == (2, 2, 24, 24)
    assert torch.equal(x[:, 1:], mask)
    seen = mask.bool().expand_as(images)
    assert torch.allclose(x[:, :1][seen], ((images - 0.3) / 0.5)[seen])
    assert bool((x[:, :1][~seen] == 0).all())  # unobserved = 0 = the mean colour


def test_a_retina_avp_sees_one_canvas_and_one_mask_per_scale():
    retina = Sensor(24, 4, stride=4, scales=3)  # 4, 8 and 16 px pooled to 4 x 4
    avp = small(grid=retina.to_dict(), mean=(0.3,), std=(0.5,))
    images = torch.rand(2, 1, 24, 24)
    loc = torch.tensor([[7, NO_GLIMPSE], [0, 35]])
    canvas, mask = retina.observe(images, loc)
    x = avp.make_input(canvas, mask)
    assert x.shape == (2, 3 + 3, 24, 24)  # 3 canvases, then 3 masks
    assert torch.equal(x[:, 3:], mask)
    assert float(avp.backbone.first_conv.weight[:, 3:].detach().abs().sum()) == 0  # the mask channels start at zero
    coarse = mask[:, 2].bool()
    assert torch.allclose(x[:, 2][coarse], ((canvas[:, 2] - 0.3) / 0.5)[coarse])
    assert bool((x[:, :3][~mask.bool()] == 0).all())
    assert torch.equal(avp.predict(images, loc), avp(x))
    assert torch.allclose(avp.observed_fraction(x), mask[:, 0].flatten(1).mean(1))  # the fovea's fraction
    with pytest.raises(ValueError, match=r"`canvas` must have shape \(B, 3, 24, 24\) \(3 scale\(s\)"):
        avp.make_input(images, mask)  # the image alone is not what a retina AVP reads
    with pytest.raises(ValueError, match="one channel per scale"):
        avp.make_input(canvas, mask[:, :1])
    assert torch.allclose(avp.predict(images, loc), avp(x))


@pytest.mark.parametrize("backbone", ["small_cnn", "mobilenet_v2", "densenet121"])
def test_backbones_heads_and_zero_mask_weights(backbone):
    avp = small(
        backbone=backbone,
        head="class_attributes",
        num_classes=5,
        num_attributes=3,
        grid=Sensor(32, 8, stride=8).to_dict(),
    )
    assert avp(torch.zeros(2, 2, 32, 32)).shape == (2, 8)
    first = {
        "small_cnn": lambda b: b.first_conv,
        "mobilenet_v2": lambda b: b.features[0][0],
        "densenet121": lambda b: b.features.conv0,
    }[backbone](avp.backbone)
    assert first.in_channels == 2 and bool((first.weight[:, 1] == 0).all())
    assert avp.label_logits(torch.zeros(2, 8)).shape == (2, 5)


def test_pretrained_weights_come_only_from_a_local_safetensors_file(tmp_path):
    import torchvision
    from safetensors.torch import save_file

    ref = torchvision.models.mobilenet_v2(weights=None)
    path = tmp_path / "mnv2.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    avp = AVP(
        AVPConfig(
            grid=Sensor(32, 8, stride=8).to_dict(), channels=3, backbone="mobilenet_v2", mean=(0.5,) * 3, std=(0.2,) * 3
        ),
        pretrained=path,
    )
    conv = avp.backbone.features[0][0]
    assert torch.equal(conv.weight[:, :3], ref.features[0][0].weight) and bool((conv.weight[:, 3] == 0).all())
    assert torch.equal(avp.backbone.features[1].conv[0][0].weight, ref.features[1].conv[0][0].weight)
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a valid safetensors"):
        AVP(AVPConfig(grid=GRID, backbone="mobilenet_v2"), pretrained=bad)
    with pytest.raises(ValueError, match="pretrained"):
        AVP(AVPConfig(grid=GRID, backbone="mobilenet_v2"), pretrained=tmp_path / "weights.pth")


def test_entropy_from_logits_exact_and_finite_when_saturated():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0], [1e4, -1e4, 0.0, 0.0]])
    h = entropy_from_logits(logits)
    p = torch.softmax(logits[1], 0)
    assert torch.allclose(h[:2], torch.tensor([math.log(4), float(-(p * p.log()).sum())]))
    assert h[2] == 0 and torch.isfinite(h).all()
    hb = entropy_from_logits(torch.tensor([[0.0, 1e5, -1e5, 2.0]]), "multilabel")
    q = torch.sigmoid(torch.tensor(2.0))
    assert torch.allclose(hb, torch.tensor([[math.log(2), 0.0, 0.0, float(-(q * q.log() + (1 - q) * (1 - q).log()))]]))
    assert torch.allclose(entropy_from_logits(torch.zeros(1, 5), "class_attributes", 2), torch.tensor([math.log(2)]))
    # gradients stay finite for saturated logits too
    x = torch.tensor([[1e4, -1e4, 0.0]], requires_grad=True)
    entropy_from_logits(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_ece_matches_a_hand_computation():
    conf = torch.tensor([0.95, 0.95, 0.55, 0.55])
    hits = torch.tensor([1.0, 0.0, 1.0, 1.0])
    # two bins: |0.5 - 0.95| * 2/4 + |1.0 - 0.55| * 2/4
    assert expected_calibration_error(conf, hits) == pytest.approx(0.45)


def test_save_load_roundtrip_and_refusals(tmp_path):
    avp = small()
    avp.temperature.fill_(1.7)
    save_avp(avp, tmp_path / "a", "toy", T=3)
    loaded = load_avp(tmp_path / "a", "cpu")
    x = torch.randn(3, 2, 24, 24)
    assert torch.equal(loaded(x), avp(x)) and float(loaded.temperature) == pytest.approx(1.7)
    with pytest.raises(ArtifactError, match="expected"):
        load_avp(tmp_path / "a", "cpu", expected={"grid": Sensor.mnist().to_dict()})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_avp(tmp_path / "missing")
    atomic_write_bytes(tmp_path / "a" / "avp.safetensors", b"\x00" * 64)
    with pytest.raises(ArtifactError, match="not a valid safetensors"):
        load_avp(tmp_path / "a")
    save_avp(small(width=8), tmp_path / "b", "toy", T=3)
    (tmp_path / "b" / "avp.json").write_text(
        (tmp_path / "b" / "avp.json").read_text().replace('"width": 8', '"width": 4')
    )
    with pytest.raises(ArtifactError, match="does not match its config"):
        load_avp(tmp_path / "b")


def test_bad_images_and_labels_are_refused():
    avp = small()
    with pytest.raises(ValueError, match=r"`images` must have shape \(B, 1, 24, 24\)"):
        avp.predict(torch.zeros(2, 1, 28, 28), torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="`mask` must have shape"):
        avp.make_input(torch.zeros(2, 1, 24, 24), torch.zeros(2, 1, 12, 12))
    with pytest.raises(ValueError, match="outside the grid"):
        avp.predict(torch.zeros(2, 1, 24, 24), torch.tensor([[0], [99]]))
    with pytest.raises(ValueError, match=r"`labels` must lie in \[0, 9\]"):
        check_labels(avp, torch.tensor([0, 10]))
    ml = small(head="multilabel", num_classes=0, num_attributes=3)
    with pytest.raises(ValueError, match=r"\(B, 3\) attribute vectors"):
        check_labels(ml, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="`backbone` must be one of"):
        AVPConfig(backbone="resnet")
    with pytest.raises(ValueError, match="one value per channel"):
        AVPConfig(channels=3)
