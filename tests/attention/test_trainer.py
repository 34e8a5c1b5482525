import torch
import pytest

from ppl_attention.artifacts import load_weights
from ppl_attention.attention.network import HardAttentionNet, NetworkConfig
from ppl_attention.attention.run import RunConfig, train_run
from ppl_attention.attention.supervision import Supervision
from ppl_attention.attention.trainer import SplitData, TrainConfig, Trainer
from ppl_attention.sensor import NO_GLIMPSE

NET = NetworkConfig(hidden=16, glimpse_dim=8)


def make_trainer(toy, out, supervision=None, seed=0, **kw):
    cfg = TrainConfig(
        **{
            "glimpses": 2,
            "iterations": 6,
            "batch_size": 16,
            "lr": 3e-3,
            "validate_every": 2,
            "tensorboard": False,
            **kw,
        }
    )
    torch.manual_seed(0)
    net = HardAttentionNet(toy["train"].grid, 3, 1, NET, [0.1], [0.2])
    return Trainer(cfg, net, SplitData(toy["train"]), SplitData(toy["valid"]), out, seed, supervision=supervision)


def sup_all_zero(indices, T=2):
    return Supervision("h1", torch.as_tensor(indices), torch.zeros(len(indices), T, dtype=torch.long))


def test_interrupted_and_resumed_run_gives_the_same_curves(toy, tmp_path):
    sup = sup_all_zero(range(0, 96, 3))
    full = make_trainer(toy, tmp_path / "full", sup)
    full.run(progress=False)
    part = make_trainer(toy, tmp_path / "part", sup)
    part.run(stop_at=3, progress=False)  # checkpoint at 2, iteration 3 is lost as in a crash
    assert part.iteration == 3 and len(part.history) == 1
    resumed = make_trainer(toy, tmp_path / "part", sup)
    resumed.run(progress=False)
    assert (tmp_path / "full" / "log.csv").read_text() == (tmp_path / "part" / "log.csv").read_text()
    assert len(resumed.history) == 3
    a, _ = load_weights(tmp_path / "full" / "best.safetensors")
    b, _ = load_weights(tmp_path / "part" / "best.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_another_config_is_refused(toy, tmp_path):
    make_trainer(toy, tmp_path, iterations=2).run(progress=False)
    with pytest.raises(ValueError, match="made with other settings .train_config"):
        make_trainer(toy, tmp_path, iterations=2, lr=1.0).run(progress=False)


def test_data_order_is_a_pure_function_of_seed_and_iteration(toy, tmp_path):
    t = make_trainer(toy, tmp_path)
    pos0, e0 = t.batch_positions(0)
    assert torch.equal(pos0, t.batch_positions(0)[0]) and e0 == 0
    epoch = torch.cat([t.batch_positions(i)[0] for i in range(6)])  # 96 / 16 = 6 batches per epoch
    assert sorted(epoch.tolist()) == list(range(96)) and t.batch_positions(6)[1] == 1
    assert not torch.equal(make_trainer(toy, tmp_path, seed=1).batch_positions(0)[0], pos0)


def test_supervised_fraction_is_fixed_per_batch(toy, tmp_path):
    sup = sup_all_zero(range(10))
    t = make_trainer(toy, tmp_path, sup, supervised_fraction=0.25)
    for i in range(5):
        _, _, forced = t.get_batch(i)
        assert int((forced != NO_GLIMPSE).any(1).sum()) == 4
    with pytest.raises(ValueError, match="supervised_fraction. must be in"):
        make_trainer(toy, tmp_path, sup, supervised_fraction=1.5)


def test_supervised_images_keep_their_epoch_zero_canvas(toy, tmp_path):
    sup = sup_all_zero([0, 1])
    t = make_trainer(toy, tmp_path, sup)
    epoch0 = toy["train"].images[[0, 1]].clone()
    toy["train"].set_epoch(3)
    for i in range(6, 12):  # epoch 1
        pos, _ = t.batch_positions(i)
        images, _, _ = t.get_batch(i)
        for p in (0, 1):
            if p in pos.tolist():
                assert torch.equal(images[pos.tolist().index(p)], epoch0[p])


def test_supervision_probability_supervises_some_and_shows_the_rest_redrawn(toy, tmp_path):
    """Every image supervised, q = 0.25: about a quarter of each batch keeps its epoch-0 canvas and its sequence; the
    others are the epoch's redrawn canvases, unsupervised, so the training canvases are not frozen."""
    t = make_trainer(toy, tmp_path, sup_all_zero(range(96)), supervision_probability=0.25)
    epoch0 = toy["train"].images.clone()
    supervised, shown_redrawn = 0, 0
    for i in range(6, 18):  # epochs 1 and 2
        pos, epoch = t.batch_positions(i)
        images, _, forced = t.get_batch(i)
        toy["train"].set_epoch(epoch)
        rows = (forced != NO_GLIMPSE).any(1)
        supervised += int(rows.sum())
        for j, p in enumerate(pos.tolist()):
            expected = epoch0[p] if rows[j] else toy["train"].images[p]
            assert torch.equal(images[j], expected)
            shown_redrawn += int(not rows[j] and not torch.equal(images[j], epoch0[p]))
    assert 0.15 < supervised / (12 * 16) < 0.35 and shown_redrawn > 0
    a = [t.get_batch(7)[2] for _ in range(2)]
    assert torch.equal(a[0], a[1])  # a pure function of (seed, iteration)
    with pytest.raises(ValueError, match="supervision_probability"):
        make_trainer(toy, tmp_path, supervision_probability=0.0).cfg.check()
    # without the setting every supervised image is supervised whenever it is drawn
    _, _, forced = make_trainer(toy, tmp_path / "all", sup_all_zero(range(96))).get_batch(0)
    assert bool((forced != NO_GLIMPSE).all())


def test_supervised_loss_is_the_nll_of_the_targets_without_reinforce(toy, tmp_path):
    """With every example supervised, the policy's gradient is exactly that of -lambda mean sum log pi(target)."""
    t = make_trainer(toy, tmp_path, sup_all_zero(range(96)), supervision_weight=0.7)
    images, labels, forced = t.get_batch(0)
    loss, stats = t.loss(images, labels, forced, torch.Generator().manual_seed(0))
    assert stats["reinforce"] == 0.0
    grads = torch.autograd.grad(loss, list(t.net.policy.parameters()))
    ro = t.net(images, 2, policy="greedy", forced=forced)
    expected = torch.autograd.grad(-0.7 * ro.log_probs.sum(1).mean(), list(t.net.policy.parameters()))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads, expected))


def test_partial_supervision_teaches_the_policy_where_to_look(toy, tmp_path):
    sup = sup_all_zero(range(0, 96, 2))  # half the images say: look at location 0
    t = make_trainer(toy, tmp_path, sup, iterations=60, validate_every=20, lr=1e-2)
    summary = t.run(progress=False)
    ro = t.net(toy["valid"].images, 2, policy="greedy")
    assert bool((ro.locations == 0).all())
    assert summary["best"]["val_greedy_acc"] > 0.9
    assert (tmp_path / "log.csv").read_text().count("\n") == 4  # header + 3 validations


def test_train_run_with_pretraining_freezes_the_trunk(toy, tmp_path):
    cfg = TrainConfig(glimpses=2, iterations=4, batch_size=16, validate_every=2, tensorboard=False, ce_every_step=True)
    run = RunConfig(
        dataset="toy",
        supervision="hgs",
        num_supervised=12,
        pretrain=True,
        pretrain_iterations=4,
        stopping_thresholds=[0.0, 1.0],
    )
    s = train_run(run, cfg, NET, toy, tmp_path, 0, torch.device("cpu"), progress=False, figures=True)
    pre, _ = load_weights(tmp_path / "pretrain" / "best.safetensors")
    final, _ = load_weights(tmp_path / "best.safetensors")
    assert torch.equal(pre["core.cell.weight_ih"], final["core.cell.weight_ih"])
    assert torch.equal(pre["classifier.weight"], final["classifier.weight"])
    assert not torch.equal(pre["policy.0.weight"], final["policy.0.weight"])
    assert s["num_supervised"] == 12 and 0 <= s["test_greedy_acc"] <= 1 and len(s["stopping_curve"]) == 2
    assert s["run"]["command"] and s["run"]["versions"]["torch"]  # the run's record: command, versions, machine
    assert all(
        (tmp_path / f).is_file()
        for f in (
            "manifest.json",
            "summary.json",
            "glimpse_frequency.png",
            "validation_curve.png",
            "glimpses.png",
            "glimpses.gif",
            "test_locations.json",
            "stopping_flops.png",
        )
    )


def test_extending_a_finished_run_equals_a_longer_run(toy, tmp_path):
    make_trainer(toy, tmp_path / "long", iterations=6).run(progress=False)
    make_trainer(toy, tmp_path / "ext", iterations=4).run(progress=False)
    make_trainer(toy, tmp_path / "ext", iterations=6).run(progress=False)
    assert (tmp_path / "long" / "log.csv").read_text() == (tmp_path / "ext" / "log.csv").read_text()


def test_ram_plus_pretrains_on_the_heuristic_and_h1_supervises(toy, tmp_path):
    import json

    epe = tmp_path / "first_glimpse.json"
    epe.write_text(json.dumps({"epe": [0.0] + [30.0] * 8}))  # location 0 is the only salient one
    cfg = TrainConfig(glimpses=2, iterations=2, batch_size=16, validate_every=2, tensorboard=False)
    run = RunConfig(
        dataset="toy",
        supervision="h1",
        epe_first=str(epe),
        num_supervised=12,
        pretrain=True,
        pretrain_iterations=2,
        pretrain_locations="heuristic",
    )
    s = train_run(run, cfg, NET, toy, tmp_path / "run", 0, torch.device("cpu"), progress=False, figures=False)
    sup = json.loads((tmp_path / "run" / "supervision.json").read_text())
    assert sup["kind"] == "h1" and sup["sequences"] == [[0, 0]] * 12
    assert s["pretrain_summary"]["iterations"] == 2 and s["num_supervised"] == 12


def test_supervision_until_turns_supervised_examples_into_reinforce_ones(toy, tmp_path):
    sup = sup_all_zero(range(96))  # every image supervised
    t = make_trainer(toy, tmp_path, sup, supervision_until=3)
    assert bool((t.get_batch(2)[2] == 0).all()) and bool((t.get_batch(3)[2] == NO_GLIMPSE).all())
    images, labels, forced = t.get_batch(3)
    _, stats = t.loss(images, labels, forced, torch.Generator().manual_seed(0))
    assert stats["supervised_nll"] == 0.0 and stats["reinforce"] != 0.0
    with pytest.raises(ValueError, match="supervision_until"):
        make_trainer(toy, tmp_path, sup, supervision_until=-1)


def test_stopping_supervision_later_resumes_a_run_still_inside_it(toy, tmp_path):
    """A checkpoint inside both supervised phases resumes (the runs agree up to it) and matches a run made with the
    final setting from scratch; one past the old phase's end is refused."""
    sup = sup_all_zero(range(0, 96, 3))
    make_trainer(toy, tmp_path / "direct", sup, supervision_until=4).run(progress=False)
    make_trainer(toy, tmp_path / "ext", sup, iterations=4).run(progress=False)  # supervised throughout, to 4
    make_trainer(toy, tmp_path / "ext", sup, supervision_until=4).run(progress=False)
    assert (tmp_path / "direct" / "log.csv").read_text() == (tmp_path / "ext" / "log.csv").read_text()
    make_trainer(toy, tmp_path / "late", sup, iterations=4, supervision_until=2).run(progress=False)
    with pytest.raises(ValueError, match="made with other settings .train_config"):
        make_trainer(toy, tmp_path / "late", sup, supervision_until=6).run(progress=False)


def test_every_sampled_glimpse_is_trained_even_after_a_shorter_supervision_sequence(toy, tmp_path):
    """A supervised image whose sequence covers glimpse 1 of 3: glimpse 1 gets -log pi(target), glimpses 2-3 get
    REINFORCE (before, they were sampled and trained by nothing)."""
    trainer = make_trainer(toy, tmp_path, glimpses=3)
    images, labels = toy["train"].images[:4], toy["train"].labels[:4]
    forced = torch.full((4, 3), NO_GLIMPSE)
    forced[:, 0] = 0  # every image supervised, its sequence one glimpse long
    trainer.net.zero_grad()
    loss, stats = trainer.loss(images, labels, forced, torch.Generator().manual_seed(0))
    loss.backward()
    assert stats["reinforce"] != 0.0 and stats["supervised_nll"] > 0  # both terms are present
    assert stats["baseline_mse"] > 0  # the baseline is fitted on the sampled glimpses
    assert trainer.net.policy[-1].weight.grad.abs().sum() > 0
    fully = torch.zeros(4, 3, dtype=torch.long)  # a full-length sequence: no REINFORCE at all
    _, stats = trainer.loss(images, labels, fully, torch.Generator().manual_seed(0))
    assert stats["reinforce"] == 0.0 and stats["baseline_mse"] == 0.0


def test_learning_rate_schedules_are_pure_functions_of_the_iteration(toy, tmp_path):
    from ppl_attention.attention.trainer import scheduled_lr

    step = TrainConfig(lr=1e-3, lr_schedule="step", lr_decay=0.5, lr_decay_every=10)
    assert [scheduled_lr(step, i) for i in (0, 9, 10, 25)] == [1e-3, 1e-3, 5e-4, 2.5e-4]
    cos = TrainConfig(lr=1e-3, lr_schedule="cosine", lr_horizon=100, lr_final=0.1)
    assert scheduled_lr(cos, 0) == pytest.approx(1e-3) and scheduled_lr(cos, 50) == pytest.approx(5.5e-4)
    assert scheduled_lr(cos, 100) == pytest.approx(1e-4) == scheduled_lr(cos, 500)
    with pytest.raises(ValueError, match="cosine schedule needs `lr_horizon`"):
        make_trainer(toy, tmp_path, lr_schedule="cosine")
    trainer = make_trainer(toy, tmp_path, lr_schedule="step", lr_decay=0.5, lr_decay_every=2, iterations=4)
    trainer.run(progress=False)
    assert [row["lr"] for row in trainer.history] == pytest.approx([3e-3, 1.5e-3])
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1.5e-3)


def test_monte_carlo_accuracy_averages_sampled_policies(toy, tmp_path):
    from ppl_attention.runtime import derive_seed, generator

    trainer = make_trainer(toy, tmp_path, eval_batch_size=500)
    trainer.run(progress=False)
    one = trainer.evaluate(SplitData(toy["test"]), "sample", ("x",))
    mc = trainer.evaluate(SplitData(toy["test"]), "sample", ("x",), mc_samples=5)
    assert 0 <= mc["acc"] <= 1 and mc["ce"] > 0 and one.keys() == mc.keys()
    # the same figure by hand: 5 rollouts per image (image-major, one batch), probabilities averaged
    trainer.net.eval()
    with torch.no_grad():
        images, labels = toy["test"].images, toy["test"].labels
        ro = trainer.net(
            images.repeat_interleave(5, 0), 2, policy="sample", generator=generator(derive_seed(0, "eval", "x"))
        )
        probs = ro.logits[:, -1].softmax(-1).reshape(len(labels), 5, -1).mean(1)
    assert mc["acc"] == pytest.approx(float((probs.argmax(-1) == labels).float().mean()))
    assert mc["ce"] == pytest.approx(float(torch.nn.functional.nll_loss(probs.log(), labels)), rel=1e-5)
    with pytest.raises(ValueError, match="only with the sampled policy"):
        trainer.evaluate(SplitData(toy["test"]), "greedy", mc_samples=5)


@pytest.mark.parametrize("core", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("backbone", ["small", "mnih"])
def test_cores_and_glimpse_networks_train_on_the_retina(core, backbone, tmp_path):
    from ppl_attention.sensor import Sensor

    sensor = Sensor(12, 4, stride=4, scales=2)  # 4 and 8 px
    net = HardAttentionNet(
        sensor, 3, 1, NetworkConfig(hidden=8, glimpse_dim=8, core=core, backbone=backbone, location_embedding="mlp")
    )
    ro = net(torch.rand(5, 1, 12, 12), 3)
    assert ro.logits.shape == (5, 3, 3) and ro.locations.shape == (5, 3)
    ro.logits.sum().backward()
    assert net.embedder.project.weight.grad.abs().sum() > 0
    assert HardAttentionNet.from_config(net.to_config()).to_config() == net.to_config()
