from pathlib import Path

import pytest
import torch

from ppl_attention import Sensor, read_paper_sequences, write_paper_sequences
from ppl_attention.sequences import format_paper_sequence, read_paper_sequence_file, stack_sequences

# the paper's sample sequence files, copied into the repository (format: docs/INTERFACES.md)
SAMPLES = Path(__file__).resolve().parents[0] / "fixtures" / "paper-sequences"
FOLDERS = [("celebhq/20", Sensor.celeba_hq, 5), ("celebhq/0", Sensor.celeba_hq, 3), ("birds", Sensor.cub, 5)]


@pytest.mark.parametrize("folder, make_grid, count", FOLDERS)
def test_samples_round_trip_byte_identical(folder, make_grid, count, tmp_path):
    grid = make_grid()
    seqs = read_paper_sequences(SAMPLES / folder, grid)
    assert list(seqs) == list(range(count))
    birds = folder == "birds"
    for i, s in seqs.items():
        assert s.index == i and s.locations.dtype == torch.long and s.locations.shape == (5,)
        assert (s.image_path is not None) == birds
        # the coordinates in the file are exactly the grid pixels of the locations read
        lines = (SAMPLES / folder / f"{i}.txt").read_text().split("\n")
        coords = [tuple(int(v) for v in ln.split(",")) for ln in lines if "," in ln]
        assert [tuple(p) for p in grid.pixels(s.locations).tolist()] == coords
    images = {i: s.image_path for i, s in seqs.items()} if birds else None
    written = write_paper_sequences(tmp_path, {i: s.locations for i, s in seqs.items()}, grid, image_path=images)
    assert len(written) == count
    for i in seqs:
        assert (tmp_path / f"{i}.txt").read_bytes() == (SAMPLES / folder / f"{i}.txt").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{i}.txt" for i in seqs)  # no temp files left


def test_sample_details():
    birds = read_paper_sequences(SAMPLES / "birds", Sensor.cub())
    assert birds[0].image_path == "data/birds/train/images/1.png"
    assert Sensor.cub().pixels(birds[0].locations).tolist() == [[40, 48], [80, 32], [40, 64], [80, 72], [0, 96]]
    male = read_paper_sequences(SAMPLES / "celebhq/20", Sensor.celeba_hq())
    firsts = {int(s.locations[0]) for s in male.values()}
    assert len(firsts) == 1  # the first glimpse is the same for every image of a task (computed once)
    idx, locs = stack_sequences(male)
    assert idx.tolist() == [0, 1, 2, 3, 4] and locs.shape == (5, 5)
    one = read_paper_sequences(SAMPLES / "celebhq/20/3.txt", Sensor.celeba_hq())
    assert list(one) == [3] and torch.equal(one[3].locations, male[3].locations)


def test_format_bytes():
    g = Sensor.cub()
    assert format_paper_sequence(torch.tensor([0, 14]), g) == b"0, 0\n8, 8\n"
    assert format_paper_sequence([0, 14], g, "a/b.png") == b"0, 0\n8, 8\na/b.png"


def test_write_single_file_and_read_back(tmp_path):
    g = Sensor.celeba_hq()
    locs = torch.tensor([1065, 0, 2499])
    write_paper_sequences(tmp_path / "7.txt", locs, g)
    assert (tmp_path / "7.txt").read_bytes() == b"88, 63\n0, 0\n207, 207\n"
    s = read_paper_sequence_file(tmp_path / "7.txt", g)
    assert s.index == 7 and torch.equal(s.locations, locs) and s.image_path is None


def test_off_grid_and_malformed_lines_name_file_and_line(tmp_path):
    g = Sensor.celeba_hq()
    (tmp_path / "0.txt").write_text("88, 63\n89, 63\n")
    with pytest.raises(ValueError, match=r"0.txt, line 2: glimpse \(89, 63\) is not on the grid"):
        read_paper_sequences(tmp_path, g)
    (tmp_path / "0.txt").write_text("88, 63\n88 63\n0, 0\n")
    with pytest.raises(ValueError, match=r"0.txt, line 2: expected 'r, c'"):
        read_paper_sequences(tmp_path, g)
    (tmp_path / "0.txt").write_text("88, 63\npath.png\n0, 0")
    with pytest.raises(ValueError, match=r"line 2: expected 'r, c'"):
        read_paper_sequences(tmp_path, g)
    (tmp_path / "0.txt").write_text("")
    with pytest.raises(ValueError, match="no glimpse lines"):
        read_paper_sequences(tmp_path, g)


def test_bad_arguments(tmp_path):
    g = Sensor.cub()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_paper_sequences(tmp_path / "missing", g)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no"):
        read_paper_sequences(tmp_path, g)
    with pytest.raises(ValueError, match="outside the grid"):
        write_paper_sequences(tmp_path / "0.txt", torch.tensor([169]), g)
    with pytest.raises(ValueError, match="1-D"):
        write_paper_sequences(tmp_path / "0.txt", torch.zeros(2, 2, dtype=torch.long), g)
    with pytest.raises(ValueError, match="image_path"):
        write_paper_sequences(tmp_path / "0.txt", [0], g, image_path="a\nb")
    with pytest.raises(ValueError, match="`grid` must be a Sensor"):
        read_paper_sequences(tmp_path, "cub")
    assert not (tmp_path / "0.txt").exists()
