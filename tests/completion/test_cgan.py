"""The pix2pix-style conditional GAN inpainter."""

import json

import pytest
import torch

from ppl_attention.artifacts import ArtifactError
from ppl_attention.completion.cgan import (
    CGANCompletion,
    CGANConfig,
    PatchDiscriminator,
    UNetGenerator,
    generator_input,
    load_cgan,
    train_cgan,
)
from ppl_attention.sensor import Sensor

GRID = Sensor.mnist()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from ppl_attention.data.mnist import load_digits, render_canvases

    digits, labels = load_digits("train")
    images, _, _ = render_canvases(digits, labels, 16, torch.Generator().manual_seed(0), cluttered=False)
    out = tmp_path_factory.mktemp("cgan")
    G = train_cgan(
        images.float() / 255,
        GRID,
        CGANConfig(width=8, epochs=1, batch_size=8),
        device="cpu",
        out_dir=out,
        progress=False,
    )
    return G, out, images.float() / 255


def test_networks_keep_odd_image_sizes():
    G = UNetGenerator((60, 60), 1, width=8)
    assert G(torch.rand(2, 2, 60, 60)).shape == (2, 1, 60, 60)
    assert UNetGenerator((37, 45), 3, width=4)(torch.rand(1, 4, 37, 45)).shape == (1, 3, 37, 45)
    logits = PatchDiscriminator(1, 8)(torch.rand(2, 2, 60, 60), torch.rand(2, 1, 60, 60))
    assert logits.shape == (2, 1, 13, 13)  # one logit per overlapping patch


def test_generator_input_puts_noise_only_where_unobserved():
    canvas, noise = torch.rand(1, 1, 60, 60), torch.randn(1, 1, 60, 60)
    mask = GRID.mask(torch.tensor([[0, 40]]))
    x = generator_input(canvas, mask, noise)
    seen = mask.bool()
    assert torch.equal(x[:, :1][seen], canvas[seen]) and torch.equal(x[:, :1][~seen], noise[~seen])
    assert torch.equal(x[:, 1:], mask)


def test_training_writes_loadable_artefact(trained):
    G, out, _ = trained
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "cgan" and len(manifest["history"]) == 1
    loaded, grid, noise_std = load_cgan(out)
    assert grid == GRID and noise_std == 1.0
    for k, v in G.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    with pytest.raises(ArtifactError, match="width"):
        load_cgan(out, expected={"width": 64})


def test_load_refuses_missing_and_malformed(tmp_path, trained):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cgan(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text(json.dumps({"kind": "cgan", "config": {}}))
    (bad / "generator.safetensors").write_bytes(b"not safetensors")
    (bad / "generator.json").write_text("{}")
    with pytest.raises(ArtifactError, match="safetensors"):
        load_cgan(bad)
    (bad / "manifest.json").write_text(json.dumps({"kind": "vae", "config": {}}))
    with pytest.raises(ArtifactError, match="expected 'cgan'"):
        load_cgan(bad)


def test_samples_keep_observed_pixels_and_differ(trained):
    G, _, images = trained
    sampler = CGANCompletion(G, GRID)
    loc = torch.tensor([30, 31, 40])
    obs = GRID.extract(images[:1], loc.unsqueeze(0))[0]
    out = sampler.sample(loc, obs, 6, generator=torch.Generator().manual_seed(0))
    assert out.images.shape == (6, 1, 60, 60) and torch.allclose(out.weights, torch.full((6,), 1 / 6))
    assert float(out.images.min()) >= 0 and float(out.images.max()) <= 1
    # Observed pixels are kept exactly (composite output).
    assert torch.equal(GRID.extract(out.images, loc.expand(6, 3)), obs.expand(6, -1, -1, -1, -1))
    # Noise and dropout make the unobserved pixels differ between samples.
    unseen = GRID.mask(loc.unsqueeze(0))[0, 0] < 0.5
    assert float((out.images[0, 0][unseen] - out.images[1, 0][unseen]).abs().max()) > 0
    again = sampler.sample(loc, obs, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.images, again.images)
    # t = 0 is allowed: prior draws.
    assert sampler.sample(torch.zeros(0, dtype=torch.long), torch.zeros(0, 1, 12, 12), 2).images.shape[0] == 2


@pytest.mark.parametrize(
    "locations, glimpses, match",
    [
        (torch.tensor([-1]), torch.rand(1, 1, 12, 12), "outside the grid"),
        (torch.tensor([3]), torch.rand(2, 1, 12, 12), "`glimpses` must have shape"),
        (torch.tensor([3]), torch.full((1, 1, 12, 12), float("nan")), "NaN"),
        (torch.tensor([3]), torch.full((1, 1, 12, 12), 2.0), r"\[0, 1\]"),
        (torch.tensor([3.0]), torch.rand(1, 1, 12, 12), "integer"),
    ],
)
def test_refuses_bad_observations(trained, locations, glimpses, match):
    with pytest.raises(ValueError, match=match):
        CGANCompletion(trained[0], GRID).sample(locations, glimpses, 2)


def test_refuses_bad_config_and_grid(trained):
    with pytest.raises(ValueError, match="dropout"):
        CGANConfig(dropout=1.5)
    with pytest.raises(ValueError, match="grid"):
        CGANCompletion(trained[0], Sensor(64, 16, stride=8))
    with pytest.raises(ValueError, match="`n` must be"):
        CGANCompletion(trained[0], GRID).sample(torch.tensor([1]), torch.rand(1, 1, 12, 12), -1)
    with pytest.raises(ValueError, match="images"):
        train_cgan(torch.rand(4, 1, 28, 28), GRID, CGANConfig(epochs=0))
