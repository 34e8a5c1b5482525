"""examples/make_digits_folder.py writes an ImageFolder-layout folder the folder dataset reads with no labels.csv:
labels 0-9, 8 x 8 grayscale PNGs."""

import pytest

from ppl_attention.data import load_dataset


def test_writes_a_labelled_folder(load_example, tmp_path, capsys):
    root = load_example("make_digits_folder").main(["--out", str(tmp_path / "d"), "--per-class", "3"])
    assert "wrote 30 images" in capsys.readouterr().out
    assert not (root / "labels.csv").exists()
    ds = load_dataset("folder", root=root, split="train", seed=0, size=8, channels=1)
    assert ds.class_names == tuple(str(d) for d in range(10)) and ds[0]["image"].shape == (1, 8, 8)
    with_csv = load_example("make_digits_folder").main(
        ["--out", str(tmp_path / "c"), "--per-class", "3", "--labels-csv"]
    )
    rows = (with_csv / "labels.csv").read_text().splitlines()
    assert rows[0] == "filename,label" and len(rows) == 31
    same = load_dataset("folder", root=with_csv, split="train", seed=0, size=8, channels=1)
    assert same.paths == [with_csv / p.relative_to(root) for p in ds.paths] and (same.labels == ds.labels).all()
    with pytest.raises(SystemExit):  # refuses to write into a folder that is not empty
        load_example("make_digits_folder").main(["--out", str(root)])
