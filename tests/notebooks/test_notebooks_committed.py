"""Every notebook is committed executed, as a tutorial: outputs (figures embedded) for every code cell and no
error among them, its first cell stating the size it ran at and how long that took, at most a few hundred KB,
and the stages driven through ``ppl_attention.pipeline`` rather than command-line argument lists."""
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
MAX_BYTES = 600_000


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"walkthrough.ipynb", "inference_alternatives.ipynb"}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_with_outputs(notebook):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(c.outputs and c.execution_count is not None for c in code), "a code cell without outputs"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "not executed top to bottom"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not [o for c in code for o in c.outputs if o.output_type == "stream" and o.name == "stderr"
                and "Traceback" in o.text]
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), "no figure embedded"
    assert notebook.stat().st_size <= MAX_BYTES


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_states_its_size_and_time(notebook):
    nbformat = pytest.importorskip("nbformat")
    intro = nbformat.read(notebook, as_version=4).cells[0]
    assert intro.cell_type == "markdown" and "__" not in intro.source  # no placeholder left
    assert re.search(r"\d+(\.\d+)? minutes", intro.source) and "2 CPU cores" in intro.source


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_calls_the_pipeline_not_the_cli(notebook):
    nbformat = pytest.importorskip("nbformat")
    source = "\n".join(c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code")
    assert "ppl_attention.cli" not in source and "main([" not in source and '"--' not in source
    assert "from ppl_attention import pipeline" in source
