"""The CLI's image design problem passes the completion settings (noise schedules, tempering, shifts) through."""

import pytest

from ppl_attention.completion.pca_index import PCAIndexConfig
from ppl_attention.completion.prior import build_prior
from ppl_attention.completion.database import mnist_canvas_source
from ppl_attention.design.images import ImageFactory
from ppl_attention.sensor import Sensor
from ppl_attention.posterior.network import AVPConfig, build_avp, save_avp
from tests._helpers import generate_argv


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    grid = Sensor.retina()  # the cluttered-mnist dataset's default sensor
    save_avp(build_avp(AVPConfig(grid=grid.to_dict(), width=8)), root / "avp", "cluttered-mnist", 2)
    build_prior(
        root / "prior",
        mnist_canvas_source(),
        300,
        grid,
        PCAIndexConfig(components=8, fit_samples=300, shift=1),
        progress=False,
    )
    return root


def test_factory_builds_the_sampler_with_the_given_settings(artefacts):
    factory = ImageFactory(
        "cluttered-mnist",
        str(artefacts / "avp"),
        str(artefacts / "prior"),
        sigma=(5.0, 10.0, 20.0, 40.0),
        sigma_q=(80.0,),
        target_ess=0.8,
        shift=1,
    )
    problem, image = factory()
    sampler = problem.sampler
    assert sampler.sigma.sigma(1) == pytest.approx(5 / 255) and sampler.sigma.sigma(3) == pytest.approx(20 / 255)
    assert sampler.sigma_q.sigma(2) == pytest.approx(80 / 255)
    assert sampler.target_ess == 0.8 and sampler.shift == 1
    assert image(0).shape == (1, 60, 60)


def test_factory_defaults_to_the_mnist_schedule(artefacts):
    problem, _ = ImageFactory("cluttered-mnist", str(artefacts / "avp"), str(artefacts / "prior"))()
    assert problem.sampler.target_ess is None and problem.sampler.shift == 0
    assert problem.sampler.sigma.sigma(1) == pytest.approx(192 / 255)


def test_factory_refuses_a_shift_the_index_cannot_serve(artefacts):
    with pytest.raises(ValueError, match="`shift` must be an int in"):
        ImageFactory("cluttered-mnist", str(artefacts / "avp"), str(artefacts / "prior"), shift=3)()


def test_generate_in_bfloat16_records_it_and_matches_float32(artefacts, tmp_path):
    import json

    from ppl_attention.cli import main
    from ppl_attention.design.store import SequenceStore

    problem, _ = ImageFactory(
        "cluttered-mnist", str(artefacts / "avp"), str(artefacts / "prior"), precision="bfloat16"
    )()
    assert problem.precision == "bfloat16"
    common = [
        "--avp",
        str(artefacts / "avp"),
        "--prior",
        str(artefacts / "prior"),
        "--num-images",
        "2",
        "--glimpses",
        "2",
        "--num-samples",
        "8",
        "--k1",
        "50",
        "--search",
        "halving",
        "--allow-oracle",
        "true",
    ]  # a stand-in AVP and a prior rendered from the training digits
    for p in ("float32", "bfloat16"):
        assert main(["generate", *common, "--precision", p, "--out", str(tmp_path / p)]) == 0
        assert json.loads((tmp_path / p / "manifest.json").read_text())["config"]["precision"] == p
    maps = {p: SequenceStore.open(tmp_path / p).first_glimpse_epe() for p in ("float32", "bfloat16")}
    assert (maps["float32"] - maps["bfloat16"]).abs().max() < 0.02
    # a store is not resumed at another precision
    assert main(["generate", *common, "--precision", "float32", "--out", str(tmp_path / "bfloat16")]) == 2
    # search options reach the search and the manifest; unknown ones are refused before anything is written
    opts = ["--search-options", "initial_samples=1", "keep=0.5"]
    assert main(["generate", *common, *opts, "--out", str(tmp_path / "opts")]) == 0
    config = json.loads((tmp_path / "opts" / "manifest.json").read_text())["config"]
    assert config["search_options"] == {"initial_samples": 1, "keep": 0.5}
    fewer = SequenceStore.open(tmp_path / "opts").record(0)["evaluations"][1]
    default = SequenceStore.open(tmp_path / "float32").record(0)["evaluations"][1]
    locations = Sensor.retina().num_locations
    # a 1-sample first round scores fewer pairs, unless the completions' weight sits on one sample (then both do)
    assert fewer < default or default == locations
    assert main(["generate", *common, "--search-options", "stride=2", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


@pytest.fixture(scope="module")
def generative_prior(tmp_path_factory):
    from ppl_attention.completion.generative import build_generative_prior
    from ppl_attention.data.spec import DatasetSpec

    out = tmp_path_factory.mktemp("gp") / "prior"
    build_generative_prior(out, DatasetSpec("cluttered-mnist", None, 0, ()), components=6, prototypes=6)
    return out


def test_factory_opens_the_generative_prior_with_its_settings(artefacts, generative_prior):
    from ppl_attention.completion.generative import GenerativeCompletion

    problem, _ = ImageFactory(
        "cluttered-mnist", str(artefacts / "avp"), str(generative_prior), k1=300, min_ess=10.0, max_k1=1200
    )()
    sampler = problem.sampler
    assert isinstance(sampler, GenerativeCompletion) and sampler.grid == problem.grid
    assert sampler.k1 == 300 and sampler.min_ess == 10.0 and sampler.max_k1 == 1200
    assert sampler.sigma.sigma(1) == pytest.approx(48 / 255)  # the prior's recorded schedule
    with pytest.raises(ValueError, match="`shift` applies to a database prior"):
        ImageFactory("cluttered-mnist", str(artefacts / "avp"), str(generative_prior), shift=1)()
    with pytest.raises(ValueError, match="`min_ess` applies to a generative prior"):
        ImageFactory("cluttered-mnist", str(artefacts / "avp"), str(artefacts / "prior"), min_ess=5.0)()


def test_generate_with_the_generative_prior_reports_the_ess_per_image(artefacts, generative_prior, tmp_path):
    import json

    from ppl_attention.cli import main

    out = tmp_path / "store"
    generate = generate_argv(artefacts / "avp", generative_prior)
    sizes = ["--num-images", "2", "--glimpses", "3", "--num-samples", "6", "--k1", "200", "--search", "exhaustive"]
    ess = ["--min-ess", "3", "--max-k1", "600", "--allow-oracle", "true", "--independent-draw", "true"]
    assert main([*generate, *sizes, *ess, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prior_kind"] == "generative" and summary["noise_schedule"][0] == 48.0
    assert set(summary["ess"]["per_image"]) == {"0", "1"} and set(summary["ess"]["per_step"]) == {"2", "3"}
    record = json.loads((out / "records" / "0000000.json").read_text())
    assert len(record["ess"]) == 2 and all(v >= 1.0 for v in record["ess"])
    assert len(record["independent_epe"]) == 2 and all(v >= 0.0 for v in record["independent_epe"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["min_ess"] == 3.0 and manifest["config"]["max_k1"] == 600
    bad = ["--num-images", "1", "--min-ess", "0.5", "--allow-oracle", "true", "--out", str(tmp_path / "bad")]
    assert main([*generate, *bad]) == 2
    # the calibration figure of the store: predicted EPE of each chosen location vs realised entropy
    fig = tmp_path / "calibration.png"
    assert main(["plot", "epe-calibration", str(out), "--avp", str(artefacts / "avp"), "--out", str(fig)]) == 0
    steps = json.loads(fig.with_suffix(".json").read_text())["steps"]
    assert fig.is_file() and [s["t"] for s in steps] == [1, 2, 3] and steps[0]["predicted"]["mean"] > 0
    assert "independent" not in steps[0] and all(s["independent"]["mean"] >= 0 for s in steps[1:])
