"""The documentation site builds from the docstrings with warnings as errors (mkdocs --strict)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_docs_build_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "pipeline" / "index.html").read_text(encoding="utf-8")
    assert "design_sequences" in api and "tensor_dataset" in api  # the reference is generated from the docstrings
    for page in ("index.html", "concepts/index.html", "cli/index.html", "own_data/index.html"):
        assert (tmp_path / "site" / page).is_file()
