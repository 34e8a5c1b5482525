"""Image database: streaming build, resume after interruption, flips, manifest checks, bad input."""

import numpy as np
import pytest
import torch

from ppl_attention.artifacts import ArtifactError
from ppl_attention.completion.database import DatasetSource, GeneratorSource, ImageDatabase, ModelSource, build_database


def blobs(n, g):
    """Random 1 x 8 x 8 images with labels: a bright square whose column is the label."""
    labels = torch.randint(4, (n,), generator=g)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.2
    rows = torch.randint(6, (n,), generator=g)
    ar = torch.arange(8)
    in_r = (ar >= rows[:, None]) & (ar < rows[:, None] + 3)
    in_c = (ar >= 2 * labels[:, None]) & (ar < 2 * labels[:, None] + 2)
    x[:, 0] += 0.8 * (in_r[:, :, None] & in_c[:, None, :]).float()
    return x.clamp(0, 1), labels


def source(fail_at=None):
    calls = {"n": 0}

    def fn(n, g):
        calls["n"] += 1
        if fail_at is not None and calls["n"] == fail_at:
            raise KeyboardInterrupt("simulated interruption")
        return blobs(n, g)

    return GeneratorSource(fn, (1, 8, 8), (), "blobs")


def test_build_and_open(tmp_path):
    db = build_database(tmp_path / "db", source(), n=25, chunk_size=10, seed=3, progress=False)
    assert len(db) == 25 and db.images.shape == (25, 1, 8, 8) and db.images.dtype == np.uint8
    assert db.labels.shape == (25,) and set(np.unique(db.labels)) <= {0, 1, 2, 3}
    # The stored rows are the source's chunks, drawn with one generator per chunk.
    from ppl_attention.runtime import derive_seed, generator

    x, y = blobs(10, generator(derive_seed(3, "image-database", 1)))
    np.testing.assert_array_equal(db.images[10:20], (x * 255).round().to(torch.uint8).numpy())
    np.testing.assert_array_equal(db.labels[10:20], y.numpy())
    imgs = db.get(torch.tensor([7, 2, 7]))
    assert imgs.shape == (3, 1, 8, 8) and torch.equal(imgs[0], imgs[2])
    assert torch.equal(imgs[1], torch.from_numpy(np.array(db.images[2])).float() / 255)
    db.verify()
    # The same build again reuses it; another config is refused.
    again = build_database(tmp_path / "db", source(), n=25, chunk_size=10, seed=3, progress=False)
    assert again.checksum == db.checksum
    with pytest.raises(ValueError, match="another config"):
        build_database(tmp_path / "db", source(), n=30, chunk_size=10, seed=3, progress=False)


def test_interrupted_build_resumes_identically(tmp_path):
    full = build_database(tmp_path / "full", source(), n=35, chunk_size=10, seed=1, progress=False)
    with pytest.raises(KeyboardInterrupt):
        build_database(tmp_path / "part", source(fail_at=3), n=35, chunk_size=10, seed=1, progress=False)
    assert not (tmp_path / "part" / "manifest.json").exists()
    with pytest.raises(ArtifactError, match="interrupted build"):
        ImageDatabase(tmp_path / "part")
    resumed = build_database(tmp_path / "part", source(), n=35, chunk_size=10, seed=1, progress=False)
    assert resumed.checksum == full.checksum
    np.testing.assert_array_equal(resumed.images, full.images)
    np.testing.assert_array_equal(resumed.labels, full.labels)
    assert not (tmp_path / "part" / "progress.json").exists()


def test_interrupted_build_with_other_config_restarts(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        build_database(tmp_path / "db", source(fail_at=2), n=30, chunk_size=10, seed=1, progress=False)
    other = build_database(tmp_path / "db", source(), n=30, chunk_size=10, seed=2, progress=False)
    fresh = build_database(tmp_path / "fresh", source(), n=30, chunk_size=10, seed=2, progress=False)
    assert other.checksum == fresh.checksum


def test_model_source_resume_is_deterministic(tmp_path):
    def model(b):
        return torch.rand(b, 1, 8, 8)

    a = build_database(tmp_path / "a", ModelSource(model, (1, 8, 8)), n=20, chunk_size=8, progress=False)
    b = build_database(tmp_path / "b", ModelSource(model, (1, 8, 8)), n=20, chunk_size=8, progress=False)
    assert a.labels is None and a.checksum == b.checksum


def test_flip_rows_are_mirrors(tmp_path, list_dataset):
    x, y = blobs(7, torch.Generator().manual_seed(0))
    db = build_database(tmp_path / "db", DatasetSource(list_dataset(x, y)), chunk_size=3, flip=True, progress=False)
    assert len(db) == 14
    orig, mirrored = np.array(db.images[0::2]), np.array(db.images[1::2])
    np.testing.assert_array_equal(orig, (x * 255).round().to(torch.uint8).numpy())
    np.testing.assert_array_equal(mirrored, orig[..., ::-1])
    np.testing.assert_array_equal(db.labels[0::2], db.labels[1::2])
    db.verify()


def test_bad_input_and_corruption(tmp_path, list_dataset):
    with pytest.raises(ValueError, match="`n` must be a positive"):
        build_database(tmp_path / "a", source(), n=0, progress=False)
    with pytest.raises(ValueError, match="n .number of images. is required"):
        build_database(tmp_path / "a", source(), progress=False)
    with pytest.raises(ValueError, match="dataset is empty"):
        DatasetSource(list_dataset([], []))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageDatabase(tmp_path / "missing")
    bad = GeneratorSource(lambda n, g: (torch.rand(n, 1, 9, 8), None), (1, 8, 8), None, "bad")
    with pytest.raises(ValueError, match=r"expected \(n, 1, 8, 8\)"):
        build_database(tmp_path / "b", bad, n=4, progress=False)
    nan = GeneratorSource(lambda n, g: (torch.full((n, 1, 8, 8), float("nan")), None), (1, 8, 8), None, "nan")
    with pytest.raises(ValueError, match="NaN"):
        build_database(tmp_path / "c", nan, n=4, progress=False)
    db = build_database(tmp_path / "d", source(), n=12, chunk_size=5, progress=False)
    arr = np.load(db.directory / "images.npy", mmap_mode="r+")
    arr[3, 0, 0, 0] ^= 1
    arr.flush()
    del arr
    with pytest.raises(ArtifactError, match="checksum"):
        ImageDatabase(db.directory).verify()
    np.save(db.directory / "images.npy", np.zeros((5, 1, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="the manifest says"):
        ImageDatabase(db.directory)
