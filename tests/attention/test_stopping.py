import pytest
import torch

from ppl_attention.attention.network import HardAttentionNet, NetworkConfig, classifier_flops, flops_per_glimpse
from ppl_attention.attention.stopping import gain_targets, stopping_curve, stopping_times
from ppl_attention.sensor import Sensor


def test_gain_targets_exact():
    logits = torch.log(torch.tensor([[[0.2, 0.8], [0.6, 0.4], [0.9, 0.1]]]))
    labels = torch.tensor([0])
    assert torch.allclose(gain_targets(logits, labels, "probability"), torch.tensor([[0.4, 0.3]]))
    assert torch.equal(gain_targets(logits, labels, "correct"), torch.tensor([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="stop target"):
        gain_targets(logits, labels, "entropy")


def test_stopping_times():
    gains = torch.tensor([[0.5, 0.01, 0.3, 9.0], [0.0, 0.5, 0.5, 0.0], [0.5, 0.5, 0.5, 0.0]])
    assert stopping_times(gains, 0.1).tolist() == [2, 1, 4]
    assert stopping_times(gains, -1.0).tolist() == [4, 4, 4]
    assert stopping_times(gains, 10.0).tolist() == [1, 1, 1]


def test_stopping_curve_trades_glimpses_for_flops():
    grid = Sensor(12, 4, stride=4)
    net = HardAttentionNet(grid, 3, 1, NetworkConfig(hidden=16, glimpse_dim=8))
    rows = stopping_curve(net, torch.rand(20, 1, 12, 12), torch.arange(20) % 3, 3, [-1e9, 1e9])
    per, cls = flops_per_glimpse(net), classifier_flops(net)
    assert rows[0]["mean_glimpses"] == 3 and rows[0]["flops"] == 3 * per + cls
    assert rows[1]["mean_glimpses"] == 1 and rows[1]["flops"] == per + cls
