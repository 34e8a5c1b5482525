"""examples/new_design_task.py: the loop's EPE on a Pyro model against pyro.contrib.oed's nmc_eig and enumeration."""

import torch

SMALL = {"num_machines": 2, "T": 3, "num_samples": 1000, "N": 2000, "M": 200, "verbose": False}


def _gaps(steps):
    """|EIG_pyro - (H - EPE)| over the step's tolerance (4 standard errors from the sample counts), per step."""
    return torch.stack([((s["pyro_eig"] - (s["H"] - s["epe"])).abs() / s["tol"]).max() for s in steps])


def test_sampled_loop_agrees_with_pyro_nmc_eig_at_every_step(load_example):
    ex = load_example("new_design_task")
    steps = ex.main(**SMALL)
    assert len(steps) == 6
    assert bool((_gaps(steps) <= 1).all())
    for s in steps:
        assert s["agree"], s  # the designed sensor is Pyro's argmax EIG, up to ties within the MC error
        # the uninformative sensor: no information by either estimator or by enumeration, and never read
        u = int((s["candidates"] == ex.FaultTask().uninformative).nonzero())
        assert abs(float(s["exact_eig"][u])) < 1e-6 and abs(float(s["pyro_eig"][u])) < 1e-6
        assert abs(s["H"] - float(s["epe"][u])) < 1e-4
        assert s["chosen"] != ex.FaultTask().uninformative
        if s["t"] == 0:  # and the agreement check would have caught reading it first
            assert not ex.near_best(s, ex.FaultTask().uninformative)


def test_enumerated_completions_make_the_loop_exact(load_example):
    ex = load_example("new_design_task")
    steps = ex.main(enumerate=True, **SMALL)
    assert bool((_gaps(steps) <= 1).all())
    for s in steps:
        assert torch.allclose(s["H"] - s["epe"], s["exact_eig"], atol=1e-5)
        assert s["chosen"] == s["exact_argmax"]


def test_a_wrong_epe_is_caught(load_example, monkeypatch):
    """A posterior that is too unsure (tempered) gives a too-high EPE: the check against Pyro must fail."""
    ex = load_example("new_design_task")
    right = ex.FaultTask.posterior
    monkeypatch.setattr(ex.FaultTask, "posterior", lambda self, x: (0.7 * right(self, x)).log_softmax(-1))
    steps = ex.main(**SMALL)
    assert bool((_gaps(steps) > 1).any())
