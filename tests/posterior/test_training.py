import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ppl_attention.artifacts import ArtifactError, load_checkpoint, read_manifest
from ppl_attention.posterior import TrainAVPConfig, evaluate_avp, fit_temperature, load_avp, random_locations, train_avp
from ppl_attention.sensor import NO_GLIMPSE, Sensor

CFG = dict(width=8, epochs=3, batch_size=32, max_glimpses=2, lr=3e-3, patience=10)


def test_random_locations_cover_counts_and_pad():
    grid = Sensor(24, 8, stride=4)
    loc = random_locations(grid, 2000, 3, torch.Generator().manual_seed(0))
    counts = (loc != NO_GLIMPSE).sum(1)
    assert set(counts.tolist()) == {0, 1, 2, 3}  # 0 and T included
    assert bool(((loc == NO_GLIMPSE) == (torch.arange(3) >= counts.unsqueeze(1))).all())  # padding at the end
    assert int(loc.max()) == grid.num_locations - 1 and int(loc[loc >= 0].min()) == 0


def test_trains_learns_and_writes_an_avp_dir(tmp_path, toy):
    train, valid = toy(256, 0, "train"), toy(128, 0, "valid")
    model = train_avp(train, valid, tmp_path / "avp", TrainAVPConfig(**{**CFG, "epochs": 6}), progress=False)
    for name in ("avp.safetensors", "avp.json", "manifest.json", "history.json"):
        assert (tmp_path / "avp" / name).is_file()
    manifest = read_manifest(tmp_path / "avp", "avp")["config"]
    assert manifest["dataset"] == "toy" and manifest["T"] == 2 and manifest["backbone"] == "small_cnn"
    assert manifest["grid"] == train.grid.to_dict()
    assert manifest["normalisation"]["mean"] == [float(toy(256, 0, "train").mean)]  # the stats of epoch 0
    ev = evaluate_avp(load_avp(tmp_path / "avp"), valid, 2)
    acc = [r["accuracy"] for r in ev["per_glimpses"]]
    assert ev["full_image"]["accuracy"] > 0.9  # the square is visible: whole images are easy
    assert acc[0] < 0.4 and acc[2] > acc[0] + 0.15  # no glimpse ~ chance (1/4); glimpses help
    hist = json.loads((tmp_path / "avp" / "history.json").read_text())["history"]
    assert hist[-1]["valid_nll"] < hist[0]["valid_nll"]
    assert float(model.temperature) > 0


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path, toy):
    cfg = TrainAVPConfig(**CFG)
    train_avp(toy(96, 0), toy(32, 0, "valid"), tmp_path / "full", cfg, progress=False)
    part = train_avp(toy(96, 0), toy(32, 0, "valid"), tmp_path / "part", cfg, stop_after=2, progress=False)
    assert load_checkpoint(tmp_path / "part" / "checkpoint" / "last.safetensors")[1]["state"]["epoch"] == 2
    assert sorted(p.name for p in (tmp_path / "part" / "checkpoint").iterdir()) == ["last.safetensors"]  # 1 file
    assert not (tmp_path / "part" / "avp.safetensors").exists()
    del part
    train_avp(toy(96, 0), toy(32, 0, "valid"), tmp_path / "part", cfg, progress=False)  # resumes at epoch 2
    a, b = load_file(tmp_path / "full" / "avp.safetensors"), load_file(tmp_path / "part" / "avp.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a checkpoint from another config is refused, clearly
    with pytest.raises(ArtifactError, match="made with other settings .train.lr: stored"):
        train_avp(
            toy(96, 0), toy(32, 0, "valid"), tmp_path / "part", TrainAVPConfig(**{**CFG, "lr": 1e-2}), progress=False
        )


def test_early_stopping_stops(tmp_path, toy):
    cfg = TrainAVPConfig(**{**CFG, "epochs": 20, "patience": 1, "lr": 0.0, "calibrate": False})
    train_avp(toy(64, 0), toy(32, 0, "valid"), tmp_path / "a", cfg, progress=False)
    hist = json.loads((tmp_path / "a" / "history.json").read_text())["history"]
    # lr 0 (only BatchNorm statistics move): it must stop right after the first epoch that does not improve
    nll = [h["valid_nll"] for h in hist]
    improved = [i == 0 or nll[i] < min(nll[:i]) - 1e-4 for i in range(len(nll))]
    assert len(hist) < 20 and not improved[-1] and all(improved[:-1])


def test_fit_temperature_recovers_a_known_temperature():
    g = torch.Generator().manual_seed(0)
    true_logits = 2 * torch.randn(20000, 5, generator=g)
    labels = torch.distributions.Categorical(logits=true_logits).sample()
    t = fit_temperature(3.0 * true_logits, labels, "categorical")
    assert t == pytest.approx(3.0, rel=0.05)  # 20,000 labels pin T to a few per cent


def test_bad_training_input_is_refused(tmp_path, toy):
    train = toy(32, 0)
    train.num_classes = 2  # a 2-class head, but the labels go up to 3
    with pytest.raises(ValueError, match=r"`train labels` must lie in \[0, 1\]"):
        train_avp(train, toy(16, 0, "valid"), tmp_path / "x", TrainAVPConfig(**CFG), progress=False)
    with pytest.raises(ValueError, match="full_fraction"):
        train_avp(toy(16, 0), toy(16, 0, "valid"), tmp_path / "y", TrainAVPConfig(**{**CFG, "full_fraction": 2.0}))
    (tmp_path / "z" / "checkpoint").mkdir(parents=True)
    (tmp_path / "z" / "checkpoint" / "last.safetensors").write_bytes(b"garbage")
    (tmp_path / "z" / "checkpoint" / "last.json").write_text("{}")
    with pytest.raises(ArtifactError, match="not a valid safetensors"):
        train_avp(toy(16, 0), toy(16, 0, "valid"), tmp_path / "z", TrainAVPConfig(**CFG), progress=False)


DDP_SCRIPT = textwrap.dedent("""
    import importlib.util, sys, torch, torch.distributed as dist, torch.multiprocessing as mp
    from safetensors.torch import save_file
    spec = importlib.util.spec_from_file_location("toy_conftest", sys.argv[1])
    toy = importlib.util.module_from_spec(spec); spec.loader.exec_module(toy)

    def work(rank, out):
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=2)
        from ppl_attention.posterior import TrainAVPConfig, train_avp
        cfg = TrainAVPConfig(width=4, epochs=2, batch_size=32, max_glimpses=2)
        model = train_avp(toy.ToyDataset(64, 0), toy.ToyDataset(32, 0, "valid"), f"{out}/avp", cfg, progress=False)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/rank{rank}.safetensors")
        dist.destroy_process_group()

    if __name__ == "__main__":
        mp.spawn(work, args=(sys.argv[2],), nprocs=2)
""")


def test_distributed_two_ranks_end_with_identical_weights(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    conftest = Path(__file__).with_name("conftest.py")
    res = subprocess.run(
        [sys.executable, str(script), str(conftest), str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    saved = load_file(tmp_path / "avp" / "avp.safetensors")  # rank 0 wrote the AVP dir
    assert all(torch.equal(a[k], saved[k]) for k in a)
    assert len(json.loads((tmp_path / "avp" / "history.json").read_text())["history"]) == 2


def test_time_limit_stops_after_the_epoch_that_crosses_it_and_still_saves(tmp_path, toy):
    cfg = TrainAVPConfig(**{**CFG, "epochs": 20, "time_limit_min": 0.0, "calibrate": False})
    train_avp(toy(32, 0), toy(16, 0, "valid"), tmp_path / "a", cfg, progress=False)
    manifest = read_manifest(tmp_path / "a", "avp")["config"]
    assert manifest["stopped_by_time_limit"] is True and manifest["epochs_run"] == 1
    assert load_avp(tmp_path / "a").head == "categorical"
