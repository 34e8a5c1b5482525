"""The decoded-image cache: same pixels as decoding, built once, rebuilt when what decides the pixels changes."""

import os

import numpy as np
import pytest
import torch

from ppl_attention.data import load_dataset
from ppl_attention.data._files import load_image
from ppl_attention.data.cache import ImageCache, cache_dir
from ppl_attention.data.fixtures import make_celeba_hq_folder, make_cub_folder, make_image_folder


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("PPL_ATTENTION_IMAGE_CACHE", str(folder))
    return folder


def _all(ds):
    return torch.stack([ds[i]["image"] for i in range(len(ds))])


@pytest.mark.parametrize(
    "name, make, kw",
    [
        ("celeba-hq", make_celeba_hq_folder, {"size": 16}),
        ("cub", make_cub_folder, {"size": 32}),
        ("folder", make_image_folder, {"size": 8, "grayscale": True}),
    ],
)
def test_cached_pixels_equal_decoded(tmp_path, cache, monkeypatch, name, make, kw):
    root = make(tmp_path / "data")
    cached = _all(load_dataset(name, root, **kw))
    assert len(list(cache.glob("*.npy"))) == 1
    monkeypatch.setenv("PPL_ATTENTION_IMAGE_CACHE", "off")
    assert cache_dir() is None
    decoded = _all(load_dataset(name, root, **kw))
    assert cached.dtype == torch.float32 and torch.equal(cached, decoded)


def test_cache_reused_not_redecoded(tmp_path, cache, monkeypatch):
    root = make_image_folder(tmp_path / "data")
    first = _all(load_dataset("folder", root, size=8))
    (file,) = cache.glob("*.npy")
    stamp = file.stat().st_mtime_ns
    import ppl_attention.data.cache as module

    def refuse(*a, **k):
        raise AssertionError("an image was decoded although the cache holds it")

    monkeypatch.setattr(module, "decode_image", refuse)
    again = _all(load_dataset("folder", root, size=8))
    assert torch.equal(first, again) and file.stat().st_mtime_ns == stamp


def test_cache_rebuilt_when_spec_or_file_changes(tmp_path, cache):
    root = make_image_folder(tmp_path / "data")
    small = load_dataset("folder", root, size=8)
    _all(small)
    big = load_dataset("folder", root, size=12)
    assert _all(big).shape[1:] == (3, 12, 12)
    assert len(list(cache.glob("*.npy"))) == 2
    from PIL import Image

    path = small.paths[0]
    Image.fromarray(np.full((20, 20, 3), 7, np.uint8)).save(path)
    os.utime(path, ns=(1, 1))  # a new modification time even on a coarse clock
    changed = load_dataset("folder", root, size=8)
    assert torch.allclose(_all(changed)[0], torch.full((3, 8, 8), 7 / 255))
    assert len(list(cache.glob("*.npy"))) == 3


def test_partial_cache_rebuilt(tmp_path, cache):
    root = make_image_folder(tmp_path / "data")
    want = _all(load_dataset("folder", root, size=8))
    (file,) = cache.glob("*.npy")
    file.write_bytes(file.read_bytes()[:200])  # a truncated copy
    assert torch.equal(_all(load_dataset("folder", root, size=8)), want)
    file.write_bytes(b"not an npy file")
    assert torch.equal(_all(load_dataset("folder", root, size=8)), want)
    assert not list(cache.glob("*.tmp"))


def test_cache_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="`boxes` must have one entry per path"):
        ImageCache([tmp_path / "a.png"], (4, 4), boxes=[])
    with pytest.raises(FileNotFoundError, match="a.png does not exist"):
        ImageCache([tmp_path / "a.png"], (4, 4), directory=tmp_path).array()


def test_cache_matches_load_image_for_crops(tmp_path):
    from PIL import Image

    path = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(path)
    box = (3.5, 2.0, 31.0, 25.5)
    c = ImageCache([path], (9, 9), boxes=[box], directory=tmp_path / "c")
    assert torch.equal(c.image(0), load_image(path, (9, 9), box=box))


def test_an_unreadable_image_fails_alone(tmp_path, cache):
    root = make_image_folder(tmp_path / "data")
    ds = load_dataset("folder", root, size=8, valid_fraction=0, test_fraction=0)
    ds.paths[3].write_bytes(b"not a png")
    assert ds[0]["image"].shape == (3, 8, 8) and ds[9]["image"].shape == (3, 8, 8)
    with pytest.raises(OSError, match="3.png"):
        ds[3]
    assert not list(cache.glob("*.npy")) and not list(cache.glob("*.tmp"))


def test_a_few_accesses_do_not_build_the_cache(tmp_path, cache, monkeypatch):
    import ppl_attention.data.cache as module

    monkeypatch.setattr(module, "BUILD_AFTER", 4)
    root = make_image_folder(tmp_path / "data")
    ds = load_dataset("folder", root, size=8, valid_fraction=0, test_fraction=0)
    first = [ds[i]["image"] for i in range(3)]  # a figure of 3 samples: each decoded, nothing cached
    assert not list(cache.glob("*.npy"))
    assert torch.equal(ds[3]["image"], _all(ds)[3]) and len(list(cache.glob("*.npy"))) == 1
    assert all(torch.equal(a, b) for a, b in zip(first, _all(ds)))
