"""The importance sampler against the exact posterior over an enumerable database, and its error handling."""

import math

import numpy as np
import pytest
import torch

from ppl_attention.artifacts import ArtifactError
from ppl_attention.completion.base import CompletionSamples
from ppl_attention.completion.database import DatasetSource, GeneratorSource, build_database
from ppl_attention.completion.importance import ImportanceCompletion, ess, residual_resample, temper_to_ess
from ppl_attention.completion.pca_index import PCAIndexConfig, build_pca_index
from ppl_attention.sensor import Sensor
from tests.completion._images import bump_images

GRID = Sensor(12, 4, stride=4)


def bumps(n, g):
    x, centres = bump_images(n, g, spread=6)
    return x, (centres[:, 0, 1] > 6).long() + 2 * (centres[:, 0, 0] > 6).long()


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    root = tmp_path_factory.mktemp("prior")
    db = build_database(
        root / "db", GeneratorSource(bumps, (1, 12, 12), (), "bumps"), n=60, chunk_size=32, progress=False
    )
    # Few components: a deliberately rough proposal, which the exact stage must correct.
    index = build_pca_index(
        root / "pca", db, GRID, PCAIndexConfig(components=12, fit_samples=60, shift=1), progress=False
    )
    return db, index


def exact_posterior(db, loc, glimpses, sigma, shift=0):
    """Brute force: softmax over rows of the Gaussian log-likelihood (shift-marginalised)."""
    images = db.get(torch.arange(len(db)))
    ll = torch.zeros(len(db), dtype=torch.float64)
    px = GRID.pixels(loc)
    for j in range(len(loc)):  # a few glimpses in a reference computation
        terms = []
        for dr in range(-shift, shift + 1):
            for dc in range(-shift, shift + 1):
                r, c = int(px[j, 0]) + dr, int(px[j, 1]) + dc
                if 0 <= r <= 8 and 0 <= c <= 8:
                    patch = images[:, :, r : r + 4, c : c + 4]
                    terms.append(-((patch - glimpses[j]) ** 2).sum((1, 2, 3)).double() / (2 * sigma**2))
        ll += torch.logsumexp(torch.stack(terms), 0) - math.log(len(terms))
    return torch.softmax(ll, 0)


def aggregate(samples, rows, n_rows):
    return torch.zeros(n_rows, dtype=torch.float64).index_add_(0, rows, samples.weights.double())


@pytest.mark.parametrize("shift,use_true", [(0, False), (1, False), (1, True)])
def test_matches_exact_posterior(prior, shift, use_true):
    db, index = prior
    truth = db.get(torch.tensor([5]))[0]
    loc = torch.tensor([4, 0])
    glimpses = GRID.extract(truth[None], loc[None])[0]
    sampler = ImportanceCompletion(db, index, GRID, k1=40_000, sigma=60.0, shift=shift, use_true_image=use_true)
    out = sampler.sample(
        loc, glimpses, n=1000, generator=torch.Generator().manual_seed(0), true_image=truth if use_true else None
    )
    assert isinstance(out, CompletionSamples)
    p = exact_posterior(db, loc, glimpses, 60.0 / 255, shift)
    got = aggregate(out, out.diagnostics["rows"], len(db))
    assert abs(float(out.weights.sum()) - 1) < 1e-5
    # Monte Carlo error of self-normalised IS with 40k residual-resampled draws: well under 0.01 per row.
    assert float((got - p).abs().max()) < 0.005, (got - p).abs().max()
    labels = torch.from_numpy(np.array(db.labels))
    exact_labels = torch.zeros(4, dtype=torch.float64).index_add_(0, labels, p)
    torch.testing.assert_close(out.label_posterior(4), exact_labels, atol=0.01, rtol=0)
    # The returned images are the database rows.
    torch.testing.assert_close(out.images, db.get(out.diagnostics["rows"]))


def test_proposal_is_the_pca_reconstruction_likelihood(prior):
    db, index = prior
    sampler = ImportanceCompletion(db, index, GRID, sigma=40.0, shift=1, chunk_size=7)
    truth = db.get(torch.tensor([11]))[0]
    loc = torch.tensor([0, 8, 4])
    glimpses = GRID.extract(truth[None], loc[None])[0]
    got = sampler.proposal_log_likelihood(loc, glimpses, 40.0 / 255)
    recon = index.reconstruct(torch.from_numpy(np.array(index.codes)))
    ref = torch.log(exact_posterior_unnorm(recon, loc, glimpses, 40.0 / 255, 1))
    torch.testing.assert_close(got - got.max(), ref - ref.max(), atol=2e-3, rtol=0)


def exact_posterior_unnorm(images, loc, glimpses, sigma, shift):
    px = GRID.pixels(loc)
    ll = torch.zeros(len(images), dtype=torch.float64)
    for j in range(len(loc)):
        terms = []
        for dr in range(-shift, shift + 1):
            for dc in range(-shift, shift + 1):
                r, c = int(px[j, 0]) + dr, int(px[j, 1]) + dc
                if 0 <= r <= 8 and 0 <= c <= 8:
                    terms.append(
                        -((images[:, :, r : r + 4, c : c + 4] - glimpses[j]) ** 2).sum((1, 2, 3)).double()
                        / (2 * sigma**2)
                    )
        ll += torch.logsumexp(torch.stack(terms), 0) - math.log(len(terms))
    return ll.exp()


def test_prior_draws_and_unique_samples(prior):
    db, index = prior
    sampler = ImportanceCompletion(db, index, GRID, k1=500, sigma=30.0)
    out = sampler.sample(
        torch.zeros(0, dtype=torch.long), torch.zeros(0, 1, 4, 4), n=10, generator=torch.Generator().manual_seed(1)
    )
    assert len(out) == 10 and torch.allclose(out.weights, torch.full((10,), 0.1))
    assert len(set(out.diagnostics["rows"].tolist())) == 10
    truth = db.get(torch.tensor([3]))[0]
    loc = torch.tensor([4])
    out = sampler.sample(loc, GRID.extract(truth[None], loc[None])[0], n=5, generator=torch.Generator().manual_seed(2))
    rows = out.diagnostics["rows"]
    assert len(out) <= 5 and len(set(rows.tolist())) == len(rows)
    assert out.diagnostics["ess"] >= 1 and out.diagnostics["proposal_ess"] >= 1


def test_tempering_hits_target_ess(prior):
    db, index = prior
    sampler = ImportanceCompletion(db, index, GRID, k1=20, sigma=10.0, target_ess=0.8)
    truth = db.get(torch.tensor([8]))[0]
    loc = torch.tensor([4, 5])
    out = sampler.sample(loc, GRID.extract(truth[None], loc[None])[0], n=20, generator=torch.Generator().manual_seed(0))
    assert abs(out.diagnostics["proposal_ess"] - 16) <= 0.1 * 16 + 1e-6
    ll = torch.randn(1000, dtype=torch.float64) * 30
    tau = temper_to_ess(ll, 100.0, tol=0.01)
    assert abs(ess(ll / tau) - 100) <= 1.0


def test_residual_resample():
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    counts = residual_resample(p, 10, torch.Generator().manual_seed(0))
    assert int(counts.sum()) == 10 and bool((counts >= torch.tensor([5, 3, 1, 0])).all())
    many = torch.stack([residual_resample(p, 7, torch.Generator().manual_seed(s)) for s in range(2000)]).double()
    torch.testing.assert_close(many.mean(0) / 7, p.double(), atol=0.01, rtol=0)


def test_flipped_rows_scored_consistently(tmp_path, list_dataset):
    x, y = bumps(30, torch.Generator().manual_seed(4))
    db = build_database(tmp_path / "db", DatasetSource(list_dataset(x, y)), flip=True, progress=False)
    index = build_pca_index(
        tmp_path / "pca", db, GRID, PCAIndexConfig(components=20, fit_samples=60, shift=1), progress=False
    )
    sampler = ImportanceCompletion(db, index, GRID, k1=20_000, sigma=40.0, shift=1)
    mirrored = db.get(torch.tensor([13]))[0]  # row 13 = mirror of source image 6
    loc = torch.tensor([0, 4, 8])
    glimpses = GRID.extract(mirrored[None], loc[None])[0]
    out = sampler.sample(loc, glimpses, n=60, generator=torch.Generator().manual_seed(0))
    p = exact_posterior(db, loc, glimpses, 40.0 / 255, 1)
    got = aggregate(out, out.diagnostics["rows"], len(db))
    assert int(p.argmax()) == 13 and int(got.argmax()) == 13
    assert float((got - p).abs().max()) < 0.02


def test_bad_input(prior, tmp_path):
    db, index = prior
    sampler = ImportanceCompletion(db, index, GRID, k1=50, sigma=30.0)
    g = torch.rand(1, 1, 4, 4)
    with pytest.raises(ValueError, match="outside the grid"):
        sampler.sample(torch.tensor([9]), g, 5)
    with pytest.raises(ValueError, match=r"`glimpses` must have shape \(1, k\*C, 4, 4\)"):
        sampler.sample(torch.tensor([1]), torch.rand(1, 1, 5, 4), 5)
    with pytest.raises(ValueError, match="1 channel"):
        sampler.sample(torch.tensor([1]), torch.rand(1, 3, 4, 4), 5)
    with pytest.raises(ValueError, match="NaN"):
        sampler.sample(torch.tensor([1]), torch.full((1, 1, 4, 4), float("nan")), 5)
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\]"):
        sampler.sample(torch.tensor([1]), g * 255, 5)
    with pytest.raises(ValueError, match="integer"):
        sampler.sample(torch.tensor([1.0]), g, 5)
    with pytest.raises(ValueError, match="`n` must be"):
        sampler.sample(torch.tensor([1]), g, 0)
    with pytest.raises(ValueError, match="`true_image` must have shape"):
        sampler.sample(torch.tensor([1]), g, 5, true_image=torch.rand(1, 12, 11))
    with pytest.raises(ValueError, match="`shift` must be an int in"):
        ImportanceCompletion(db, index, GRID, shift=2)
    with pytest.raises(ValueError, match="glimpses"):
        ImportanceCompletion(db, index, Sensor(12, 3, stride=3))
    other = build_database(
        tmp_path / "other", GeneratorSource(bumps, (1, 12, 12), (), "bumps"), n=20, seed=9, progress=False
    )
    with pytest.raises(ArtifactError, match="another database"):
        ImportanceCompletion(other, index, GRID)
