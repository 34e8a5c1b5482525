"""``generate`` with an image that fails: the others are stored, the failure is named on stderr and in
failures.json, the exit status is non-zero, and the same command run again finishes it."""

from __future__ import annotations

import json

import pytest

from ppl_attention.cli import main
from ppl_attention.design import executors
from ppl_attention.design.images import ImageFactory
from ppl_attention.design.store import SequenceStore
from tests._helpers import untrained_avp_and_prior


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("failures")
    untrained_avp_and_prior(root)
    return [
        "generate",
        "--device",
        "cpu",
        "--avp",
        str(root / "avp"),
        "--prior",
        str(root / "prior"),
        "--num-samples",
        "4",
        "--k1",
        "20",
        "--glimpses",
        "2",
        "--num-images",
        "4",
        "--allow-oracle",
        "true",
    ]  # an untrained stand-in AVP and a prior rendered from the training digits


def test_failed_image_named_skipped_and_finished_by_a_rerun(inputs, tmp_path, monkeypatch, capsys, one_thread):
    build = ImageFactory.__call__

    def with_a_bad_image(self):
        problem, image = build(self)

        def read(index):
            if int(index) == 2:
                raise OSError("image 2: truncated file")
            return image(index)

        read.size = image.size
        return problem, read

    out = tmp_path / "store"
    monkeypatch.setattr(ImageFactory, "__call__", with_a_bad_image)
    monkeypatch.setattr(executors, "_LOADED", {})
    assert main([*inputs, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "1 image(s) failed and were skipped: [2]" in err and "OSError: image 2: truncated file" in err
    assert SequenceStore.open(out).indices() == [0, 1, 3]
    failures = json.loads((out / "failures.json").read_text())["failures"]
    assert failures == [{"index": 2, "error": "OSError: image 2: truncated file"}]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == [2] and summary["generated"] == 3

    monkeypatch.setattr(ImageFactory, "__call__", build)  # the file repaired
    monkeypatch.setattr(executors, "_LOADED", {})
    assert main([*inputs, "--out", str(out)]) == 0
    assert SequenceStore.open(out).indices() == [0, 1, 2, 3] and not (out / "failures.json").exists()


def test_ray_flags_need_the_ray_executor():
    from ppl_attention.pipeline.design import GenerateConfig, _check_generate

    for setting, flag in (
        ({"gpus_per_worker": 1.0}, "`gpus_per_worker`"),
        ({"ray_address": "auto"}, "`ray_address`"),
        ({"ray_workers": 2}, "`ray_workers`"),
    ):
        with pytest.raises(ValueError, match=f"{flag} apply to `executor` ray, not to `executor` local"):
            _check_generate(GenerateConfig(**setting))
        _check_generate(GenerateConfig(executor="ray", **setting))
    with pytest.raises(ValueError, match="`cpus_per_worker`"):
        _check_generate(GenerateConfig(executor="ray", cpus_per_worker=0))
