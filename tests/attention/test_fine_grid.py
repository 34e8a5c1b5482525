"""Everything downstream of the sensor on the fine MNIST grid (49 x 49 = 2,401 locations, the retina): HGS and
heuristic supervision, training with each policy kind, the figures, resuming, and the store's paper format."""

import json

import pytest
import torch

from ppl_attention.attention.network import NetworkConfig
from ppl_attention.attention.policy import POLICIES
from ppl_attention.attention.run import RunConfig, load_run_network, train_run
from ppl_attention.attention.supervision import bbox_sequences, build_supervision
from ppl_attention.attention.trainer import TrainConfig
from ppl_attention.data import load_dataset
from ppl_attention.design.store import SequenceStore
from ppl_attention.sensor import Sensor

FINE = Sensor(60, 12, stride=1, scales=3)


@pytest.fixture(scope="module")
def fine_data():
    return {s: load_dataset("cluttered-mnist", split=s, seed=0, size=32, stride=1) for s in ("train", "valid", "test")}


def test_hgs_on_the_fine_grid_centres_the_fovea_on_the_box():
    boxes = torch.tensor([[10.0, 20.0, 20.0, 14.0], [30.0, 3.0, 28.0, 17.0]])
    seq = bbox_sequences(boxes, FINE, 5)
    assert seq.shape == (2, 5) and int(seq.max()) < FINE.num_locations
    top_left = FINE.pixels(seq[:, 0]).float()  # fovea's top-left pixel (row, col)
    centre = top_left + (12 - 1) / 2
    box_centre = boxes[:, :2] + boxes[:, 2:] / 2 - 0.5
    assert (centre - box_centre).abs().max() <= 0.5  # one pixel apart at most (stride 1), not 3 as on the 9 x 9 grid


@pytest.mark.parametrize("kind", POLICIES)
def test_training_on_the_fine_grid_with_hgs_and_h1(kind, fine_data, tmp_path):
    assert fine_data["train"].grid == FINE
    epe = torch.full((FINE.num_locations,), 3.0)
    epe[FINE.index(24, 24)] = 0.0  # a synthetic EPE_first: the centre is best
    (tmp_path / "first_glimpse.json").write_text(json.dumps({"epe": epe.tolist()}))
    h5 = build_supervision("h5", 32, FINE, 8, 4, 0, epe_first=tmp_path / "first_glimpse.json")
    assert h5.sequences.shape == (4, 8) and int(h5.sequences.max()) < FINE.num_locations
    cfg = TrainConfig(
        glimpses=3, iterations=2, batch_size=8, validate_every=2, tensorboard=False, mc_samples=2, ce_every_step=True
    )
    net_cfg = NetworkConfig(hidden=16, glimpse_dim=8, policy=kind, location_embedding="mlp")
    for sup in ("hgs", "h1"):
        run = RunConfig(
            dataset="cluttered-mnist",
            supervision=sup,
            num_supervised=8,
            epe_first=str(tmp_path / "first_glimpse.json"),
            stopping_thresholds=[0.0, 1.0],
        )
        out = tmp_path / sup
        s = train_run(run, cfg, net_cfg, fine_data, out, 0, torch.device("cpu"), progress=False, figures=sup == "hgs")
        assert s["sensor"]["rows"] == list(range(49)) and 0 <= s["test_mc_acc"] <= 1
        assert s["flops_per_glimpse"] > 0 and len(s["stopping_curve"]) == 2
        assert load_run_network(out).cfg.policy == kind
        locs = json.loads((out / "test_locations.json").read_text())["locations"]
        assert max(max(r) for r in locs) < FINE.num_locations
    assert all((tmp_path / "hgs" / f).is_file() for f in ("glimpse_frequency.png", "glimpses.png", "glimpses.gif"))
    # rerunning the finished run only re-reads it (its stored network config agrees)
    again = train_run(
        run, cfg, net_cfg, fine_data, tmp_path / "h1", 0, torch.device("cpu"), progress=False, figures=False
    )
    assert again["test_greedy_acc"] == s["test_greedy_acc"]


def test_a_fine_grid_store_round_trips_through_the_paper_format(tmp_path):
    store = SequenceStore.create(
        tmp_path / "store", {"dataset": "cluttered-mnist", "task": "mnist", "grid": FINE, "T": 4}
    )
    g = torch.Generator().manual_seed(0)
    seqs = {i: torch.randint(FINE.num_locations, (4,), generator=g) for i in (0, 3, 17)}
    seqs[3][:] = torch.tensor([0, 48, 2352, 2400])  # the four corners
    for i, s in seqs.items():
        store.write_record(i, i, s)
    store.write_first_glimpse(torch.rand(FINE.num_locations, generator=g))
    files = store.export_paper(tmp_path / "paper")
    assert len(files) == 3 and (tmp_path / "paper" / "3.txt").read_text().split() == [
        "0,",
        "0",
        "0,",
        "48",
        "48,",
        "0",
        "48,",
        "48",
    ]
    back = SequenceStore.import_paper(tmp_path / "paper", FINE, tmp_path / "back", dataset="cluttered-mnist")
    assert {i: s.tolist() for i, s in back.sequences().items()} == {i: s.tolist() for i, s in seqs.items()}
    assert build_supervision("h1", 20, FINE, 4, 3, 0, epe_first=tmp_path / "store").sequences.shape == (3, 4)
