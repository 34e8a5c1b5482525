import subprocess
import sys

import pytest

from ppl_attention.cli import build_parser, main


def test_help_lists_subcommands_and_shared_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        opts = {s for a in p._actions for s in a.option_strings}
        assert {"--device", "--seed", "--config"} <= opts, name


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "ppl_attention.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "ppl-attention" in out.stdout


def test_errors_are_reported_not_raised(capsys, tmp_path):
    assert main(["baselines", "--out", str(tmp_path / "x"), "--attention", "no-equals-sign"]) == 2
    assert "NAME=FILE.json" in capsys.readouterr().err
