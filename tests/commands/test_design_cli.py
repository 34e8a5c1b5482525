"""CLI: import / export of the paper's sequences, plot epe, and generate's refusals."""

from pathlib import Path

import pytest
from PIL import Image

from ppl_attention.cli import main
from ppl_attention.design.executors import generate_sequences
from ppl_attention.design.sequential import DesignSettings
from ppl_attention.design.store import SequenceStore
from ppl_attention.design.toy import ToyFactory

# the paper's sample sequence files, copied into the repository (format: docs/INTERFACES.md)
PAPER = Path(__file__).resolve().parents[1] / "fixtures" / "paper-sequences"


def test_generate_offers_every_search_strategy():
    import dataclasses

    from ppl_attention.pipeline.design import NETWORK_SEARCH_NAMES, GenerateConfig
    from ppl_attention.design.search import NETWORK_SEARCHES, SEARCHES

    field = {f.name: f for f in dataclasses.fields(GenerateConfig)}["search"]
    assert field.metadata["choices"] == list(SEARCHES)
    assert NETWORK_SEARCH_NAMES == NETWORK_SEARCHES


def test_import_export_roundtrip(tmp_path, capsys):
    assert main(["import-sequences", str(PAPER / "birds"), "--grid", "cub", "--out", str(tmp_path / "s")]) == 0
    assert len(SequenceStore.open(tmp_path / "s")) == 5
    assert main(["export-sequences", str(tmp_path / "s"), "--format", "paper", "--out", str(tmp_path / "o")]) == 0
    for f in (PAPER / "birds").glob("*.txt"):
        assert (tmp_path / "o" / f.name).read_bytes() == f.read_bytes()
    assert main(["import-sequences", str(tmp_path / "missing"), "--grid", "cub", "--out", str(tmp_path / "x")]) == 2
    assert "src" in capsys.readouterr().err
    # CelebA sequences are not on the CUB grid: refused, naming the file
    assert main(["import-sequences", str(PAPER / "celebhq/20"), "--grid", "cub", "--out", str(tmp_path / "y")]) == 2


def test_plot_epe(tmp_path):
    f = ToyFactory()
    store = SequenceStore.create(tmp_path / "s", {"dataset": "toy", "task": "label", "grid": f()[0].grid, "T": 3})
    generate_sequences(store, f, [0], DesignSettings(T=3, num_samples=10), progress=False)
    out = tmp_path / "epe.png"
    assert main(["plot", "epe", str(tmp_path / "s"), "--index", "0", "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 300
    assert main(["plot", "epe", str(tmp_path / "s"), "--index", "5", "--out", str(out)]) == 2


def test_generate_refuses_bad_input(tmp_path, capsys):
    base = ["generate", "--out", str(tmp_path / "g"), "--prior", str(tmp_path)]
    assert main(base + ["--avp", str(tmp_path / "no-avp")]) == 2
    assert "--avp" in capsys.readouterr().err
    assert main(base + ["--avp", str(tmp_path), "--shard", "3/2"]) == 2
    assert "--shard" in capsys.readouterr().err


def test_generate_offers_every_precision():
    import dataclasses

    from ppl_attention.pipeline.design import GenerateConfig
    from ppl_attention.design.epe import PRECISIONS

    field = {f.name: f for f in dataclasses.fields(GenerateConfig)}["precision"]
    assert field.metadata["choices"] == list(PRECISIONS)


def test_noise_schedule_is_the_flag_the_generative_priors_or_the_datasets(tmp_path):
    """One answer for every command that draws completions (generate, evaluate-epe-net): --sigma, else a generative
    prior's own schedule, else the dataset's default; a dataset without one needs --sigma."""
    from types import SimpleNamespace

    from ppl_attention.artifacts import write_manifest
    from ppl_attention.pipeline.design import noise_schedule
    from ppl_attention.completion.importance import PRIOR_KIND

    write_manifest(tmp_path / "gen", PRIOR_KIND, {"prior": "generative", "sigma": [48.0, 67.9]})
    write_manifest(tmp_path / "db", PRIOR_KIND, {"prior": "database"})
    data = SimpleNamespace(noise_schedule=(192.0, 271.5))
    assert noise_schedule([10, 20], tmp_path / "gen", data, "d") == ([10.0, 20.0], "--sigma")
    assert noise_schedule(None, tmp_path / "gen", data, "d")[0] == [48.0, 67.9]
    assert noise_schedule(None, tmp_path / "db", data, "d") == ([192.0, 271.5], "the d dataset's default")
    with pytest.raises(ValueError, match="has no default noise schedule"):
        noise_schedule(None, tmp_path / "db", SimpleNamespace(), "d")
