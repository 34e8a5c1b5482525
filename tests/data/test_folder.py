import pytest
import torch

from ppl_attention.data import load_dataset
from ppl_attention.data.fixtures import make_image_folder
from ppl_attention.data.folder import read_labels_csv


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("folder"))


def test_labels_sorted_and_splits_partition(root):
    names, labels = read_labels_csv(root / "labels.csv")
    splits = {s: load_dataset("folder", root=root, split=s, seed=2, size=16) for s in ("train", "valid", "test")}
    assert splits["train"].class_names == ("bird", "cat", "dog")
    all_idx = torch.cat([d.indices for d in splits.values()]).sort().values
    assert torch.equal(all_idx, torch.arange(10))
    assert len(splits["valid"]) == 1 and len(splits["test"]) == 1
    for ds in splits.values():
        for k in range(len(ds)):
            item = ds[k]
            i = int(item["index"])
            assert ds.class_names[int(item["label"])] == labels[i]
            assert item["image"].shape == (3, 16, 16)
            assert torch.allclose(item["image"], torch.full((3, 16, 16), 20 * i / 255))
    again = load_dataset("folder", root=root, split="test", seed=2, size=16)
    assert torch.equal(again.indices, splits["test"].indices)
    ds = splits["train"]
    assert ds.grid.image_size == (16, 16) and ds.task == "categorical" and ds.num_classes == 3


def test_numeric_labels_sort_numerically(tmp_path):
    root = make_image_folder(tmp_path / "n", labels=("10", "2", "9", "2"))
    ds = load_dataset("folder", root=root, split="train", valid_fraction=0, test_fraction=0, size=8)
    assert ds.class_names == ("2", "9", "10") and ds.labels.tolist() == [2, 0, 1, 0]


def test_bad_csv_and_missing_images(tmp_path):
    root = make_image_folder(tmp_path / "b", labels=("a", "b", "a"))
    csv = root / "labels.csv"
    csv.write_text("filename,label\n0.png,a\n1.png,b,extra\n")
    with pytest.raises(ValueError, match=r"labels.csv, line 3: expected 2 fields"):
        load_dataset("folder", root=root)
    csv.write_text("0.png,a\n7.png,b\n")
    with pytest.raises(FileNotFoundError, match="7.png"):
        load_dataset("folder", root=root, valid_fraction=0, test_fraction=0)
    with pytest.raises(FileNotFoundError, match="other.csv"):
        load_dataset("folder", root=root, labels="other.csv")
    with pytest.raises(ValueError, match="valid_fraction"):
        load_dataset("folder", root=root, valid_fraction=1.5)


def test_load_dataset_boundary(tmp_path):
    with pytest.raises(ValueError, match="dataset name must be one of"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="`split` must be one of"):
        load_dataset("translated-mnist", split="val")
    with pytest.raises(ValueError, match="needs `root`"):
        load_dataset("cub")
    with pytest.raises(ValueError, match="takes no `root`"):
        load_dataset("cluttered-mnist", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("folder", root=tmp_path / "missing")
