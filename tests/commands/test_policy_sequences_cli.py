"""``ppl-attention policy-sequences``: a trained run's greedy sequences supervise a PS-RAM run."""

import json

import pytest

from ppl_attention.cli import main
from ppl_attention.design.store import SequenceStore
from tests._helpers import tiny_train

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = tiny_train(glimpses=3)


def test_a_trained_runs_sequences_supervise_another_run(tmp_path, capsys):
    ram = tmp_path / "ram"
    assert main(["train", "--out", str(ram), "--data-seed", "3"] + TINY) == 0
    store = tmp_path / "store"
    assert main(["policy-sequences", str(ram), "--out", str(store), "--num-images", "6"]) == 0
    s = SequenceStore.open(store)
    assert s.indices() == list(range(6)) and s.T == 3 and s.config["split"] == "train"
    assert s.config["data"]["seed"] == 3 and s.config["source"] == "policy"
    other = SequenceStore.create(
        tmp_path / "nogs", {"dataset": "cluttered-mnist", "task": "label", "grid": s.grid, "T": 3, "seed": 3}
    )
    for i in (2, 9):
        other.write_record(i, 0, [0, 1, 2])
    same = tmp_path / "same-images"
    assert main(["policy-sequences", str(ram), "--out", str(same), "--indices-of", str(tmp_path / "nogs")]) == 0
    assert SequenceStore.open(same).indices() == [2, 9]
    ps = tmp_path / "ps-ram"
    assert (
        main(
            [
                "train",
                "--out",
                str(ps),
                "--supervision",
                "nogs",
                "--sequences",
                str(store),
                "--num-supervised",
                "6",
                "--seed",
                "1",
            ]
            + TINY
        )
        == 0
    )
    summary = json.loads((ps / "summary.json").read_text())
    assert summary["num_supervised"] == 6
    assert {"test_greedy_acc", "test_sampled_acc", "test_mc_acc"} <= set(summary)
    assert json.loads((ps / "manifest.json").read_text())["config"]["data_seed"] == 3  # the store's canvases
    capsys.readouterr()
    assert main(["policy-sequences", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "RUN" in capsys.readouterr().err
