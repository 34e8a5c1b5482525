import pytest
import torch

from ppl_attention.data import load_dataset
from ppl_attention.data.cub import _valid_count
from ppl_attention.data.fixtures import CUB_BOX_COLOUR, make_cub_folder
from ppl_attention.sensor import Sensor


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    # 4 classes x 5 images, 1 test image per class: 16 official training images, 4 test images.
    return make_cub_folder(tmp_path_factory.mktemp("cub") / "CUB_200_2011", n_classes=4, per_class=5)


def test_splits(root):
    train = load_dataset("cub", root=root, split="train", seed=0)
    valid = load_dataset("cub", root=root, split="valid", seed=0)
    test = load_dataset("cub", root=root, split="test", seed=0)
    n_valid = round(16 * 874 / 5994)
    assert len(valid) == n_valid and len(train) == 16 - n_valid and len(test) == 4
    ids = [set(d.indices.tolist()) for d in (train, valid, test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert ids[2] == {4, 9, 14, 19}  # the last image of each class (0-based ids)
    assert ids[0] | ids[1] == set(range(20)) - ids[2]
    again = load_dataset("cub", root=root.parent, split="valid", seed=0)  # the parent folder works too
    other = [set(load_dataset("cub", root=root, split="valid", seed=s).indices.tolist()) for s in range(1, 6)]
    assert set(again.indices.tolist()) == ids[1] and any(o != ids[1] for o in other)
    sized = load_dataset("cub", root=root, split="valid", valid_size=5)
    assert len(sized) == 5


def test_valid_count():
    assert _valid_count(5994, 874) == 874
    assert _valid_count(16, 874) == 2
    assert _valid_count(1, 874) == 0
    with pytest.raises(ValueError, match="valid_size"):
        _valid_count(10, -1)


def test_items_crop_labels_and_parts(root):
    ds = load_dataset("cub", root=root, split="test")
    assert ds.num_classes == 4 and ds.class_names == ("Bird_1", "Bird_2", "Bird_3", "Bird_4")
    assert ds.image_size == (128, 128) and ds.grid == Sensor.cub() and ds.allows_flip
    assert ds.labels.tolist() == [0, 1, 2, 3]
    item = ds[1]
    assert item["image"].shape == (3, 128, 128) and item["image"].dtype == torch.float32
    colour = torch.tensor(CUB_BOX_COLOUR, dtype=torch.float32).view(3, 1, 1) / 255
    diff = (item["image"] - colour).abs()
    assert float(diff.mean()) < 0.03 and float(diff.max()) < 0.3  # the crop is the box (jpg noise only)
    parts = item["parts"]
    assert parts.shape == (15, 3) and parts.dtype == torch.float32
    assert parts[0].tolist() == [64.0, 64.0, 1.0]  # box centre
    assert parts[1].tolist() == [32.0, 32.0, 1.0]  # box quarter point
    assert parts[2, 2] == 0  # outside the crop: not visible
    assert (parts[3:, 2] == 0).all()


def test_bad_annotations(tmp_path):
    root = make_cub_folder(tmp_path / "c", n_classes=2, per_class=2)
    boxes = root / "bounding_boxes.txt"
    lines = boxes.read_text().splitlines()
    boxes.write_text("\n".join(lines[:2] + [lines[2] + " 7"] + lines[3:]) + "\n")
    with pytest.raises(ValueError, match=r"bounding_boxes.txt, line 3: expected 5 fields, got 6"):
        load_dataset("cub", root=root)
    boxes.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"bounding_boxes.txt: its image ids do not match images.txt"):
        load_dataset("cub", root=root)
    boxes.write_text("\n".join(lines) + "\n")
    labels = root / "image_class_labels.txt"
    labels.write_text(labels.read_text().replace("1 1\n", "1 x\n", 1))
    with pytest.raises(ValueError, match=r"image_class_labels.txt, line 1: expected an integer, got 'x'"):
        load_dataset("cub", root=root)
    (root / "parts" / "part_locs.txt").unlink()
    with pytest.raises(FileNotFoundError, match="part_locs.txt"):
        load_dataset("cub", root=root)


def test_missing_image_named(tmp_path):
    root = make_cub_folder(tmp_path / "c", n_classes=2, per_class=2)
    ds = load_dataset("cub", root=root, split="test")
    ds.paths[0].unlink()
    with pytest.raises(FileNotFoundError, match="images.txt"):
        ds[0]
