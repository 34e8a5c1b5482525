"""``generate`` on the stand-in CUDA device: every search, both priors, the same store as on the CPU, and the host
syncs of a design step counted (a constant per step, whatever the number of AVP passes)."""

import json

import pytest

from ppl_attention.cli import main
from ppl_attention.design import sequential

SMALL = ["--num-images", "2", "--glimpses", "3", "--num-samples", "6", "--k1", "50"]


def store_files(directory) -> dict:
    """The records and the first-glimpse map of a store, byte for byte (the manifest names its own path)."""
    files = sorted((directory / "records").iterdir()) + [directory / "first_glimpse.json"]
    return {f.name: f.read_bytes() for f in files}


def generate(root, out, device, *extra) -> int:
    return main(
        [
            "generate",
            "--device",
            device,
            "--avp",
            str(root / "avp"),
            "--prior",
            str(root / "prior"),
            *SMALL,
            *extra,
            "--out",
            str(out),
        ]
    )


@pytest.mark.parametrize("search", ["exhaustive", "halving", "coarse", "race"])
def test_generate_on_the_device_writes_the_cpu_store(folder_run, tmp_path, search):
    assert generate(folder_run, tmp_path / "cpu", "cpu", "--search", search) == 0
    from ppl_attention.testing import fake_cuda

    with fake_cuda():
        assert generate(folder_run, tmp_path / "cuda", "cuda", "--search", search, "--precision", "float32") == 0
        assert generate(folder_run, tmp_path / "auto", "auto", "--search", search) == 0
    assert store_files(tmp_path / "cuda") == store_files(tmp_path / "cpu")
    precision = {
        d: json.loads((tmp_path / d / "manifest.json").read_text())["config"]["precision"] for d in ("cpu", "auto")
    }
    assert precision == {"cpu": "float32", "auto": "bfloat16"}  # the default precision follows the device


def test_generate_with_the_generative_prior_on_the_device(generative_run, tmp_path):
    args = ["--search", "halving", "--k1", "200", "--allow-oracle", "true"]  # an untrained stand-in AVP
    args += ["--independent-draw", "true"]  # the second draw of completions too
    assert generate(generative_run, tmp_path / "cpu", "cpu", *args) == 0
    from ppl_attention.testing import fake_cuda

    with fake_cuda():
        assert generate(generative_run, tmp_path / "cuda", "cuda", *args, "--precision", "float32") == 0
    assert store_files(tmp_path / "cuda") == store_files(tmp_path / "cpu")
    assert len(json.loads((tmp_path / "cuda" / "records" / "0000000.json").read_text())["independent_epe"]) == 2


def syncs_per_step(root, out, monkeypatch, *extra) -> list[dict]:
    """Host syncs of each design step after the first (the sampler's and the search's), on the stand-in device."""
    from ppl_attention.testing import fake_cuda

    steps = []
    real = sequential.select_location

    def counted(*args, **kwargs):
        before = dict(mode.syncs)
        result = real(*args, **kwargs)
        steps.append({k: v - before.get(k, 0) for k, v in mode.syncs.items() if v != before.get(k, 0)})
        return result

    with monkeypatch.context() as patch, fake_cuda() as mode:
        patch.setattr(sequential, "select_location", counted)
        assert generate(root, out, "cuda", "--search", "exhaustive", *extra) == 0
    return steps


def test_host_syncs_per_design_step_do_not_grow_with_the_passes(folder_run, tmp_path, monkeypatch, capsys):
    many = syncs_per_step(folder_run, tmp_path / "small", monkeypatch, "--batch-size", "4")  # 24 passes a step
    few = syncs_per_step(folder_run, tmp_path / "large", monkeypatch, "--batch-size", "96")  # 1 pass a step
    assert len(many) == len(few) == 4 and many == few
    assert max(sum(s.values()) for s in many) < 4 * 6 * 16 // 4  # far fewer than one per pass
    with capsys.disabled():
        print("\nhost syncs per design step (stand-in CUDA, exhaustive):", json.dumps(many[0]))


def test_calibrate_noise_with_the_avp_on_the_device(generative_run, tmp_path):
    """The EPE criterion's AVP passes run on the device, the sampler on the CPU: the same calibration as the CPU's."""
    base = ["calibrate-noise", "--prior", str(generative_run / "prior"), "--avp", str(generative_run / "avp")]
    base += ["--criterion", "epe", "--num-images", "3", "-T", "2", "--scales", "1", "4", "--num-samples", "4"]
    base += ["--k1", "50", "--min-ess", "1"]
    assert main([*base, "--device", "cpu", "--out", str(tmp_path / "cpu")]) == 0
    from ppl_attention.testing import fake_cuda

    with fake_cuda():
        assert main([*base, "--device", "cuda", "--out", str(tmp_path / "cuda")]) == 0
    cpu, cuda = (json.loads((tmp_path / d / "calibration.json").read_text()) for d in ("cpu", "cuda"))
    assert cuda["scales"] == cpu["scales"] and "epe" in cuda["scales"][0]["steps"][0]
