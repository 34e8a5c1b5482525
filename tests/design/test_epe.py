"""EPE estimators against the exact EPE of an enumerable toy problem (a database prior)."""

import pytest
import torch

from ppl_attention.design.epe import (
    avp_guide,
    entropy_from_logits,
    entropy_matrix,
    expected_posterior_entropy,
    pyro_nmc_epe,
    pyro_posterior_epe,
)
from ppl_attention.design.toy import DatabaseCompletion, DatabasePosterior, exact_epe, random_database
from ppl_attention.sensor import Sensor
from ppl_attention.model import EmpiricalPrior, GlimpseModel, NoiseSchedule


@pytest.fixture(scope="module")
def toy():
    images, labels, grid = random_database(24, 3, 4, 2, seed=1)
    return images, labels, grid, DatabasePosterior(images, labels, 3)


def test_enumerated_estimate_equals_exact_epe(toy):
    images, labels, grid, post = toy
    exact0 = exact_epe(images, labels, 3, grid)
    assert torch.allclose(
        expected_posterior_entropy(post, images, None, [], None, grid, batch_size=7), exact0, atol=1e-6
    )
    comp = DatabaseCompletion(grid, images, labels, enumerate=True)
    for obs in ([0], [2, 1]):
        true = images[5]
        g = grid.extract(true[None], torch.tensor([obs]))[0]
        s = comp.sample(torch.tensor(obs), g, 1)
        est = expected_posterior_entropy(post, s.images, s.weights, torch.tensor(obs), None, grid)
        assert torch.allclose(est, exact_epe(images, labels, 3, grid, true, obs), atol=1e-6)


def test_sampled_estimate_is_close_and_candidates_subset(toy):
    images, labels, grid, post = toy
    comp = DatabaseCompletion(grid, images, labels)
    s = comp.sample(torch.zeros(0, dtype=torch.long), torch.zeros(0, 1, 2, 2), 4000, torch.Generator().manual_seed(0))
    est = expected_posterior_entropy(post, s.images, s.weights, [], None, grid)
    assert torch.allclose(est, exact_epe(images, labels, 3, grid), atol=0.05)
    sub = expected_posterior_entropy(post, s.images, s.weights, [], torch.tensor([3, 1]), grid)
    assert torch.allclose(sub, est[[3, 1]])


def test_pyro_estimators_agree_with_exact(toy):
    import pyro

    images, labels, grid, post = toy
    pyro.set_rng_seed(0)
    exact = exact_epe(images, labels, 3, grid)
    sigma = 0.02  # nearly noise-free relaxed likelihood: the exact posterior equals the noise-free one
    model = GlimpseModel(EmpiricalPrior(images, labels, 3), grid, NoiseSchedule.constant(sigma, 1.0))
    guide = avp_guide(DatabasePosterior(images, labels, 3, sigma=sigma), grid)
    cand = torch.arange(grid.num_locations)
    epe = pyro_posterior_epe(model, cand, guide, grid, num_samples=1500)
    assert torch.allclose(epe, exact, atol=0.05)
    ce = pyro_posterior_epe(model, cand, guide, grid, num_samples=1500, analytic_entropy=False)
    assert torch.allclose(ce, exact, atol=0.07)
    prior_h = float(-(torch.tensor([8, 8, 8]) / 24.0).log().mean())  # uniform over 3 classes
    nmc = pyro_nmc_epe(model, cand, grid, prior_h, N=500, M=300, M_prime=300)
    assert torch.allclose(nmc, exact, atol=0.1)
    # Sequential: past glimpses folded into the model's prior, and given to the AVP guide.
    true, obs = images[5], torch.tensor([0])
    glimpses = grid.extract(true[None], obs[None])[0]
    epe1 = pyro_posterior_epe(
        model.condition(obs, glimpses),
        cand,
        avp_guide(DatabasePosterior(images, labels, 3, sigma=sigma), grid, (obs, glimpses)),
        grid,
        num_samples=1500,
    )
    assert torch.allclose(epe1, exact_epe(images, labels, 3, grid, true, [0]), atol=0.05)


def test_multilabel_returns_every_attribute(toy):
    images, labels, grid, post = toy
    onehot = torch.nn.functional.one_hot(labels, 3).bool()

    # Attribute a = "label == a": the binary posteriors of a categorical exact posterior.
    def multi(x):
        p = post(x).exp().clamp(1e-12, 1 - 1e-12)
        return torch.log(p) - torch.log1p(-p)

    epe = expected_posterior_entropy(multi, images, None, [], None, grid, kind="multilabel")
    assert epe.shape == (grid.num_locations, 3)
    for a in range(3):
        exact_a = exact_epe(images, onehot[:, a].long(), 2, grid)
        assert torch.allclose(epe[:, a], exact_a, atol=1e-5)
    # binary: a single logit
    single = expected_posterior_entropy(lambda x: multi(x)[:, :1], images, None, [], None, grid)
    assert torch.allclose(single, epe[:, 0], atol=1e-6)


def test_avp_make_input_is_used():
    grid = Sensor(4, 2, stride=2)
    images = torch.rand(3, 1, 4, 4)
    seen = []

    class Net:
        def make_input(self, imgs, mask):
            seen.append(mask.sum((1, 2, 3)))
            return torch.cat([imgs * mask, mask], 1)

        def __call__(self, x):
            return x.flatten(1)[:, :3]

    H = entropy_matrix(Net(), images, [1], None, grid)
    assert H.shape == (4, 3)
    masks = torch.cat(seen)
    # candidate-major pairs; candidate 1 is the observed glimpse, so it adds no pixels
    assert masks.tolist() == [8.0] * 3 + [4.0] * 3 + [8.0] * 6


def test_entropy_helpers():
    assert torch.allclose(entropy_from_logits(torch.zeros(2, 4)), torch.full((2,), torch.log(torch.tensor(4.0))))
    assert torch.allclose(entropy_from_logits(torch.zeros(2), "binary"), torch.full((2,), 0.6931), atol=1e-4)
    assert torch.isfinite(entropy_from_logits(torch.tensor([[1e4, -1e4]]))).all()


def test_bad_input(toy):
    images, labels, grid, post = toy
    with pytest.raises(ValueError, match="candidates"):
        expected_posterior_entropy(post, images, None, [], torch.tensor([99]), grid)
    with pytest.raises(ValueError, match="observed"):
        expected_posterior_entropy(post, images, None, [-3], None, grid)
    with pytest.raises(ValueError, match="weights"):
        expected_posterior_entropy(post, images, torch.ones(5), [], None, grid)
    with pytest.raises(ValueError, match="NaN"):
        expected_posterior_entropy(post, images * float("nan"), None, [], None, grid)
    with pytest.raises(ValueError, match="images"):
        expected_posterior_entropy(post, images[:, :, :3], None, [], None, grid)
    with pytest.raises(ValueError, match="kind"):
        entropy_from_logits(torch.zeros(2, 2), "poisson")


def test_bfloat16_precision_is_close_to_float32_and_checked():
    from ppl_attention.posterior.network import AVP, AVPConfig

    torch.manual_seed(0)
    grid = Sensor(16, 4, stride=4)
    avp = AVP(AVPConfig(grid=grid.to_dict(), width=8)).eval()
    images = torch.rand(6, 1, 16, 16)
    w = torch.rand(6)
    # float32 through the scorer (channels-last inputs) equals a plain forward pass of each (candidate, sample)
    H32 = entropy_matrix(avp, images, [0], None, grid)
    masks = grid.mask(torch.tensor([[0, 5]]))
    with torch.no_grad():
        direct = avp.entropy(avp(avp.make_input(images, masks.expand(6, -1, -1, -1))))
    assert torch.allclose(H32[5], direct, atol=1e-5)
    # bfloat16: the same map to a few thousandths of a nat (entropies are float32, not bfloat16)
    H16 = entropy_matrix(avp, images, [0], None, grid, precision="bfloat16")
    assert H16.dtype == torch.float32 and not torch.equal(H16, H32)
    assert torch.allclose(H16, H32, atol=0.05)
    e32 = expected_posterior_entropy(avp, images, w, [0], None, grid)
    e16 = expected_posterior_entropy(avp, images, w, [0], None, grid, precision="bfloat16")
    assert (e32 - e16).abs().max() < 0.02
    with pytest.raises(ValueError, match="precision"):
        entropy_matrix(avp, images, [0], None, grid, precision="float8")


def test_float64_posterior_keeps_its_precision(toy):
    images, labels, grid, post = toy

    def post64(x):
        return post(x).double()

    H = entropy_matrix(post64, images, [], None, grid)
    assert H.dtype == torch.float64
    assert torch.allclose(H.float(), entropy_matrix(post, images, [], None, grid))


def test_a_pass_that_runs_out_of_memory_is_retried_in_halves_and_the_size_kept(caplog):
    """PairScorer: an AVP pass over more pairs than the device holds is retried with half as many, the result is
    the same as with small passes from the start, and later calls keep the smaller size."""
    from ppl_attention.design.epe import PairScorer

    grid = Sensor(4, 2, stride=2)
    images = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    passes = []

    class Net:
        """Label logits from the observed pixels; 'out of memory' on passes of more than 6 pairs."""

        def __call__(self, x):
            passes.append(len(x))
            if len(x) > 6:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return x.flatten(1)[:, :3] * 3

    scorer = PairScorer(Net(), images, [0], grid, batch_size=20)
    H = scorer(torch.arange(4))
    assert scorer.batch_size == 5 and max(p for p in passes if p <= 6) <= 6
    assert torch.allclose(H, PairScorer(Net(), images, [0], grid, batch_size=5)(torch.arange(4)))
    passes.clear()
    scorer(torch.arange(4))
    assert passes and max(passes) <= 5  # no second failure: the size is kept
    assert "out of device memory" in caplog.text
