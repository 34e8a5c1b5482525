"""Shared test settings: headless plotting, deterministic torch, small thread pool."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True, scope="session")
def _image_cache(tmp_path_factory):
    """Decoded-image caches go to the session's temporary folder, not the user's cache."""
    os.environ["PPL_ATTENTION_IMAGE_CACHE"] = str(tmp_path_factory.mktemp("image-cache"))
    yield


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """One torch thread for tiny networks: no intra-op overhead, and no spinning on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fake_cuda():
    """The stand-in CUDA device (CPU tensors that refuse CPU/CUDA mixes); yields the mode, whose ``syncs`` counts."""
    from ppl_attention.testing import fake_cuda as stand_in

    with stand_in() as mode:
        yield mode


@pytest.fixture(scope="session")
def honest_artefacts(tmp_path_factory):
    """An untrained tiny AVP (``avp``) and its dataset's generative prior (``gp``) in one folder, made once."""
    from tests._helpers import untrained_avp_and_generative_prior

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("honest")
    untrained_avp_and_generative_prior(root)
    torch.set_num_threads(before)
    return root
