"""The 49 x 49 MNIST grid (2,401 locations, ``--dataset-option stride=1``) through the amortised design: maps
distilled from an exhaustive search scored on its 9 x 9 sub-lattice, a coordinate network for the whole grid,
``generate --search amortised`` writing binary maps and the first-glimpse cache (copied from another store)."""

from __future__ import annotations

import json

import pytest
import torch

from ppl_attention.cli import main
from ppl_attention.design.store import SequenceStore

SMALL = ["--num-samples", "4", "--first-num-samples", "2", "--k1", "40", "--glimpses", "3", "--precision", "bfloat16"]


@pytest.fixture(scope="module")
def fine(tmp_path_factory):
    from ppl_attention.completion.generative import build_generative_prior
    from ppl_attention.data.spec import DatasetSpec
    from ppl_attention.posterior.network import AVPConfig, build_avp, save_avp
    from ppl_attention.sensor import Sensor

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("fine")
    spec = DatasetSpec("cluttered-mnist", None, 0, (("stride", 1),))
    grid = spec.load("valid").grid
    assert grid == Sensor((60, 60), (12, 12), stride=1, scales=3) and grid.num_locations == 2401
    torch.manual_seed(0)
    save_avp(
        build_avp(AVPConfig(grid=grid.to_dict(), width=4)),
        root / "avp",
        "cluttered-mnist",
        2,
        extra_config={"seed": 0, "data": spec.to_dict()},
    )
    build_generative_prior(root / "prior", spec, components=6, prototypes=6, clutter_samples=200)
    base = ["--avp", str(root / "avp"), "--prior", str(root / "prior"), *SMALL, "--allow-oracle", "true"]
    assert (
        main(
            [
                "generate",
                *base,
                "--search",
                "exhaustive",
                "--search-options",
                "stride=6",
                "--num-images",
                "3",
                "--out",
                str(root / "ex6"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train-epe-net",
                "--store",
                str(root / "ex6"),
                "--avp",
                str(root / "avp"),
                "--out",
                str(root / "net"),
                "--epochs",
                "1",
                "--width",
                "4",
                "--hidden",
                "8",
                "--positions",
                "coords",
                "--batch-size",
                "4",
                "--no-progress",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    return root, base


def test_sub_lattice_maps_and_the_coords_network(fine):
    root, _ = fine
    store = SequenceStore.open(root / "ex6")
    rec = store.record(0)
    assert rec["evaluations"][1] <= 81 * 4  # only the 9 x 9 sub-lattice is scored: 81 locations x 4 completions
    assert store.epe_maps(0).shape == (3, 2401) and rec["maps"]["dtype"] == "float16"
    assert rec["locations"][1] % 6 == 0 and (rec["locations"][1] // 49) % 6 == 0  # chosen on the sub-lattice
    net = json.loads((root / "net" / "manifest.json").read_text())["config"]["net"]
    assert net["positions"] == "coords" and net["grid"]["cols"] == list(range(49))


def test_generate_amortised_on_the_fine_grid(fine, tmp_path):
    root, base = fine
    out = tmp_path / "am"
    args = ["generate", *base, "--search", "amortised", "--epe-net", str(root / "net"), "--num-images", "5"]
    # the first-glimpse map of a store made with other settings is refused before --out is created
    assert main([*args, "--first-glimpse-from", str(root / "ex6"), "--first-num-samples", "3", "--out", str(out)]) == 2
    assert not out.exists()
    assert main([*args, "--first-glimpse-from", str(root / "ex6"), "--out", str(out)]) == 0
    store = SequenceStore.open(out)
    assert store.indices() == [0, 1, 2, 3, 4]
    first = store.first_glimpse()
    assert first["copied_from"] == str(root / "ex6") and len(first["epe"]) == 2401
    assert torch.equal(store.first_glimpse_epe(), SequenceStore.open(root / "ex6").first_glimpse_epe())
    for i in store.indices():
        loc = store.record(i)["locations"]
        maps = store.epe_maps(i)
        assert maps.shape == (3, 2401) and len(set(loc)) == 3 and loc[0] == int(store.first_glimpse_epe().argmin())
        # each step chose the argmin of its own (float16-stored) map among the locations not yet observed
        for t in (1, 2):
            m = maps[t].clone()
            m[loc[:t]] = float("inf")
            assert float(m[loc[t]]) <= float(m.min()) + 2e-3 * float(m.abs().max())
