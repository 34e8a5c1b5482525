"""examples/reproduce_mnist.py runs Table 1 end to end on both MNIST datasets at the quick scale, resumes without
redoing anything, reuses given BOED artefacts and existing runs, and refuses runs or artefacts that do not fit."""

import dataclasses
import json
import re

import pytest

METHODS = ("none", "ram+", "h1", "h5", "hgs", "nogs")


@pytest.fixture(scope="module")
def quick(load_example, tmp_path_factory):
    module = load_example("reproduce_mnist")
    out = tmp_path_factory.mktemp("reproduce") / "out"
    summary = module.main(["--quick", "--out", str(out), "--seeds", "0", "1", "--device", "cpu"])
    return module, out, summary


def _run(out, d):
    return json.loads((out / d / "summary.json").read_text())


def test_both_datasets_every_method_and_seed(quick):
    module, out, summary = quick
    s = module.SCALES["quick"]
    for dataset in module.DATASETS:
        base = out / dataset
        for path in (
            "avp/evaluation.json",
            "prior/summary.json",
            "sequences/summary.json",
            "figures/epe.png",
            "results.md",
            "results.csv",
            "validation_curves.png",
        ):
            assert (base / path).is_file(), (dataset, path)
        assert len(list((base / "sequences" / "records").glob("*.json"))) == s.num_sequences
        for method in METHODS:
            for seed in (0, 1):
                run = _run(base, f"{method}-s{seed}")
                kind, pretrain = module.cs.METHODS[method].supervision, module.cs.METHODS[method].pretrain
                assert (run["supervision"], run["pretrain"], run["seed"], run["iterations"]) == (
                    kind,
                    pretrain,
                    seed,
                    s.iterations,
                )
                assert run["dataset"] == dataset and 0 < run["iterations_to_convergence_loss"] <= s.iterations
        # the comparison records the command that made it and its settings (for the results page)
        comparison = json.loads((base / "comparison.json").read_text())
        assert comparison["command"].startswith("python examples/reproduce_mnist.py --quick")
        assert comparison["settings"]["iterations"] == s.iterations and comparison["machine"]["cpu_count"] >= 1
        # PS-NOGS was supervised with exactly the store's sequences
        sup = json.loads((base / "nogs-s0" / "supervision.json").read_text())
        stored = {
            int(p.stem): json.loads(p.read_text())["locations"] for p in (base / "sequences" / "records").glob("*.json")
        }
        assert {i: list(q) for i, q in zip(sup["indices"], sup["sequences"])} == stored
    # the combined table: one row per method in the paper's order, both datasets, 2 seeds each
    table = (out / "table1.md").read_text().splitlines()
    assert [r.split("|")[1].strip() for r in table[2:]] == ["RAM", "RAM+", "PS-H1", "PS-H5", "PS-HGS", "PS-NOGS"]
    assert "translated-mnist" in table[0] and "cluttered-mnist" in table[0]
    assert all(r.count("± ") == 6 for r in table[2:])
    rows = {r["method"]: r for r in summary["table"]}
    mean = rows["nogs"]["cluttered-mnist:test_greedy_acc_mean"]
    accs = [_run(out / "cluttered-mnist", f"nogs-s{k}")["test_greedy_acc"] for k in (0, 1)]
    assert mean == pytest.approx(sum(accs) / 2)
    saved = json.loads((out / "table1.json").read_text())
    assert (
        saved["scale"] == "quick"
        and saved["machine"]["cpu_count"] >= 1
        and set(saved["datasets"]) == set(module.DATASETS)
        and saved["datasets"]["cluttered-mnist"]["T"] == s.glimpses
    )


def test_second_run_redoes_nothing(quick, capsys):
    module, out, summary = quick
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/*-s*/summary.json")}
    again = module.main(["--quick", "--out", str(out), "--seeds", "0", "1", "--device", "cpu"])
    stages = [line for line in capsys.readouterr().out.splitlines() if re.match(r"\[\d+/\d+\] ", line)]
    assert len(stages) == 10 and all(line.endswith(": cached") for line in stages), stages
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*-s*/summary.json")} == before
    assert again["table"] == summary["table"]
    assert again["seconds"]["cluttered-mnist"]["train AVP"] == summary["seconds"]["cluttered-mnist"]["train AVP"]


def test_given_artefacts_are_reused(quick, tmp_path):
    module, out, _ = quick
    src = out / "cluttered-mnist"
    new = tmp_path / "reuse"
    # a table1.json from an older command, with another iteration count and no per-dataset settings yet
    older = json.loads((out / "table1.json").read_text())
    older["settings"]["iterations"] = 99
    for info in older["datasets"].values():
        info.pop("settings")
    new.mkdir()
    (new / "table1.json").write_text(json.dumps(older))
    module.main(
        [
            "--quick",
            "--out",
            str(new),
            "--datasets",
            "cluttered-mnist",
            "--methods",
            "none",
            "nogs",
            "--avp",
            str(src / "avp"),
            "--prior",
            str(src / "prior"),
            "--sequences",
            str(src / "sequences"),
            "--device",
            "cpu",
        ]
    )
    assert not any((new / "cluttered-mnist" / d).exists() for d in ("avp", "prior", "sequences"))
    sup = json.loads((new / "cluttered-mnist" / "nogs-s0" / "supervision.json").read_text())
    assert sup["sequences"] == json.loads((src / "nogs-s0" / "supervision.json").read_text())["sequences"]
    info = json.loads((new / "table1.json").read_text())["datasets"]["cluttered-mnist"]
    assert info["sequences"] == str(src / "sequences") and info["avp"] == str(src / "avp")
    # each dataset keeps the settings of the command that ran it
    datasets = json.loads((new / "table1.json").read_text())["datasets"]
    assert info["settings"]["iterations"] == module.SCALES["quick"].iterations
    assert datasets["translated-mnist"]["settings"]["iterations"] == 99


def test_runs_and_artefacts_that_do_not_fit_are_refused(quick, tmp_path):
    module, out, _ = quick
    src = out / "cluttered-mnist"
    with pytest.raises(FileNotFoundError, match="--avp"):
        module.main(["--quick", "--out", str(tmp_path), "--avp", str(tmp_path / "missing")])
    with pytest.raises(ValueError, match="translated-mnist.*not in --datasets"):
        module.main(
            [
                "--quick",
                "--out",
                str(tmp_path),
                "--datasets",
                "cluttered-mnist",
                "--sequences",
                str(out / "translated-mnist" / "sequences"),
            ]
        )
    with pytest.raises(ValueError, match="fewer than"):
        module.boed_stages(
            "cluttered-mnist",
            module.SCALES["cpu"],
            tmp_path,
            {"avp": {}, "prior": {}, "sequences": {"cluttered-mnist": src / "sequences"}},
            "cpu",
            0,
        )
    # existing runs trained with another network are not mixed into the table
    quick = module.SCALES["quick"]
    module.check_reused_runs(src, list(METHODS), quick, 0)  # the runs' own settings pass
    with pytest.raises(
        ValueError, match="none-s0 was trained with network.network.hidden=8, this reproduction needs 16"
    ):
        module.check_reused_runs(src, ["none"], dataclasses.replace(quick, hidden=16), 0)
    with pytest.raises(ValueError, match="data_seed=0, this reproduction needs 3"):
        module.check_reused_runs(src, ["nogs"], quick, 3)


def test_diagnose_policy_on_the_reproduction(quick, load_example, tmp_path):
    """examples/diagnose_policy.py on the quick runs: three ways of looking, agreement, and a store of other data
    refused."""
    import torch

    from ppl_attention.attention.run import load_run_network
    from ppl_attention.data import load_dataset

    module, out, _ = quick
    dp = load_example("diagnose_policy")
    base = out / "cluttered-mnist"
    T = module.SCALES["quick"].glimpses
    report = dp.main(
        [
            str(base / "none-s0"),
            str(base / "nogs-s0"),
            "--sequences",
            str(base / "sequences"),
            "--draws",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    assert report["images"] == module.SCALES["quick"].num_sequences
    for r in report["runs"].values():
        assert r["T"] == T and r["forced_glimpses"] == T and set(r["curves"]) == set(dp.MODES)
        for values in [*r["curves"].values(), r["agreement"], r["agreement_within_half_fovea"]]:
            assert len(values) == T and all(0 <= v <= 1 for v in values)
        # agreeing exactly implies agreeing within half a fovea
        assert all(a <= b for a, b in zip(r["agreement"], r["agreement_within_half_fovea"]))
    table = (tmp_path / "policy.md").read_text()
    assert "| PS-NOGS |" in table and "| RAM |" in table and report["command"].startswith("python examples/")
    # the agreement's tolerance in the run's own grid: half a fovea is one cell of the 81-location grid, 6 cells of
    # the 2,401-location grid and 3 of the 2,025-location one
    assert report["half_fovea"] == {"pixels": 6, "cells": 1.0} and "6 pixels, 1 cell of the run's" in table
    from ppl_attention.sensor import Sensor

    assert dp.half_fovea_in_cells(Sensor(60, 12, stride=1))["cells"] == 6
    assert dp.half_fovea_in_cells(Sensor(100, 12, stride=2))["cells"] == 3
    # forcing the policy's own greedy glimpses changes nothing; forcing others does change what it sees
    net = load_run_network(base / "nogs-s0").eval()
    data = load_dataset("cluttered-mnist", split="train", seed=0)
    images = torch.stack([data[i]["image"] for i in range(8)])
    labels = torch.tensor([int(data[i]["label"]) for i in range(8)])
    own = net(images, T, policy="greedy").locations
    assert torch.equal(
        dp.accuracy_per_glimpse(net, images, labels, T), dp.accuracy_per_glimpse(net, images, labels, T, own)
    )
    with pytest.raises(ValueError, match="translated-mnist"):
        dp.main(
            [
                str(base / "none-s0"),
                "--sequences",
                str(out / "translated-mnist" / "sequences"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
    with pytest.raises(FileNotFoundError, match="not a finished training run"):
        dp.main([str(tmp_path), "--sequences", str(base / "sequences"), "--out", str(tmp_path / "y")])
