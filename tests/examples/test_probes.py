"""examples/probe_imitability.py and probe_dispersion.py run end to end at a tiny size and write their tables."""

import json

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")


def test_both_probes_write_their_tables(load_example, tmp_path, capsys):
    imitability = load_example("probe_imitability").main(
        [
            "--out",
            str(tmp_path),
            "--ram-iterations",
            "4",
            "--glimpses",
            "3",
            "--num-images",
            "60",
            "--sizes",
            "20",
            "--heads",
            "dense",
            "gaussian",
            "--bc-iterations",
            "5",
            "--test-images",
            "20",
            "--held-out",
            "10",
        ]
    )
    rows = imitability["rows"]
    assert [(r["head"], r["N"]) for r in rows] == [("trained (dense)", "-"), ("dense", 20), ("gaussian", 20)]
    assert all(
        0 <= r["held_out_agreement"] <= r["held_out_agreement_1_cell"] <= 1 and r["held_out_nll"] > 0 for r in rows
    )
    assert json.loads((tmp_path / "imitability.json").read_text())["held_out"] == 10
    for r in rows:  # one agreement per glimpse, whose mean is the overall one
        by_step = r["held_out_agreement_by_step"]
        assert len(by_step) == 3 and sum(by_step) / 3 == pytest.approx(r["held_out_agreement"], abs=1e-6)
    result = load_example("probe_dispersion").main(
        ["--out", str(tmp_path), "--run", str(tmp_path / "ram"), "--num-images", "30", "--k", "3"]
    )
    assert result["states"] == 30 and [r["step"] for r in result["steps"]] == [1, 2, 3]
    assert all(r["random_spread"] >= 0 and 0 <= r["greedy_on_a_target"] <= 1 for r in result["steps"])
    assert "| step |" in capsys.readouterr().err
