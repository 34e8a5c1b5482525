"""``train-epe-net``, ``generate --search amortised|hybrid`` and ``evaluate-epe-net`` end to end on a tiny AVP and
prior: the normal store is written, interrupted runs resume to the same result, and a network trained for another
AVP or sensor is refused before anything is written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ppl_attention.cli import main
from ppl_attention.design.store import SequenceStore

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--num-samples", "6", "--k1", "40", "--glimpses", "3", "--precision", "bfloat16"]
TINY_NET = ["--width", "4", "--hidden", "8", "--embedding", "2", "--batch-size", "4", "--no-progress"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from ppl_attention.completion.database import mnist_canvas_source
    from ppl_attention.completion.pca_index import PCAIndexConfig
    from ppl_attention.completion.prior import build_prior
    from ppl_attention.posterior.network import AVPConfig, build_avp, save_avp
    from ppl_attention.sensor import Sensor

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("amortised")
    grid = Sensor.retina()
    for name, seed in (("avp", 0), ("other-avp", 1)):
        torch.manual_seed(seed)
        save_avp(
            build_avp(AVPConfig(grid=grid.to_dict(), width=4)),
            root / name,
            "cluttered-mnist",
            2,
            extra_config={"seed": seed},
        )
    build_prior(
        root / "prior", mnist_canvas_source(), 200, grid, PCAIndexConfig(components=6, fit_samples=200), progress=False
    )
    base = ["--avp", str(root / "avp"), "--prior", str(root / "prior"), *SMALL, "--allow-oracle", "true"]
    assert main(["generate", *base, "--search", "exhaustive", "--num-images", "4", "--out", str(root / "ex")]) == 0
    assert train_epe_net(root / "ex", root / "avp", root / "net", "--epochs", "2", *TINY_NET) == 0
    return root, base


def train_epe_net(store, avp, out, *flags) -> int:
    """The exit code of ``train-epe-net`` on the maps of ``store`` for the AVP at ``avp``, into ``out``."""
    return main(["train-epe-net", "--store", str(store), "--avp", str(avp), "--out", str(out), *flags])


def _run_killed(args: list[str], crash_at: int) -> int:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PPL_ATTENTION_CRASH_AT": str(crash_at),
        "PPL_ATTENTION_CRASH_PHASE": "before",
        "OMP_NUM_THREADS": "1",
    }
    code = f"import sys; from ppl_attention.cli import main; sys.exit(main({args!r}))"
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True).returncode


def test_train_epe_net_writes_a_tied_network(built):
    root, _ = built
    manifest = json.loads((root / "net" / "manifest.json").read_text())
    assert manifest["kind"] == "epe-net"
    config = manifest["config"]
    assert config["grid"] == SequenceStore.open(root / "ex").grid.to_dict()
    assert config["avp"].startswith("sha256:") and config["prior"] == SequenceStore.open(root / "ex").config["prior"]
    assert (root / "net" / "epe_net.safetensors").is_file()
    assert (root / "net" / "checkpoint" / "last.safetensors").is_file()
    history = json.loads((root / "net" / "history.json").read_text())
    assert len(history["history"]) == 2 and history["valid_examples"] > 0


def test_train_epe_net_resumes_to_the_uninterrupted_weights(built, tmp_path):
    root, _ = built
    args = [
        "train-epe-net",
        "--store",
        str(root / "ex"),
        "--avp",
        str(root / "avp"),
        "--epochs",
        "3",
        *TINY_NET,
        "--threads",
        "1",
    ]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    # writes: 1 the manifest, 2..4 the checkpoints of epochs 1..3: killed while writing the second epoch's
    assert _run_killed([*args, "--out", str(tmp_path / "cut")], 3) == -signal.SIGKILL
    assert not (tmp_path / "cut" / "epe_net.safetensors").exists()
    assert main([*args, "--out", str(tmp_path / "cut")]) == 0
    a, b = (load_file(str(tmp_path / d / "epe_net.safetensors")) for d in ("whole", "cut"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # other settings are refused before anything is written
    before = (tmp_path / "cut" / "manifest.json").read_bytes()
    assert main([*args[:-2], "--epochs", "4", "--out", str(tmp_path / "cut")]) == 2
    assert (tmp_path / "cut" / "manifest.json").read_bytes() == before


def test_train_epe_net_refuses_stores_of_other_searches_and_avps(built, tmp_path, capsys):
    root, base = built
    assert main(["generate", *base, "--search", "halving", "--num-images", "1", "--out", str(tmp_path / "h")]) == 0
    assert train_epe_net(tmp_path / "h", root / "avp", tmp_path / "n") == 2
    assert "exhaustive" in capsys.readouterr().err and not (tmp_path / "n").exists()
    assert train_epe_net(root / "ex", root / "other-avp", tmp_path / "n") == 2
    assert "another AVP" in capsys.readouterr().err and not (tmp_path / "n").exists()


@pytest.mark.parametrize("search", ["amortised", "hybrid"])
def test_generate_with_the_network_writes_the_store_and_resumes(built, tmp_path, search):
    root, base = built
    args = ["generate", *base, "--search", search, "--epe-net", str(root / "net"), "--num-images", "5"]
    if search == "hybrid":
        args += ["--search-options", "top=3"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    store = SequenceStore.open(tmp_path / "whole")
    assert store.indices() == [0, 1, 2, 3, 4] and store.config["search"] == search
    assert store.config["epe_net"].startswith("sha256:")
    rec = store.record(0)
    assert store.epe_maps(0).shape == (3, 81) and len(set(rec["locations"])) == 3
    evaluations = rec["evaluations"][1:]
    assert all(e == 0 for e in evaluations) if search == "amortised" else all(0 < e <= 3 * 6 for e in evaluations)
    # killed after the store, the first-glimpse map and one record (hybrid) / before the batch's records (amortised)
    assert _run_killed([*args, "--out", str(tmp_path / "cut")], 4) == -signal.SIGKILL
    assert len(SequenceStore.open(tmp_path / "cut")) < 5
    assert main([*args, "--out", str(tmp_path / "cut")]) == 0
    cut = SequenceStore.open(tmp_path / "cut")
    for i in range(5):
        assert cut.record(i)["locations"] == store.record(i)["locations"]
        assert torch.allclose(cut.epe_maps(i), store.epe_maps(i), atol=1e-6)
    # the plots and the export read it like any other store
    assert main(["export-sequences", str(tmp_path / "whole"), "--out", str(tmp_path / "paper")]) == 0
    assert len(list((tmp_path / "paper").glob("*.txt"))) == 5


def test_a_dagger_store_follows_the_network_and_trains_it_again(built, tmp_path):
    root, base = built
    net = ["--epe-net", str(root / "net"), "--num-images", "2"]
    assert main(["generate", *base, "--search", "dagger", *net, "--out", str(tmp_path / "d")]) == 0
    assert main(["generate", *base, "--search", "amortised", *net, "--out", str(tmp_path / "a")]) == 0
    dagger, amortised, expert = (
        SequenceStore.open(tmp_path / "d"),
        SequenceStore.open(tmp_path / "a"),
        SequenceStore.open(root / "ex"),
    )
    for i in range(2):  # the network's own sequence, with the exhaustive search's map at each of its states
        assert dagger.record(i)["locations"] == amortised.record(i)["locations"]
        assert torch.equal(dagger.epe_maps(i)[0], expert.epe_maps(i)[0])
    again = ["--store", str(tmp_path / "d"), "--epochs", "1", *TINY_NET]  # the expert's maps and DAgger's
    assert train_epe_net(root / "ex", root / "avp", tmp_path / "net", *again) == 0


def test_generate_refuses_a_network_of_another_avp_or_sensor(built, tmp_path, capsys):
    from ppl_attention.design.amortised import EPEMapNet, EPENetConfig, load_epe_net, save_epe_net
    from ppl_attention.sensor import Sensor

    root, base = built

    def inputs(avp):
        return ["--avp", str(avp), "--prior", str(root / "prior"), *SMALL, "--allow-oracle", "true"]

    def refused(inputs, search, net) -> bool:
        """``generate --search search --epe-net net`` exits with a usage error and writes nothing."""
        argv = ["generate", *inputs, "--search", search, "--epe-net", str(net), "--num-images", "1"]
        return main([*argv, "--out", str(tmp_path / "g")]) == 2 and not (tmp_path / "g").exists()

    assert refused(inputs(root / "other-avp"), "amortised", root / "net")
    err = capsys.readouterr().err
    assert "--epe-net" in err and "AVP" in err
    # the same manifest, other weights: still refused (the weights' checksum is part of the tie)
    import shutil

    shutil.copytree(root / "avp", tmp_path / "retrained")
    shutil.copy(root / "other-avp" / "avp.safetensors", tmp_path / "retrained" / "avp.safetensors")
    assert refused(inputs(tmp_path / "retrained"), "amortised", root / "net")
    assert "--epe-net" in capsys.readouterr().err
    # a network for the one-scale grid, otherwise tied to this AVP and prior
    config = json.loads((root / "net" / "manifest.json").read_text())["config"]
    mnist = Sensor.mnist()
    save_epe_net(
        EPEMapNet(EPENetConfig(grid=mnist.to_dict(), width=4, hidden=8, embedding=2)),
        tmp_path / "onescale",
        {**config, "grid": mnist.to_dict()},
    )
    assert load_epe_net(tmp_path / "onescale").grid == mnist
    assert refused(base, "hybrid", tmp_path / "onescale")
    err = capsys.readouterr().err
    assert "--epe-net" in err and "sensor" in err
    # the network searches need a network; the others do not read one
    assert main(["generate", *base, "--search", "amortised", "--num-images", "1", "--out", str(tmp_path / "g")]) == 2
    assert "--epe-net" in capsys.readouterr().err
    assert refused(base, "halving", root / "net")
    assert "--epe-net" in capsys.readouterr().err


def _evaluation_inputs(root) -> list[str]:
    """``evaluate-epe-net``'s network, AVP and prior, and the reference store's completion settings."""
    inputs = [str(root / "net"), "--avp", str(root / "avp"), "--prior", str(root / "prior")]
    return [*inputs, "--num-samples", "6", "--k1", "40", "--glimpses", "3"]


def test_evaluate_epe_net_reports_regret_and_speed(built, tmp_path):
    root, _ = built
    searches = ["--searches", "halving", "hybrid", "amortised", "exhaustive-independent", "--hybrid-top", "2"]
    argv = ["evaluate-epe-net", *_evaluation_inputs(root), "--num-images", "2", *searches]
    assert main([*argv, "--no-progress", "--out", str(tmp_path / "e")]) == 0
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    s = summary["searches"]
    assert set(s) == {
        "exhaustive",
        "halving",
        "hybrid-top2",
        "amortised",
        "exhaustive-independent",
        "amortised-batched",
    }
    assert s["amortised-batched"]["images_per_batch"] == 2 and s["amortised-batched"]["seconds_per_sequence"] > 0
    batched = s.pop("amortised-batched")
    assert batched["speedup_vs_exhaustive"] > 0
    assert summary["steps"] == 4 and s["exhaustive"]["mean_regret"] == 0 and s["exhaustive"]["agreement"] == 1
    assert s["amortised"]["evaluations_per_step"] == 0 and s["hybrid-top2"]["evaluations_per_step"] <= 2 * 6
    assert 0 < s["exhaustive"]["evaluations_per_step"] <= 81 * 6
    assert all(v["mean_regret"] >= 0 and v["seconds_per_sequence"] > 0 for v in s.values())
    assert len(summary["validity"]["amortised"]) == 3
    rows = json.loads((tmp_path / "e" / "evaluation.json").read_text())["rows"]
    assert [r["step"] for r in rows] == [2, 3, 2, 3]
    assert all(r["exhaustive"]["evaluations"] % 81 == 0 for r in rows)  # every location on every completion


def test_evaluate_epe_net_against_a_reference_store_gives_the_same_regrets(built, tmp_path, capsys):
    root, _ = built
    searches = ["--searches", "hybrid", "amortised", "--hybrid-top", "2", "--no-progress", "--precision", "bfloat16"]
    args = ["evaluate-epe-net", *_evaluation_inputs(root), "--split", "train", "--num-images", "2", *searches]
    assert main([*args, "--out", str(tmp_path / "full")]) == 0
    assert main([*args, "--reference", str(root / "ex"), "--out", str(tmp_path / "ref")]) == 0
    full, ref = (json.loads((tmp_path / d / "evaluation.json").read_text())["rows"] for d in ("full", "ref"))
    for a, b in zip(full, ref):
        for label in ("hybrid-top2", "amortised"):
            # the store keeps its maps in float16 (relative error <= 2**-11 per value)
            assert a[label]["regret"] == pytest.approx(b[label]["regret"], abs=2e-3 * (1 + a[label]["regret"]))
            assert a[label]["agree"] == b[label]["agree"]
    summary = json.loads((tmp_path / "ref" / "summary.json").read_text())
    assert "exhaustive" not in summary["searches"]
    # a random choice's regret: the mean over each map's unobserved locations of (EPE - min) / min
    store, expected = SequenceStore.open(root / "ex"), []
    for i in (0, 1):
        locations, maps = store.record(i)["locations"], store.epe_maps(i).double()
        for t in (1, 2):
            allowed = maps[t][[k for k in range(81) if k not in locations[:t]]]
            expected.append(float(((allowed - allowed.min()) / allowed.min()).mean()))
    assert summary["random_choice"]["mean_regret"] == pytest.approx(sum(expected) / 4, rel=1e-6)
    assert set(summary["random_choice"]["per_step"]) == {"2", "3"}
    # a store made with other completion settings is refused
    other = [a if a != "6" else "7" for a in args]  # --num-samples 7
    assert main([*other, "--reference", str(root / "ex"), "--out", str(tmp_path / "bad")]) == 2
    assert "num_samples" in capsys.readouterr().err
    # ... and so is one whose completions pooled another number of draws, or had another noise
    for flags, named in ((["--pooled-draws", "2"], "pooled_draws"), (["--sigma", "150"], "sigma")):
        assert main([*args, *flags, "--reference", str(root / "ex"), "--out", str(tmp_path / "bad")]) == 2
        assert named in capsys.readouterr().err


def test_evaluate_epe_net_pools_draws_as_generate_does(built, tmp_path):
    """With --pooled-draws the evaluation draws what ``generate --pooled-draws`` drew: its exhaustive reference
    follows a pooled store's sequences and gives the same regrets with and without that store."""
    root, base = built
    pooled = ["--pooled-draws", "2", "--sigma", "150", "200"]
    store = tmp_path / "pooled-ex"
    argv = [*base, *pooled, "--search", "exhaustive", "--split", "train", "--num-images", "2", "--out", str(store)]
    assert main(["generate", *argv]) == 0
    args = ["evaluate-epe-net", *_evaluation_inputs(root), "--split", "train", "--num-images", "2", *pooled]
    args += ["--searches", "amortised", "--no-progress", "--precision", "bfloat16"]
    assert main([*args, "--out", str(tmp_path / "full")]) == 0
    assert main([*args, "--reference", str(store), "--out", str(tmp_path / "ref")]) == 0
    full, ref = (json.loads((tmp_path / d / "evaluation.json").read_text())["rows"] for d in ("full", "ref"))
    assert [r["amortised"]["agree"] for r in full] == [r["amortised"]["agree"] for r in ref]
    for a, b in zip(full, ref):
        assert a["amortised"]["regret"] == pytest.approx(
            b["amortised"]["regret"], abs=2e-3 * (1 + a["amortised"]["regret"])
        )
    assert json.loads((tmp_path / "full" / "summary.json").read_text())["settings"]["pooled_draws"] == 2
    assert all(r["draws"] == 2 and r["ess"] >= 1 for r in full)
