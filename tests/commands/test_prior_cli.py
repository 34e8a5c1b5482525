"""``ppl-attention build-prior``: a small cluttered-MNIST prior end to end, and its errors."""

import json

from ppl_attention.cli import main
from ppl_attention.completion.importance import ImportanceCompletion, open_prior
from ppl_attention.sensor import Sensor


def test_build_prior_small(tmp_path, capsys):
    out = tmp_path / "prior"
    args = [
        "build-prior",
        "--dataset",
        "cluttered-mnist",
        "--kind",
        "database",
        "--database-size",
        "120",
        "--out",
        str(out),
        "--components",
        "12",
        "--fit-samples",
        "100",
        "--chunk-size",
        "50",
    ]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == 120 and summary["components"] == 12 and summary["positions"] == 81
    db, index = open_prior(out)
    assert db.images.shape == (120, 1, 60, 60) and set(db.labels.tolist()) <= set(range(10))
    assert index.grid == Sensor.retina()  # the dataset's default sensor
    sampler = ImportanceCompletion(db, index, k1=50)
    truth = db.get([7])[0]
    out_samples = sampler.sample(index.grid.all_locations()[:1], index.grid.extract(truth[None], [[0]])[0], 10)
    assert 1 <= len(out_samples) <= 10
    # Running it again reuses the finished prior, and reports the same artefact: only wall-clock fields differ
    # (its size must not count the summary.json the first run wrote beside it).
    assert main(args) == 0
    again = json.loads((out / "summary.json").read_text())
    clock = {k for k in summary if k.endswith("seconds") or k in ("peak_rss_mb", "run")}
    assert {k: v for k, v in again.items() if k not in clock} == {k: v for k, v in summary.items() if k not in clock}


def test_build_prior_errors(tmp_path, capsys):
    assert main(["build-prior", "--database-size", "0", "--out", str(tmp_path / "a")]) == 2
    assert "--database-size must be an int >= 1" in capsys.readouterr().err
    assert (
        main(
            [
                "build-prior",
                "--dataset",
                "cluttered-mnist",
                "--root",
                "x",
                "--database-size",
                "5",
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 2
    )
    assert "--root is not used" in capsys.readouterr().err
