"""Loading a saved completion network: the weights come back in eval mode, and a broken artefact is named."""

import pytest
import torch

from ppl_attention.artifacts import ArtifactError, save_weights, write_manifest
from ppl_attention.completion._saved_network import load_network


def _linear(config):
    return torch.nn.Sequential(torch.nn.Linear(config["inputs"], 2), torch.nn.Dropout(0.5))


def _save(directory, config, kind="toy"):
    torch.manual_seed(0)
    net = _linear({"inputs": 3})
    save_weights(directory / "net.safetensors", net, config)
    write_manifest(directory, kind, {})
    return net


def test_the_saved_network_comes_back_in_eval_mode(tmp_path):
    net = _save(tmp_path, {"inputs": 3, "grid": "g"})
    loaded, config = load_network(tmp_path, "toy", "net", _linear, "cpu", {"inputs": 3}, needs=("grid",))
    assert config["grid"] == "g" and not loaded.training
    assert torch.equal(loaded[0].weight, net[0].weight)


def test_a_broken_artefact_is_named(tmp_path):
    _save(tmp_path, {"inputs": 3})
    with pytest.raises(FileNotFoundError, match="toy directory"):
        load_network(tmp_path / "none", "toy", "net", _linear)
    with pytest.raises(ArtifactError, match="expected 'other'"):
        load_network(tmp_path, "other", "net", _linear)
    with pytest.raises(ArtifactError, match="net.json is missing the key 'grid'"):
        load_network(tmp_path, "toy", "net", _linear, needs=("grid",))
    with pytest.raises(ArtifactError, match="net.json is missing the key 'width'"):
        load_network(tmp_path, "toy", "net", lambda c: _linear({"inputs": c["width"]}))
    with pytest.raises(ArtifactError, match="net.safetensors does not match its config"):
        load_network(tmp_path, "toy", "net", lambda c: _linear({"inputs": 4}))
