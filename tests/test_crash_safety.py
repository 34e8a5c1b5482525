"""Crash safety (issue #18): kills between the writes of an artefact never leave something a rerun refuses.

The kills are real SIGKILLs, landed by the hook of :mod:`ppl_attention.artifacts` (``PPL_ATTENTION_CRASH_AT``)
in a subprocess; ``benchmarks/crash_resume.py`` does the same at many random moments of every command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from ppl_attention.artifacts import (
    ArtifactError,
    atomic_dir,
    atomic_write_json,
    clean_temporaries,
    load_checkpoint,
    save_checkpoint,
)
from ppl_attention.cli import main
from ppl_attention.design.store import SequenceStore
from ppl_attention.sensor import Sensor
from tests._helpers import generate_argv

REPO = Path(__file__).resolve().parents[1]
STORE_CONFIG = {"dataset": "cluttered-mnist", "task": "label", "grid": Sensor.mnist().to_dict(), "T": 2}


def _killed_python(code: str, crash_at: int, phase: str = "before", cwd=None) -> int:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PPL_ATTENTION_CRASH_AT": str(crash_at),
        "PPL_ATTENTION_CRASH_PHASE": phase,
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd or REPO, capture_output=True).returncode


def _temporaries(root: Path) -> list[Path]:
    return list(root.rglob(".*.tmp-*"))


def test_a_store_killed_while_it_is_created_is_created_by_the_rerun(tmp_path):
    code = (
        "from ppl_attention.design.store import SequenceStore; import json, sys; "
        f"SequenceStore.create({str(tmp_path / 'store')!r}, json.loads({json.dumps(json.dumps(STORE_CONFIG))}))"
    )
    # write 1 is the manifest inside the folder being built, killed before its rename (so before the folder's)
    assert _killed_python(code, 1, "before") == -signal.SIGKILL
    assert not (tmp_path / "store").exists()  # nothing a rerun could refuse ...
    assert [p.name.split(".tmp-")[0] for p in tmp_path.iterdir()] == [".store"]  # ... only a temporary beside it
    store = SequenceStore.create(tmp_path / "store", STORE_CONFIG)  # the rerun: no manual step
    store.write_record(0, 0, [1, 2])
    assert [p.name for p in tmp_path.iterdir()] == ["store"]  # the dead process's temporary folder is gone
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["manifest.json", "records"]


def test_a_store_left_by_an_older_version_between_records_and_manifest_is_resumed(tmp_path):
    (tmp_path / "store" / "records").mkdir(parents=True)  # what design/store.py used to leave when killed
    store = SequenceStore.create(tmp_path / "store", STORE_CONFIG)
    assert store.T == 2 and (tmp_path / "store" / "manifest.json").is_file()


def test_temporaries_of_dead_writers_are_removed_on_resume(tmp_path):
    from ppl_attention.artifacts import _HOST

    SequenceStore.create(tmp_path / "store", STORE_CONFIG)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()  # a pid that has exited
    torn = tmp_path / "store" / "records" / f".0000000.json.tmp-{_HOST}-{dead}-abc123.tmp"
    torn.write_text('{"index": 0, "locat')  # a record torn by a kill before its rename
    assert SequenceStore.open(tmp_path / "store").indices() == []  # never mistaken for a record
    SequenceStore.create(tmp_path / "store", STORE_CONFIG)  # the rerun removes it
    assert not torn.exists()


def test_temporaries_of_live_writers_are_kept(tmp_path):
    live = tmp_path / f".x.json.tmp-{__import__('ppl_attention.artifacts', fromlist=['_HOST'])._HOST}-1-abc.tmp"
    live.write_text("{}")  # pid 1 is alive
    mine = tmp_path / "y.json"
    atomic_write_json(mine, {"a": 1})
    assert clean_temporaries(tmp_path) == [] and live.exists()


def test_a_failed_atomic_dir_leaves_the_target_as_it_was(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("interrupted")
    assert sorted(tmp_path.iterdir()) == []
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a").write_text("1")
    with pytest.raises(FileExistsError):
        with atomic_dir(tmp_path / "full"):
            pass


def test_a_checkpoint_is_one_file_and_older_pairs_are_refused(tmp_path):
    path = tmp_path / "ck" / "last.safetensors"
    save_checkpoint(path, {"w": torch.ones(2)}, {"iteration": 3, "history": [{"a": 1.5}]})
    assert [p.name for p in path.parent.iterdir()] == ["last.safetensors"]
    tensors, meta = load_checkpoint(path)
    assert meta == {"iteration": 3, "history": [{"a": 1.5}]} and torch.equal(tensors["w"], torch.ones(2))
    with safe_open(str(path), framework="pt") as f:
        assert "ppl_attention.checkpoint" in f.metadata()
    # the older two-file format is for `ppl-attention migrate`; a weights file without metadata is not a checkpoint
    from ppl_attention.artifacts import save_weights

    save_weights(tmp_path / "old" / "last.safetensors", {"w": torch.ones(2)}, {"iteration": 1})
    with pytest.raises(ArtifactError, match="run `ppl-attention migrate"):
        load_checkpoint(tmp_path / "old" / "last.safetensors")
    (tmp_path / "old" / "last.json").unlink()
    with pytest.raises(ArtifactError, match="holds no 'ppl_attention.checkpoint' metadata"):
        load_checkpoint(tmp_path / "old" / "last.safetensors")


TRAINER_SCRIPT = """
import importlib.util, sys, torch
from ppl_attention.attention.network import HardAttentionNet, NetworkConfig
from ppl_attention.attention.trainer import SplitData, TrainConfig, Trainer

def trainer(out):
    cfg = TrainConfig(glimpses=2, iterations=6, batch_size=16, lr=3e-3, validate_every=2, tensorboard=False)
    torch.manual_seed(0)
    net = HardAttentionNet(toy.ToyDataset(96).grid, 3, 1, NetworkConfig(hidden=16, glimpse_dim=8), [0.1], [0.2])
    return Trainer(cfg, net, SplitData(toy.ToyDataset(96)), SplitData(toy.ToyDataset(48, "valid")), out, 0)

if __name__ == "__main__":
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("toy", sys.argv[1]); toy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy)
    trainer(sys.argv[2]).run(progress=False)
"""


def test_a_trainer_killed_between_the_writes_of_a_validation_resumes_exactly(tmp_path, one_thread):
    """Writes per validation: best.safetensors + best.json (when better), log.csv, the one-file checkpoint; the kill
    lands at write 5, after the first checkpoint (write 4) and inside the second validation's writes."""
    import importlib.util

    from safetensors.torch import load_file

    script = tmp_path / "train_toy.py"
    script.write_text(TRAINER_SCRIPT)
    toy = REPO / "tests" / "attention" / "conftest.py"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PPL_ATTENTION_CRASH_AT": "5",
        "PPL_ATTENTION_CRASH_PHASE": "before",
        "OMP_NUM_THREADS": "1",
    }
    out, ref = tmp_path / "killed", tmp_path / "ref"
    rc = subprocess.run([sys.executable, str(script), str(toy), str(out)], env=env, capture_output=True).returncode
    assert rc == -signal.SIGKILL
    assert load_checkpoint(out / "checkpoint" / "last.safetensors")[1]["iteration"] == 2 and _temporaries(out)
    spec = importlib.util.spec_from_file_location("train_toy", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    toy_spec = importlib.util.spec_from_file_location("toy", toy)
    mod.toy = importlib.util.module_from_spec(toy_spec)
    toy_spec.loader.exec_module(mod.toy)
    mod.trainer(ref).run(progress=False)  # uninterrupted
    resumed = mod.trainer(out)
    resumed.run(progress=False)  # the rerun resumes at iteration 2: no manual step
    assert _temporaries(out) == []
    assert (ref / "log.csv").read_text() == (out / "log.csv").read_text()
    for name in ("best.safetensors", "checkpoint/last.safetensors"):
        a, b = load_file(ref / name), load_file(out / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_failed_generate_leaves_no_store(tmp_path, monkeypatch, capsys):
    """A run that fails after the store was created but before anything was written removes it again."""
    import ppl_attention.design.executors as executors
    from ppl_attention.design.store import SequenceStore as Store

    calls = {}

    def failing(store, *a, **k):
        calls["store"] = store.directory
        raise ValueError("the search diverged")

    class Problem:
        grid = Sensor.mnist()

    def factory_call(self):
        def image(i):
            return None

        image.size = 10
        return Problem(), image

    from ppl_attention.data.spec import DatasetSpec

    monkeypatch.setattr(executors, "generate_sequences", failing)
    monkeypatch.setattr("ppl_attention.design.images.ImageFactory.__call__", factory_call)
    # the stand-in AVP and prior record no dataset: the run's dataset is given here
    monkeypatch.setattr(
        "ppl_attention.pipeline.design.resolve_dataset",
        lambda *a, **k: DatasetSpec.make("cluttered-mnist", options={"scales": 1}),
    )
    monkeypatch.setattr("ppl_attention.artifacts.dir_checksum", lambda p, pattern="*": "sha256:0")
    from ppl_attention.artifacts import write_manifest
    from ppl_attention.completion.importance import PRIOR_KIND

    (tmp_path / "avp").mkdir()
    write_manifest(tmp_path / "prior", PRIOR_KIND, {"prior": "database"})  # generate reads which kind of prior
    out = tmp_path / "store"
    generate = generate_argv(tmp_path / "avp", tmp_path / "prior")
    argv = [*generate, "--out", str(out), "--num-images", "2", "--glimpses", "2", "--allow-oracle", "true"]
    assert main(argv) == 2
    assert "the search diverged" in capsys.readouterr().err
    assert calls["store"] == out and not out.exists()
    Store.create(out, STORE_CONFIG)  # a store that holds another config is refused and left as it was
    before = sorted((p.name, p.read_bytes()) for p in out.rglob("*") if p.is_file())
    assert main(argv) == 2
    assert "made with other settings" in capsys.readouterr().err
    assert sorted((p.name, p.read_bytes()) for p in out.rglob("*") if p.is_file()) == before
