"""Every summary.json a command writes carries the run's record: command line, package versions, machine."""

import json
import sys

from ppl_attention.commands._common import write_summary
from ppl_attention.runtime import run_record


def test_write_summary_adds_the_run_record(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["/somewhere/bin/ppl-attention", "train", "--out", "x"])
    path = write_summary(tmp_path, {"test_greedy_acc": 0.5})
    saved = json.loads(path.read_text())
    assert saved["test_greedy_acc"] == 0.5
    run = saved["run"]
    assert run["command"] == ["ppl-attention", "train", "--out", "x"]
    assert run["versions"]["torch"] and run["versions"]["python"]
    assert run["machine"]["cpu_count"] >= 1 and run["machine"]["torch"].startswith(run["versions"]["torch"])
    assert run["time"].endswith("+00:00")
    assert "run:" not in capsys.readouterr().out.replace("summary written", "")


def test_run_record_is_json_serialisable():
    assert json.loads(json.dumps(run_record()))["command"][1:] == sys.argv[1:]
