"""The epoch loop's checkpoint: what is saved comes back, and a checkpoint of another run or kind is refused."""

import pytest
import torch

from ppl_attention.artifacts import ArtifactError, load_checkpoint, save_checkpoint
from ppl_attention.posterior.epoch_checkpoint import load_epoch_checkpoint, save_epoch_checkpoint

CONFIG = {"train": {"lr": 0.1}, "seed": 0}
STATE = {"epoch": 2, "history": [{"loss": 1.0}, {"loss": 0.5}]}


def _model_and_opt(seed):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return model, opt


def test_a_saved_epoch_comes_back(tmp_path):
    path = tmp_path / "last.safetensors"
    model, opt = _model_and_opt(0)
    save_epoch_checkpoint(path, model, opt, STATE, CONFIG, {"extra.x": torch.arange(3)}, {"scheduler": {"k": 1}})
    other, other_opt = _model_and_opt(1)
    state, tensors, meta = load_epoch_checkpoint(path, other, other_opt, CONFIG, "toy", "retry", needs=("extra.x",))
    assert state == STATE and meta["scheduler"] == {"k": 1} and torch.equal(tensors["extra.x"], torch.arange(3))
    assert torch.equal(other.weight, model.weight)
    assert torch.equal(other_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_another_run_or_kind_or_a_broken_state_is_refused(tmp_path):
    path = tmp_path / "last.safetensors"
    model, opt = _model_and_opt(0)
    save_epoch_checkpoint(path, model, opt, STATE, CONFIG)
    with pytest.raises(ArtifactError, match=r"lacks \['scheduler'\] \(not a toy checkpoint\)"):
        load_epoch_checkpoint(path, model, opt, CONFIG, "toy", "retry", needs=("scheduler",))
    with pytest.raises(ArtifactError, match="made with other settings.*; retry"):
        load_epoch_checkpoint(path, model, opt, {**CONFIG, "seed": 1}, "toy", "retry")
    tensors, meta = load_checkpoint(path)
    save_checkpoint(path, tensors, {**meta, "state": {"epoch": 3, "history": STATE["history"]}})
    with pytest.raises(ArtifactError, match=r"inconsistent state \(epoch 3, 2 history rows\)"):
        load_epoch_checkpoint(path, model, opt, CONFIG, "toy", "retry")
