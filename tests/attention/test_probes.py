"""The probes: teacher-forced states, behaviour cloning on a frozen trunk, agreement and dispersion."""

import pytest
import torch

from ppl_attention.attention.network import HardAttentionNet, NetworkConfig
from ppl_attention.attention.probes import agreement, behaviour_clone, cell_distance, dispersion, forced_states
from ppl_attention.sensor import Sensor


def net_for(toy, policy="dense"):
    torch.manual_seed(0)
    return HardAttentionNet(
        toy["train"].grid, 3, 1, NetworkConfig(hidden=8, glimpse_dim=8, policy=policy), [0.1], [0.2]
    )


def test_forced_states_follow_the_sequences(toy):
    net = net_for(toy)
    images, seqs = toy["train"].images[:7], torch.tensor([[4, 0, 8]]).expand(7, 3)
    hidden, modes, logp = forced_states(net, images, seqs, batch_size=3)
    ro = net(images, 3, policy="greedy", forced=seqs)
    assert hidden.shape == (7, 3, 8) and modes.shape == (7, 3)
    assert torch.allclose(logp, ro.log_probs, atol=1e-6)
    assert torch.equal(
        modes[:, 0], ro.locations.new_full((7,), int(net.policy.distribution(net.hidden(net.initial_state(1))).mode()))
    )


@pytest.mark.parametrize("kind", ["dense", "factorised", "gaussian"])
def test_behaviour_cloning_teaches_a_fresh_head_and_leaves_the_trunk(toy, kind):
    net = net_for(toy)
    images = toy["train"].images[:40]
    seqs = torch.tensor([[0, 8]]).expand(40, 2)  # top-left, then bottom-right
    clone = behaviour_clone(net, kind, images, seqs, iterations=150, batch_size=16, lr=3e-2)
    _, modes, _ = forced_states(clone, images, seqs)
    assert agreement(modes, seqs, clone.grid) > 0.9 and clone.policy.kind == kind == clone.cfg.policy
    assert all(torch.equal(a, b) for a, b in zip(net.trunk_parameters(), clone.trunk_parameters()))
    assert net.policy.kind == "dense"  # the original is untouched


def test_agreement_and_cell_distance():
    grid = Sensor(12, 4, stride=4)  # 3 x 3
    assert cell_distance(torch.tensor([0]), torch.tensor([8]), grid).tolist() == [2]
    assert agreement(torch.tensor([0, 1, 4]), torch.tensor([0, 0, 0]), grid) == pytest.approx(1 / 3)
    assert agreement(torch.tensor([0, 1, 4]), torch.tensor([0, 0, 0]), grid, tolerance=1) == 1.0


def test_dispersion_sees_split_targets_and_a_greedy_choice_between_them():
    """Two clusters of states; in one the targets split between two far cells and the greedy choice sits midway."""
    grid = Sensor(60, 12, stride=1)  # 49 x 49
    g = torch.Generator().manual_seed(0)
    hidden = torch.cat([torch.randn(40, 1, 4, generator=g), torch.randn(40, 1, 4, generator=g) + 20])
    a, b, mid, c = 10 * 49 + 10, 30 * 49 + 30, 20 * 49 + 20, 40 * 49 + 5
    targets = torch.cat([torch.tensor([a, b]).repeat(20), torch.full((40,), c)]).view(80, 1)
    greedy = torch.cat([torch.full((40,), mid), torch.full((40,), c)]).view(80, 1)
    (row,) = dispersion(hidden, targets, greedy, grid, k=5)["steps"]
    assert row["neighbour_spread"] < row["random_spread"]
    assert row["greedy_on_a_target"] == pytest.approx(0.5)  # the split cluster's greedy choice is on neither
    assert row["greedy_to_nearest_target"] == pytest.approx(5.0)  # half at 10 cells, half at 0
    with pytest.raises(ValueError, match="`k` must be in"):
        dispersion(hidden, targets, greedy, grid, k=80)
