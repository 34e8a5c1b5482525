"""torchvision's ImageFolder layout (one subfolder per class, no labels.csv) and samples drawn across classes."""

import numpy as np
import pytest
import torch
from PIL import Image

from ppl_attention.data import load_dataset
from ppl_attention.data._files import stratified_indices
from ppl_attention.data.fixtures import make_digits_folder
from ppl_attention.data.folder import read_class_folders


def _class_folders(root, counts={"cat": 3, "dog": 2, "bird": 4}):
    for c, n in counts.items():
        (root / c).mkdir(parents=True)
        for k in range(n):
            Image.fromarray(np.full((6, 6, 3), 10 * k, np.uint8)).save(root / c / f"{k}.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_class_subfolders_are_labels(tmp_path):
    root = _class_folders(tmp_path / "pets")
    names, labels = read_class_folders(root)
    assert names[:2] == ["bird/0.png", "bird/1.png"] and len(names) == 9 and "cat/notes.txt" not in names
    ds = load_dataset("folder", root, valid_fraction=0, test_fraction=0, size=8)
    assert ds.class_names == ("bird", "cat", "dog") and ds.labels.tolist() == [0] * 4 + [1] * 3 + [2] * 2
    item = ds[5]
    assert item["image"].shape == (3, 8, 8) and torch.allclose(item["image"], torch.full((3, 8, 8), 10 / 255))


def test_labels_csv_preferred_and_neither_refused(tmp_path):
    both = make_digits_folder(tmp_path / "both", per_class=2, classes=(1, 2))
    (both / "labels.csv").write_text(
        "filename,label\n1/" + sorted(p.name for p in (both / "1").iterdir())[0] + ",one\n"
    )
    ds = load_dataset("folder", both, valid_fraction=0, test_fraction=0, size=8)
    assert ds.class_names == ("one",) and len(ds) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no labels.csv and no class subfolders"):
        load_dataset("folder", empty)
    (empty / "a").mkdir()
    with pytest.raises(ValueError, match="hold no image files"):
        load_dataset("folder", empty)
    with pytest.raises(FileNotFoundError, match="other.csv"):  # a CSV that is named must exist
        load_dataset("folder", both, labels="other.csv")


def test_stratified_indices_cycle_through_classes():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 0, 2])
    idx = stratified_indices(labels, 6)
    assert idx.tolist() == [0, 4, 6, 1, 5, 8]
    assert stratified_indices(labels, 100).sort().values.tolist() == list(range(9))
    assert len(stratified_indices(torch.rand(10, 4), 3)) == 3  # multilabel: evenly spaced
    with pytest.raises(ValueError, match="`n` must be a positive"):
        stratified_indices(labels, 0)


def test_show_draws_across_classes(tmp_path, monkeypatch):
    import ppl_attention.plots.data as plots

    ds = load_dataset("folder", _class_folders(tmp_path / "pets"), valid_fraction=0, test_fraction=0, size=8)
    seen = []
    get = type(ds).__getitem__
    monkeypatch.setattr(type(ds), "__getitem__", lambda self, i: seen.append(i) or get(self, i))
    plots.plot_samples(ds, tmp_path / "s.png", n=3)
    assert sorted(ds.labels[seen].tolist()) == [0, 1, 2]  # one of each class, not the first three birds
