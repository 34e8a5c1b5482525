import json

import pytest
import torch

from ppl_attention.attention.supervision import (
    CUB_PART_NAMES,
    Supervision,
    bbox_sequences,
    build_supervision,
    choose_supervised,
    heuristic_distribution,
    heuristic_sequences,
    load_first_glimpse_epe,
    load_store_sequences,
    parts_sequences,
)
from ppl_attention.design.store import SequenceStore
from ppl_attention.sensor import Sensor, NO_GLIMPSE

MNIST = Sensor.mnist()


def make_store(path, grid=MNIST, dataset="cluttered-mnist", T=3, records=None, epe=None, seed=None):
    config = {"dataset": dataset, "task": "categorical", "grid": grid, "T": T}
    if seed is not None:
        config["seed"] = seed
    store = SequenceStore.create(path, config)
    for index, locs in (records or {}).items():
        store.write_record(index, 0, locs)
    if epe is not None:
        store.write_first_glimpse(epe)
    return path


def test_choose_supervised_is_seeded_and_ignores_input_order():
    a = choose_supervised([5, 3, 9, 1, 7, 2], 3, seed=1)
    b = choose_supervised([2, 7, 1, 9, 3, 5], 3, seed=1)
    assert torch.equal(a, b) and len(a) == 3 and set(a.tolist()) <= {1, 2, 3, 5, 7, 9}
    assert torch.equal(a, a.sort().values)
    picks = {tuple(choose_supervised(range(100), 5, seed=s).tolist()) for s in range(5)}
    assert len(picks) == 5
    with pytest.raises(ValueError, match="only 6 training images"):
        choose_supervised([5, 3, 9, 1, 7, 2], 7, seed=1)


def test_heuristic_distribution_is_softmax_of_negative_epe():
    epe = torch.tensor([1.0, 2.0, 3.0])
    p = heuristic_distribution(epe, 5.0)
    assert torch.allclose(p, torch.softmax(-5 * epe, 0))
    with pytest.raises(ValueError, match="NaN"):
        heuristic_distribution(torch.tensor([1.0, float("nan")]), 1.0)


def test_heuristic_sequences_follow_the_distribution_and_are_fixed_by_the_seed():
    epe = torch.tensor([0.0, 0.0, 10.0, 10.0])
    seqs = heuristic_sequences(epe, 2000, 5, 1.0, seed=0)
    assert seqs.shape == (2000, 5) and torch.equal(seqs, heuristic_sequences(epe, 2000, 5, 1.0, seed=0))
    freq = torch.bincount(seqs.flatten(), minlength=4).float() / seqs.numel()
    assert torch.allclose(freq, heuristic_distribution(epe, 1.0), atol=0.02)


def test_bbox_sequences_visit_centre_then_quadrants():
    # A 28 x 28 box at (12, 18): centre pixel (25.5, 31.5) -> glimpse centres are 5.5 + 6k.
    seqs = bbox_sequences(torch.tensor([[12.0, 18.0, 28.0, 28.0]]), MNIST, 6)
    centres = MNIST.centres(seqs[0])
    expected_px = torch.tensor([[25.5, 31.5], [18.5, 24.5], [18.5, 38.5], [32.5, 24.5], [32.5, 38.5], [25.5, 31.5]])
    assert torch.all((centres - expected_px).abs() <= 3.0)
    assert seqs[0, 0] == seqs[0, 5] and len(set(seqs[0, :5].tolist())) == 5


def test_parts_sequences_follow_the_paper_order_and_replace_hidden_parts():
    grid = Sensor.cub()
    P = len(CUB_PART_NAMES)
    parts = torch.zeros(2, P, 3)
    for j in range(P):  # part j at row 8j, col 100 - 6j, visible
        parts[:, j] = torch.tensor([8.0 * j, 100.0 - 6 * j, 1.0])
    parts[1, CUB_PART_NAMES.index("beak"), 2] = 0  # hidden beak in image 1
    parts[1, CUB_PART_NAMES.index("left eye"), 2] = 0  # hidden left eye: right eye is used
    seqs = parts_sequences(parts, grid, seed=0)
    order = ["beak", "left eye", "forehead", "belly", "left leg"]
    expect = torch.stack(
        [grid.nearest(parts[0, CUB_PART_NAMES.index(n), 0], parts[0, CUB_PART_NAMES.index(n), 1]) for n in order]
    )
    assert seqs[0].tolist() == expect.tolist()
    right_eye = CUB_PART_NAMES.index("right eye")
    assert seqs[1, 1] == grid.nearest(parts[1, right_eye, 0], parts[1, right_eye, 1])
    visible = [grid.nearest(parts[1, j, 0], parts[1, j, 1]).item() for j in range(P) if parts[1, j, 2] > 0]
    assert seqs[1, 0].item() in visible and seqs[1, 2:].tolist() == expect[2:].tolist()
    with pytest.raises(ValueError, match="`parts` must have shape"):
        parts_sequences(torch.zeros(2, 4, 3), grid, 0)


def test_store_sequences_are_loaded_and_checked(tmp_path):
    store = make_store(tmp_path / "s", records={4: [1, 2, 3], 2: [7, 8, 9]}, epe=torch.arange(81.0))
    idx, seqs = load_store_sequences(store, "cluttered-mnist", MNIST, 5)
    assert idx.tolist() == [2, 4] and seqs.tolist() == [[7, 8, 9], [1, 2, 3]]
    sup = build_supervision("nogs", 10, MNIST, 5, 1, seed=0, dataset="cluttered-mnist", sequences_dir=store)
    table = sup.table(10, 5)
    row = sup.indices[0].item()
    assert table[row].tolist() == seqs[idx.tolist().index(row)].tolist() + [NO_GLIMPSE, NO_GLIMPSE]
    assert (table != NO_GLIMPSE).any(1).sum() == 1
    assert torch.equal(load_first_glimpse_epe(store, 81), torch.arange(81.0))


def test_store_for_another_dataset_or_grid_or_longer_sequences_is_refused(tmp_path):
    store = make_store(tmp_path / "a", records={0: [1, 2, 3]})
    with pytest.raises(ValueError, match="built for dataset 'cluttered-mnist', expected 'translated-mnist'"):
        load_store_sequences(store, "translated-mnist", MNIST, 5)
    with pytest.raises(ValueError, match="was made for sensor 9x9 locations .* 1 scale, but .* is 5x5 locations"):
        load_store_sequences(store, "cluttered-mnist", Sensor(60, 12, stride=12), 5)
    with pytest.raises(ValueError, match=r"1 scale, but .* 3 scales \(12, 24, 48 px"):  # same grid, the retina
        load_store_sequences(store, "cluttered-mnist", MNIST.with_scales(3), 5)
    with pytest.raises(ValueError, match="longer than T=2"):
        load_store_sequences(store, "cluttered-mnist", MNIST, 2)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_store_sequences(tmp_path / "nope", "cluttered-mnist", MNIST, 5)


def test_store_made_for_the_data_of_another_seed_is_refused(tmp_path):
    """Sequences index the store's own canvases; another data seed would supervise the wrong images."""
    store = make_store(tmp_path / "a", records={0: [1, 2, 3]}, seed=0)
    idx, _ = load_store_sequences(store, "cluttered-mnist", MNIST, 5, data_seed=0)
    assert idx.tolist() == [0]
    with pytest.raises(ValueError, match="training data of seed 0.*uses seed 1: pass `data_seed` 0"):
        build_supervision("nogs", 20, MNIST, 5, 1, 1, dataset="cluttered-mnist", sequences_dir=store, data_seed=1)


def test_supervised_indices_outside_the_training_split_are_refused(tmp_path):
    store = make_store(tmp_path / "a", records={0: [1, 2, 3], 50: [1, 1, 1]})
    with pytest.raises(ValueError, match="index 50, outside the training split"):
        build_supervision("nogs", 20, MNIST, 5, 1, 0, dataset="cluttered-mnist", sequences_dir=store)
    with pytest.raises(ValueError, match="outside the training split"):
        Supervision("nogs", torch.tensor([25]), torch.zeros(1, 3, dtype=torch.long)).table(20, 5)


def test_heuristic_and_handcrafted_supervision(tmp_path):
    epe_file = tmp_path / "first_glimpse.json"
    epe = torch.full((81,), 10.0)
    epe[40] = 0.0
    epe_file.write_text(json.dumps({"epe": epe.tolist()}))
    sup = build_supervision("h5", 100, MNIST, 4, 10, seed=3, epe_first=epe_file)
    assert sup.sequences.shape == (10, 4) and bool((sup.sequences == 40).all())  # softmax(-50) elsewhere
    assert torch.equal(sup.indices, choose_supervised(range(100), 10, 3))
    bboxes = torch.tensor([[16.0, 16.0, 28.0, 28.0]]).expand(100, 4)
    hgs = build_supervision("hgs", 100, MNIST, 5, 4, seed=0, annotations=lambda idx: {"bbox": bboxes[idx]})
    assert torch.equal(hgs.sequences, bbox_sequences(bboxes[:4], MNIST, 5))
    with pytest.raises(ValueError, match="needs `epe_first`"):
        build_supervision("h1", 100, MNIST, 4, 10, seed=3)
    with pytest.raises(ValueError, match="one per grid location"):
        build_supervision("h1", 100, MNIST, 4, 10, seed=3, epe_first=torch.zeros(5))
    with pytest.raises(ValueError, match="needs `sequences`"):
        build_supervision("nogs", 100, MNIST, 4, 10, seed=3)
    with pytest.raises(ValueError, match="`supervision` must be one of"):
        build_supervision("oracle", 100, MNIST, 4, 10, seed=3)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="must hold"):
        load_first_glimpse_epe(bad, 81)


def test_num_supervised_defaults_to_every_stored_sequence(tmp_path):
    store = make_store(tmp_path / "s", records={4: [1, 2, 3], 2: [7, 8, 9], 6: [0, 1, 2]})
    sup = build_supervision("nogs", 10, MNIST, 5, None, seed=0, dataset="cluttered-mnist", sequences_dir=store)
    assert sup.indices.tolist() == [2, 4, 6]
    with pytest.raises(ValueError, match="num_supervised=4 but only 3"):
        build_supervision("nogs", 10, MNIST, 5, 4, seed=0, dataset="cluttered-mnist", sequences_dir=store)


def test_every_training_method_names_a_supervision_kind_and_its_own_label():
    from ppl_attention.attention.supervision import KINDS, METHODS

    assert all(m.supervision in KINDS for m in METHODS.values())
    assert set(KINDS) == {m.supervision for m in METHODS.values()}  # every kind is some method's
    assert len({m.label for m in METHODS.values()}) == len(METHODS)
    assert [name for name, m in METHODS.items() if m.pretrain] == ["ram+"]
