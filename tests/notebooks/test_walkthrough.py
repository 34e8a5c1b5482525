"""The walkthrough notebook runs end to end at its small size (cwd a tmp dir) through the pipeline functions,
draws its six figures and writes values consistent with the grid and the label."""
import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "walkthrough.ipynb"


def test_walkthrough_runs_small(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    for var in ("PPL_WALKTHROUGH_AVP", "PPL_WALKTHROUGH_PRIOR", "PPL_WALKTHROUGH_ATTENTION", "PPL_WALKTHROUGH_OUT",
                "PPL_WALKTHROUGH_INDEX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PPL_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("PPL_WALKTHROUGH_DEVICE", "cpu")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # faiss's OpenMP pool oversubscribes the shared test machine
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 6  # image, AVP evaluation, EPE maps, completions, posterior, hard-attention glimpses

    out = tmp_path / "runs" / "walkthrough"  # under runs/, which git ignores
    for name in ("image", "epe", "completions", "posterior", "hard_attention"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name
    s = json.loads((out / "walkthrough.json").read_text())
    T = 3  # the small size's T
    assert s["small"] and 0 <= s["label"] <= 9
    loc = s["near_optimal_locations"]
    assert len(loc) == T and len(set(loc)) == T and all(0 <= v < 81 for v in loc)
    assert len(s["network_locations"]) == T and all(0 <= v < 81 for v in s["network_locations"])
    assert 0 <= s["network_prediction"] <= 9
    assert len(s["avp_accuracy_by_t"]) == T + 1 and all(0 <= a <= 1 for a in s["avp_accuracy_by_t"])
    # the stages ran through the pipeline and left their artefacts (the design's store holds this one image)
    for name in ("avp", "prior", "hard-attention", "sequences-0"):
        assert (out / name / "manifest.json").is_file(), name
    assert len(s["completion_labels"]) == T + 1
    # the AVP posterior after 0..T glimpses: distributions over the 10 digits; EPEs are entropies (<= log 10)
    post = s["avp_posterior"]
    assert len(post) == T + 1 and all(len(p) == 10 and abs(sum(p) - 1) < 1e-4 for p in post)
    assert all(0 <= e <= 2.3026 + 1e-4 for e in s["epe_chosen"])
    # completions: T + 1 panels, each ESS between 1 and the number of samples drawn
    assert len(s["completion_ess"]) == T + 1 and all(1 - 1e-6 <= e <= 24 + 1e-6 for e in s["completion_ess"])
    # the same image as the dataset's test image 0
    from ppl_attention.data import load_dataset

    assert int(load_dataset("cluttered-mnist", split="test", seed=0)[0]["label"]) == s["label"]
