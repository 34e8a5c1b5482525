"""The EPE-map network: its map's shape and location order, the loss, the amortised / hybrid searches, the
batched rollout, and refusing a network made for another sensor, grid or AVP."""

import math

import pytest
import torch

from ppl_attention.artifacts import ArtifactError
from ppl_attention.design.amortised import (
    AmortisedMap,
    EPEMapNet,
    EPENetConfig,
    allowed_mask,
    amortised_sequences,
    check_epe_net,
    epe_map_loss,
    load_epe_net,
    map_regret,
    save_epe_net,
)
from ppl_attention.design.search import (
    NETWORK_SEARCHES,
    SEARCHES,
    amortised_choice,
    dagger_search,
    exhaustive_search,
    hybrid_search,
    parse_search_options,
    run_search,
)
from ppl_attention.design.sequential import DesignProblem, DesignSettings, greedy_sequence
from ppl_attention.posterior.network import AVPConfig, build_avp
from ppl_attention.sensor import Sensor, SensorMismatch


def _tiny(grid=None, **kw):
    grid = grid or Sensor.retina()
    return EPEMapNet(EPENetConfig(grid=grid.to_dict(), width=4, hidden=8, embedding=2, **kw))


def _avp(grid=None):
    torch.manual_seed(0)
    return build_avp(AVPConfig(grid=(grid or Sensor.retina()).to_dict(), width=4)).eval()


def test_the_map_has_the_grids_shape_and_location_order():
    grid = Sensor.retina()
    net = _tiny(grid)
    x = torch.zeros(3, net.in_channels, 60, 60)
    out = net(x, torch.full((3, 10), 0.1))
    assert out.shape == (3, grid.num_locations) and grid.location_heatmap(out).shape == (3, 9, 9)
    # column l is location l: a bias on one location moves that location (and only it) on the grid's heatmap
    with torch.no_grad():
        net.bias[grid.index(torch.tensor(12), torch.tensor(30))] += 5.0
    heat = grid.location_heatmap(net(x, torch.full((3, 10), 0.1)) - out)
    assert heat.shape == (3, 9, 9) and torch.nonzero(heat[0] > 1).tolist() == [[2, 5]]
    # a location reads the features under its own glimpse: a bright blob at one glimpse moves its own location's
    # features most (the sampling points follow the grid's order: row-major top-left pixels)
    assert torch.allclose(net.centres[0, 0, 0], torch.tensor([(5.5 + 0.5) / 60 * 2 - 1] * 2))
    assert net.centres[0, 0, 1, 0] > net.centres[0, 0, 0, 0] and net.centres[0, 0, 9, 1] > net.centres[0, 0, 0, 1]


def test_a_non_square_grid_keeps_its_order():
    grid = Sensor((40, 60), (12, 12), rows=[0, 14, 28], cols=[0, 12, 24, 36, 48])
    net = _tiny(grid)
    out = net(torch.zeros(1, net.in_channels, 40, 60), torch.full((1, 10), 0.1))
    assert out.shape == (1, 15)
    c = net.centres[0, 0]  # (L, 2) as (x, y): location 1 is one column to the right, location 5 one row down
    assert c[1, 0] > c[0, 0] and c[1, 1] == c[0, 1] and c[5, 1] > c[0, 1] and c[5, 0] == c[0, 0]


def test_bad_inputs_are_named():
    net = _tiny()
    with pytest.raises(ValueError, match="AVP's input"):
        net(torch.zeros(1, 2, 60, 60), torch.zeros(1, 10))
    with pytest.raises(ValueError, match="probabilities"):
        net(torch.zeros(1, net.in_channels, 60, 60), torch.zeros(1, 7))
    with pytest.raises(ValueError, match="must be an int >= 1"):
        EPENetConfig(width=0)
    m = AmortisedMap(_tiny(), _avp())
    with pytest.raises(ValueError, match="NaN"):
        m(torch.full((1, 1, 60, 60), math.nan), torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="observed"):
        m(torch.zeros(1, 1, 60, 60), torch.tensor([[81]]))


def test_loss_cares_about_the_minimum_and_ignores_forbidden_locations():
    target = torch.tensor([[1.0, 1.5, 2.0, 2.0]])
    allowed = torch.tensor([[True, True, True, False]])
    good = epe_map_loss(target.clone(), target, allowed, 0.5, 0.1)
    assert float(good["mse"]) == 0 and float(good["rank"]) < 1e-6
    # the same squared error: swapping the two best locations costs far more ranking loss than the two worst
    near = epe_map_loss(torch.tensor([[1.5, 1.0, 2.0, 2.0]]), target, allowed, 0.5, 0.1)
    far = epe_map_loss(torch.tensor([[1.0, 2.0, 1.5, 2.0]]), target, allowed, 0.5, 0.1)
    assert float(near["mse"]) == pytest.approx(float(far["mse"]))
    assert float(near["rank"]) > 10 * float(far["rank"])
    # a forbidden location's prediction does not matter
    anything = epe_map_loss(torch.tensor([[1.0, 1.5, 2.0, -50.0]]), target, allowed, 0.5, 0.1)
    assert float(anything["loss"]) == pytest.approx(float(good["loss"]))
    r = map_regret(torch.tensor([[1.5, 1.0, 2.0, 0.0]]), target, allowed)
    assert float(r["regret"][0]) == pytest.approx(0.5) and not bool(r["agree"][0])
    with pytest.raises(ValueError, match="allowed"):
        epe_map_loss(target, target, torch.zeros(1, 4, dtype=torch.bool), 1.0, 0.1)


def test_allowed_mask_ignores_padding():
    a = allowed_mask(torch.tensor([[3, -1, -1], [0, 2, -1]]), 5)
    assert a.tolist() == [[True, True, True, False, True], [False, True, False, True, True]]


def test_amortised_and_hybrid_searches():
    assert "amortised" in SEARCHES and "hybrid" in SEARCHES and set(NETWORK_SEARCHES) <= set(SEARCHES)
    proposal = torch.tensor([0.5, 0.1, 0.3, 0.2, 0.9])
    r = amortised_choice(proposal, 5, forbidden=torch.tensor([1]))
    assert r.location == 3 and r.evaluations == 0 and torch.equal(r.epe, proposal.double())
    # hybrid: only the top-k proposals are scored; the BOED estimate (not the proposal) decides among them
    H = torch.tensor([[2.0, 2.0], [1.0, 1.0], [0.1, 0.3], [0.5, 0.5], [0.0, 0.0]])
    calls = []

    def score(c, s):
        calls.append(c.clone())
        return H[c][:, s]

    w = torch.tensor([0.5, 0.5])
    h = hybrid_search(score, w, 5, None, proposal, top=3)
    assert set(torch.cat(calls).tolist()) <= {1, 2, 3} and h.location == 2
    assert h.evaluations <= 3 * 2 and torch.isfinite(h.epe).all()
    # location 4 is the true best, but the network did not propose it
    assert exhaustive_search(lambda c, s: H[c][:, s], w, 5).location == 4
    with pytest.raises(ValueError, match="EPE-map network"):
        run_search("amortised", None, w, Sensor((1, 5), (1, 1), [0], [0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match="shape"):
        amortised_choice(torch.zeros(4), 5)
    with pytest.raises(ValueError, match="NaN"):
        amortised_choice(torch.tensor([0.0, math.nan, 0, 0, 0]), 5)
    assert parse_search_options("hybrid", ["top=6", "z=1.5"]) == {"top": 6, "z": 1.5}
    with pytest.raises(ValueError, match="no option 'prior_top'"):
        parse_search_options("hybrid", ["prior_top=3"])
    with pytest.raises(ValueError, match="no option"):
        parse_search_options("amortised", ["top=3"])


def test_dagger_labels_the_networks_state_with_the_exhaustive_map():
    H = torch.tensor([[2.0, 2.0], [1.0, 1.0], [0.1, 0.3], [0.5, 0.5], [0.0, 0.0]])
    w = torch.tensor([0.5, 0.5])
    proposal = torch.tensor([0.5, 0.1, 0.3, 0.2, 0.9])
    expert = exhaustive_search(lambda c, s: H[c][:, s], w, 5, forbidden=torch.tensor([1]))
    d = dagger_search(lambda c, s: H[c][:, s], w, 5, forbidden=torch.tensor([1]), proposal=proposal)
    # the network's choice (3: its best allowed location), the exhaustive map and passes, the expert's choice (4)
    assert d.location == 3 and d.info["expert"] == expert.location == 4
    assert torch.equal(d.epe, expert.epe) and d.evaluations == expert.evaluations == 10
    assert "dagger" in NETWORK_SEARCHES and parse_search_options("dagger", ["stride=2"]) == {"stride": 2}
    with pytest.raises(ValueError, match="dagger search needs an EPE-map network"):
        dagger_search(lambda c, s: H[c][:, s], w, 5)


class _NoSampler:
    def sample(self, *a, **k):
        raise AssertionError("the amortised search must not draw completions")


def test_greedy_amortised_matches_the_batched_rollout():
    torch.manual_seed(1)
    avp, net = _avp(), _tiny()
    predictor = AmortisedMap(net, avp)
    problem = DesignProblem(avp, _NoSampler(), avp.grid, epe_net=predictor)
    images = torch.rand(3, 1, 60, 60)
    first = torch.rand(81).double()
    locs, maps = amortised_sequences(predictor, images, 4, first)
    assert locs.shape == (3, 4) and maps.shape == (3, 4, 81)
    for b in range(3):
        assert len(set(locs[b].tolist())) == 4  # never repeats
        seq = greedy_sequence(problem, images[b], DesignSettings(T=4, search="amortised"), seed=0, first_epe=first)
        assert seq.locations.tolist() == locs[b].tolist()
        assert torch.allclose(seq.epe, maps[b], atol=1e-5)
    # without a network the network searches are refused
    with pytest.raises(ValueError, match="EPE-map network"):
        greedy_sequence(
            DesignProblem(avp, _NoSampler(), avp.grid),
            images[0],
            DesignSettings(T=2, search="hybrid"),
            seed=0,
            first_epe=first,
        )


def test_saved_network_reloads_and_is_refused_for_another_sensor_or_avp(tmp_path):
    net = _tiny()
    save_epe_net(
        net,
        tmp_path / "n",
        {"avp": "sha256:a", "prior": "sha256:p", "grid": net.grid.to_dict(), "avp_dir": "avpA", "prior_dir": "priorP"},
    )
    loaded = load_epe_net(tmp_path / "n")
    x = torch.rand(2, net.in_channels, 60, 60)
    p = torch.full((2, 10), 0.1)
    assert torch.equal(loaded(x, p), net(x, p))
    check_epe_net(loaded, Sensor.retina(), "sha256:a", "sha256:p", "net")  # the right ones pass
    with pytest.raises(SensorMismatch, match="net"):
        check_epe_net(loaded, Sensor.mnist(), "sha256:a", "sha256:p", "net")  # one scale, not the retina
    fine = Sensor((60, 60), (12, 12), rows=list(range(0, 49)), cols=list(range(0, 49)), scales=3)
    with pytest.raises(SensorMismatch):
        check_epe_net(loaded, fine, "sha256:a", "sha256:p", "net")  # the fine grid
    with pytest.raises(ArtifactError, match="avpA.*not for --avp B"):
        check_epe_net(loaded, Sensor.retina(), "sha256:b", "sha256:p", "net", avp_what="--avp B")
    with pytest.raises(ArtifactError, match="prior"):
        check_epe_net(loaded, Sensor.retina(), "sha256:a", "sha256:q", "net")
    with pytest.raises(SensorMismatch):
        AmortisedMap(loaded, _avp(Sensor.mnist()))
    (tmp_path / "n" / "epe_net.safetensors").unlink()
    with pytest.raises(ArtifactError, match="no trained EPE-map network"):
        load_epe_net(tmp_path / "n")


def test_distillation_examples_from_a_store(tmp_path):
    import json

    from ppl_attention.design.distill import load_store_maps
    from ppl_attention.design.store import SequenceStore

    grid = Sensor.retina()
    store = SequenceStore.create(
        tmp_path / "s", {"dataset": "cluttered-mnist", "task": "label", "grid": grid, "T": 3, "search": "exhaustive"}
    )
    maps = torch.rand(2, 3, 81).double()
    maps[1, 0] = maps[0, 0]  # the first map is the same for every image
    for i in range(2):
        store.write_record(i, 0, [40, 10 + i, 20], maps[i])
    images = torch.rand(2, 1, 60, 60)
    data = load_store_maps([store], [lambda i: images[i]], _avp())
    assert len(data) == 1 + 2 * 2  # the first map once, then steps 2 and 3 of each image
    assert data.observed.tolist() == [[-1, -1], [40, -1], [40, 10], [40, -1], [40, 11]]
    expected = torch.stack([maps[0, 0], maps[0, 1], maps[0, 2], maps[1, 1], maps[1, 2]])
    assert torch.equal(data.targets, expected.half().float())  # the store keeps its maps in float16
    assert data.allowed.sum(1).tolist() == [81, 80, 79, 80, 79] and not bool(data.allowed[2, 10])
    assert data.probs.shape == (5, 10) and torch.allclose(data.probs.sum(1), torch.ones(5))
    # a record whose maps hold NaN (written by hand: the store refuses to write one) is named
    path = store.record_path(1)
    rec = json.loads(path.read_text())
    del rec["maps"]
    rec["epe"] = maps[1].tolist()  # an old store's record, maps in the JSON
    rec["epe"][2][5] = float("nan")
    path.write_text(json.dumps(rec))
    with pytest.raises(ArtifactError, match="0000001.json.*NaN"):
        load_store_maps([store], [lambda i: images[i]], _avp())


def test_a_coords_network_maps_the_fine_grid_in_its_shape_and_order():
    fine = Sensor((60, 60), (12, 12), stride=1, scales=3)  # the 49 x 49 MNIST grid (2,401 locations)
    net = _tiny(fine, positions="coords")
    assert net.bias.numel() == 1 and net.embed is None  # no per-location parameter
    x = torch.rand(2, net.in_channels, 60, 60)
    out = net(x, torch.full((2, 10), 0.1))
    assert out.shape == (2, 2401) and fine.location_heatmap(out).shape == (2, 49, 49)
    # column l is location l: the head reads location l's own centre (row-major top-left pixels)
    c = net.centres[0, 0]
    assert c[1, 0] > c[0, 0] and c[1, 1] == c[0, 1] and c[49, 1] > c[0, 1] and c[49, 0] == c[0, 0]
    # a subset of locations gives exactly those columns
    some = torch.tensor([0, 48, 49 * 30 + 7, 2400])
    assert torch.allclose(net(x, torch.full((2, 10), 0.1), some), out[:, some], atol=1e-5)
    # the same weights serve the 9 x 9 grid: its locations are the fine grid's every 6th row and column
    coarse = net.on_grid(Sensor((60, 60), (12, 12), stride=6, scales=3))
    sub = fine.index(coarse.grid.pixels(torch.arange(81))[:, 0], coarse.grid.pixels(torch.arange(81))[:, 1])
    assert torch.allclose(coarse(x, torch.full((2, 10), 0.1)), out[:, sub], atol=1e-5)
    with pytest.raises(ValueError, match="positions='coords'"):
        _tiny(fine).on_grid(coarse.grid)
    with pytest.raises(ValueError, match="positions"):
        EPENetConfig(positions="learned")


def test_distillation_from_a_sub_lattice_store_trains_on_the_scored_locations_only(tmp_path):
    from ppl_attention.design.distill import TrainEPENetConfig, load_store_maps, train_epe_net
    from ppl_attention.design.search import lattice
    from ppl_attention.design.store import SequenceStore

    grid = Sensor((60, 60), (12, 12), stride=3, scales=3)  # 17 x 17; stride 2 of it: 9 x 9 scored
    store = SequenceStore.create(
        tmp_path / "s",
        {
            "dataset": "cluttered-mnist",
            "task": "label",
            "grid": grid,
            "T": 2,
            "search": "exhaustive",
            "search_options": {"stride": 2},
        },
    )
    for i in range(4):
        store.write_record(i, 0, [0, 2 + 2 * i], torch.rand(2, grid.num_locations))
    scored = torch.nonzero(lattice(grid, 2)).flatten()
    assert len(scored) == 81
    data = load_store_maps([store], [lambda i: torch.rand(1, 60, 60)], _avp(grid))
    assert torch.equal(data.locations, scored) and data.targets.shape == (len(data), 81)
    assert data.observed[1, 0] == 0 and not bool(data.allowed[1, 0]) and bool(data.allowed[0, 0])  # observed: masked
    cfg = TrainEPENetConfig(epochs=1, batch_size=4, width=4, hidden=8, valid_fraction=0.25)
    with pytest.raises(ValueError, match="`positions` coords"):
        train_epe_net(data, _avp(grid), _tiny(grid), tmp_path / "a", cfg, progress=False)
    net, history = train_epe_net(data, _avp(grid), _tiny(grid, positions="coords"), tmp_path / "b", cfg, progress=False)
    assert net(torch.zeros(1, net.in_channels, 60, 60), torch.full((1, 10), 0.1)).shape == (1, 289)


def test_exhaustive_search_on_a_sub_lattice():
    grid = Sensor((60, 60), (12, 12), stride=3)  # 17 x 17
    L = grid.num_locations
    H = torch.rand(L, 5, generator=torch.Generator().manual_seed(0)).double()
    score = lambda c, s: H[c][:, s]  # noqa: E731
    w = torch.ones(5)
    result = run_search(
        "exhaustive", score, w, grid, torch.tensor([0]), **parse_search_options("exhaustive", ["stride=4"])
    )
    from ppl_attention.design.search import lattice

    scored = lattice(grid, 4)
    assert result.evaluations == int(scored.sum()) * 5 and result.info["scored"] == 25  # rows 0 4 8 12 16
    epe = H.mean(1)
    best = torch.where(scored & (torch.arange(L) != 0), epe, torch.full_like(epe, math.inf)).argmin()
    assert result.location == int(best) and torch.allclose(result.epe[scored], epe[scored])
    assert bool(torch.isfinite(result.epe).all())  # the others: a scored neighbour's value
    with pytest.raises(ValueError, match="stride"):
        exhaustive_search(score, w, L, stride=2)
