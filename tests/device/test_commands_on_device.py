"""Every stage's command on the stand-in CUDA device (a CPU/CUDA mix raises there, as on a real GPU), at tiny
sizes; where the run is deterministic, its artefact equals the CPU run's."""

import json

import pytest

from ppl_attention.cli import main
from ppl_attention.testing import fake_cuda
from tests._helpers import TINY_AVP, TINY_BASELINES, TINY_PRIOR, folder_dataset, generate_argv, tiny_train

#: The BOED settings of every store these tests design.
DESIGN = ["-T", "3", "--num-samples", "6", "--k1", "50"]
TINY_NET = ["--width", "4", "--hidden", "8", "--embedding", "2", "--batch-size", "4", "--no-progress"]
TRAIN = [*tiny_train(glimpses=3), "--seed", "3"]


def on_device(argv) -> tuple[int, dict]:
    """Run a command with ``--device cuda`` on the stand-in device: its exit code and host syncs."""
    with fake_cuda() as mode:
        rc = main([argv[0], "--device", "cuda", *argv[1:]])
    return rc, dict(mode.syncs)


@pytest.fixture(scope="module")
def store(folder_run):
    """An exhaustive store of 4 images, made on the CPU (what train-epe-net distils)."""
    out = folder_run / "store-ex"
    if not out.exists():
        generate = generate_argv(folder_run / "avp", folder_run / "prior")
        assert main([*generate, "--num-images", "4", *DESIGN, "--search", "exhaustive", "--out", str(out)]) == 0
    return out


def test_train_avp_and_build_prior_on_the_device(folder_run, tmp_path):
    data = folder_dataset(folder_run / "digits")
    rc, _ = on_device(["train-avp", *data, "--out", str(tmp_path / "avp"), *TINY_AVP, "--max-glimpses", "2"])
    assert rc == 0 and (tmp_path / "avp" / "summary.json").is_file()
    prior = ["build-prior", "--dataset-from", str(folder_run / "avp"), "--out", str(tmp_path / "prior")]
    rc, _ = on_device([*prior, *TINY_PRIOR])
    assert rc == 0 and (tmp_path / "prior" / "manifest.json").is_file()


def test_evaluate_avp_on_the_device_equals_the_cpu_evaluation(folder_run, tmp_path):
    import shutil

    avp = tmp_path / "avp"
    shutil.copytree(folder_run / "avp", avp)
    assert main(["evaluate-avp", str(avp), "--device", "cpu", "--draws", "1"]) == 0
    cpu = json.loads((avp / "evaluation.json").read_text())
    rc, _ = on_device(["evaluate-avp", str(avp), "--draws", "1"])
    assert rc == 0
    cuda = json.loads((avp / "evaluation.json").read_text())
    assert cuda["per_glimpses"] == cpu["per_glimpses"] and cuda["full_image"] == cpu["full_image"]


def test_train_and_evaluate_epe_net_on_the_device(folder_run, store, tmp_path):
    base = ["--store", str(store), "--avp", str(folder_run / "avp"), "--epochs", "2", *TINY_NET]
    assert main(["train-epe-net", "--device", "cpu", *base, "--out", str(tmp_path / "cpu")]) == 0
    rc, _ = on_device(["train-epe-net", *base, "--precision", "float32", "--out", str(tmp_path / "cuda")])
    assert rc == 0
    history = {d: json.loads((tmp_path / d / "history.json").read_text()) for d in ("cpu", "cuda")}
    assert history["cuda"] == history["cpu"]  # the same training, on the other device
    rc, _ = on_device(["train-epe-net", *base, "--out", str(tmp_path / "cuda-bf16")])  # bfloat16 autocast, CUDA's
    assert rc == 0 and json.loads((tmp_path / "cuda-bf16" / "history.json").read_text()) != history["cpu"]
    inputs = ["--avp", str(folder_run / "avp"), "--prior", str(folder_run / "prior"), "--num-images", "2"]
    searches = ["--searches", "halving", "amortised", "--no-progress"]
    evaluate = ["evaluate-epe-net", str(tmp_path / "cuda"), *inputs, "--num-samples", "6", "--k1", "40", "-T", "3"]
    rc, _ = on_device([*evaluate, *searches, "--out", str(tmp_path / "e")])
    assert rc == 0 and "amortised" in json.loads((tmp_path / "e" / "summary.json").read_text())["searches"]
    for search in ("amortised", "hybrid"):
        network = ["--search", search, "--epe-net", str(tmp_path / "cuda"), "--out", str(tmp_path / search)]
        rc, _ = on_device(["generate", *inputs, *DESIGN, *network])
        assert rc == 0


def test_train_and_baselines_on_the_device(folder_run, store, tmp_path):
    rc, _ = on_device(
        [
            "train",
            "--out",
            str(tmp_path / "nogs"),
            "--supervision",
            "nogs",
            "--sequences",
            str(store),
            "--num-supervised",
            "3",
            *TRAIN,
        ]
    )
    assert rc == 0 and (tmp_path / "nogs" / "summary.json").is_file()
    rc, _ = on_device(
        [
            "train",
            "--out",
            str(tmp_path / "ram"),
            "--supervision",
            "none",
            "--dataset-from",
            str(folder_run / "avp"),
            *TRAIN,
        ]
    )
    assert rc == 0
    rc, _ = on_device(
        ["baselines", "--dataset-from", str(folder_run / "avp"), "--out", str(tmp_path / "cnn"), *TINY_BASELINES]
    )
    assert rc == 0
