import json
import os

import pytest
import torch

from ppl_attention.artifacts import (
    ArtifactError,
    atomic_write_json,
    check_manifest,
    dir_checksum,
    file_checksum,
    load_weights,
    read_manifest,
    save_weights,
    write_manifest,
)


def test_atomic_write_leaves_no_temporary_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no half-written temporaries


def test_manifest_round_trip_and_checks(tmp_path):
    write_manifest(tmp_path, "avp", {"dataset": "cluttered-mnist", "T": 5}, inputs={"x": "sha256:0"})
    m = read_manifest(tmp_path, "avp")
    assert m["config"]["T"] == 5 and "torch" in m["versions"]
    assert m["machine"]["cpu_count"] >= 1 and m["machine"]["cpu"]  # where it was made, for the results page
    check_manifest(tmp_path, "avp", {"dataset": "cluttered-mnist"})
    with pytest.raises(ArtifactError, match="holds a 'avp' artefact, expected 'prior'"):
        read_manifest(tmp_path, "prior")
    with pytest.raises(ArtifactError, match="built with T=5, expected 4"):
        check_manifest(tmp_path, "avp", {"T": 4})
    with pytest.raises(ArtifactError, match="does not exist"):
        read_manifest(tmp_path / "missing")


def test_checksums_change_with_content(tmp_path):
    (tmp_path / "a").write_text("1")
    c1, d1 = file_checksum(tmp_path / "a"), dir_checksum(tmp_path)
    (tmp_path / "a").write_text("2")
    assert file_checksum(tmp_path / "a") != c1 and dir_checksum(tmp_path) != d1


def test_weights_round_trip_and_refusals(tmp_path):
    net = torch.nn.Linear(3, 2)
    save_weights(tmp_path / "w.safetensors", net, {"in": 3, "out": 2})
    tensors, config = load_weights(tmp_path / "w.safetensors", {"in": 3})
    assert torch.equal(tensors["weight"], net.weight.detach()) and config == {"in": 3, "out": 2}
    with pytest.raises(ArtifactError, match="saved with in=3, expected 4"):
        load_weights(tmp_path / "w.safetensors", {"in": 4})
    (tmp_path / "bad.safetensors").write_bytes(b"\x80\x04not a safetensors file")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ArtifactError, match="not a valid safetensors file"):
        load_weights(tmp_path / "bad.safetensors")
    with pytest.raises(ArtifactError, match="must be a .safetensors file"):
        load_weights(tmp_path / "w.pt")
    with pytest.raises(ValueError, match="must end in .safetensors"):
        save_weights(tmp_path / "w.pt", net, {})


def test_atomic_files_get_the_normal_file_mode(tmp_path):
    path = atomic_write_json(tmp_path / "m.json", {})
    plain = tmp_path / "plain"
    plain.write_text("")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
