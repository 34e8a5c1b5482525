"""The VAE (Pyro SVI) and NUTS in its latent space."""
import math

import pytest
import torch

from ppl_attention.artifacts import ArtifactError
from ppl_attention.completion.base import CompletionSamples
from ppl_attention.completion.nuts import NUTSCompletion, NUTSConfig
from ppl_attention.completion.vae import VAE, VAEConfig, load_vae, random_glimpse_masks, train_vae
from ppl_attention.geometry import GlimpseGrid

GRID = GlimpseGrid.mnist()
FAST = NUTSConfig(sigma=0.1, warmup_steps=25, num_samples=20, max_tree_depth=4)


def _canvases(n=16, seed=0):
    from ppl_attention.data.mnist import load_digits, render_canvases

    digits, labels = load_digits("train")
    images, labels, _ = render_canvases(digits, labels, n, torch.Generator().manual_seed(seed), cluttered=False)
    return images.float() / 255, labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("vae")
    images, _ = _canvases()
    vae = train_vae(images, GRID, VAEConfig(latent_dim=8, width=8, epochs=2, batch_size=16, kl_warmup_epochs=1), device="cpu",
                    out_dir=out, progress=False)
    return vae, out, images


def test_vae_shapes_and_range():
    vae = VAE((60, 60), 1, latent_dim=5, width=8)
    x = torch.rand(3, 1, 60, 60)
    loc, scale = vae.encode(x, torch.ones(3, 1, 60, 60))
    assert loc.shape == scale.shape == (3, 5) and bool((scale > 0).all())
    out = vae.decode(torch.randn(3, 5))
    out = out.detach()
    assert out.shape == (3, 1, 60, 60) and float(out.min()) >= 0 and float(out.max()) <= 1
    # The odd-sized path (the transposed convs undo the strided convs exactly for any size).
    assert VAE((45, 37), 3, 4, 8).decode(torch.zeros(1, 4)).shape == (1, 3, 45, 37)


def test_random_glimpse_masks_count_glimpses():
    loc, mask = random_glimpse_masks(GRID, 50, torch.Generator().manual_seed(0), max_glimpses=4)
    counts = (loc >= 0).sum(1)
    assert counts.min() >= 1 and counts.max() <= 4
    assert torch.equal(mask, GRID.mask(loc))


def test_train_save_load_roundtrip(trained):
    vae, out, _ = trained
    loaded, grid = load_vae(out)
    assert grid == GRID
    z = torch.randn(4, 8)
    assert torch.equal(loaded.decode(z), vae.decode(z))
    assert not any(p.requires_grad for p in loaded.parameters())
    import json
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "vae" and len(manifest["loss_history"]) == 2
    assert all(math.isfinite(h) for h in manifest["loss_history"])


def test_load_refuses_other_config_and_missing_dir(trained, tmp_path):
    _, out, _ = trained
    with pytest.raises(ArtifactError, match="latent_dim"):
        load_vae(out, expected={"latent_dim": 32})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_vae(tmp_path / "nothing")


def test_train_refuses_bad_images():
    with pytest.raises(ValueError, match="images"):
        train_vae(torch.rand(4, 1, 28, 28), GRID, VAEConfig(epochs=0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train_vae(torch.full((4, 1, 60, 60), float("nan")), GRID, VAEConfig(epochs=0))
    with pytest.raises(ValueError, match="likelihood"):
        VAEConfig(likelihood="poisson")


def test_nuts_log_joint_is_prior_plus_gaussian_glimpses(trained):
    """The density NUTS targets: log N(z; 0, I) + sum log N(y; glimpse(decode(z)), sigma^2), batched over z."""
    vae, _, images = trained
    sampler = NUTSCompletion(vae, GRID, FAST)
    loc = torch.tensor([30, 31])
    obs = GRID.extract(images[:1], loc.unsqueeze(0))[0]
    z = torch.randn(3, 8)
    got = sampler.log_joint(z, loc.unsqueeze(0), obs)
    for k in range(3):
        patches = GRID.extract(vae.decode(z[k:k + 1]), loc.unsqueeze(0))[0]
        want = torch.distributions.Normal(0.0, 1.0).log_prob(z[k]).sum() \
            + torch.distributions.Normal(patches, 0.1).log_prob(obs).sum()
        assert torch.allclose(got[k], want, rtol=1e-5)
    prior_only = sampler.log_joint(z, torch.zeros(1, 0, dtype=torch.long), obs[:0])
    assert torch.allclose(prior_only, torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1))


def test_nuts_matches_the_exact_posterior_of_a_one_dimensional_latent():
    """With a 1-d latent the posterior of z is computed by quadrature; NUTS must agree within its MC error."""
    torch.manual_seed(0)
    vae = VAE((60, 60), 1, latent_dim=1, width=8).eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    loc, sigma = torch.tensor([30, 40]), 0.01
    obs = GRID.extract(vae.decode(torch.tensor([[1.5]])), loc.unsqueeze(0))[0]
    zs = torch.linspace(-6, 6, 4001).unsqueeze(1)
    f = GRID.extract(vae.decode(zs), loc.expand(len(zs), 2))
    log_post = torch.distributions.Normal(0.0, 1.0).log_prob(zs[:, 0]) \
        + torch.distributions.Normal(f, sigma).log_prob(obs).flatten(1).sum(1)
    w = torch.softmax(log_post.double(), 0)
    mean = float((w * zs[:, 0]).sum())
    sd = float((w * (zs[:, 0] - mean) ** 2).sum().sqrt())
    assert mean > 1.0 and sd < 0.5  # the glimpses are informative: far from the N(0, 1) prior
    sampler = NUTSCompletion(vae, GRID, NUTSConfig(sigma=sigma, warmup_steps=60, num_samples=200))
    z, diag = sampler.sample_latents(loc, obs, 200, torch.Generator().manual_seed(0))
    assert z.shape == (200, 1) and diag["divergences"] == 0
    assert abs(float(z.mean()) - mean) < 4 * sd / math.sqrt(diag["n_eff_mean"])
    assert abs(float(z.std()) / sd - 1) < 0.3


def test_nuts_reproducible_and_thins(trained):
    vae, _, images = trained
    sampler = NUTSCompletion(vae, GRID, FAST)
    loc = torch.tensor([40])
    obs = GRID.extract(images[:1], loc.unsqueeze(0))[0]
    a = sampler.sample(loc, obs, 5, generator=torch.Generator().manual_seed(7))
    b = sampler.sample(loc, obs, 5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.images, b.images) and a.images.shape[0] == 5
    more = sampler.sample(loc, obs, 25, generator=torch.Generator().manual_seed(7))  # n > num_samples
    assert more.images.shape[0] == 25 and more.diagnostics["draws"] == 25
    prior = sampler.sample(torch.zeros(0, dtype=torch.long), torch.zeros(0, 1, 12, 12), 3,
                           generator=torch.Generator().manual_seed(0))  # t = 0: prior draws
    assert prior.images.shape == (3, 1, 60, 60)


@pytest.mark.parametrize("locations, glimpses, match", [
    (torch.tensor([81]), torch.rand(1, 1, 12, 12), "outside the grid"),
    (torch.tensor([3, 4]), torch.rand(1, 1, 12, 12), "glimpses must have shape"),
    (torch.tensor([3]), torch.rand(1, 1, 10, 10), "glimpses must have shape"),
    (torch.tensor([3]), torch.full((1, 1, 12, 12), float("nan")), "NaN"),
    (torch.tensor([3]), torch.rand(1, 3, 12, 12), "channel"),
])
def test_nuts_refuses_bad_observations(trained, locations, glimpses, match):
    sampler = NUTSCompletion(trained[0], GRID, FAST)
    with pytest.raises(ValueError, match=match):
        sampler.sample(locations, glimpses, 2)


def test_nuts_refuses_bad_n_and_grid(trained):
    with pytest.raises(ValueError, match="n must be"):
        NUTSCompletion(trained[0], GRID, FAST).sample(torch.tensor([1]), torch.rand(1, 1, 12, 12), 0)
    with pytest.raises(ValueError, match="grid"):
        NUTSCompletion(trained[0], GlimpseGrid(64, 16, stride=8), FAST)
    with pytest.raises(ValueError, match="sigma"):
        NUTSConfig(sigma=0.0)
