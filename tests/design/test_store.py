"""The sequence store: records, resume, refusal, first-glimpse cache, paper format, and crash safety."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ppl_attention.artifacts import ArtifactError
from ppl_attention.design.store import SequenceStore
from ppl_attention.sensor import Sensor

# the paper's sample sequence files, copied into the repository (format: docs/INTERFACES.md)
PAPER = Path(__file__).resolve().parents[1] / "fixtures" / "paper-sequences"


def _config(**kw):
    return {"dataset": "toy", "task": "label", "grid": Sensor(4, 2, stride=2), "T": 2, "avp": "sha256:a", **kw}


def test_records_roundtrip_and_resume(tmp_path):
    store = SequenceStore.create(tmp_path / "s", _config())
    assert store.grid == Sensor(4, 2, stride=2) and store.manifest["kind"] == "sequences"
    store.write_record(3, 17, [1, 2], [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]])
    store.write_record(0, 5, torch.tensor([0, 3]))
    assert store.has(3) and not store.has(1)
    seqs = SequenceStore.open(tmp_path / "s").sequences()
    assert list(seqs) == [0, 3] and seqs[3].tolist() == [1, 2] and seqs[3].dtype == torch.long
    assert store.epe_maps(3).shape == (2, 4)
    rec = json.loads((tmp_path / "s/records/0000003.json").read_text())
    assert rec["locations"] == [1, 2] and rec["seed"] == 17 and "epe" not in rec  # the maps are binary
    assert rec["maps"]["file"] == "0000003.maps.safetensors" and rec["maps"]["shape"] == [2, 4]
    assert torch.allclose(
        store.epe_maps(3),
        torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]], dtype=torch.float64),
        rtol=2**-11,
        atol=0,
    )
    assert store.indices() == [0, 3]  # the maps files are not records
    again = SequenceStore.create(tmp_path / "s", _config())  # same config: resume
    assert len(again) == 2
    with pytest.raises(ArtifactError, match="avp"):
        SequenceStore.create(tmp_path / "s", _config(avp="sha256:b"))
    with pytest.raises(ArtifactError, match="grid"):
        SequenceStore.create(tmp_path / "s", {**_config(), "grid": Sensor(4, 2, stride=1)})


def test_binary_maps_roundtrip_values_shape_and_grid_order(tmp_path):
    grid = Sensor((20, 30), (4, 4), stride=2)  # 9 x 14: a non-square grid, flat row-major order
    store = SequenceStore.create(tmp_path / "s", {**_config(), "grid": grid, "T": 3})
    L = grid.num_locations
    maps = torch.linspace(0.01, 2.3, 3 * L, dtype=torch.float64).view(3, L)
    maps[1] = torch.arange(L, dtype=torch.float64) / L  # value = flat index / L: checks the location order
    store.write_record(5, 1, [0, L - 1, 7], maps)
    back = SequenceStore.open(tmp_path / "s").epe_maps(5)
    assert back.shape == (3, L) and back.dtype == torch.float64
    assert torch.allclose(back, maps, rtol=2**-11, atol=0)  # float16: relative error <= 2**-11
    assert torch.equal(back[1].argsort(), torch.arange(L))
    assert torch.equal(grid.location_heatmap(back[1])[2, 3], back[1][2 * grid.n_cols + 3])


def test_old_store_with_maps_in_the_json_still_reads(tmp_path):
    SequenceStore.create(tmp_path / "s", _config())
    old = {
        "index": 4,
        "seed": 9,
        "locations": [3, 1],
        "epe": [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]],
        "evaluations": [0, 8],
    }
    (tmp_path / "s/records/0000004.json").write_text(json.dumps(old))  # the format before the binary maps
    again = SequenceStore.open(tmp_path / "s")
    assert again.indices() == [4] and again.sequences()[4].tolist() == [3, 1]
    assert torch.equal(again.epe_maps(4), torch.tensor(old["epe"], dtype=torch.float64))  # exactly


def test_maps_file_missing_or_not_the_records_is_named(tmp_path):
    store = SequenceStore.create(tmp_path / "s", _config())
    store.write_record(1, 0, [0, 1], torch.rand(2, 4))
    store.write_record(2, 0, [0, 1], torch.rand(2, 4))
    path = store.maps_path(1)
    other = store.maps_path(2).read_bytes()
    path.write_bytes(other)  # another record's maps under this name
    with pytest.raises(ArtifactError, match="checksum"):
        store.epe_maps(1)
    path.unlink()
    with pytest.raises(ArtifactError, match="0000001.maps.safetensors is missing"):
        store.epe_maps(1)


def test_killed_between_maps_and_record_leaves_no_half_record(tmp_path, monkeypatch):
    from ppl_attention.design import store as store_module

    store = SequenceStore.create(tmp_path / "s", _config())
    real = store_module.atomic_write_json

    def killed(path, obj):  # the process dies after the maps file, before the record's JSON
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module, "atomic_write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        store.write_record(6, 0, [0, 1], torch.rand(2, 4))
    monkeypatch.setattr(store_module, "atomic_write_json", real)
    assert not store.has(6) and store.indices() == [] and store.maps_path(6).is_file()  # no record: redone
    maps = torch.rand(2, 4, dtype=torch.float64)
    store.write_record(6, 0, [2, 3], maps)  # the rerun overwrites the maps file, then writes the record
    assert torch.allclose(store.epe_maps(6), maps, rtol=2**-11, atol=0)
    assert not [p for p in (tmp_path / "s/records").iterdir() if ".tmp-" in p.name]


def test_first_glimpse_cache(tmp_path):
    store = SequenceStore.create(tmp_path / "s", _config())
    with pytest.raises(FileNotFoundError):
        store.first_glimpse_epe()
    store.write_first_glimpse([0.3, 0.1, 0.2, 0.4], seed=0, num_samples=10)
    data = json.loads((tmp_path / "s/first_glimpse.json").read_text())
    assert data["epe"] == [0.3, 0.1, 0.2, 0.4] and data["num_samples"] == 10
    assert store.first_glimpse_epe().argmin() == 1
    (tmp_path / "s/first_glimpse.json").write_text('{"epe": [1, 2]}')
    with pytest.raises(ArtifactError, match="4 finite"):
        store.first_glimpse_epe()


def test_bad_input(tmp_path):
    store = SequenceStore.create(tmp_path / "s", _config())
    with pytest.raises(ValueError, match="locations"):
        store.write_record(0, 0, [1, 7])
    with pytest.raises(ValueError, match="locations"):
        store.write_record(0, 0, [1])
    with pytest.raises(ValueError, match="epe"):
        store.write_record(0, 0, [1, 2], [[0.1] * 4])
    with pytest.raises(ValueError, match="NaN"):
        store.write_record(0, 0, [1, 2], [[float("nan")] * 4] * 2)
    with pytest.raises(ValueError, match="index"):
        store.write_record(-1, 0, [1, 2])
    with pytest.raises(ValueError, match="missing"):
        SequenceStore.create(tmp_path / "t", {"dataset": "x"})
    with pytest.raises(FileNotFoundError):
        SequenceStore.open(tmp_path / "nope")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk/file").write_text("x")
    with pytest.raises(ArtifactError, match="not empty"):
        SequenceStore.create(tmp_path / "junk", _config())
    (tmp_path / "s/records/0000009.json").write_text('{"index": 9, "locations": [1]}')
    with pytest.raises(ArtifactError, match="malformed"):
        store.record(9)


def test_paper_format_roundtrip_is_byte_identical(tmp_path):
    for sub, grid in (("birds", Sensor.cub()), ("celebhq/20", Sensor.celeba_hq())):
        store = SequenceStore.import_paper(PAPER / sub, grid, tmp_path / sub / "store")
        assert len(store) == len(list((PAPER / sub).glob("*.txt")))
        store.export_paper(tmp_path / sub / "out")
        for f in (PAPER / sub).glob("*.txt"):
            assert (tmp_path / sub / "out" / f.name).read_bytes() == f.read_bytes()


KILL_SCRIPT = """
import sys, time
from ppl_attention.design.executors import generate_sequences
from ppl_attention.design.sequential import DesignSettings
from ppl_attention.design.store import SequenceStore
from ppl_attention.design.toy import ToyFactory
import ppl_attention.design.store as st

orig = st.SequenceStore.write_record
def slow(self, *a, **k):  # widen the window in which a kill lands between / inside records
    time.sleep(0.05)
    out = orig(self, *a, **k)
    print("wrote", flush=True)
    return out
st.SequenceStore.write_record = slow
f = ToyFactory()
store = SequenceStore.create(sys.argv[1], {"dataset": "toy", "task": "label", "grid": f()[0].grid, "T": 2})
generate_sequences(store, f, range(24), DesignSettings(T=2, num_samples=20), seed=0, progress=False)
"""


def test_kill_minus_9_leaves_only_complete_records(tmp_path):
    out = tmp_path / "store"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(out)], stdout=subprocess.PIPE, text=True)
    for _ in range(3):  # let a few records land, then kill mid-run
        assert proc.stdout.readline().startswith("wrote")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = SequenceStore.open(out)
    n = len(store)
    assert 3 <= n < 24
    for i in store.indices():  # every record present is complete and valid
        assert len(store.record(i)["locations"]) == 2
    # resuming finishes the job and matches an uninterrupted run
    from ppl_attention.design.executors import generate_sequences
    from ppl_attention.design.sequential import DesignSettings
    from ppl_attention.design.toy import ToyFactory

    counts = generate_sequences(
        SequenceStore.open(out), ToyFactory(), range(24), DesignSettings(T=2, num_samples=20), seed=0, progress=False
    )
    assert counts["skipped"] == n and counts["stored"] == 24
    ref = SequenceStore.create(tmp_path / "ref", SequenceStore.open(out).config)
    generate_sequences(ref, ToyFactory(), range(24), DesignSettings(T=2, num_samples=20), seed=0, progress=False)
    a, b = SequenceStore.open(out).sequences(), ref.sequences()
    assert all(torch.equal(a[i], b[i]) for i in range(24))
