"""examples/celeba_hq.py and examples/cub.py run end to end with --tiny on fixture folders, write every artefact
and a sane results table, resume (a second run redoes nothing), keep the paper's settings, and refuse bad input."""

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def celeba(load_example, tmp_path_factory):
    from ppl_attention.data.fixtures import make_celeba_hq_folder

    tmp = tmp_path_factory.mktemp("celeba")
    root = make_celeba_hq_folder(tmp / "data", indices=[*range(8), 27000, 27001, 27002, 27500, 27501, 27502])
    module = load_example("celeba_hq")
    out = tmp / "out"
    summary = module.main(["--root", str(root), "--out", str(out), "--tiny", "--device", "cpu"])
    return module, root, out, summary


@pytest.fixture(scope="module")
def cub(load_example, tmp_path_factory):
    from ppl_attention.data.fixtures import make_cub_folder

    tmp = tmp_path_factory.mktemp("cub")
    root = make_cub_folder(tmp / "data", n_classes=3, per_class=5, test_per_class=1)
    module = load_example("cub")
    out = tmp / "out"
    summary = module.main(["--root", str(root), "--out", str(out), "--tiny", "--device", "cpu"])
    return module, root, out, summary


def _check_common(out: Path, summary: dict, methods, store: Path, tiny, grid_size: int):
    for path in (
        "avp/manifest.json",
        "avp/avp.safetensors",
        "avp/evaluation.json",
        "prior/manifest.json",
        "figures/epe.png",
        "figures/validation_curves.png",
        "results.md",
        "summary.json",
    ):
        assert (out / path).is_file(), path
    assert json.loads((out / "summary.json").read_text())["results"] == summary["results"]
    # the sequence store: tiny.num_sequences images, T distinct in-grid locations each
    records = sorted((store / "records").glob("*.json"))
    assert [int(p.stem) for p in records] == list(range(tiny.num_sequences))
    for p in records:
        loc = json.loads(p.read_text())["locations"]
        assert len(loc) == tiny.glimpses and len(set(loc)) == len(loc) and all(0 <= v < grid_size for v in loc)
    epe_first = json.loads((store / "first_glimpse.json").read_text())["epe"]
    assert len(epe_first) == grid_size
    # results table: every method, sane numbers
    assert list(summary["results"]) == list(methods)
    for method, row in summary["results"].items():
        assert row["seeds"] == len(tiny.seeds)
        assert 0 < row["iterations_to_convergence"] <= tiny.train_iterations
        assert 0.0 <= row["test_accuracy"] <= 100.0
    table = (out / "results.md").read_text().splitlines()
    assert table[0].startswith("| method |") and [r.split("|")[1].strip() for r in table[2:]] == list(methods)
    assert summary["settings"]["glimpses"] == tiny.glimpses


def test_celeba_hq_tiny_end_to_end(celeba):
    module, root, out, summary = celeba
    tiny = module.tiny(module.PaperSettings())
    store = out / "sequences-attr20"
    _check_common(out, summary, ("RAM", "RAM+", "PS-NOGS"), store, tiny, 2500)
    manifest = json.loads((store / "manifest.json").read_text())["config"]
    assert manifest["task"] == "20" and manifest["dataset"] == "celeba-hq" and manifest["T"] == tiny.glimpses
    # PS-NOGS was supervised with exactly the stored sequences; RAM+ was pretrained, RAM was not
    sup = json.loads((out / "ps-nogs-attr20-s0" / "supervision.json").read_text())
    assert sup["kind"] == "nogs" and sorted(sup["indices"]) == list(range(tiny.num_supervised))
    stored = {int(p.stem): json.loads(p.read_text())["locations"] for p in (store / "records").glob("*.json")}
    assert {i: list(s) for i, s in zip(sup["indices"], sup["sequences"])} == stored
    run = lambda d: json.loads((out / d / "summary.json").read_text())  # noqa: E731
    assert run("ramplus-attr20-s0")["pretrain"] and not run("ram-attr20-s0")["pretrain"]
    assert run("ram-attr20-s0")["num_supervised"] == 0


def test_cub_tiny_end_to_end(cub):
    module, root, out, summary = cub
    tiny = module.tiny(module.PaperSettings())
    _check_common(out, summary, ("RAM", "RAM+", "PS-NOGS", "PS-H1", "PS-H5", "PS-HGS"), out / "sequences", tiny, 169)
    run = lambda d: json.loads((out / d / "summary.json").read_text())  # noqa: E731
    for d, kind in (("ps-nogs-s0", "nogs"), ("ps-h1-s0", "h1"), ("ps-h5-s0", "h5"), ("ps-hgs-s0", "hgs")):
        assert run(d)["supervision"] == kind and run(d)["pretrain"] and run(d)["num_supervised"] > 0
    assert run("ram-s0")["pretrain"] and run("ram-s0")["supervision"] == "none"
    # RAM pretrains with uniform locations, RAM+ with the EPE heuristic (paper app. B.2)
    cfg = lambda d: json.loads((out / d / "manifest.json").read_text())["config"]["run"]  # noqa: E731
    assert cfg("ram-s0")["pretrain_locations"] == "uniform" and cfg("ramplus-s0")["pretrain_locations"] == "heuristic"


def test_second_run_is_cached(celeba):
    module, root, out, _ = celeba
    again = module.main(["--root", str(root), "--out", str(out), "--tiny", "--device", "cpu"])
    slow = {k: v for k, v in again["seconds_per_stage"].items() if v > 0 and k != "validation curves"}
    assert not slow  # every finished stage skipped
    assert again["results"] == json.loads((out / "summary.json").read_text())["results"]


def test_paper_settings_are_the_papers(load_example):
    c, b = load_example("celeba_hq").PaperSettings(), load_example("cub").PaperSettings()
    assert (c.glimpses, c.num_samples, c.k1, c.num_sequences, c.hidden, c.lr, c.batch_size) == (
        5,
        200,
        1000,
        600,
        64,
        3e-4,
        64,
    )
    assert (c.attribute, c.avp_backbone, c.avp_lr, c.prior_components, c.convergence) == (
        20,
        "densenet121",
        1e-4,
        256,
        "loss",
    )
    assert c.completion_sigma == (5.0, 10.0, 20.0, 40.0) and (b.completion_sigma, b.proposal_target_ess) == (80.0, 0.8)
    assert (b.glimpses, b.num_samples, b.k1, b.num_sequences, b.hidden, b.lr, b.batch_size) == (
        5,
        100,
        500,
        1000,
        1024,
        5e-5,
        64,
    )
    assert (b.backbone, b.backbone_layers, b.avp_backbone, b.convergence, b.pretrain_iterations) == (
        "vgg16",
        12,
        "densenet121",
        "accuracy",
        250 * 80,
    )


def test_bad_input(load_example, tmp_path):
    celeba, cub = load_example("celeba_hq"), load_example("cub")
    with pytest.raises(FileNotFoundError, match="--root"):
        celeba.main(["--root", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--tiny"])
    with pytest.raises(FileNotFoundError, match="--root"):
        cub.main(["--root", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--tiny"])
    with pytest.raises(ValueError, match="--attribute"):
        celeba.main(["--root", str(tmp_path), "--out", str(tmp_path / "o"), "--attribute", "40"])
    with pytest.raises(ValueError, match="methods"):
        cub.stages(cub.PaperSettings(methods=("RAM", "XYZ")), tmp_path, tmp_path, "cpu", 0)
