"""``ppl-attention train-avp`` / ``evaluate-avp`` end to end on a few real cluttered-MNIST canvases."""

import json

from ppl_attention.cli import main
from tests._helpers import TINY_AVP


def test_train_then_evaluate_avp_cli(tmp_path, capsys):
    out = tmp_path / "avp"
    data = ["--dataset", "cluttered-mnist", "--train-size", "64"]
    rc = main(["train-avp", "--device", "cpu", *data, "--out", str(out), *TINY_AVP, "--glimpses", "2"])
    assert rc == 0
    for name in ("avp.safetensors", "avp.json", "manifest.json", "summary.json", "history.json"):
        assert (out / name).is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "avp" and manifest["config"]["dataset"] == "cluttered-mnist"
    assert manifest["config"]["T"] == 2 and manifest["config"]["grid"]["image_size"] == [60, 60]
    rc = main(["evaluate-avp", str(out), "--device", "cpu", "--draws", "2"])
    assert rc == 0
    ev = json.loads((out / "evaluation.json").read_text())
    assert [r["t"] for r in ev["per_glimpses"]] == [0, 1, 2] and ev["draws"] == 2
    assert all(
        r["n"] == 1000
        and r["images"] == 500
        and 0 <= r["accuracy"] <= 1
        and 0 <= r["ece"] <= 1
        and r["ece_low"] <= r["ece_high"]
        and r["ece_noise_floor"] > 0
        for r in ev["per_glimpses"]
    )
    summary = json.loads((out / "evaluation_summary.json").read_text())
    assert len(summary["ece_by_t"]) == 3 and len(summary["ece_95_by_t"]) == 3
    assert "best_epoch" in json.loads((out / "summary.json").read_text())  # train-avp's summary is kept
    assert (out / "avp_evaluation.png").stat().st_size > 1000
    # --recalibrate refits on the validation split and rewrites the AVP directory, keeping its training record
    rc = main(
        [
            "evaluate-avp",
            str(out),
            "--device",
            "cpu",
            "--draws",
            "1",
            "--recalibrate",
            "--calibration-draws",
            "1",
            "--glimpses",
            "1",
        ]
    )
    assert rc == 0
    ev = json.loads((out / "evaluation.json").read_text())
    after = json.loads((out / "manifest.json").read_text())["config"]
    assert ev["recalibrated"]["draws"] == 1 and after["calibration"]["method"] == ev["recalibrated"]["method"]
    assert after["best_epoch"] == manifest["config"]["best_epoch"] and after["T"] == 2
    assert main(["evaluate-avp", str(out), "--device", "cpu", "--draws", "0"]) == 2
    assert "--draws" in capsys.readouterr().err


def test_evaluate_avp_refuses_missing_or_corrupt_dirs(tmp_path, capsys):
    assert main(["evaluate-avp", str(tmp_path / "nope"), "--device", "cpu"]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text(json.dumps({"kind": "sequences", "config": {}}))
    assert main(["evaluate-avp", str(bad), "--device", "cpu"]) == 2
    assert "expected 'avp'" in capsys.readouterr().err
    (bad / "manifest.json").write_text(json.dumps({"kind": "avp", "config": {"T": 1}}))
    (bad / "avp.safetensors").write_bytes(b"pickle? no")
    (bad / "avp.json").write_text("{}")
    assert main(["evaluate-avp", str(bad), "--device", "cpu"]) == 2
    assert "not a valid safetensors" in capsys.readouterr().err
