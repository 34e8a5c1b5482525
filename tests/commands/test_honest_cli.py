"""calibrate-noise and evaluate-design end to end at a tiny size, and generate's refusal of an oracle AVP and its
honest route (train-avp --exclude-design)."""

import json

import pytest
import torch

from ppl_attention.cli import main
from tests._helpers import train_avp_argv


@pytest.fixture(scope="module")
def artefacts(honest_artefacts):
    """The session's tiny AVP and generative prior, by the name every test here takes them."""
    return honest_artefacts


def test_calibrate_noise_reports_ece_ess_and_a_choice(artefacts, tmp_path, capsys):
    out = tmp_path / "cal"
    assert (
        main(
            [
                "calibrate-noise",
                "--prior",
                str(artefacts / "gp"),
                "--out",
                str(out),
                "--num-images",
                "4",
                "-T",
                "2",
                "--scales",
                "1",
                "4",
                "--num-samples",
                "6",
                "--k1",
                "100",
                "--min-ess",
                "1",
                "--avp",
                str(artefacts / "avp"),
                "--criterion",
                "epe",
            ]
        )
        == 0
    )
    cal = json.loads((out / "calibration.json").read_text())
    # the EPE of glimpse 2 predicted after glimpse 1, against the AVP's entropy after it; the choice by its error
    first = cal["scales"][0]["steps"][0]["epe"]
    assert first["predicted"] >= 0 and first["relative"] == pytest.approx(first["realised"] / first["predicted"] - 1)
    assert cal["criterion"] == "epe" and "epe" not in cal["scales"][0]["steps"][1]
    assert all(0 <= s["avp_p_true"] <= 1 for s in cal["scales"][0]["steps"])
    assert cal["chosen"] == min(cal["scales"], key=lambda r: r["worst_epe_error"])["scale"]
    assert [r["scale"] for r in cal["scales"]] == [1.0, 4.0] and cal["chosen"] in (1.0, 4.0)
    step = cal["scales"][0]["steps"][1]
    assert step["t"] == 2 and 0 <= step["ece"] <= 1 and step["median_ess"] >= 1 and step["curve"]
    assert cal["chosen_sigma"][0] == pytest.approx(cal["sigma"][0] * cal["chosen"], abs=0.01)
    # generate --noise-from designs with the chosen schedule, and refuses a calibration of another prior
    base = ["generate", "--device", "cpu", "--avp", str(artefacts / "avp"), "--prior", str(artefacts / "gp")]
    base += ["--num-images", "1", "-T", "1", "--num-samples", "2", "--k1", "50", "--allow-oracle", "true"]
    assert main([*base, "--noise-from", str(out), "--out", str(tmp_path / "store")]) == 0
    from ppl_attention.artifacts import read_manifest

    assert read_manifest(tmp_path / "store")["config"]["sigma"] == cal["chosen_sigma"]
    summary = json.loads((tmp_path / "store" / "summary.json").read_text())
    assert summary["noise_schedule_from"] == f"calibrate-noise {out}"
    cal["prior"] = "another"
    (out / "calibration.json").write_text(json.dumps(cal))
    capsys.readouterr()
    assert main([*base, "--noise-from", str(out), "--out", str(tmp_path / "other")]) == 2
    assert "--noise-from" in (err := capsys.readouterr().err) and "calibrated on another prior" in err, err
    assert not (tmp_path / "other").exists()
    assert main([*base, "--noise-from", str(out), "--sigma", "9", "--out", str(tmp_path / "both")]) == 2
    assert "--sigma or --noise-from, not both" in capsys.readouterr().err
    # the first-glimpse map is drawn with nothing observed: another noise and k1 share it, and it is the same map
    other = ["--sigma", "200", "--k1", "80"]
    assert main([*base, *other, "--out", str(tmp_path / "fresh")]) == 0
    copied = ["--first-glimpse-from", str(tmp_path / "store"), "--out", str(tmp_path / "copied")]
    assert main([*base, *other, *copied]) == 0
    from ppl_attention.design.store import SequenceStore

    fresh, copy = (SequenceStore.open(tmp_path / d) for d in ("fresh", "copied"))
    assert torch.equal(copy.first_glimpse_epe(), fresh.first_glimpse_epe())
    assert copy.first_glimpse()["copied_from"] == str(tmp_path / "store")


def test_evaluate_design_measures_the_noise_floor_in_one_run(artefacts, tmp_path):
    out = tmp_path / "floor"
    assert (
        main(
            [
                "evaluate-design",
                "--device",
                "cpu",
                "--avp",
                str(artefacts / "avp"),
                "--prior",
                str(artefacts / "gp"),
                "--out",
                str(out),
                "--num-images",
                "2",
                "-T",
                "3",
                "--num-samples",
                "4",
                "--reference-samples",
                "8",
                "--k1",
                "100",
                "--searches",
                "exhaustive",
                "pyramid:top=1",
                "halving",
            ]
        )
        == 0
    )
    data = json.loads((out / "noise_floor.json").read_text())
    for row in data["rows"]:  # the exhaustive search replayed on draw A's table is draw A's own choice
        assert row["searches"]["exhaustive"] == {
            "regret": 0.0,
            "vs_reference": row["vs_reference"]["a"],
            "evaluations": 1.0,
        }
        assert 0 < row["searches"]["pyramid:top=1"]["evaluations"] < 1 and row["searches"]["halving"]["regret"] >= 0
    assert len(data["rows"]) == 4 and {r["step"] for r in data["rows"]} == {2, 3}
    row = data["rows"][0]
    assert row["between"] >= 0 and set(row["vs_reference"]) == {"a", "b"}
    assert row["draws"]["reference"]["distinct"] <= 8 and row["draws"]["a"]["ess"] >= 1
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["images"] == 2
        and summary["k1"] == 100
        and "optimism" in summary["all"]
        and set(summary["per_step"]) == {"2", "3"}
    )
    assert summary["all"]["searches"]["exhaustive"]["regret"]["mean"] == 0.0
    assert (
        main(
            [
                "evaluate-design",
                "--avp",
                str(artefacts / "avp"),
                "--prior",
                str(artefacts / "gp"),
                "--out",
                str(tmp_path / "bad"),
                "-T",
                "1",
            ]
        )
        == 2
    )


def _floor(artefacts, out, *extra):
    argv = ["evaluate-design", "--device", "cpu", "--avp", str(artefacts / "avp"), "--prior", str(artefacts / "gp")]
    return main([*argv, "--out", str(out), "-T", "2", "--num-samples", "3", "--reference-samples", "4", *extra])


def test_evaluate_design_resumes_from_the_images_it_finished(artefacts, tmp_path, capsys):
    out = tmp_path / "floor"
    assert _floor(artefacts, out, "--num-images", "1", "--k1", "50") == 0
    first = json.loads((out / "noise_floor.json").read_text())
    assert [r["index"] for r in first["rows"]] == [0] and first["settings"]["num_samples"] == 3
    # a finished image is read back, not measured again: a marked row survives the longer run
    first["rows"][0]["between"] = 123.0
    (out / "noise_floor.json").write_text(json.dumps(first))
    assert _floor(artefacts, out, "--num-images", "2", "--k1", "50") == 0
    resumed = json.loads((out / "noise_floor.json").read_text())
    assert [r["index"] for r in resumed["rows"]] == [0, 1] and resumed["rows"][0]["between"] == 123.0
    # and what it reads back is what a fresh run makes (every image's seeds derive from its index)
    assert _floor(artefacts, tmp_path / "fresh", "--num-images", "2", "--k1", "50") == 0
    fresh = json.loads((tmp_path / "fresh" / "noise_floor.json").read_text())
    assert fresh["rows"][1] == resumed["rows"][1]
    assert {**fresh["rows"][0], "between": 123.0} == resumed["rows"][0]
    # other settings into the same folder: refused, naming the difference, and nothing is overwritten
    capsys.readouterr()
    assert _floor(artefacts, out, "--num-images", "2", "--k1", "60") == 2
    assert "k1: stored 50, now 60" in capsys.readouterr().err
    assert _floor(artefacts, out, "--num-images", "2", "--k1", "50", "--first-num-samples", "2") == 2
    assert "first_num_samples: stored None, now 2" in capsys.readouterr().err
    assert json.loads((out / "noise_floor.json").read_text()) == resumed


def test_generate_refuses_an_oracle_avp_and_takes_the_honest_route(artefacts, tmp_path, capsys):
    from ppl_attention.artifacts import read_manifest

    base = [
        "generate",
        "--device",
        "cpu",
        "--prior",
        str(artefacts / "gp"),
        "--num-images",
        "2",
        "-T",
        "2",
        "--num-samples",
        "4",
        "--k1",
        "100",
        "--search",
        "exhaustive",
    ]
    assert main([*base, "--avp", str(artefacts / "avp"), "--out", str(tmp_path / "oracle")]) == 2
    err = capsys.readouterr().err
    assert "--avp" in err and "design image 0 of the train split" in err and "--exclude-design" in err
    assert not (tmp_path / "oracle").exists()
    # the diagnosis: allowed, and recorded in the store's manifest
    assert (
        main([*base, "--avp", str(artefacts / "avp"), "--allow-oracle", "true", "--out", str(tmp_path / "diag")]) == 0
    )
    assert read_manifest(tmp_path / "diag")["config"]["allow_oracle"] is True
    # the honest route: an AVP trained without the design images
    avp = tmp_path / "held-avp"
    assert main([*train_avp_argv(avp), "--dataset-from", str(artefacts / "avp"), "--exclude-design", "2"]) == 0
    assert read_manifest(avp)["config"]["held_out"]["images"] == 2
    assert main([*base, "--avp", str(avp), "--out", str(tmp_path / "honest")]) == 0
    config = read_manifest(tmp_path / "honest")["config"]
    assert "allow_oracle" not in config
    record = json.loads((tmp_path / "honest" / "records" / "0000000.json").read_text())
    assert len(record["distinct"]) == 1 and 1 <= record["distinct"][0] <= 4
    assert main([*base, "--num-images", "3", "--avp", str(avp), "--out", str(tmp_path / "three")]) == 2
    assert "design image 2" in capsys.readouterr().err


def test_every_command_of_the_design_pools_independent_draws(artefacts, tmp_path):
    """--pooled-draws K pools K independent draws of --num-samples completions: generate records it in the store
    (a store of one draw keeps its config), evaluate-design and calibrate-noise score the pooled completions."""
    from ppl_attention.artifacts import read_manifest

    gen = ["generate", "--device", "cpu", "--avp", str(artefacts / "avp"), "--prior", str(artefacts / "gp")]
    gen += ["--num-images", "1", "-T", "2", "--num-samples", "3", "--k1", "60", "--allow-oracle", "true"]
    assert main([*gen, "--pooled-draws", "3", "--out", str(tmp_path / "pooled")]) == 0
    assert read_manifest(tmp_path / "pooled")["config"]["pooled_draws"] == 3
    record = json.loads((tmp_path / "pooled" / "records" / "0000000.json").read_text())
    assert 1 <= record["distinct"][0] <= 9
    assert main([*gen, "--out", str(tmp_path / "one")]) == 0
    assert "pooled_draws" not in read_manifest(tmp_path / "one")["config"]
    floor = ["evaluate-design", "--device", "cpu", "--avp", str(artefacts / "avp"), "--prior", str(artefacts / "gp")]
    floor += ["--num-images", "1", "-T", "2", "--num-samples", "3", "--reference-samples", "3", "--k1", "60"]
    assert main([*floor, "--pooled-draws", "2", "--out", str(tmp_path / "floor")]) == 0
    summary = json.loads((tmp_path / "floor" / "summary.json").read_text())
    assert summary["pooled_draws"] == 2 and summary["all"]["between"]["n"] == 1
    row = json.loads((tmp_path / "floor" / "noise_floor.json").read_text())["rows"][0]
    assert all(1 <= row["draws"][k]["distinct"] <= 6 for k in ("a", "b", "reference"))
    cal = ["calibrate-noise", "--prior", str(artefacts / "gp"), "--num-images", "2", "-T", "1", "--scales", "2"]
    cal += ["--num-samples", "3", "--k1", "60", "--min-ess", "1", "--pooled-draws", "2", "--out", str(tmp_path / "cal")]
    assert main(cal) == 0
    assert json.loads((tmp_path / "cal" / "summary.json").read_text())["pooled_draws"] == 2
    # the pooled draws' scored candidates: the same scale, another label estimate, recorded
    assert main([*cal[:-1], str(tmp_path / "scored"), "--label-estimate", "scored"]) == 0
    assert json.loads((tmp_path / "scored" / "summary.json").read_text())["label_estimate"] == "scored"
    # --per-step writes each step's multiplier times the base schedule as the chosen noise
    assert main([*cal[:-1], str(tmp_path / "steps"), "-T", "2", "--scales", "2", "4", "--per-step"]) == 0
    calibration = json.loads((tmp_path / "steps" / "calibration.json").read_text())
    base, scales = calibration["sigma"], calibration["per_step"]
    assert len(scales) == 2 and set(scales) <= {2.0, 4.0}
    assert calibration["chosen_sigma"] == pytest.approx([round(b * m, 2) for b, m in zip(base, scales)])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["calibrate-noise", "--num-images", "0"], "--num-images must be an int >= 1, got 0"),
        (["calibrate-noise", "--scales", "1", "-2"], "--scales must be a finite number > 0, got -2.0"),
        (["calibrate-noise", "--criterion", "epe"], "--criterion 'epe' needs --avp"),
        (["calibrate-noise", "--pooled-draws", "0"], "--pooled-draws must be an int >= 1, got 0"),
        (["evaluate-design", "--avp", "a", "--pooled-draws", "0"], "--pooled-draws must be an int >= 1, got 0"),
        (["evaluate-design", "--avp", "a", "--glimpses", "1"], "--glimpses must be an int >= 2, got 1"),
        (
            ["evaluate-design", "--avp", "a", "--searches", "pyramid:depth=2"],
            "the pyramid search has no option 'depth'",
        ),
        (["evaluate-design", "--avp", "a", "--searches", "amortised"], "'amortised' needs an EPE-map network"),
        (
            ["evaluate-design", "--avp", "a", "--num-samples", "10", "--reference-samples", "5"],
            "--reference-samples must be >= --num-samples (10), got 5",
        ),
    ],
)
def test_settings_are_checked_by_their_objects_and_shown_as_flags(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*argv, "--prior", str(tmp_path), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_optimism_is_how_much_worse_the_other_draw_scores_a_draws_choice():
    from ppl_attention.design.noise_floor import _optimism

    own, other = torch.tensor([2.0, 1.0, 3.0]), torch.tensor([1.0, 1.5, 0.5])
    assert _optimism(own, other) == pytest.approx(0.5)  # own picks location 1 (1.0); the other scores it 1.5
    assert _optimism(own, own) == 0.0  # a draw agrees with itself
