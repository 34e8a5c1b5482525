"""examples/dagger_epe_net.py on a tiny AVP and prior: round 0 distils the exhaustive maps, each DAgger round adds a
store of the exhaustive maps at the states the previous network reaches and retrains on all of them, the held-out
regret is measured against the exhaustive reference every round, and a rerun runs nothing."""

import json

import pytest
import torch

from ppl_attention.design.store import SequenceStore
from tests._helpers import untrained_avp_and_prior


@pytest.fixture(scope="module")
def dagger(load_example, tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("dagger")
    untrained_avp_and_prior(root)
    module = load_example("dagger_epe_net")
    argv = [
        "--avp",
        str(root / "avp"),
        "--prior",
        str(root / "prior"),
        "--out",
        str(root / "out"),
        "--num-images",
        "3",
        "--eval-images",
        "2",
        "--glimpses",
        "3",
        "--num-samples",
        "6",
        "--rounds",
        "1",
        "--patience",
        "2",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--design-option",
        "k1=40",
        "--design-option",
        "precision=bfloat16",
        "--design-option=pooled_draws=2",
        "--design-option=sigma=150,200",
        *[f"--net-option={o}" for o in ("width=4", "hidden=8", "embedding=2", "batch_size=4")],
    ]
    return module, root / "out", module.main(argv), argv


def test_each_round_trains_on_every_store_so_far(dagger):
    _, out, record, _ = dagger
    assert [row[0] for row in record["rows"]] == [0, 1] and [row[1] for row in record["rows"]] == [1, 2]
    stores = [json.loads((out / f"net-{r}" / "manifest.json").read_text())["inputs"] for r in (0, 1)]
    assert sorted(v for k, v in stores[0].items() if k.startswith("store")) == [str(out / "maps-0")]
    assert sorted(v for k, v in stores[1].items() if k.startswith("store")) == [
        str(out / "maps-0"),
        str(out / "maps-1"),
    ]
    # round 1's maps follow net-0's own sequences: the same images, the exhaustive search's maps at those states
    maps1 = SequenceStore.open(out / "maps-1")
    assert maps1.config["search"] == "dagger" and maps1.indices() == SequenceStore.open(out / "maps-0").indices()
    assert record["rows"][1][2] > record["rows"][0][2]  # more training examples
    for row in record["rows"]:
        assert 0.0 <= row[5] <= 1.0 and row[3] >= 0.0 and 0.0 <= row[6] <= 1.0
    assert record["noise_floor"]["mean_regret"] >= 0.0
    # every map and the evaluation pool two draws of completions at the given noise
    for store in ("maps-0", "maps-1", "reference"):
        config = SequenceStore.open(out / store).config
        assert config["pooled_draws"] == 2 and config["sigma"] == [150.0, 200.0]
    settings = json.loads((out / "eval-1" / "summary.json").read_text())["settings"]
    assert settings["pooled_draws"] == 2 and settings["sigma"] == [150.0, 200.0]
    saved = json.loads((out / "dagger.json").read_text())
    assert saved["rows"] == record["rows"] and saved["columns"] == record["columns"]


def test_a_rerun_runs_nothing_and_gives_the_same_table(dagger, capsys):
    module, out, record, argv = dagger
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("summary.json")}
    assert module.main(argv)["rows"] == record["rows"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("summary.json")} == stamps
    assert "cached" in capsys.readouterr().out
