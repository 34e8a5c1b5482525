"""The README is a front page: short, and its Python example runs verbatim and prints a designed sequence."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_is_a_front_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    assert "make demo" in text and "make test" in text and "docs/RESULTS.md" in text
    figure = re.search(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert figure and (README.parent / figure.group(1)).is_file()


@pytest.mark.slow
def test_readme_api_example_runs_verbatim_and_prints_sequences(tmp_path, monkeypatch, capsys):
    blocks = _python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) == 1, "the README has one Python example"
    monkeypatch.chdir(tmp_path)  # it writes under runs/
    exec(compile(blocks[0], "README.md", "exec"), {})
    printed = capsys.readouterr().out
    lines = re.findall(r"^image (\d+): glimpses at locations \[(\d+), (\d+), (\d+)\]$", printed, flags=re.M)
    assert [int(line[0]) for line in lines] == [0, 1]
    for line in lines:
        assert all(0 <= int(x) < 81 for x in line[1:])  # the 9 x 9 grid of the cluttered canvases
    assert (tmp_path / "runs" / "api" / "seqs" / "manifest.json").is_file()
