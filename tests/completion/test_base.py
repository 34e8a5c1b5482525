"""The completion interface: `Completion.sample` checks every sampler's arguments once, then calls its hook."""

import pytest
import torch

from ppl_attention.completion.base import Completion, CompletionSamples
from ppl_attention.design.toy import DatabaseCompletion, random_database
from ppl_attention.sensor import Sensor

GRID = Sensor(4, 2, stride=2)


class Recorder(Completion):
    """Blank samples; keeps the arguments its hook was given."""

    channels = 1

    def __init__(self):
        self.grid, self.calls = GRID, []

    def _sample(self, locations, glimpses, n, generator, true_image):
        self.calls.append((locations, glimpses, n, generator, true_image))
        return CompletionSamples(torch.zeros(n, 1, 4, 4), torch.full((n,), 1.0 / n))


def test_sample_hands_the_hook_checked_arguments():
    sampler, g = Recorder(), torch.Generator()
    out = sampler.sample([3, 1], torch.ones(2, 1, 2, 2, dtype=torch.float64), 5, g, torch.ones(1, 4, 4).double())
    ((loc, obs, n, generator, true_image),) = sampler.calls
    assert len(out) == 5 and n == 5 and generator is g
    assert loc.dtype == torch.long and loc.tolist() == [3, 1]
    assert obs.dtype == true_image.dtype == torch.float32 and obs.shape == (2, 1, 2, 2)
    sampler.sample(torch.tensor([], dtype=torch.long), torch.zeros(0, 1, 2, 2), 1)
    assert sampler.calls[-1][4] is None


@pytest.mark.parametrize(
    "args, match",
    [
        (([1], torch.rand(1, 1, 2, 2), 0), "`n` must be an int >= 1"),
        (([1], torch.rand(1, 1, 2, 2), 2.0), "`n` must be"),
        (([4], torch.rand(1, 1, 2, 2), 2), "outside the grid"),
        (([1], torch.rand(1, 3, 2, 2), 2), "1 channel"),
        (([1], torch.rand(1, 1, 2, 2) + 2, 2), r"pixels in \[0, 1\]"),
        (([1], torch.rand(1, 1, 2, 2), 2, None, torch.rand(1, 3, 4)), "`true_image` must have shape"),
    ],
)
def test_sample_refuses_bad_arguments_before_the_hook(args, match):
    sampler = Recorder()
    with pytest.raises(ValueError, match=match):
        sampler.sample(*args)
    assert sampler.calls == []


def test_a_sampler_implements_the_hook():
    class NoHook(Completion):
        channels = 1

    with pytest.raises(TypeError, match="_sample"):
        NoHook()


def test_the_toy_completion_keeps_the_contract():
    images, labels, grid = random_database(num_images=6, num_classes=2)
    sampler = DatabaseCompletion(grid, images, labels)
    y = grid.extract(images[:1], torch.tensor([[3]]))[0]
    s = sampler.sample([3], y, 4, torch.Generator().manual_seed(0))
    assert len(s) == 4 and bool((grid.extract(s.images, torch.full((4, 1), 3)) == y).all())
    with pytest.raises(ValueError, match="`n` must be"):
        sampler.sample([3], y, 0)


def test_pooled_draws_are_an_equal_weight_mixture_of_independent_draws():
    """Each draw keeps its own weights, scaled to 1 / draws: a weighted average over the pool (here the label
    distribution) is the mean of the draws' own; one draw is returned as drawn, a bad count refused."""
    from ppl_attention.completion.base import pool_draws

    images, labels, grid = random_database(30, 3, 4, 2, seed=1)
    sampler = DatabaseCompletion(grid, images, labels)

    def draw(g):
        return lambda: sampler.sample([0], grid.extract(images[:1], torch.tensor([[0]]))[0], 7, generator=g)

    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    pooled = pool_draws(draw(g1), 3)
    parts = [draw(g2)() for _ in range(3)]
    assert len(pooled) == sum(len(p) for p in parts)
    assert torch.allclose(pooled.weights.double().sum(), torch.tensor(1.0, dtype=torch.float64))
    mean = torch.stack([p.label_posterior(3) for p in parts]).mean(0)
    assert torch.allclose(pooled.label_posterior(3), mean)
    assert pooled.diagnostics["pooled_ess"] == [pytest.approx(p.ess) for p in parts]
    assert pooled.diagnostics["ess"] == pytest.approx(pooled.ess)
    # the scored candidates (every row each draw weighted, before resampling 7) pool the same way
    scored = torch.stack([p.label_posterior(3, scored=True) for p in parts]).mean(0)
    assert torch.allclose(pooled.label_posterior(3, scored=True), scored)
    one = pool_draws(draw(torch.Generator().manual_seed(3)), 1)
    assert torch.equal(one.images, parts[0].images) and "pooled_ess" not in one.diagnostics
    with pytest.raises(ValueError, match="`draws`"):
        pool_draws(draw(g1), 0)
