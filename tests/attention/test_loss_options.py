"""The paper's loss options: supervised term summed or averaged, lambda annealed, and the no-imitation control."""

import pytest
import torch

from ppl_attention.attention.trainer import TrainConfig, policy_terms, supervision_lambda
from ppl_attention.sensor import NO_GLIMPSE

from .test_trainer import make_trainer, sup_all_zero


def test_summed_supervision_is_batch_size_times_the_averaged_one(toy, tmp_path):
    mean = make_trainer(toy, tmp_path / "m", sup_all_zero(range(96)))
    total = make_trainer(toy, tmp_path / "s", sup_all_zero(range(96)), supervision_reduction="sum")
    images, labels, forced = mean.get_batch(0)
    _, a = mean.loss(images, labels, forced, torch.Generator().manual_seed(0))
    _, b = total.loss(images, labels, forced, torch.Generator().manual_seed(0))
    assert b["supervised_nll"] == pytest.approx(16 * a["supervised_nll"], rel=1e-5)
    with pytest.raises(ValueError, match="supervision_reduction"):
        TrainConfig(supervision_reduction="max").check()


def test_policy_terms_split_the_glimpses_between_reinforce_and_imitation():
    log_probs = torch.tensor([[-1.0, -2.0], [-3.0, -4.0]], requires_grad=True)
    teacher = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    reward, baselines = torch.tensor([1.0, 0.0]), torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    t = policy_terms(log_probs, teacher, reward, baselines, "sum")
    assert float(t["supervised_nll"]) == 1.0  # only the forced glimpse, summed
    # sampled glimpses: -(lp * (r - b)) / B = -(-2 * 0.5 + (-3 - 4) * -0.5) / 2
    assert float(t["reinforce"]) == pytest.approx(-(-1.0 + 3.5) / 2)
    assert float(policy_terms(log_probs, teacher, reward, baselines, "mean")["supervised_nll"]) == 0.5


def test_lambda_anneals_linearly_to_zero():
    cfg = TrainConfig(supervision_weight=2.0, supervision_anneal=10)
    assert [supervision_lambda(cfg, i) for i in (0, 5, 10, 20)] == [2.0, 1.0, 0.0, 0.0]
    assert supervision_lambda(TrainConfig(supervision_weight=2.0), 10**6) == 2.0
    with pytest.raises(ValueError, match="supervision_anneal"):
        TrainConfig(supervision_anneal=0).check()


def test_annealed_lambda_scales_the_supervised_gradient(toy, tmp_path):
    t = make_trainer(toy, tmp_path, sup_all_zero(range(96)), supervision_anneal=4)
    images, labels, forced = t.get_batch(0)
    params = list(t.net.policy.parameters())
    g0 = torch.autograd.grad(t.loss(images, labels, forced, torch.Generator().manual_seed(0), 0)[0], params)
    g2 = torch.autograd.grad(t.loss(images, labels, forced, torch.Generator().manual_seed(0), 2)[0], params)
    g4 = torch.autograd.grad(t.loss(images, labels, forced, torch.Generator().manual_seed(0), 4)[0], params)
    assert all(torch.allclose(b, a / 2, atol=1e-7) for a, b in zip(g0, g2))
    assert all(float(c.abs().sum()) == 0.0 for c in g4)  # every glimpse forced, lambda 0: no policy gradient


def test_no_imitation_keeps_the_frozen_canvases_and_forces_nothing(toy, tmp_path):
    sup = sup_all_zero([0, 1, 2, 3])
    control = make_trainer(toy, tmp_path / "c", sup, imitate=False, supervised_fraction=0.25)
    ps = make_trainer(toy, tmp_path / "p", sup, supervised_fraction=0.25)
    epoch0 = toy["train"].images[:4].clone()
    for i in (6, 7):  # epoch 1: unsupervised canvases are redrawn, supervised ones are not
        pos, _ = control.batch_positions(i)
        images, _, forced = control.get_batch(i)
        assert bool((forced == NO_GLIMPSE).all())
        assert torch.equal(images[:4], epoch0[pos[:4]])  # the same images as PS-NOGS's, the same canvases
        assert torch.equal(pos, ps.batch_positions(i)[0])
        assert bool((ps.get_batch(i)[2][:4] == 0).all())
    with pytest.raises(ValueError, match="imitate"):
        TrainConfig(imitate="no").check()


def test_a_run_written_before_the_loss_options_resumes(resume_without):
    """A run whose manifest and checkpoint lack the new settings (made before they existed) resumes with their
    defaults, which are what it was trained with."""

    def drop(config, meta):
        for train in (config["train"], meta["train_config"]):
            for key in ("imitate", "supervision_reduction", "supervision_anneal"):
                del train[key]

    s = resume_without(drop)
    assert s["iterations"] == 4
