"""The VAE (Pyro SVI) and NUTS in its latent space."""

import math

import pytest
import torch

from ppl_attention.artifacts import ArtifactError
from ppl_attention.completion.nuts import NUTSCompletion, NUTSConfig
from ppl_attention.completion.vae import (
    VAE,
    FreeBitsELBO,
    VAEConfig,
    evaluate_vae,
    load_vae,
    random_glimpse_masks,
    shuffled_batches,
    train_vae,
)
from ppl_attention.sensor import Sensor

GRID = Sensor.mnist()
FAST = NUTSConfig(sigma=0.1, warmup_steps=25, num_samples=20, max_tree_depth=4, num_chains=2)


def test_shuffled_batches_give_every_image_once_per_epoch():
    images = torch.arange(10.0).view(10, 1, 1, 1)
    batches = list(shuffled_batches(images, 4, torch.Generator().manual_seed(0), "cpu"))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).flatten().tolist()) == list(range(10))
    again = list(shuffled_batches(images, 4, torch.Generator().manual_seed(0), "cpu"))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


def _canvases(n=16, seed=0):
    from ppl_attention.data.mnist import load_digits, render_canvases

    digits, labels = load_digits("train")
    images, labels, _ = render_canvases(digits, labels, n, torch.Generator().manual_seed(seed), cluttered=False)
    return images.float() / 255, labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("vae")
    images, _ = _canvases()
    vae = train_vae(
        images,
        GRID,
        VAEConfig(latent_dim=8, width=8, epochs=2, batch_size=16, kl_warmup_epochs=1),
        device="cpu",
        out_dir=out,
        progress=False,
    )
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


def test_glyph_decoder_places_the_glyph_where_z_says():
    """z_where = (row, col) moves the decoded glyph over the canvas; the N(0, 1) prior reaches every corner."""
    vae = VAE((60, 60), 1, latent_dim=6, width=8, decoder="glyph", glyph_size=28)
    z = torch.zeros(3, 6)
    z[1, :2] = torch.tensor([-4.0, 4.0])  # top right
    z[2, :2] = torch.tensor([4.0, -4.0])  # bottom left
    with torch.no_grad():
        x = vae.decode(z)[:, 0]
    for img, (r0, c0) in zip(x, [(16, 16), (0, 32), (32, 0)]):
        on = torch.nonzero(img > 0.01)  # the glyph's support: a 28 x 28 square at (r0, c0)
        assert on.min(0).values.tolist() == [r0, c0] and on.max(0).values.tolist() == [r0 + 27, c0 + 27]
        far = torch.ones(60, 60, dtype=torch.bool)
        far[max(r0 - 1, 0) : r0 + 29, max(c0 - 1, 0) : c0 + 29] = False  # beyond the bilinear edge: background
        assert torch.allclose(img[far], torch.tensor(1e-3), rtol=1e-3)
    # The glyph depends on z_what, its place on z_where only.
    a, b = torch.zeros(2, 6), torch.zeros(2, 6)
    b[:, 2:] = 1.0
    assert not torch.allclose(vae.decode(a), vae.decode(b))
    with pytest.raises(ValueError, match="glyph"):
        VAE((60, 60), 1, latent_dim=2, decoder="glyph")
    with pytest.raises(ValueError, match="decoder"):
        VAEConfig(decoder="mlp")


def test_free_bits_elbo_is_the_elbo_without_free_bits():
    """FreeBitsELBO(0, weight 1) is TraceMeanField_ELBO (same draw of z); free bits floor each unit's KL."""
    import pyro
    from pyro.infer import TraceMeanField_ELBO

    torch.manual_seed(0)
    vae = VAE((60, 60), 1, latent_dim=4, width=4)
    x, mask = torch.rand(5, 1, 60, 60), torch.ones(5, 1, 60, 60)
    pyro.clear_param_store()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        ours = FreeBitsELBO(0.0, 1.0)(vae.model, vae.guide, x, mask).item()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        ref = TraceMeanField_ELBO().loss(vae.model, vae.guide, x, mask)
    assert ours == pytest.approx(ref, rel=1e-5)
    # Free bits above every unit's KL: the KL term is the constant B * d * free_bits, times the weight.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        no_kl = FreeBitsELBO(0.0, 0.0)(vae.model, vae.guide, x, mask).item()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        floored = FreeBitsELBO(1e3, 0.5)(vae.model, vae.guide, x, mask).item()
    assert floored == pytest.approx(no_kl + 0.5 * 5 * 4 * 1e3, rel=1e-6)


def test_evaluate_vae_flags_a_collapsed_vae():
    """A VAE whose encoder ignores the image and whose decoder outputs one image: no active unit, and its
    reconstructions are no better than the mean image."""
    images, _ = _canvases(32, seed=3)
    vae = VAE((60, 60), 1, latent_dim=4, width=4).eval()
    with torch.no_grad():
        for lin in (vae.enc_loc, vae.dec_in[0]):
            lin.weight.zero_()
        vae.enc_loc.bias.zero_()
        vae.enc_scale.weight.zero_()
        vae.enc_scale.bias.fill_(math.log(math.e - 1))  # softplus = 1: q(z | x) = N(0, ~1) for every x, KL ~ 0
    e = evaluate_vae(vae, images)
    assert e["active_units"] == 0 and float(e["kl_per_dim"].max()) < 1e-3
    assert e["recon_ratio"] >= 1.0 and e["kl_per_dim"].shape == (4,)
    with pytest.raises(ValueError, match="`images` must have shape"):
        evaluate_vae(vae, torch.rand(2, 1, 28, 28))


def test_svi_training_does_not_collapse():
    """A small glyph VAE trained by SVI for 96 steps uses its latent: held-out reconstructions are clearly better
    than the mean image and units are active.  (Measured: ratio ~0.79 and 2 active units for seeds 0 and 1; the
    same VAE trained with the plain ELBO -- no warm-up, no free bits, lr 1e-3, batches of 64 -- collapses to
    0 active units and ratio 1.07-1.13.)"""
    torch.manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            train, _ = _canvases(512, seed=1)
            held, _ = _canvases(64, seed=2)
            vae = train_vae(
                train,
                GRID,
                VAEConfig(
                    latent_dim=6,
                    width=8,
                    decoder="glyph",
                    epochs=6,
                    batch_size=32,
                    lr=2e-3,
                    kl_warmup_epochs=1.0,
                    free_bits=0.25,
                ),
                device="cpu",
                progress=False,
            )
            e = evaluate_vae(vae, held)
        finally:
            torch.set_num_threads(before)
    assert e["active_units"] >= 2, e
    assert e["recon_ratio"] < 0.9, e


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
        patches = GRID.extract(vae.decode(z[k : k + 1]), loc.unsqueeze(0))[0]
        want = (
            torch.distributions.Normal(0.0, 1.0).log_prob(z[k]).sum()
            + torch.distributions.Normal(patches, 0.1).log_prob(obs).sum()
        )
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
    log_post = torch.distributions.Normal(0.0, 1.0).log_prob(zs[:, 0]) + torch.distributions.Normal(f, sigma).log_prob(
        obs
    ).flatten(1).sum(1)
    w = torch.softmax(log_post.double(), 0)
    mean = float((w * zs[:, 0]).sum())
    sd = float((w * (zs[:, 0] - mean) ** 2).sum().sqrt())
    assert mean > 1.0 and sd < 0.5  # the glimpses are informative: far from the N(0, 1) prior
    sampler = NUTSCompletion(vae, GRID, NUTSConfig(sigma=sigma, warmup_steps=60, num_samples=100, num_chains=2))
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
    more = sampler.sample(loc, obs, 50, generator=torch.Generator().manual_seed(7))  # n > chains x num_samples
    assert more.images.shape[0] == 50 and more.diagnostics["draws_per_chain"] == 25
    prior = sampler.sample(
        torch.zeros(0, dtype=torch.long), torch.zeros(0, 1, 12, 12), 3, generator=torch.Generator().manual_seed(0)
    )  # t = 0: prior draws
    assert prior.images.shape == (3, 1, 60, 60)


@pytest.mark.parametrize(
    "locations, glimpses, match",
    [
        (torch.tensor([81]), torch.rand(1, 1, 12, 12), "outside the grid"),
        (torch.tensor([3, 4]), torch.rand(1, 1, 12, 12), "`glimpses` must have shape"),
        (torch.tensor([3]), torch.rand(1, 1, 10, 10), "`glimpses` must have shape"),
        (torch.tensor([3]), torch.full((1, 1, 12, 12), float("nan")), "NaN"),
        (torch.tensor([3]), torch.rand(1, 3, 12, 12), "channel"),
    ],
)
def test_nuts_refuses_bad_observations(trained, locations, glimpses, match):
    sampler = NUTSCompletion(trained[0], GRID, FAST)
    with pytest.raises(ValueError, match=match):
        sampler.sample(locations, glimpses, 2)


def test_nuts_refuses_bad_n_and_grid(trained):
    with pytest.raises(ValueError, match="`n` must be"):
        NUTSCompletion(trained[0], GRID, FAST).sample(torch.tensor([1]), torch.rand(1, 1, 12, 12), 0)
    with pytest.raises(ValueError, match="grid"):
        NUTSCompletion(trained[0], Sensor(64, 16, stride=8), FAST)
    with pytest.raises(ValueError, match="sigma"):
        NUTSConfig(sigma=0.0)
    with pytest.raises(ValueError, match="num_chains"):
        NUTSConfig(num_chains=0)
    with pytest.raises(ValueError, match="chain_method"):
        NUTSConfig(chain_method="parallel")


class _LinearDecoder(torch.nn.Module):
    """A stand-in for the VAE with a linear decoder ``image = b + A z``: with Gaussian glimpse noise the posterior
    of z is Gaussian and known in closed form (the sensor's pooling is linear too)."""

    def __init__(self, image_size, latent_dim, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.image_size, self.channels, self.latent_dim = tuple(image_size), 1, latent_dim
        self.A = torch.nn.Parameter(0.08 * torch.randn(latent_dim, 1, *image_size, generator=g))
        self.b = torch.nn.Parameter(torch.full((1, 1, *image_size), 0.5))

    def decode(self, z):
        return self.b + torch.einsum("bd,dchw->bchw", z, self.A)

    def encode(self, images, mask):
        return torch.zeros(images.shape[0], self.latent_dim), torch.ones(images.shape[0], self.latent_dim)


def _linear_gaussian_posterior(dec, grid, loc, obs, sigma):
    """Mean and covariance of z | y for y = G(b + A z) + N(0, sigma^2): G linear (the sensor)."""
    d = dec.latent_dim
    with torch.no_grad():
        c = grid.extract(dec.decode(torch.zeros(1, d)), loc.unsqueeze(0)).flatten().double()
        M = torch.stack(
            [
                grid.extract(dec.decode(torch.eye(d)[k : k + 1]), loc.unsqueeze(0)).flatten().double() - c
                for k in range(d)
            ],
            1,
        )  # (D, d)
    cov = torch.linalg.inv(torch.eye(d, dtype=torch.float64) + M.T @ M / sigma**2)
    return cov @ M.T @ (obs.flatten().double() - c) / sigma**2, cov


@pytest.mark.parametrize("method, chains", [("vectorized", 4), ("sequential", 2)])
def test_multichain_nuts_matches_a_linear_gaussian_posterior(method, chains):
    """Several chains (dispersed starts) on a linear-Gaussian decoder: their pooled mean and variance match the
    closed-form posterior, R-hat is near 1 and the ESS is reported per latent dimension."""
    grid = Sensor(16, 4, stride=4, scales=2)
    dec = _LinearDecoder((16, 16), latent_dim=3)
    for p in dec.parameters():
        p.requires_grad_(False)
    loc, sigma = torch.tensor([0, 5, 10]), 0.2
    z_true = torch.tensor([[1.0, -0.5, 0.8]])
    obs = grid.extract(dec.decode(z_true), loc.unsqueeze(0))[0].clamp(0, 1)
    mean, cov = _linear_gaussian_posterior(dec, grid, loc, obs, sigma)
    sampler = NUTSCompletion(
        dec, grid, NUTSConfig(sigma=sigma, warmup_steps=100, num_samples=150, num_chains=chains, chain_method=method)
    )
    z, diag = sampler.sample_chains(loc, obs, generator=torch.Generator().manual_seed(1))
    assert z.shape == (chains, 150, 3) and diag["num_chains"] == chains and diag["chain_method"] == method
    assert len(diag["r_hat"]) == len(diag["ess"]) == 3 and diag["r_hat_max"] < 1.1 and diag["ess_min"] > 50
    flat = z.reshape(-1, 3).double()
    sd = cov.diagonal().sqrt()
    assert bool(((flat.mean(0) - mean).abs() < 4 * sd / math.sqrt(diag["ess_min"])).all())
    assert bool(((flat.var(0) / cov.diagonal() - 1).abs() < 0.35).all())


def test_multichain_samples_come_from_every_chain(trained):
    """sample() takes n // C draws (one more for the first n % C chains) from each chain, evenly thinned."""
    vae, _, images = trained
    cfg = NUTSConfig(sigma=0.1, warmup_steps=10, num_samples=12, max_tree_depth=3, num_chains=4)
    sampler = NUTSCompletion(vae, GRID, cfg)
    loc = torch.tensor([30, 40])
    obs = GRID.extract(images[:1], loc.unsqueeze(0))[0]
    z_all, _ = sampler.sample_chains(loc, obs, generator=torch.Generator().manual_seed(3))
    z, diag = sampler.sample_latents(loc, obs, 6, generator=torch.Generator().manual_seed(3))
    assert diag["sample_chain"] == [0, 0, 1, 1, 2, 3]
    keep2, keep1 = torch.tensor([0, 11]), torch.tensor([0])
    want = torch.cat([z_all[0, keep2], z_all[1, keep2], z_all[2, keep1], z_all[3, keep1]])
    assert torch.equal(z, want)
    assert diag["r_hat_max"] is not None and math.isfinite(diag["ess_min"]) and diag["sigma"] == pytest.approx(25.5)
    # The dispersed starts: chain 0 at the encoder's guess, the others at prior draws (all distinct).
    assert len({tuple(row.tolist()) for row in z_all[:, 0]}) == 4


def test_nuts_uses_the_importance_samplers_noise_model(trained):
    """Without a fixed sigma NUTS follows the noise schedule over t, and with a clutter model its likelihood is
    the generative prior's Gaussian-plus-clutter mixture (matching() copies both from a sampler)."""
    from types import SimpleNamespace

    from ppl_attention.completion.clutter_noise import ClutterNoise, clutter_log_likelihood
    from ppl_attention.model import NoiseSchedule

    vae, _, images = trained
    grid = Sensor.retina()
    schedule = NoiseSchedule((48.0, 96.0), 255.0)
    noise = ClutterNoise((0.02, 0.03, 0.05), (1.5, 2.3, 4.3))
    sampler = NUTSCompletion.matching(
        vae,
        SimpleNamespace(grid=grid, sigma=schedule, noise=noise),
        NUTSConfig(num_chains=2, warmup_steps=5, num_samples=5),
    )
    assert sampler.sigma_at(1) == pytest.approx(48 / 255) and sampler.sigma_at(2) == pytest.approx(96 / 255)
    assert sampler.sigma_at(7) == pytest.approx(96 / 255)  # the last value holds beyond the schedule
    loc = torch.tensor([30, 31])
    obs = grid.extract(images[:1], loc.unsqueeze(0))[0]
    z = torch.randn(3, vae.latent_dim)
    got = sampler.log_joint(z, loc.unsqueeze(0), obs)
    resid = grid.extract(vae.decode(z), loc.expand(3, -1)) - obs
    want = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) + clutter_log_likelihood(
        resid.reshape(3, 2, 3, -1), 96 / 255, noise
    ).flatten(1).sum(-1)
    assert torch.allclose(got, want, rtol=1e-5)
    plain = NUTSCompletion(vae, grid, NUTSConfig(sigma=None), sigma=schedule)
    want = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) + torch.distributions.Normal(
        0.0, 96 / 255
    ).log_prob(resid).flatten(1).sum(-1)
    assert torch.allclose(plain.log_joint(z, loc.unsqueeze(0), obs), want, rtol=1e-5)
    with pytest.raises(ValueError, match="scales"):
        NUTSCompletion(vae, grid, sigma=schedule, noise=ClutterNoise((0.1,), (1.0,)))
