"""examples/calibration_over_placements.py at a tiny size: one file per canvas seed, resumed from them, and the
pooled ECE computed on every seed's canvases together."""

import json

import pytest
import torch


def test_seeds_are_pooled_and_resumed(load_example, honest_artefacts, tmp_path):
    ex = load_example("calibration_over_placements")
    argv = ["--prior", str(honest_artefacts / "gp"), "--out", str(tmp_path / "cal"), "--canvas-seeds", "0", "1"]
    argv += ["--num-images", "6", "--glimpses", "2", "--num-samples", "4", "--scales", "1", "2"]
    rows = ex.main(argv)
    assert [(r["scale"], r["t"]) for r in rows] == [(1.0, 1), (1.0, 2), (2.0, 1), (2.0, 2)]
    assert all(r["canvases"] == 12 and 0 <= r["ece"] <= 1 and r["ece_floor"] > 0 and r["median_ess"] >= 1 for r in rows)
    figures = [tmp_path / "cal" / f"reliability-{k}x.png" for k in (1, 2)]
    assert all(f.stat().st_size > 0 for f in figures)
    from safetensors.torch import load_file

    a, b = (load_file(tmp_path / "cal" / f"seed-{k}.safetensors") for k in (0, 1))
    assert a["predictions"].shape == (2, 2, 6, 10) and not torch.equal(a["predictions"], b["predictions"])
    pooled = ex.label_calibration(
        torch.cat([a["predictions"][0, 1], b["predictions"][0, 1]]), torch.cat([a["labels"], b["labels"]])
    )
    assert pooled["ece"] == pytest.approx(rows[1]["ece"])
    # a second run reads the seed files back instead of drawing again: a file replaced by seed 0's is what it pools
    from safetensors.torch import save_file

    save_file(a, tmp_path / "cal" / "seed-1.safetensors")
    twice = ex.label_calibration(torch.cat([a["predictions"][0, 1]] * 2), torch.cat([a["labels"]] * 2))
    assert ex.main(argv)[1]["ece"] == pytest.approx(twice["ece"])
    # with an AVP on the same sensor: its own ECE and P(true label) on the same canvases and glimpses
    avp_rows = ex.main([*argv, "--avp", str(honest_artefacts / "avp")])
    assert all(0 <= r["avp_ece"] <= 1 and 0 < r["avp_p_true"] < 1 for r in avp_rows)
    assert avp_rows[1]["ece"] == pytest.approx(twice["ece"])
    pooled = json.loads((tmp_path / "cal" / "pooled.json").read_text())
    assert pooled["rows"][1]["canvases"] == 12 and len(pooled["per_step"]["scales"]) == 2
    # the schedule for the test split: each step's chosen multiplier times the prior's noise at that step
    base = json.loads((honest_artefacts / "gp" / "manifest.json").read_text())["config"]["sigma"]
    want = [round(b * m, 2) for b, m in zip(base, pooled["per_step"]["scales"])]
    assert pooled["per_step"]["sigma"] == pytest.approx(want)


def test_a_dataset_whose_seed_changes_its_held_out_images_is_refused(load_example, honest_artefacts, monkeypatch):
    """Another canvas seed may only place the same held-out digits again: where the seed re-splits the images (a
    folder's permutation, say), pooling would score other images, and the example says so."""
    ex = load_example("calibration_over_placements")
    real = ex.DatasetSpec.make

    class Resplit:
        name, root, kwargs = "resplit", None, {}

        def __init__(self, seed):
            self.seed = seed

        def load(self, split):
            return type("Data", (), {"digits": torch.full((2, 2), self.seed)})()

    monkeypatch.setattr(ex.DatasetSpec, "make", staticmethod(lambda name, root, seed, *a, **kw: Resplit(seed)))
    with pytest.raises(ValueError, match="changes the test images"):
        ex.held_out_canvases(honest_artefacts / "gp", "test", 1)
    monkeypatch.setattr(ex.DatasetSpec, "make", real)
    assert (
        ex.held_out_canvases(honest_artefacts / "gp", "test", 1).seed == 1
    )  # translated MNIST: the same digits, re-placed


def test_a_prior_without_a_dataset_is_refused(load_example, tmp_path):
    ex = load_example("calibration_over_placements")
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(ValueError, match="records no dataset"):
        ex.held_out_canvases(tmp_path, "test", 1)


def test_a_given_noise_schedule_replaces_the_priors(load_example, honest_artefacts, tmp_path):
    """``--sigma`` twice the prior's schedule at scale 1 draws what the prior's schedule at scale 2 draws."""
    ex = load_example("calibration_over_placements")
    base = json.loads((honest_artefacts / "gp" / "manifest.json").read_text())["config"]["sigma"]
    argv = ["--prior", str(honest_artefacts / "gp"), "--canvas-seeds", "0", "--num-images", "6", "--glimpses", "2"]
    argv += ["--num-samples", "4"]
    doubled = ex.main([*argv, "--scales", "1", "--sigma", *(str(2 * v) for v in base), "--out", str(tmp_path / "a")])
    scaled = ex.main([*argv, "--scales", "2", "--out", str(tmp_path / "b")])
    assert [r["ece"] for r in doubled] == pytest.approx([r["ece"] for r in scaled])
    assert [r["p_true"] for r in doubled] == pytest.approx([r["p_true"] for r in scaled])


def test_the_scored_candidates_label_histogram_is_kept_in_place_of_the_completions(
    load_example, honest_artefacts, tmp_path
):
    """``--label-estimate scored``: one completion's histogram is one-hot, the scored candidates' is not."""
    from safetensors.torch import load_file

    ex = load_example("calibration_over_placements")
    argv = ["--prior", str(honest_artefacts / "gp"), "--canvas-seeds", "0", "--num-images", "6", "--glimpses", "2"]
    argv += ["--num-samples", "1", "--scales", "4"]
    ex.main([*argv, "--out", str(tmp_path / "one")])
    ex.main([*argv, "--out", str(tmp_path / "scored"), "--label-estimate", "scored"])
    one, scored = (load_file(tmp_path / k / "seed-0.safetensors")["predictions"] for k in ("one", "scored"))
    assert bool((one.max(-1).values == 1).all()) and bool((scored.max(-1).values < 0.999).any())
    assert torch.allclose(scored.sum(-1), torch.ones_like(scored.sum(-1)))
    settings = json.loads((tmp_path / "scored" / "pooled.json").read_text())["settings"]
    assert settings["label_estimate"] == "scored"
