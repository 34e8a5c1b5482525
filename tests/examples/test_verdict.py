"""examples/verdict.py at the tiny scale on the 81-location grid: the honest design, every arm over two seeds with
its settings, PS-RAM on its own seed's RAM sequences, a second call that runs nothing, and the table."""

import json

import pytest

from ppl_attention.artifacts import file_checksum


@pytest.fixture(scope="module")
def tiny(load_example, tmp_path_factory):
    module = load_example("verdict")
    out = tmp_path_factory.mktemp("verdict")
    record = module.main(
        ["--grid", "mnist-81", "--scale", "tiny", "--out", str(out), "--device", "cpu", "--no-progress"]
    )
    return module, out / "mnist-81", record


def _config(path):
    return json.loads((path / "manifest.json").read_text())["config"]


def test_the_design_is_honest_and_the_papers(tiny):
    module, out, _ = tiny
    s = module.SCALES["tiny"]
    avp = _config(out / "avp")
    assert avp["held_out"]["images"] == s.design_images and avp["held_out"]["split"] == "train"
    store = _config(out / "sequences")
    assert store["T"] == module.GLIMPSES == 5 and store["search"] == "exhaustive" and store["split"] == "train"
    assert len(store["grid"]["rows"]) * len(store["grid"]["cols"]) == 81
    assert len(list((out / "sequences" / "records").glob("*.json"))) == s.design_images


def test_the_calibrated_variant_designs_with_the_noise_calibrate_noise_chose(tiny, tmp_path):
    import shutil

    module, out, _ = tiny
    s = module.SCALES["tiny"]
    variant = tmp_path / "mnist-81-calibrated"
    for name in ("avp", "prior"):  # the same AVP and prior: only the noise differs
        shutil.copytree(out / name, variant / name)
    stages = module.design_stages("mnist-81", s, variant, {"seed": 0, "device": "cpu", "quiet": True}, "calibrated")
    assert [st.finished() for st in stages] == [True, True, False, False]
    module.run_stages(stages)
    calibration = json.loads((variant / "noise" / "calibration.json").read_text())
    assert calibration["criterion"] == "epe" and "worst_epe_error" in calibration["scales"][0]  # with its AVP
    assert _config(variant / "sequences")["sigma"] == calibration["chosen_sigma"]
    assert module.NOISES["calibrated"] == "-calibrated"


def test_the_pooled_variant_designs_and_calibrates_with_pooled_draws(tiny, tmp_path, capsys):
    """--pooled-draws K: K draws of the scale's completions / K per step, in the design and the calibration, into
    OUT/GRID-calibrated-pooledK; a K that does not divide the completions is refused."""
    import shutil

    module, out, _ = tiny
    s = module.SCALES["tiny"]
    args = module.parse_args(["--grid", "mnist-81", "--scale", "tiny", "--out", str(tmp_path)])
    assert module.out_dir(args) == tmp_path / "mnist-81"
    args = module.parse_args(
        [
            *["--grid", "mnist-81", "--scale", "tiny", "--out", str(tmp_path)],
            "--noise",
            "calibrated",
            "--pooled-draws",
            "2",
        ]
    )
    variant = module.out_dir(args)
    assert variant == tmp_path / "mnist-81-calibrated-pooled2"
    for name in ("avp", "prior"):
        shutil.copytree(out / name, variant / name)
    common = {"seed": 0, "device": "cpu", "quiet": True}
    module.run_stages(module.design_stages("mnist-81", s, variant, common, "calibrated", 2))
    store = _config(variant / "sequences")
    assert store["pooled_draws"] == 2 and store["num_samples"] == s.design_samples // 2
    assert json.loads((variant / "noise" / "summary.json").read_text())["pooled_draws"] == 2
    with pytest.raises(SystemExit):
        module.parse_args(["--grid", "mnist-81", "--scale", "tiny", "--pooled-draws", "3"])
    assert "--pooled-draws must divide" in capsys.readouterr().err


def test_a_multiple_of_the_priors_noise_designs_at_that_multiple(tiny, tmp_path, capsys):
    import shutil

    module, out, _ = tiny
    base = ["--grid", "mnist-81", "--scale", "tiny", "--out", str(tmp_path)]
    variant = module.out_dir(module.parse_args([*base, "--noise", "3x", "--pooled-draws", "2"]))
    assert variant == tmp_path / "mnist-81-3x-pooled2"
    for name in ("avp", "prior"):
        shutil.copytree(out / name, variant / name)
    stages = module.design_stages(
        "mnist-81", module.SCALES["tiny"], variant, {"seed": 0, "device": "cpu", "quiet": True}, "3x", 2
    )
    assert len(stages) == 3  # no calibration
    module.run_stages(stages)
    prior = _config(variant / "prior")["sigma"]
    assert _config(variant / "sequences")["sigma"] == [round(3 * v, 1) for v in prior]
    for bad in ("loud", "0x", "x"):
        with pytest.raises(SystemExit):
            module.parse_args([*base, "--noise", bad])
        assert "--noise must be prior, calibrated or a positive multiple" in capsys.readouterr().err


def test_every_arm_ran_with_its_settings(tiny):
    module, out, _ = tiny
    s = module.SCALES["tiny"]
    for seed in s.seeds:
        for arm, a in module.ARMS.items():
            cfg = _config(out / f"{arm}-s{seed}")
            train, run = cfg["train"], cfg["run"]
            assert cfg["seed"] == seed and cfg["data"]["seed"] == 0 and train["iterations"] == s.iterations
            assert cfg["network"]["network"]["policy"] == a.policy and train["glimpses"] == 5
            assert train["imitate"] is (arm != "ram-canvases")
            if arm == "ram":
                assert run["supervision"] == "none" and run["sequences"] is None
                continue
            assert run["supervision"] == "nogs"
            assert (train["supervision_reduction"], train["supervised_fraction"]) == ("sum", 0.022)
            expected = out / (f"ps-ram-sequences-s{seed}" if arm == "ps-ram" else "sequences")
            assert run["sequences"] == str(expected)
            summary = json.loads((out / f"{arm}-s{seed}" / "summary.json").read_text())
            assert summary["num_supervised"] == s.design_images
            assert {"test_greedy_acc", "test_sampled_acc", "test_mc_acc"} <= set(summary)
        # PS-RAM's store: this seed's RAM network's greedy sequences of the designed canvases
        store = _config(out / f"ps-ram-sequences-s{seed}")
        assert store["source"] == "policy"
        assert store["network"] == file_checksum(out / f"ram-s{seed}" / "best.safetensors")
        designed = sorted(p.name for p in (out / "sequences" / "records").glob("*.json"))
        assert sorted(p.name for p in (out / f"ps-ram-sequences-s{seed}" / "records").glob("*.json")) == designed
    assert file_checksum(out / "ram-s0" / "best.safetensors") != file_checksum(out / "ram-s1" / "best.safetensors")


def test_a_second_call_runs_nothing(tiny, capsys):
    module, out, _ = tiny
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/*") if p.is_file()}
    module.main(["--grid", "mnist-81", "--scale", "tiny", "--out", str(out.parent), "--device", "cpu", "--no-progress"])
    stages = 3 + len(module.SCALES["tiny"].seeds) * (len(module.ARMS) + 1)  # design, arms + PS-RAM's store
    assert capsys.readouterr().out.count(": cached") == stages
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*") if p.is_file()} == before


def test_the_table_has_every_arm_and_column(tiny):
    module, out, record = tiny
    assert json.loads((out / "verdict.json").read_text())["rows"].keys() == module.ARMS.keys()
    assert record["seeds"] == [0, 1] and record["command"].startswith("python examples/verdict.py --grid mnist-81")
    assert {"versions", "machine"} <= set(record["run"])
    for row in record["rows"].values():
        assert row["seeds"] == [0, 1] and not row["missing"]
        assert set(row["reach"]) == {"0.7", "0.8", "0.85"} and set(row["test"]) == {"greedy", "sampled", "MC"}
        assert all(row["test"][m]["n"] == 2 for m in row["test"])
    assert set(record["comparisons"]) == {"ps-nogs over ram", "ps-nogs over ps-ram"}
    text = (out / "verdict.md").read_text()
    for column in (
        "to RAM's final val. acc.",
        "to 70 % val. acc.",
        "to 80 % val. acc.",
        "to 85 % val. acc.",
        "convergence (val. CE within 0.01)",
        "convergence (val. acc. within 1 point)",
        "test acc. greedy (%)",
        "test acc. sampled (%)",
        "test acc. MC (%)",
        "target met",
    ):
        assert column in text
    assert all(f"| {a.label} | 0, 1 |" in text for a in module.ARMS.values())


def test_report_only_trains_nothing(tiny):
    module, out, _ = tiny
    kept = out / "ps-ram-s1" / "summary.json"
    kept.rename(out / "kept.json")  # PS-RAM seed 1 as if still training
    try:
        record = module.main(["--grid", "mnist-81", "--scale", "tiny", "--out", str(out.parent), "--report-only"])
    finally:
        (out / "kept.json").rename(kept)
    assert record["rows"]["ps-ram"]["seeds"] == [0] and record["rows"]["ps-ram"]["missing"] == [1]
    assert not (out / "ps-ram-s1" / "summary.json.tmp").exists() and record["seconds"] == {}
    assert "Unfinished runs, left out: ps-ram-s1." in (out / "verdict.md").read_text()
    assert (out / "verdict.png").stat().st_size > 0  # the validation curves of the finished runs


def test_a_store_of_an_earlier_ram_network_is_refused(tiny, tmp_path):
    module, out, _ = tiny
    assert module._from_run(out / "ps-ram-sequences-s0", out / "ram-s0")
    assert not module._from_run(tmp_path / "none", out / "ram-s0")  # not written yet: the stage runs
    with pytest.raises(ValueError, match="holds the sequences of an earlier ram-s1; delete it and the ps-ram-s1"):
        module._from_run(out / "ps-ram-sequences-s0", out / "ram-s1")
    with pytest.raises(SystemExit, match="no finished RAM run"):
        module.main(["--grid", "mnist-81", "--scale", "tiny", "--out", str(tmp_path), "--report-only"])


def _run(folder, seed, final, curve):
    folder.mkdir()
    (folder / "summary.json").write_text(
        json.dumps(
            {
                "seed": seed,
                "test_greedy_acc": final,
                "test_sampled_acc": final - 0.01,
                "test_mc_acc": final + 0.01,
                "iterations_to_convergence_loss": curve[-1][0],
                "iterations_to_convergence_accuracy": curve[-1][0],
            }
        )
    )
    (folder / "manifest.json").write_text(json.dumps({"config": {"run": {"sequences": None}}}))
    (folder / "log.csv").write_text("iteration,val_greedy_acc\n" + "".join(f"{i},{a}\n" for i, a in curve))


def test_comparisons_from_the_curves(load_example, tmp_path):
    """Speed-ups are ratios of mean iterations to RAM's final validation accuracy (the mean of its last validations,
    over its seeds); a claim fails on lower accuracy or a seed that never gets there."""
    table = load_example("_verdict_table")
    for seed in (0, 1):  # RAM's last two validations: 0.79 and 0.81 (final 80 %), first at 80 % or more at 10,000
        _run(tmp_path / f"ram-s{seed}", seed, 0.82, [(1000, 0.5), (6000, 0.75), (9000, 0.79), (10000, 0.81)])
        _run(tmp_path / f"ps-nogs-s{seed}", seed, 0.84, [(1000 * (seed + 1), 0.80), (5000, 0.82)])
    _run(tmp_path / "ps-ram-s0", 0, 0.83, [(2000, 0.5), (3000, 0.81)])
    _run(tmp_path / "ps-ram-s1", 1, 0.72, [(2000, 0.5), (9000, 0.72)])  # never reaches 80 %
    v = table.verdict(tmp_path, {"ram": "RAM", "ps-nogs": "PS-NOGS", "ps-ram": "PS-RAM"}, (0, 1), window=2)
    assert v["ram_final_validation_accuracy"] == pytest.approx(80.0) and v["final_window"] == 2
    assert v["ram_final_test_accuracy"] == pytest.approx(82.0)  # reported, not the level
    nogs = v["rows"]["ps-nogs"]
    assert nogs["reach_ram_final"]["mean"] == 1500 and nogs["reach"]["0.7"]["mean"] == 1500
    assert nogs["reach"]["0.85"] == {"mean": None, "sd": None, "n": 0, "never": 2}
    assert v["rows"]["ram"]["reach"]["0.7"]["mean"] == 6000
    low = table.verdict(tmp_path, {"ram": "RAM"}, (0, 1), window=2, thresholds=(0.5, 0.75))
    assert low["thresholds"] == [0.5, 0.75] and low["rows"]["ram"]["reach"]["0.5"]["mean"] == 1000
    assert "| RAM | 0, 1 | 10,000 ± 0 | 1,000 ± 0 | 6,000 ± 0 |" in table.markdown(
        {**low, "grid": "g", "scale": "s", "command": "c"}
    )
    assert nogs["test"]["sampled"]["mean"] == pytest.approx(83.0) and nogs["test"]["MC"]["mean"] == pytest.approx(85)
    c = v["comparisons"]["ps-nogs over ram"]
    assert c["speedup"] == pytest.approx(10000 / 1500) and c["target_met"] is True
    assert c["accuracy_difference"]["greedy"] == pytest.approx(2.0)
    # PS-RAM never gets there on seed 1: no speed-up is measured, and PS-NOGS's claim over it is not decided
    assert v["comparisons"]["ps-nogs over ps-ram"] == {
        "speedup": None,
        "target_speedup": 1.2,
        "target_met": None,
        "accuracy_difference": {"greedy": pytest.approx(6.5), "sampled": pytest.approx(6.5), "MC": pytest.approx(6.5)},
    }
    assert v["rows"]["ps-ram"]["speedup_over_ram"] is None
    text = table.markdown({**v, "grid": "g", "scale": "s", "command": "c"})
    assert "| PS-RAM | 0, 1 | 3,000 ± 0 (never: 1 of 2) |" in text
    assert "| ps-nogs over ram | 6.67 | +2.0 / +2.0 / +2.0 | >= 5x, no lower greedy accuracy | yes |" in text
    # the faster arm never reaches it where the slower one does: a "no"
    assert table._comparison(v["rows"]["ps-ram"], v["rows"]["ps-nogs"], 1.2)["target_met"] is False
