"""PS-RAM: a trained network's greedy sequences, in a store that nogs supervision takes like any other."""

import pytest
import torch

from ppl_attention.attention.network import HardAttentionNet, NetworkConfig
from ppl_attention.attention.own_sequences import greedy_sequences, write_policy_sequences
from ppl_attention.attention.supervision import build_supervision
from ppl_attention.attention.trainer import SplitData

CONFIG = {
    "dataset": "toy",
    "task": "label",
    "data": {"name": "toy", "root": None, "seed": 0, "options": {}},
    "seed": 0,
    "network": "abc",
}


def net_for(toy):
    torch.manual_seed(0)
    return HardAttentionNet(toy["train"].grid, 3, 1, NetworkConfig(hidden=8, glimpse_dim=8), [0.1], [0.2])


def test_greedy_sequences_are_taken_on_the_epoch_zero_canvases(toy):
    net, data = net_for(toy), SplitData(toy["train"])
    epoch0 = greedy_sequences(net, data, torch.arange(10), 3, batch_size=4)
    expected = net(toy["train"].images[:10], 3, policy="greedy").locations
    toy["train"].set_epoch(5)
    assert epoch0.shape == (10, 3) and torch.equal(epoch0, expected)
    assert torch.equal(greedy_sequences(net, SplitData(toy["train"]), torch.arange(10), 3), epoch0)


def test_the_store_is_taken_by_nogs_supervision(toy, tmp_path):
    net, data = net_for(toy), SplitData(toy["train"])
    store = write_policy_sequences(net, data, [5, 1, 7, 1], 2, tmp_path / "s", CONFIG, batch_size=2)
    assert store.indices() == [1, 5, 7] and store.config["split"] == "train" and store.T == 2
    sup = build_supervision(
        "nogs",
        96,
        toy["train"].grid,
        2,
        3,
        0,
        dataset="toy",
        sequences_dir=tmp_path / "s",
        data_seed=0,
        data_spec=CONFIG["data"],
    )
    assert sup.indices.tolist() == [1, 5, 7]
    assert torch.equal(sup.sequences, greedy_sequences(net, data, torch.tensor([1, 5, 7]), 2))
    # the same network again resumes; another network is refused
    write_policy_sequences(net, data, [1, 2], 2, tmp_path / "s", CONFIG)
    assert store.indices() == [1, 2, 5, 7]
    with pytest.raises(ValueError, match="made with other settings"):
        write_policy_sequences(net, data, [1], 2, tmp_path / "s", {**CONFIG, "network": "other"})
    with pytest.raises(ValueError, match="`indices` must lie in the training split"):
        write_policy_sequences(net, data, [96], 2, tmp_path / "t", CONFIG)
