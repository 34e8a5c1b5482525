"""``ppl-attention migrate``: artefacts of older formats are refused with the command to run, migrated once, then
read; a second migration changes nothing."""

import json

import pytest
import torch

from ppl_attention.artifacts import (
    ArtifactError,
    dir_checksum,
    load_checkpoint,
    read_manifest,
    save_weights,
    write_manifest,
)
from ppl_attention.cli import main
from ppl_attention.completion.prior import prior_type
from ppl_attention.data.spec import recorded_spec
from ppl_attention.migrate import migrate


def _old_artefacts(root):
    """An AVP and a prior as older versions wrote them, a store that records both by checksum, a two-file
    training checkpoint, and weights with their config (not a checkpoint)."""
    write_manifest(root / "avp", "avp", {"dataset": "cluttered-mnist", "seed": 3})
    write_manifest(
        root / "prior",
        "prior",
        {"n": 10, "dataset": "cluttered-mnist", "data": {"name": "cluttered-mnist", "seed": None}},
    )
    write_manifest(
        root / "seqs",
        "sequences",
        {
            "data": {"name": "cluttered-mnist", "seed": 3},
            "avp": dir_checksum(root / "avp"),
            "prior": dir_checksum(root / "prior"),
        },
    )
    save_weights(
        root / "run" / "checkpoint" / "last.safetensors",
        {"w": torch.ones(2), "meta.iteration": torch.tensor(4)},
        {"iteration": 4},
    )
    save_weights(root / "avp" / "avp.safetensors", {"w": torch.ones(2)}, {"width": 2})


def test_old_artefacts_are_refused_then_migrated_then_read(tmp_path):
    _old_artefacts(tmp_path)
    with pytest.raises(ArtifactError, match=r"no dataset spec .*run `ppl-attention migrate .*avp`"):
        recorded_spec(tmp_path / "avp")
    with pytest.raises(ArtifactError, match=r"`prior` .*does not name its kind .*`ppl-attention migrate "):
        prior_type(tmp_path / "prior")
    checkpoint = tmp_path / "run" / "checkpoint" / "last.safetensors"
    with pytest.raises(ArtifactError, match=r"last.json \(an older format\); run `ppl-attention migrate "):
        load_checkpoint(checkpoint)

    changes = migrate(tmp_path)
    assert len(changes) == 4 and any("checkpoint" in c for c in changes)
    assert recorded_spec(tmp_path / "avp")[1] == {"name": "cluttered-mnist", "seed": 3}
    assert prior_type(tmp_path / "prior") == "database"
    tensors, meta = load_checkpoint(checkpoint)
    assert meta == {"iteration": 4} and int(tensors["meta.iteration"]) == 4
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["last.safetensors"]
    assert (tmp_path / "avp" / "avp.json").is_file()  # weights and their config are not a checkpoint
    store = read_manifest(tmp_path / "seqs")["config"]  # still names the AVP and prior it was made with
    assert store["avp"] == dir_checksum(tmp_path / "avp") and store["prior"] == dir_checksum(tmp_path / "prior")

    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert migrate(tmp_path) == []
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_checksum_chain_is_followed_through(tmp_path):
    """A network that records a store that records a migrated prior gets the store's final checksum."""
    write_manifest(tmp_path / "prior", "prior", {"n": 10})
    write_manifest(tmp_path / "seqs", "sequences", {"prior": dir_checksum(tmp_path / "prior")})
    write_manifest(
        tmp_path / "net",
        "epe-net",
        {"prior": dir_checksum(tmp_path / "prior"), "stores": [dir_checksum(tmp_path / "seqs")]},
    )
    migrate(tmp_path)
    net = read_manifest(tmp_path / "net")["config"]
    assert net["prior"] == dir_checksum(tmp_path / "prior") and net["stores"] == [dir_checksum(tmp_path / "seqs")]
    assert read_manifest(tmp_path / "seqs")["config"]["prior"] == dir_checksum(tmp_path / "prior")


def test_the_command_says_what_it_changed(tmp_path, capsys):
    _old_artefacts(tmp_path)
    assert main(["migrate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "records its dataset spec" in out and "names its kind of prior" in out and "4 change(s)" in out
    assert main(["migrate", str(tmp_path)]) == 0
    assert "nothing to migrate" in capsys.readouterr().out
    assert main(["migrate", str(tmp_path / "missing")]) == 2
    assert json.loads((tmp_path / "avp" / "manifest.json").read_text())["config"]["data"]["seed"] == 3
