"""benchmarks/time_notebooks.py times every code cell of a notebook in a fresh kernel and reports a failing cell
instead of hiding it (a tiny notebook written here, so the test does not depend on the real notebooks' sizes)."""

from pathlib import Path

import pytest


def _notebook(path: Path, *cells: str) -> Path:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# a tiny notebook")] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


def test_cells_timed_and_environment_restored(load_benchmark, tmp_path, monkeypatch):
    pytest.importorskip("nbclient")
    tn = load_benchmark("time_notebooks")
    monkeypatch.setenv("PPL_WALKTHROUGH_AVP", "somewhere")  # never reused by a timed run
    nb = _notebook(
        tmp_path / "t.ipynb",
        "import os, time\ntime.sleep(0.3)\nt0 = time.process_time()\nwhile time.process_time() - t0 < 0.5: pass",
        "assert os.environ['PPL_NOTEBOOK_SMALL'] == '1' and 'PPL_WALKTHROUGH_AVP' not in os.environ\n"
        "open('written.txt', 'w').write(os.environ['OMP_NUM_THREADS'])",
    )
    r = tn.time_notebook(nb, tmp_path, small=True, threads=1, timeout=60, executed=tmp_path / "executed")
    executed = pytest.importorskip("nbformat").read(tmp_path / "executed" / "t.ipynb", as_version=4)
    assert [c.execution_count for c in executed.cells[1:]] == [1, 2]  # written back with its outputs
    assert r["error"] is None and [c["cell"] for c in r["cells"]] == [1, 2]  # code cells only, by index
    assert r["cells"][0]["seconds"] >= 0.3 and r["cells"][0]["first_line"] == "import os, time"
    assert r["total_seconds"] >= r["cells"][0]["seconds"]
    assert r["kernel_cpu_seconds"] >= 0.5  # the kernel's busy loop counted (sleeping is not)
    assert (tmp_path / "written.txt").read_text() == "1"  # ran in the working folder, with one thread
    import os

    assert os.environ["PPL_WALKTHROUGH_AVP"] == "somewhere" and "PPL_NOTEBOOK_SMALL" not in os.environ


def test_failing_cell_is_reported(load_benchmark, tmp_path):
    pytest.importorskip("nbclient")
    tn = load_benchmark("time_notebooks")
    nb = _notebook(tmp_path / "t.ipynb", "x = 1", "raise RuntimeError('boom')", "y = 2")
    r = tn.time_notebook(nb, tmp_path, small=False, threads=1, timeout=60, executed=tmp_path / "executed")
    assert r["error"] == "cell 2: RuntimeError: boom"
    assert not (tmp_path / "executed").exists()  # a failed run is not written back
    assert [c["cell"] for c in r["cells"]] == [1]  # timed up to the failure, nothing after it
