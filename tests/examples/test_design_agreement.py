"""examples/design_agreement.py: per-step agreement of two designs of the same images, on stores written by hand."""

import json

import pytest

from ppl_attention.design.store import SequenceStore
from ppl_attention.sensor import Sensor

GRID = Sensor(12, 4, stride=4)  # 3 x 3 locations: cells (row, col) = divmod(location, 3)


def _store(path, sequences, **config):
    store = SequenceStore.create(path, {"dataset": "toy", "task": "label", "grid": GRID, "T": 3, **config})
    for i, seq in sequences.items():
        store.write_record(i, 0, seq)
    return path


def test_agreement_per_step_and_given_the_same_history(load_example, tmp_path, capsys):
    module = load_example("design_agreement")
    a = _store(tmp_path / "a", {0: [4, 0, 1], 1: [4, 8, 2], 2: [4, 2, 6], 3: [4, 3, 5]})
    b = _store(tmp_path / "b", {0: [4, 0, 2], 1: [4, 5, 2], 2: [4, 2, 6], 3: [4, 3, 5], 9: [0, 1, 2]})
    result = module.main([str(a), str(b), "--out", str(tmp_path / "agreement.json")])
    assert result["images"] == 4 and result["uniform"] == pytest.approx(1 / 9)
    one, two, three = result["steps"]
    assert one["same"] == 1.0 and one["agreed_before"] == 4 and one["same_given_agreed"] == 1.0
    # step 2: image 1 chose 8 against 5, one cell apart (rows 2 and 1, column 2)
    assert two["same"] == 0.75 and two["within_1_cell"] == 1.0 and two["distance"] == 0.25
    # step 3: images 0, 2 and 3 agreed so far; image 0 then chose 1 against 2; image 1 agrees after diverging
    assert three["agreed_before"] == 3 and three["same_given_agreed"] == pytest.approx(2 / 3)
    assert three["same"] == 0.75
    assert json.loads((tmp_path / "agreement.json").read_text())["steps"][2]["agreed_before"] == 3
    assert "| 3 | 0.750 | 1.000 | 0.25 | 0.667 of 3 |" in capsys.readouterr().out
    other = _store(tmp_path / "c", {0: [4, 0, 1]}, split="test")
    with pytest.raises(SystemExit, match="differ in 'split'"):
        module.main([str(a), str(other)])
