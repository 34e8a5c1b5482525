"""Fixtures of the stand-in CUDA tests: tiny artefacts built once on the CPU."""

import pytest

from ppl_attention.cli import main
from ppl_attention.data.fixtures import make_digits_folder

FLAGS = [
    "--dataset-option",
    "size=16",
    "--dataset-option",
    "channels=1",
    "--option",
    "glimpse_size=4",
    "--dataset-option",
    "stride=4",
    "--dataset-option",
    "noise_schedule=60,80",
]


@pytest.fixture(scope="session")
def folder_run(tmp_path_factory):
    """A tiny AVP and database prior on 16 x 16 digit PNGs, built on the CPU."""
    root = tmp_path_factory.mktemp("device")
    digits = make_digits_folder(root / "digits", per_class=9)
    assert (
        main(
            [
                "train-avp",
                "--device",
                "cpu",
                "--dataset",
                "folder",
                "--root",
                str(digits),
                "--data-seed",
                "1",
                *FLAGS,
                "--out",
                str(root / "avp"),
                "--epochs",
                "1",
                "--width",
                "4",
                "--batch-size",
                "32",
                "--glimpses",
                "2",
                "--exclude-design",
                "4",
            ]
        )
        == 0
    )  # the images generate designs for: no oracle
    assert (
        main(
            [
                "build-prior",
                "--device",
                "cpu",
                "--dataset-from",
                str(root / "avp"),
                "--out",
                str(root / "prior"),
                "--database-size",
                "1000",
                "--components",
                "4",
                "--fit-samples",
                "50",
                "--chunk-size",
                "40",
            ]
        )
        == 0
    )
    return root


@pytest.fixture(scope="session")
def generative_run(tmp_path_factory):
    """A tiny cluttered-MNIST AVP and the generative prior (its sampler stays on the CPU)."""
    from ppl_attention.completion.generative import build_generative_prior
    from ppl_attention.data.spec import DatasetSpec
    from ppl_attention.posterior.network import AVPConfig, build_avp, save_avp
    from ppl_attention.sensor import Sensor

    root = tmp_path_factory.mktemp("device-generative")
    save_avp(build_avp(AVPConfig(grid=Sensor.retina().to_dict(), width=4)), root / "avp", "cluttered-mnist", 2)
    build_generative_prior(root / "prior", DatasetSpec("cluttered-mnist", None, 0, ()), components=6, prototypes=6)
    return root


@pytest.fixture(scope="session")
def folder_flags():
    """The dataset flags of :func:`folder_run`'s digits folder."""
    return list(FLAGS)
