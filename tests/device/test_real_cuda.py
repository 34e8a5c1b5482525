"""On a machine with a GPU: the real CUDA runs of what the stand-in device checks elsewhere (skipped without one)."""

import pytest
import torch

from ppl_attention.cli import main
from ppl_attention.design.store import SequenceStore
from tests._helpers import tiny_train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SMALL = ["--num-images", "2", "-T", "3", "--num-samples", "6", "--k1", "50", "--precision", "float32"]


@pytest.mark.parametrize("search", ["exhaustive", "halving"])
def test_generate_on_cuda_gives_the_cpu_maps(folder_run, tmp_path, search):
    for device in ("cpu", "cuda"):
        assert (
            main(
                [
                    "generate",
                    "--device",
                    device,
                    "--avp",
                    str(folder_run / "avp"),
                    "--prior",
                    str(folder_run / "prior"),
                    *SMALL,
                    "--search",
                    search,
                    "--out",
                    str(tmp_path / device),
                ]
            )
            == 0
        )
    cpu, cuda = SequenceStore.open(tmp_path / "cpu"), SequenceStore.open(tmp_path / "cuda")
    torch.testing.assert_close(cuda.first_glimpse_epe(), cpu.first_glimpse_epe(), atol=1e-2, rtol=0)
    assert len(cuda) == len(cpu) == 2


def test_evaluate_avp_and_train_on_cuda(folder_run, tmp_path):
    import shutil

    shutil.copytree(folder_run / "avp", tmp_path / "avp")
    assert main(["evaluate-avp", str(tmp_path / "avp"), "--device", "cuda", "--draws", "1"]) == 0
    ram = ["--out", str(tmp_path / "ram"), "--supervision", "none", "--dataset-from", str(folder_run / "avp")]
    assert main(["train", "--device", "cuda", *ram, *tiny_train()]) == 0
