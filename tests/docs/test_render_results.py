"""docs/results/render.py: the committed templates and records give the committed docs/RESULTS.md exactly, tables
are written in their columns' formats, and ``collect`` turns run directories into mean ± sd records over seeds."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


@pytest.fixture(scope="module")
def render():
    spec = importlib.util.spec_from_file_location("docs_results_render", RESULTS / "render.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run(path: Path, summary: dict) -> Path:
    path.mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def test_committed_records_render_the_committed_page(render):
    assert render.render(RESULTS) == (RESULTS.parent / "RESULTS.md").read_text()


def test_every_record_is_used_by_a_template(render):
    text = "".join(t.read_text() for t in (RESULTS / "templates").glob("*.md"))
    used = {key for _, key in render.PLACEHOLDER.findall(text)}
    stored = {str(p.relative_to(RESULTS / "records").with_suffix("")) for p in (RESULTS / "records").rglob("*.json")}
    assert stored == used


def test_cells_follow_their_column_format(render):
    record = {
        "columns": ["method", "iterations", "accuracy", "speed-up"],
        "formats": [None, {"format": ",.0f"}, {"format": ".1f", "suffix": " %"}, {"format": ".1f", "suffix": "x"}],
        "rows": [["RAM", 24000, {"mean": 86.66, "sd": 0.04}, 1], ["PS-NOGS", {"mean": 3500, "sd": 120.4}, None, 6.857]],
    }
    assert render.render_table(record).splitlines() == [
        "| method | iterations | accuracy | speed-up |",
        "|---|---|---|---|",
        "| RAM | 24,000 | 86.7 ± 0.0 % | 1.0x |",
        "| PS-NOGS | 3,500 ± 120 | — | 6.9x |",
    ]
    with pytest.raises(ValueError, match="rows"):
        render.render_table({"columns": ["a", "b"], "rows": [[1]]})


def test_collect_gives_mean_and_sd_over_seeds(render, tmp_path, monkeypatch):
    runs = [
        _run(
            tmp_path / f"nogs-s{i}",
            {
                "test_greedy_acc": acc,
                "iterations_to_convergence_loss": it,
                "converged": True,
                "timing": {"seconds": 10.0 * (i + 1)},
                "run": {"command": ["ppl-attention", "train", "--seed", str(i)]},
            },
        )
        for i, (acc, it) in enumerate([(0.5, 1000), (0.6, 1200), (0.7, 1400)])
    ]
    runs.append(
        _run(
            tmp_path / "none-s0",
            {"test_greedy_acc": 0.4, "iterations_to_convergence_loss": 3000, "timing": {"seconds": 5.0}},
        )
    )
    record = render.collect(runs)
    assert record["columns"] == ["run", "seeds", "iterations_to_convergence_loss", "test_greedy_acc", "timing.seconds"]
    rows = {r[0]: r for r in record["rows"]}
    assert rows["nogs"][1] == 3 and rows["none"][1] == 1
    assert rows["nogs"][2] == {"mean": 1200.0, "sd": 200.0}
    assert math.isclose(rows["nogs"][3]["mean"], 0.6) and math.isclose(rows["nogs"][3]["sd"], 0.1)
    assert rows["nogs"][4] == {"mean": 20.0, "sd": 10.0}
    assert rows["none"][3] == {"mean": 0.4, "sd": 0.0}
    assert record["source"]["commands"][0] == ["ppl-attention", "train", "--seed", "0"]
    assert record["source"]["runs"][0] == str(tmp_path / "nogs-s0")  # outside the working directory: as given
    monkeypatch.chdir(tmp_path)
    assert render.collect(runs)["source"]["runs"][0] == "nogs-s0"  # inside it: relative, no machine's path
    picked = render.collect(runs, metrics=["test_greedy_acc=.1%", "iterations_to_convergence_loss"], fmt=",.0f")
    assert render.render_table(picked).splitlines()[2:] == [
        "| nogs | 3 | 60.0% ± 10.0% | 1,200 ± 200 |",
        "| none | 1 | 40.0% ± 0.0% | 3,000 ± 0 |",
    ]


def test_collect_refuses_a_directory_without_summary(render, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="run_dirs"):
        render.collect([tmp_path / "empty"])
    with pytest.raises(ValueError, match="run_dirs"):
        render.collect([])


def test_collected_record_renders_into_a_new_section(render, tmp_path):
    """A new section is a template and its records: collect, then render, and --check sees the page stale."""
    root = tmp_path / "results"
    (root / "templates").mkdir(parents=True)
    (root / "templates" / "00-header.md").write_text("# Results\n\n")
    (root / "templates" / "01-new.md").write_text("## New\n\n{{ table 01-new/runs }}\n\nPS-NOGS wins.\n")
    runs = [_run(tmp_path / "runs" / f"ram-s{i}", {"acc": a}) for i, a in enumerate([0.25, 0.75])]
    out = root / "records" / "01-new" / "runs.json"
    assert render.main(["collect", *map(str, runs), "--out", str(out), "--format", ".2f"]) == 0
    page = tmp_path / "RESULTS.md"
    page.write_text("stale\n")
    assert render.main(["--root", str(root), "--out", str(page), "--check"]) == 1
    assert render.main(["--root", str(root), "--out", str(page)]) == 0
    assert page.read_text() == (
        "# Results\n\n## New\n\n| run | seeds | acc |\n|---|---|---|\n| ram | 2 | 0.50 ± 0.35 |\n\nPS-NOGS wins.\n"
    )
    assert render.main(["--root", str(root), "--out", str(page), "--check"]) == 0
    (root / "templates" / "02-missing.md").write_text("{{ json 02-missing/bench }}\n")
    with pytest.raises(FileNotFoundError, match="02-missing/bench"):
        render.render(root)
