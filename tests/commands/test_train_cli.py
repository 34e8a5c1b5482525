import csv
import json

import pytest

from ppl_attention.cli import main
from ppl_attention.design.store import SequenceStore
from ppl_attention.sensor import Sensor
from tests._helpers import QUIET_TRAIN, tiny_train


pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_on_cluttered_mnist_then_plot_the_curves(tmp_path):
    out = tmp_path / "run"
    run = ["--out", str(out), "--supervision", "hgs", "--num-supervised", "50", "--iterations", "4", "--seed", "1"]
    sizes = ["--validate-every", "2", "--batch-size", "16", "--hidden", "16", "--glimpses", "3"]
    argv = ["train", *run, *sizes, *QUIET_TRAIN]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 4 and summary["num_supervised"] == 50 and summary["seed"] == 1
    assert 0.0 <= summary["test_greedy_acc"] <= 1.0
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [2, 4]
    sup = json.loads((out / "supervision.json").read_text())
    assert len(sup["indices"]) == 50 and len(sup["sequences"][0]) == 3
    assert main(argv) == 0  # finished run: resumes at the end, same log
    with open(out / "log.csv") as f:
        assert list(csv.DictReader(f)) == rows
    fig = tmp_path / "curves.png"
    assert main(["plot-attention", f"hgs={out}", f"hgs={out}", "--out", str(fig)]) == 0
    assert fig.stat().st_size > 1000


def test_bad_supervision_sources_are_refused(tmp_path, capsys):
    base = ["train", "--out", str(tmp_path / "x"), "--iterations", "2"]
    assert main(base + ["--supervision", "nogs"]) == 2
    assert "needs --sequences" in capsys.readouterr().err
    assert main(base + ["--supervision", "nogs", "--sequences", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    store = SequenceStore.create(
        tmp_path / "store", {"dataset": "translated-mnist", "task": "categorical", "grid": Sensor.mnist(), "T": 5}
    )
    store.write_record(0, 0, [1, 2, 3, 4, 5])
    # the dataset is read from the store; a --dataset that contradicts it is refused, naming both
    assert (
        main(base + ["--supervision", "nogs", "--sequences", str(tmp_path / "store"), "--dataset", "cluttered-mnist"])
        == 2
    )
    err = capsys.readouterr().err
    assert "--dataset 'cluttered-mnist' contradicts sequences" in err and "'translated-mnist'" in err
    assert main(["plot-attention", f"a={tmp_path / 'nothing'}", "--out", str(tmp_path / "f.png")]) == 2
    assert "no log.csv" in capsys.readouterr().err


def test_nogs_runs_of_any_seed_train_on_the_canvases_their_store_was_made_for(tmp_path, capsys):
    store = SequenceStore.create(
        tmp_path / "store",
        {
            "dataset": "cluttered-mnist",
            "task": "categorical",
            "data": {"name": "cluttered-mnist", "seed": 0},
            "grid": Sensor.retina(),
            "T": 3,
            "seed": 0,
        },
    )
    store.write_record(3, 0, [1, 2, 3])
    out = tmp_path / "run"
    nogs = ["--supervision", "nogs", "--sequences", str(tmp_path / "store"), "--num-supervised", "1"]
    argv = ["train", "--out", str(out), *nogs, *tiny_train(glimpses=3), "--seed", "2"]
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 2 and manifest["config"]["data_seed"] == 0
    assert main(argv[:-1] + ["2", "--data-seed", "2", "--out", str(tmp_path / "other")]) == 2
    assert "pass --data-seed 0" in capsys.readouterr().err


def test_one_yaml_file_sets_fields_of_every_config_and_flags_win(tmp_path):
    from ppl_attention.cli import build_parser
    from ppl_attention.commands._common import stage_options
    from ppl_attention.pipeline.attention import train_configs

    def _configs(args):  # what `train` builds from its flags
        return train_configs(**{k: v for k, v in stage_options(args).items() if k not in ("out", "seed", "device")})

    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("supervision: h1\niterations: 7\nhidden: 32\nlr: 0.01\n")
    args = build_parser().parse_args(
        ["train", "--out", str(tmp_path), "--config", str(yaml_file), "--lr", "0.002", "--pretrain"]
    )
    run, cfg, net = _configs(args)
    assert (run.supervision, run.pretrain, cfg.iterations, cfg.lr, net.hidden) == ("h1", True, 7, 0.002, 32)
    yaml_file.write_text("hiden: 32\n")
    with pytest.raises(ValueError, match="unknown field"):
        _configs(build_parser().parse_args(["train", "--out", str(tmp_path), "--config", str(yaml_file)]))
