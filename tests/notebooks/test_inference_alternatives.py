"""The inference-alternatives notebook runs end to end at its small size and shows every method's row: the
generative prior, the database prior, NUTS and the cGAN."""
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "inference_alternatives.ipynb"


def test_notebook_runs_small(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PPL_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("PPL_NOTEBOOK_OUT", str(tmp_path / "out"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                            ).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    texts = [o.get("data", {}).get("text/markdown", "") for c in nb.cells if c.cell_type == "code"
             for o in c.outputs]
    table = next(t for t in texts if t.startswith("| sequences | method |"))
    for method in ("generative", "importance", "nuts-vae", "cgan"):
        assert f"| drawn | {method} | 1 |" in table and f"| drawn | {method} | 2 |" in table
    out = tmp_path / "out" / "comparison"
    assert (out / "comparison.csv").is_file() and (out / "completion_samples.png").is_file()
