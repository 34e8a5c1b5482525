"""With one scale, the paper's presets give exactly the sequences of the code before the multi-scale sensor."""

import importlib.util
import json
from pathlib import Path

import torch

HERE = Path(__file__).parent
FIXTURE = HERE.parent / "fixtures" / "cub_preset_sequences.json"


def _module():
    spec = importlib.util.spec_from_file_location("paper_preset_sequences", HERE / "paper_preset_sequences.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paper_presets_keep_todays_sequences(tmp_path, one_thread):
    expected = json.loads(FIXTURE.read_text())  # written by commit 7ae59e7, before the sensor had scales
    got = _module().preset_sequences(tmp_path)
    assert got["locations"] == expected["locations"]
    assert torch.allclose(torch.tensor(got["epe"]), torch.tensor(expected["epe"]), atol=1e-6, rtol=0)
