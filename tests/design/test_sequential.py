"""The greedy loop against enumeration; validity of its sequences (tests/examples/test_new_design_task.py checks
it on a non-image task written in Pyro)."""

import pytest
import torch

from ppl_attention.design import DesignProblem, DesignSettings, first_glimpse_epe, greedy_sequence
from ppl_attention.design.evaluate import accuracy_along, compare_sequences, heuristic_sequences, random_sequences
from ppl_attention.design.toy import DatabaseCompletion, DatabasePosterior, exact_epe, random_database


def test_image_toy_sampled_loop_is_near_exact_and_reproducible():
    images, labels, grid = random_database(40, 4, 6, 2, seed=2)
    problem = DesignProblem(DatabasePosterior(images, labels, 4), DatabaseCompletion(grid, images, labels), grid)
    settings = DesignSettings(T=3, num_samples=300)
    first = first_glimpse_epe(problem, 2000, seed=0)
    assert torch.allclose(first, exact_epe(images, labels, 4, grid), atol=0.06)
    a = greedy_sequence(problem, images[7], settings, seed=11, first_epe=first)
    b = greedy_sequence(problem, images[7], settings, seed=11, first_epe=first)
    assert torch.equal(a.locations, b.locations) and torch.equal(a.epe, b.epe)
    assert len(set(a.locations.tolist())) == 3  # no repeats by default
    for t in range(1, 3):  # each choice is (near-)optimal under the exact EPE
        e = exact_epe(images, labels, 4, grid, images[7], a.locations[:t].tolist())
        e[a.locations[:t]] = float("inf")
        assert e[a.locations[t]] <= e.min() + 0.1


def test_generated_sequences_beat_random_and_heuristic():
    """On held-out draws of a problem where the answer is clear, accuracy after t glimpses is higher along the
    greedy sequences than along random and first-glimpse-heuristic sequences, for every t."""
    torch.manual_seed(0)
    n_cls, size, gl = 4, 6, 2
    grid_images, labels, grid = random_database(32, n_cls, size, gl, seed=5, informative=False)
    # the label is written in two far-apart glimpses (one bit each), the rest is blank: two glimpses suffice
    grid_images.zero_()
    bits = torch.stack([labels % 2, labels // 2], 1).float()
    grid_images[:, 0, :gl, :gl] = bits[:, :1, None].expand(-1, gl, gl)
    grid_images[:, 0, -gl:, -gl:] = bits[:, 1:, None].expand(-1, gl, gl)
    post = DatabasePosterior(grid_images, labels, n_cls)
    problem = DesignProblem(post, DatabaseCompletion(grid, grid_images, labels), grid)
    settings = DesignSettings(T=2, num_samples=40)
    first = first_glimpse_epe(problem, 400, seed=0)
    held_out = torch.arange(16, 32)
    seqs = torch.stack(
        [greedy_sequence(problem, grid_images[i], settings, seed=int(i), first_epe=first).locations for i in held_out]
    )
    curves = compare_sequences(
        post,
        grid_images[held_out],
        labels[held_out],
        grid,
        seqs,
        first,
        seed=0,
        inverse_temperatures=(1.0,),
        repeats=16,
    )
    ours = curves.pop("near-optimal")
    assert ours[-1] == 1.0
    for name, acc in curves.items():
        assert all(o > a for o, a in zip(ours, acc)), (name, ours, acc)


def test_sequence_helpers_and_bad_input():
    images, labels, grid = random_database(12, 3, 4, 2, seed=0)
    g = torch.Generator().manual_seed(0)
    r = random_sequences(50, 4, grid, g)
    assert r.shape == (50, 4) and all(len(set(x)) == 4 for x in r.tolist())
    h = heuristic_sequences(torch.tensor([0.0, 10.0, 10.0, 10.0]), 200, 3, 1.0, g)
    assert (h == 0).float().mean() > 0.95
    acc = accuracy_along(DatabasePosterior(images, labels, 3), images, labels, r[:12], grid)
    assert acc.shape == (4,) and acc[-1] == 1.0
    problem = DesignProblem(DatabasePosterior(images, labels, 3), DatabaseCompletion(grid, images, labels), grid)
    with pytest.raises(ValueError, match="true_image"):
        greedy_sequence(problem, images[:2], DesignSettings(T=2), seed=0)
    with pytest.raises(ValueError, match="T="):
        greedy_sequence(problem, images[0], DesignSettings(T=5), seed=0)
    with pytest.raises(ValueError, match="search"):
        DesignSettings(search="best")
    with pytest.raises(ValueError, match="precision"):
        DesignProblem(problem.posterior, problem.sampler, grid, precision="half")
    with pytest.raises(ValueError, match="sequences"):
        accuracy_along(problem.posterior, images, labels, r[:3], grid)


def test_race_search_starts_from_the_previous_map():
    """With search="race" each step races only the best candidates of the previous step's map (the prior)."""
    images, labels, grid = random_database(40, 4, 6, 2, seed=2)
    problem = DesignProblem(DatabasePosterior(images, labels, 4), DatabaseCompletion(grid, images, labels), grid)
    first = first_glimpse_epe(problem, 200, seed=0)
    settings = DesignSettings(T=3, num_samples=40, search="race", search_options={"prior_top": 3})
    a = greedy_sequence(problem, images[7], settings, seed=11, first_epe=first)
    b = greedy_sequence(problem, images[7], settings, seed=11, first_epe=first)
    assert torch.equal(a.locations, b.locations) and torch.equal(a.epe, b.epe)
    assert len(set(a.locations.tolist())) == 3 and torch.isfinite(a.epe).all()
    for t in range(1, 3):
        info = a.info[t]
        assert info["raced"] == 3 and info["evaluations"] <= 3 * info["samples"]
        previous = a.epe[t - 1].clone()
        previous[a.locations[:t]] = float("inf")  # the prior ranks the allowed candidates only
        assert int(a.locations[t]) in previous.argsort()[:3].tolist()


def test_independent_draw_is_unbiased_where_the_choosing_draw_is_optimistic():
    """The argmin of a noisy EPE map scores its own choice too low (the optimiser's curse); the chosen location
    scored on an independent draw is unbiased for its exact EPE.  The draw changes no sequence."""
    images, labels, grid = random_database(60, 3, 4, 1, seed=5, informative=False)  # 16 one-pixel glimpses
    problem = DesignProblem(DatabasePosterior(images, labels, 3), DatabaseCompletion(grid, images, labels), grid)
    first = exact_epe(images, labels, 3, grid)
    plain, drawn = DesignSettings(T=2, num_samples=4), DesignSettings(T=2, num_samples=4, independent_draw=True)
    chosen, independent, exact = [], [], []
    for i in range(60):
        for seed in range(100 * i, 100 * i + 4):
            a = greedy_sequence(problem, images[i], plain, seed=seed, first_epe=first)
            b = greedy_sequence(problem, images[i], drawn, seed=seed, first_epe=first)
            assert torch.equal(a.locations, b.locations) and torch.equal(a.epe, b.epe)
            assert "independent_epe" not in a.info[1]
            loc0, loc1 = b.locations.tolist()
            chosen.append(float(b.epe[1, loc1]))
            independent.append(b.info[1]["independent_epe"])
            exact.append(float(exact_epe(images, labels, 3, grid, images[i], [loc0])[loc1]))
    chosen, independent, exact = (torch.tensor(x, dtype=torch.float64) for x in (chosen, independent, exact))

    def se(x):
        return float(x.std() / len(x) ** 0.5)

    assert float((exact - chosen).mean()) > 4 * se(exact - chosen)  # the curse, on 4 completions
    assert abs(float((independent - exact).mean())) < 4 * se(independent - exact)  # no bias


def test_pooled_draws_keep_the_epe_and_divide_its_variance():
    """``pooled_draws`` pools independent draws at each step: the EPE map's mean is one draw's (same bias), its squared
    error against the exact EPE about 1 / draws of one draw's; one draw per step is the default's sequence."""
    from ppl_attention.design.sequential import select_location

    images, labels, grid = random_database(60, 3, 4, 1, seed=5, informative=False)
    problem = DesignProblem(DatabasePosterior(images, labels, 3), DatabaseCompletion(grid, images, labels), grid)
    observed = torch.tensor([5])
    exact = exact_epe(images, labels, 3, grid, images[0], [5]).double()
    maps = {1: [], 4: []}
    for draws in maps:
        settings = DesignSettings(T=2, num_samples=4, pooled_draws=draws)
        for seed in range(300):
            _, epe, info = select_location(problem, images[0], observed, settings, torch.Generator().manual_seed(seed))
            maps[draws].append(epe.double())
            assert info["samples"] <= 4 * draws
    one, four = (torch.stack(maps[d])[:, exact.isfinite() & (torch.arange(16) != 5)] for d in (1, 4))
    target = exact[exact.isfinite() & (torch.arange(16) != 5)]
    mse = {d: float((m - target).pow(2).mean()) for d, m in ((1, one), (4, four))}
    assert 0.15 < mse[4] / mse[1] < 0.4
    assert float((one.mean(0) - four.mean(0)).abs().max()) < 0.05
    first = exact_epe(images, labels, 3, grid)
    a = greedy_sequence(problem, images[3], DesignSettings(T=3, num_samples=4), seed=2, first_epe=first)
    b = greedy_sequence(problem, images[3], DesignSettings(T=3, num_samples=4, pooled_draws=1), seed=2, first_epe=first)
    assert torch.equal(a.locations, b.locations) and torch.equal(a.epe, b.epe)
    with pytest.raises(ValueError, match="`pooled_draws`"):
        DesignSettings(pooled_draws=0)
