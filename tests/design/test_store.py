"""The sequence store: records, resume, refusal, first-glimpse cache, paper format, and crash safety."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ppl_attention.artifacts import ArtifactError
from ppl_attention.design.store import SequenceStore
from ppl_attention.sensor import GlimpseGrid

# the paper's sample sequence files, copied into the repository (format: docs/INTERFACES.md)
PAPER = Path(__file__).resolve().parents[1] / "fixtures" / "paper-sequences"


def _config(**kw):
    return {"dataset": "toy", "task": "label", "grid": GlimpseGrid(4, 2, stride=2), "T": 2, "avp": "sha256:a", **kw}


def test_records_roundtrip_and_resume(tmp_path):
    store = SequenceStore.create(tmp_path / "s", _config())
    assert store.grid == GlimpseGrid(4, 2, stride=2) and store.manifest["kind"] == "sequences"
    store.write_record(3, 17, [1, 2], [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]])
    store.write_record(0, 5, torch.tensor([0, 3]))
    assert store.has(3) and not store.has(1)
    seqs = SequenceStore.open(tmp_path / "s").sequences()
    assert list(seqs) == [0, 3] and seqs[3].tolist() == [1, 2] and seqs[3].dtype == torch.long
    assert store.epe_maps(3).shape == (2, 4)
    rec = json.loads((tmp_path / "s/records/0000003.json").read_text())
    assert rec == {"index": 3, "seed": 17, "locations": [1, 2], "epe": [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]]}
    again = SequenceStore.create(tmp_path / "s", _config())  # same config: resume
    assert len(again) == 2
    with pytest.raises(ArtifactError, match="avp"):
        SequenceStore.create(tmp_path / "s", _config(avp="sha256:b"))
    with pytest.raises(ArtifactError, match="grid"):
        SequenceStore.create(tmp_path / "s", {**_config(), "grid": GlimpseGrid(4, 2, stride=1)})


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
    for sub, grid in (("birds", GlimpseGrid.cub()), ("celebhq/20", GlimpseGrid.celeba_hq())):
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
    counts = generate_sequences(SequenceStore.open(out), ToyFactory(), range(24), DesignSettings(T=2, num_samples=20),
                                seed=0, progress=False)
    assert counts["skipped"] == n and counts["stored"] == 24
    ref = SequenceStore.create(tmp_path / "ref", SequenceStore.open(out).config)
    generate_sequences(ref, ToyFactory(), range(24), DesignSettings(T=2, num_samples=20), seed=0, progress=False)
    a, b = SequenceStore.open(out).sequences(), ref.sequences()
    assert all(torch.equal(a[i], b[i]) for i in range(24))
