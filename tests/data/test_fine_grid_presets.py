"""The fine-grid presets (``--config cluttered-mnist-fine`` / ``cluttered-mnist-100-fine``): the paper's scale of
locations on the very canvases of the coarse grids."""

import argparse

import pytest
import torch

from ppl_attention.cli import build_parser
from ppl_attention.commands._dataset import resolve_dataset
from ppl_attention.config import load_yaml, presets

FINE = {
    "cluttered-mnist-fine": ("cluttered-mnist", 60, 1, (49, 49)),
    "cluttered-mnist-100-fine": ("cluttered-mnist-100", 100, 2, (45, 45)),
}


def test_the_presets_are_packaged_and_named():
    assert set(FINE) <= set(presets())
    for name, (dataset, _, stride, _) in FINE.items():
        data = load_yaml(name)
        assert data["dataset"] == dataset and data["dataset_options"] == {"stride": stride, "scales": 3}


@pytest.mark.parametrize("name", sorted(FINE))
def test_a_preset_gives_the_fine_grid_on_the_coarse_grids_canvases(name):
    dataset, size, stride, shape = FINE[name]
    args = build_parser().parse_args(["datasets", "show", dataset, "--out", "x.png", "--config", name])
    spec = resolve_dataset(args, positional_name=dataset)
    assert spec.name == dataset and spec.kwargs["stride"] == stride
    fine = spec.load("valid")
    coarse = resolve_dataset(argparse.Namespace(config=None, seed=0), positional_name=dataset).load("valid")
    assert fine.grid.shape == shape and fine.grid.scales == 3 and fine.grid.image_size == (size, size)
    assert coarse.grid.num_locations < 300
    assert torch.equal(fine.images, coarse.images) and torch.equal(fine.bboxes, coarse.bboxes)


def test_a_flag_overrides_the_preset_and_an_unknown_name_is_refused(tmp_path):
    args = build_parser().parse_args(
        [
            "train",
            "--out",
            str(tmp_path / "r"),
            "--config",
            "cluttered-mnist-fine",
            "--dataset-option",
            "stride=2",
            "--policy",
            "gaussian",
        ]
    )
    assert resolve_dataset(args).kwargs["stride"] == 2
    with pytest.raises(ValueError, match="nor is it a preset"):
        load_yaml("cluttered-mnist-finer")


def test_datasets_lists_the_presets(capsys):
    from ppl_attention.cli import main

    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "cluttered-mnist-fine" in out and "2,401" in out and "--dataset-option stride=1" in out
