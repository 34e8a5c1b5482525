import pytest
import torch

from ppl_attention.data import load_dataset
from ppl_attention.data.celeba_hq import CELEBA_ATTRIBUTES, read_attributes, scaled_celeba_grid
from ppl_attention.data.fixtures import fixture_attributes, fixture_colour, make_celeba_hq_folder
from ppl_attention.sensor import Sensor


@pytest.fixture(scope="module")
def paper_root(tmp_path_factory):
    return make_celeba_hq_folder(tmp_path_factory.mktemp("celeba"), layout="paper")


@pytest.fixture(scope="module")
def mask_root(tmp_path_factory):
    return make_celeba_hq_folder(tmp_path_factory.mktemp("celebamask") / "CelebAMask-HQ", layout="mask")


def test_attribute_order():
    assert len(CELEBA_ATTRIBUTES) == 40 and CELEBA_ATTRIBUTES[20] == "Male"
    assert list(CELEBA_ATTRIBUTES[1:]) == sorted(CELEBA_ATTRIBUTES[1:])


@pytest.mark.parametrize("layout", ["paper", "mask"])
def test_splits_labels_and_images(layout, paper_root, mask_root):
    root = paper_root if layout == "paper" else mask_root
    expected = {"train": [0, 1, 2], "valid": [27000, 27001], "test": [27500, 27501]}
    for split, idx in expected.items():
        ds = load_dataset("celeba-hq", root=root, split=split, attribute="Male", size=32)
        assert ds.indices.tolist() == idx and len(ds) == len(idx)
        assert ds.task == "categorical" and ds.num_classes == 2 and ds.allows_flip and ds.channels == 3
        assert ds.class_names == ("not Male", "Male")
        for k, i in enumerate(idx):
            item = ds[k]
            assert int(item["index"]) == i and item["label"].dtype == torch.int64
            assert int(item["label"]) == (fixture_attributes(i)[20] + 1) // 2
            assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
            colour = torch.tensor(fixture_colour(i), dtype=torch.float32) / 255
            tol = 1e-6 if layout == "paper" else 0.04  # jpg
            assert float((item["image"].mean(dim=(1, 2)) - colour).abs().max()) < tol


def test_multilabel_and_attribute_choice(paper_root):
    ds = load_dataset("celeba-hq", root=paper_root, split="train", size=32)
    assert ds.task == "multilabel" and ds.num_classes == 40 and ds.class_names == CELEBA_ATTRIBUTES
    item = ds[1]
    assert item["label"].dtype == torch.float32 and item["label"].shape == (40,)
    assert item["label"].tolist() == ((fixture_attributes(1) + 1) // 2).tolist()
    by_index = load_dataset("celeba-hq", root=paper_root, split="train", attribute=31, size=32)
    by_name = load_dataset("celeba-hq", root=paper_root, split="train", attribute="smiling", size=32)
    assert torch.equal(by_index.labels, by_name.labels) and by_name.class_names[1] == "Smiling"
    for bad in (40, "Tail", -1):
        with pytest.raises(ValueError, match="attribute"):
            load_dataset("celeba-hq", root=paper_root, attribute=bad, size=32)


def test_mean_std_from_training_images(paper_root):
    ds = load_dataset("celeba-hq", root=paper_root, split="test", size=32)
    colours = torch.tensor([fixture_colour(i) for i in (0, 1, 2)], dtype=torch.float64) / 255
    assert torch.allclose(ds.mean.double(), colours.mean(0), atol=1e-5)
    assert torch.allclose(ds.std.double(), colours.std(0, unbiased=False), atol=1e-4)


def test_grid_default_and_scaled():
    assert scaled_celeba_grid(224) == Sensor.celeba_hq()
    g = scaled_celeba_grid(112)
    assert g.image_size == (112, 112) and g.glimpse_size == (8, 8)
    base = Sensor.celeba_hq()
    assert g.rows[-1] <= 112 - 8 and all(abs(r - round(b / 2)) <= 1 for r, b in zip(g.rows, base.rows))


def test_read_attributes_both_formats(paper_root, mask_root):
    a, names_a = read_attributes(paper_root / "annotations.txt")
    b, names_b = read_attributes(mask_root / "CelebAMask-HQ-attribute-anno.txt")
    assert names_a == names_b == CELEBA_ATTRIBUTES
    assert sorted(a) == sorted(b) and all((a[i] == b[i]).all() for i in a)


def test_malformed_annotations_name_file_and_line(tmp_path):
    root = make_celeba_hq_folder(tmp_path / "c", indices=(0, 1), size=8)
    ann = root / "annotations.txt"
    lines = ann.read_text().splitlines()
    ann.write_text(lines[0] + "\n" + lines[1].rsplit(" ", 1)[0] + "\n")
    with pytest.raises(ValueError, match=r"annotations.txt, line 2: expected 41 fields, got 40"):
        load_dataset("celeba-hq", root=root, size=16)
    ann.write_text(lines[0] + "\n" + lines[1].replace(" 1", " 2", 1) + "\n")
    with pytest.raises(ValueError, match=r"line 2: attribute labels must be -1 or 1, got 2"):
        load_dataset("celeba-hq", root=root, size=16)
    ann.write_text(lines[0] + "\n")  # image 1 has no labels
    with pytest.raises(ValueError, match="no labels for image 1"):
        load_dataset("celeba-hq", root=root, size=16)


def test_count_mismatch_in_celebamask_file(tmp_path):
    root = make_celeba_hq_folder(tmp_path / "m", indices=(0, 1), size=8, layout="mask")
    ann = root / "CelebAMask-HQ-attribute-anno.txt"
    ann.write_text("3" + ann.read_text()[1:])
    with pytest.raises(ValueError, match=r"line 1: says 3 images but the file annotates 2"):
        load_dataset("celeba-hq", root=root, size=16)


def test_missing_folders_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("celeba-hq", root=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="annotation"):
        load_dataset("celeba-hq", root=tmp_path / "empty")
    root = make_celeba_hq_folder(tmp_path / "c", indices=(0,), size=8)
    with pytest.raises(ValueError, match="split 'valid'"):
        load_dataset("celeba-hq", root=root, split="valid", size=16)
