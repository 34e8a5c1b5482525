"""The CLI's image design problem passes the completion settings (noise schedules, tempering, shifts) through."""
import pytest

from ppl_attention.completion.pca_index import PCAIndexConfig
from ppl_attention.completion.prior import build_prior
from ppl_attention.completion.database import mnist_canvas_source
from ppl_attention.design.images import ImageFactory
from ppl_attention.sensor import GlimpseGrid
from ppl_attention.posterior.network import AVPConfig, build_avp, save_avp


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    grid = GlimpseGrid.retina()  # the cluttered-mnist dataset's default sensor
    save_avp(build_avp(AVPConfig(grid=grid.to_dict(), width=8)), root / "avp", "cluttered-mnist", 2)
    build_prior(root / "prior", mnist_canvas_source(), 300, grid,
                PCAIndexConfig(components=8, fit_samples=300, shift=1), progress=False)
    return root


def test_factory_builds_the_sampler_with_the_given_settings(artefacts):
    factory = ImageFactory("cluttered-mnist", str(artefacts / "avp"), str(artefacts / "prior"),
                           sigma=(5.0, 10.0, 20.0, 40.0), sigma_q=(80.0,), target_ess=0.8, shift=1)
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
    with pytest.raises(ValueError, match="shift must be an int in"):
        ImageFactory("cluttered-mnist", str(artefacts / "avp"), str(artefacts / "prior"), shift=3)()


def test_generate_in_bfloat16_records_it_and_matches_float32(artefacts, tmp_path):
    import json

    from ppl_attention.cli import main
    from ppl_attention.design.store import SequenceStore

    problem, _ = ImageFactory("cluttered-mnist", str(artefacts / "avp"), str(artefacts / "prior"),
                              precision="bfloat16")()
    assert problem.precision == "bfloat16"
    common = ["--avp", str(artefacts / "avp"), "--prior", str(artefacts / "prior"), "--num-images", "2", "-T", "2",
              "--num-samples", "8", "--k1", "50", "--search", "halving"]
    for p in ("float32", "bfloat16"):
        assert main(["generate", *common, "--precision", p, "--out", str(tmp_path / p)]) == 0
        assert json.loads((tmp_path / p / "manifest.json").read_text())["config"]["precision"] == p
    maps = {p: SequenceStore.open(tmp_path / p).first_glimpse_epe() for p in ("float32", "bfloat16")}
    assert (maps["float32"] - maps["bfloat16"]).abs().max() < 0.02
    # a store is not resumed at another precision
    assert main(["generate", *common, "--precision", "float32", "--out", str(tmp_path / "bfloat16")]) == 2
    # search options reach the search and the manifest; unknown ones are refused before anything is written
    opts = ["--search-options", "initial_samples=2", "keep=0.5"]
    assert main(["generate", *common, *opts, "--out", str(tmp_path / "opts")]) == 0
    config = json.loads((tmp_path / "opts" / "manifest.json").read_text())["config"]
    assert config["search_options"] == {"initial_samples": 2, "keep": 0.5}
    fewer = SequenceStore.open(tmp_path / "opts").record(0)["evaluations"][1]
    assert fewer < SequenceStore.open(tmp_path / "float32").record(0)["evaluations"][1]  # a 2-sample first round
    assert main(["generate", *common, "--search-options", "stride=2", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
