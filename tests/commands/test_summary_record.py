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


def test_summary_prints_output_paths_whole_and_absolute(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    deep = tmp_path.joinpath(*[f"a_rather_long_folder_name_{i}" for i in range(6)])
    deep.mkdir(parents=True)
    figures = [deep / "one.png", deep / "two.png"]
    for f in figures:
        f.write_bytes(b"png")
    relative = str(deep.relative_to(tmp_path))
    write_summary(
        deep,
        {
            "store": relative,
            "figures": [str(f.relative_to(tmp_path)) for f in figures],
            "table": {f"row{i}": list(range(20)) for i in range(5)},
            "note": "not a path",
        },
    )
    out = capsys.readouterr().out
    assert len(str(deep)) > 120 and f"  store: {deep}\n" in out
    assert f"  figures:\n    {figures[0]}\n    {figures[1]}\n" in out
    assert any(line.startswith("  table: {") and line.endswith("...") and len(line) <= 129 for line in out.splitlines())
    assert "  note: not a path\n" in out and f"summary written to {deep / 'summary.json'}" in out
