"""The location policy kinds (dense, gaussian, factorised) and the networks built with them."""

import json

import pytest
import torch

from ppl_attention.attention.network import HardAttentionNet, NetworkConfig, flops_per_glimpse
from ppl_attention.attention.policy import POLICIES, LocationPolicy, check_policy, grid_coordinates
from ppl_attention.sensor import Sensor, NO_GLIMPSE

GRID = Sensor((12, 14), 4, stride=2)  # 5 x 6 = 30 locations: rows and columns differ


def policy(kind, grid=GRID, std=0.3, hidden=6):
    torch.manual_seed(0)
    return LocationPolicy(grid, hidden, 8, kind, std)


@pytest.mark.parametrize("kind", POLICIES)
def test_log_probs_are_normalised_over_the_grid_and_score_the_chosen_location(kind):
    pol = policy(kind)
    h = torch.randn(5, 6)
    dist = pol.distribution(h)
    table = dist.log_probs()
    assert table.shape == (5, GRID.num_locations)
    assert torch.allclose(table.exp().sum(-1), torch.ones(5), atol=1e-5)
    loc = dist.sample(torch.Generator().manual_seed(1))
    assert torch.allclose(dist.log_prob(loc), table.gather(1, loc[:, None]).squeeze(1), atol=1e-6)
    assert torch.equal(dist.mode(), table.argmax(-1))
    entropy = -(table.exp() * table).sum(-1)
    assert torch.allclose(dist.entropy(), entropy, atol=1e-5)


@pytest.mark.parametrize("kind", POLICIES)
def test_samples_follow_the_distribution(kind):
    pol = policy(kind, std=0.5)
    dist = pol.distribution(torch.randn(1, 6).expand(4000, 6))
    loc = dist.sample(torch.Generator().manual_seed(2))
    freq = torch.bincount(loc, minlength=GRID.num_locations).float() / len(loc)
    assert (freq - dist.log_probs()[0].exp()).abs().max() < 0.03


def test_gaussian_mode_is_the_cell_nearest_the_mean():
    pol = policy("gaussian")
    h = torch.randn(64, 6) * 3
    mu = pol.mean(h)
    rows, cols = grid_coordinates(GRID)
    cells = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)  # flat order
    nearest = torch.cdist(mu, cells).argmin(-1)
    assert torch.equal(pol.distribution(h).mode(), nearest)
    # and its log-probability is -||x_l - mu||^2 / (2 sd^2), normalised over the grid
    logits = -((cells[None] - mu[:, None]) ** 2).sum(-1) / (2 * 0.3**2)
    assert torch.allclose(pol.distribution(h).log_probs(), torch.log_softmax(logits, -1), atol=1e-5)


def test_factorised_log_prob_is_row_plus_column():
    pol = policy("factorised")
    h = torch.randn(3, 6)
    out = pol(h)
    row, col = torch.log_softmax(out[:, :5], -1), torch.log_softmax(out[:, 5:], -1)
    loc = torch.tensor([0, 13, 29])  # (0, 0), (2, 1), (4, 5)
    expected = row[torch.arange(3), loc // 6] + col[torch.arange(3), loc % 6]
    assert torch.allclose(pol.distribution(h).log_prob(loc), expected)
    assert sum(p.numel() for p in pol.parameters()) == 6 * 8 + 8 + 8 * (5 + 6) + 5 + 6  # O(R + C)


def test_gaussian_supervision_pulls_the_mean_to_the_target():
    pol = policy("gaussian")
    opt = torch.optim.Adam(pol.parameters(), lr=0.05)
    h = torch.randn(1, 6)
    target = torch.tensor([3 * 6 + 4])  # cell (3, 4)
    for _ in range(150):
        loss = -pol.distribution(h).log_prob(target).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert int(pol.distribution(h).mode()) == int(target)


def small_net(kind, grid=GRID, **kw):
    torch.manual_seed(0)
    return HardAttentionNet(grid, 3, 1, NetworkConfig(hidden=16, glimpse_dim=8, policy=kind, policy_std=0.3, **kw))


@pytest.mark.parametrize("kind", POLICIES)
def test_network_modes_forced_locations_and_fixed_draws(kind):
    net = small_net(kind)
    images = torch.rand(4, 1, 12, 14)
    greedy = net(images, 3, policy="greedy")
    first = net.policy.distribution(net.h0.detach()[None])
    assert bool((greedy.locations[:, 0] == first.mode()).all())
    forced = torch.tensor([[7, NO_GLIMPSE, 29]] * 4)
    ro = net(images, 3, policy="sample", forced=forced, generator=torch.Generator().manual_seed(0))
    assert ro.locations[:, 0].tolist() == [7] * 4 and ro.locations[:, 2].tolist() == [29] * 4
    assert torch.allclose(ro.log_probs[:, 0], first.log_prob(torch.tensor([7])).expand(4))
    probs = torch.zeros(GRID.num_locations)
    probs[[3, 20]] = 0.5
    fixed = net(images, 3, policy="fixed", fixed_probs=probs, generator=torch.Generator().manual_seed(0))
    assert set(fixed.locations.flatten().tolist()) <= {3, 20}
    assert bool(torch.isfinite(fixed.log_probs).all())
    a = net(images, 3, generator=torch.Generator().manual_seed(5)).locations
    assert torch.equal(a, net(images, 3, generator=torch.Generator().manual_seed(5)).locations)
    assert flops_per_glimpse(net) > 0


@pytest.mark.parametrize("kind", POLICIES)
@pytest.mark.parametrize("embedding", ["table", "mlp", "factorised"])
def test_save_load_round_trip(kind, embedding, tmp_path):
    from ppl_attention.artifacts import load_weights, save_weights

    net = small_net(kind, location_embedding=embedding)
    save_weights(tmp_path / "net.safetensors", net, net.to_config())
    tensors, config = load_weights(tmp_path / "net.safetensors")
    config = json.loads(json.dumps(config))
    again = HardAttentionNet.from_config(config)
    again.load_state_dict(tensors)
    assert again.cfg.policy == kind and again.cfg.location_embedding == embedding
    images = torch.rand(3, 1, 12, 14)
    assert torch.equal(net(images, 3, policy="greedy").logits, again(images, 3, policy="greedy").logits)


def test_a_config_written_before_policies_loads_as_dense():
    net = HardAttentionNet(GRID, 3, 1, NetworkConfig(hidden=16, glimpse_dim=8))  # the defaults
    config = net.to_config()
    for key in ("policy", "policy_std"):
        del config["network"][key]
    again = HardAttentionNet.from_config(config)
    again.load_state_dict(net.state_dict())  # the dense policy keeps its parameter names
    assert again.cfg.policy == "dense"
    assert HardAttentionNet.complete_config(config) == net.to_config()


def test_a_fine_grid_network_runs_forward_and_backward():
    grid = Sensor(60, 12, stride=1, scales=2)
    assert grid.num_locations == 2401
    for kind in POLICIES:
        torch.manual_seed(0)
        net = HardAttentionNet(
            grid, 10, 1, NetworkConfig(hidden=16, glimpse_dim=8, policy=kind, location_embedding="factorised")
        )
        ro = net(torch.rand(2, 1, 60, 60), 2, generator=torch.Generator().manual_seed(0))
        assert int(ro.locations.max()) < 2401
        (ro.logits.sum() + ro.log_probs.sum() + ro.entropy.sum()).backward()
        assert net.policy[-1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kind, std, match",
    [
        ("dense", 0.0, "policy_std"),
        ("gaussian", -1.0, "policy_std"),
        ("gaussian", float("nan"), "policy_std"),
        ("conv", 0.2, "policy. .*dense"),
    ],
)
def test_bad_policy_settings_are_refused(kind, std, match):
    with pytest.raises(ValueError, match=match):
        check_policy(kind, std)
    with pytest.raises(ValueError, match=match):
        small_net(kind) if std == 0.2 else HardAttentionNet(GRID, 3, 1, NetworkConfig(policy=kind, policy_std=std))
    with pytest.raises(ValueError, match="location_embedding"):
        small_net("dense", location_embedding="conv")


def test_a_run_written_before_policies_resumes(resume_without):
    """A run whose manifest and checkpoint hold no ``policy`` fields (made before they existed) resumes as dense."""

    def drop(config, meta):
        for network in (config["network"]["network"], meta["network"]["network"]):
            del network["policy"], network["policy_std"]

    s = resume_without(drop)
    assert s["iterations"] == 4


@pytest.mark.parametrize("method", ["inverse_cdf", "multinomial"])
def test_categorical_samplers_follow_the_probabilities_and_skip_impossible_locations(method):
    from ppl_attention.attention.policy import sample_categorical

    probs = torch.tensor([0.0, 0.5, 0.0, 0.2, 0.3, 0.0]).expand(20000, 6) * 3  # unnormalised rows
    loc = sample_categorical(probs, torch.Generator().manual_seed(0), method)
    freq = torch.bincount(loc, minlength=6).float() / len(loc)
    assert (freq - probs[0] / probs[0].sum()).abs().max() < 0.015
    assert not bool(torch.isin(loc, torch.tensor([0, 2, 5])).any())
    one_hot = torch.zeros(3, 2401)
    one_hot[torch.arange(3), torch.tensor([0, 1234, 2400])] = 1.0
    assert sample_categorical(one_hot, torch.Generator().manual_seed(1), method).tolist() == [0, 1234, 2400]
    a = sample_categorical(probs[:50], torch.Generator().manual_seed(3), method)
    assert torch.equal(a, sample_categorical(probs[:50], torch.Generator().manual_seed(3), method))
    with pytest.raises(ValueError, match="`method` must be one of"):
        sample_categorical(probs, method="gumbel")
