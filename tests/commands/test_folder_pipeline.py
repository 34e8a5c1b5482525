"""A folder of labelled PNGs (scikit-learn's 8 x 8 digits, written by the test) through every stage of the CLI with
each dataset option typed once: later commands read the dataset (root, split seed, options) from their artefacts,
and a flag that contradicts an artefact is an error naming both -- never a silent leak of test images."""

import json

import pytest
import torch

from ppl_attention.cli import main
from ppl_attention.data import load_dataset
from ppl_attention.data.fixtures import make_digits_folder
from tests._helpers import FOLDER_FLAGS, TINY_AVP, TINY_BASELINES, TINY_PRIOR, folder_dataset, tiny_train

OPTIONS = {"size": 16, "channels": 1, "glimpse_size": 4, "stride": 4, "noise_schedule": [60.0, 80.0]}
GRID = {"image_size": [16, 16], "glimpse_size": [4, 4]}
CPU = ["--device", "cpu"]


def _config(path):
    return json.loads((path / "manifest.json").read_text())["config"]


def _check_data(data, root, seed=1):
    assert data["name"] == "folder" and data["root"] == str(root.resolve()) and data["seed"] == seed
    assert {k: data["options"][k] for k in OPTIONS} == OPTIONS


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return make_digits_folder(tmp_path_factory.mktemp("digits"), per_class=9)  # 90 images, 10 classes


@pytest.fixture(scope="module")
def avp(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "avp"
    argv = ["train-avp", *CPU, *folder_dataset(digits), "--out", str(out), *TINY_AVP, "--glimpses", "2"]
    assert main([*argv, "--exclude-design", "3"]) == 0  # generate designs for the first 3 training images: no oracle
    return out


def test_every_command_honours_the_folder_options_typed_once(digits, avp, tmp_path, capsys, one_thread):
    cfg = _config(avp)
    _check_data(cfg["data"], digits)
    assert {k: cfg["grid"][k] for k in GRID} == GRID
    # evaluate-avp: no dataset flag at all, at another --seed: the AVP's split (seed 1), so its test images
    assert main(["evaluate-avp", str(avp), *CPU, "--draws", "1", "--seed", "0"]) == 0
    ev = json.loads((avp / "evaluation.json").read_text())
    _check_data(ev["data"], digits)
    test = load_dataset("folder", root=digits, split="test", seed=1, **OPTIONS)
    assert ev["per_glimpses"][0]["images"] == len(test)
    assert "best_epoch" in json.loads((avp / "summary.json").read_text())  # train-avp's summary is kept
    # build-prior: the dataset from the AVP
    prior = tmp_path / "prior"
    assert main(["build-prior", *CPU, "--dataset-from", str(avp), "--out", str(prior), *TINY_PRIOR]) == 0
    pcfg = _config(prior)
    _check_data(pcfg["data"], digits)
    train = load_dataset("folder", root=digits, split="train", seed=1, **OPTIONS)
    assert pcfg["n"] == len(train) and {k: pcfg["grid"][k] for k in GRID} == GRID
    # generate: the dataset from the AVP and the prior; the folder's noise schedule, said in the output
    store = tmp_path / "store"
    capsys.readouterr()
    assert (
        main(
            [
                "generate",
                *CPU,
                "--avp",
                str(avp),
                "--prior",
                str(prior),
                "--out",
                str(store),
                "--num-images",
                "3",
                "--glimpses",
                "2",
                "--num-samples",
                "4",
                "--k1",
                "20",
                "--search",
                "exhaustive",
            ]
        )
        == 0
    )
    assert "[60.0, 80.0] (the folder dataset's default)" in capsys.readouterr().out
    scfg = _config(store)
    _check_data(scfg["data"], digits)
    assert scfg["sigma"] == [60.0, 80.0] and {k: scfg["grid"][k] for k in GRID} == GRID
    # plot epe: the image of the store's dataset is drawn without --root
    assert main(["plot", "epe", str(store), "--index", "0", "--out", str(tmp_path / "epe.png")]) == 0
    # train: PS-NOGS reads the dataset from the store; RAM from the AVP (--dataset-from)
    common = [*tiny_train(), "--seed", "3"]
    for name, extra in (
        ("nogs", ["--supervision", "nogs", "--sequences", str(store), "--num-supervised", "3"]),
        ("ram", ["--supervision", "none", "--dataset-from", str(avp)]),
    ):
        assert main(["train", *CPU, "--out", str(tmp_path / name), *extra, *common]) == 0
        rcfg = _config(tmp_path / name)
        _check_data(rcfg["data"], digits)
        assert rcfg["data_seed"] == 1 and rcfg["seed"] == 3
        assert tuple(rcfg["network"]["grid"]["image_size"]) == (16, 16)
    # baselines: the dataset from the AVP too
    assert main(["baselines", *CPU, "--dataset-from", str(avp), "--out", str(tmp_path / "cnn"), *TINY_BASELINES]) == 0
    _check_data(_config(tmp_path / "cnn")["data"], digits)


def test_a_split_seed_or_option_that_contradicts_the_artefact_is_an_error_naming_both(digits, avp, tmp_path, capsys):
    assert main(["evaluate-avp", str(avp), *CPU, "--draws", "1", "--data-seed", "0"]) == 2
    err = capsys.readouterr().err
    assert "--data-seed 0 contradicts avp" in err and str(avp) in err and "split seed 1" in err
    assert main(["evaluate-avp", str(avp), *CPU, "--draws", "1", "--dataset-option", "size=32"]) == 2
    err = capsys.readouterr().err
    assert "--dataset-option size=32 contradicts avp" in err and "size=16" in err
    assert main(["evaluate-avp", str(avp), *CPU, "--dataset", "cluttered-mnist"]) == 2
    assert "'cluttered-mnist' contradicts avp" in capsys.readouterr().err
    other = make_digits_folder(tmp_path / "other", per_class=3)
    assert main(["evaluate-avp", str(avp), *CPU, "--root", str(other)]) == 2
    err = capsys.readouterr().err
    assert f"--root {other} contradicts avp" in err and str(digits.resolve()) in err
    # repeating what the artefact records is fine
    assert main(["evaluate-avp", str(avp), *CPU, "--draws", "1", *folder_dataset(digits)]) == 0
    # an option the dataset does not take is refused by the dataset's own signature, naming it
    assert (
        main(
            [
                "train-avp",
                *CPU,
                "--dataset",
                "folder",
                "--root",
                str(digits),
                "--dataset-option",
                "colour=1",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "takes no option(s) ['colour']" in err and "glimpse_size" in err


def test_train_at_one_split_seed_evaluate_at_another_never_leaks(digits, tmp_path, capsys, one_thread):
    """The issue's case: an AVP trained at split seed 1, evaluated with the default --seed 0."""
    avp = tmp_path / "avp"
    argv = ["train-avp", *CPU, "--dataset", "folder", "--root", str(digits), "--seed", "1", *FOLDER_FLAGS]
    assert main([*argv, "--out", str(avp), *TINY_AVP, "--glimpses", "1"]) == 0
    assert main(["evaluate-avp", str(avp), *CPU, "--draws", "1"]) == 0  # --seed 0: glimpses only
    ev = json.loads((avp / "evaluation.json").read_text())
    assert ev["data"]["seed"] == 1 and ev["seed"] == 0
    train = load_dataset("folder", root=digits, split="train", seed=1, **OPTIONS)
    test = load_dataset("folder", root=digits, split="test", seed=ev["data"]["seed"], **OPTIONS)
    leaked = set(test.indices.tolist()) & set(train.indices.tolist())
    assert not leaked and ev["per_glimpses"][0]["images"] == len(test)
    # the seed-0 test split would have overlapped seed 1's training images: that is what is refused
    test0 = load_dataset("folder", root=digits, split="test", seed=0, **OPTIONS)
    assert set(test0.indices.tolist()) & set(train.indices.tolist())
    assert main(["evaluate-avp", str(avp), *CPU, "--data-seed", "0"]) == 2


def test_yaml_config_carries_the_dataset_too(digits, tmp_path, capsys):
    cfg = tmp_path / "data.yaml"
    cfg.write_text(
        f"dataset: folder\nroot: {digits}\ndata_seed: 2\ndataset_options:\n  size: 16\n  channels: 1\n"
        f"  glimpse_size: 4\n  stride: 4\nepochs: 1\nwidth: 4\nmax_glimpses: 1\n"
    )
    out = tmp_path / "avp"
    assert main(["train-avp", *CPU, "--config", str(cfg), "--out", str(out)]) == 0
    data = _config(out)["data"]
    assert data["seed"] == 2 and data["options"]["size"] == 16 and data["options"]["channels"] == 1
    assert torch.equal(torch.tensor(_config(out)["grid"]["image_size"]), torch.tensor([16, 16]))
