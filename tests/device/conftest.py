"""Fixtures of the stand-in CUDA tests: tiny artefacts built once on the CPU."""

import pytest

from ppl_attention.cli import main
from ppl_attention.data.fixtures import make_digits_folder
from tests._helpers import TINY_AVP, TINY_PRIOR, folder_dataset


@pytest.fixture(scope="session")
def folder_run(tmp_path_factory):
    """A tiny AVP and database prior on 16 x 16 digit PNGs, built on the CPU."""
    root = tmp_path_factory.mktemp("device")
    digits = make_digits_folder(root / "digits", per_class=9)
    avp = ["train-avp", "--device", "cpu", *folder_dataset(digits), "--out", str(root / "avp"), *TINY_AVP]
    assert main([*avp, "--glimpses", "2", "--exclude-design", "4"]) == 0  # the images generate designs for: no oracle
    prior = ["build-prior", "--device", "cpu", "--dataset-from", str(root / "avp"), "--out", str(root / "prior")]
    assert main([*prior, *TINY_PRIOR]) == 0
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
