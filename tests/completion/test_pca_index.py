"""PCA index: codes and glimpse energies against brute force, manifest checks, resume after interruption."""

import numpy as np
import pytest
import torch

from ppl_attention.artifacts import ArtifactError
from ppl_attention.completion.database import GeneratorSource, build_database
from ppl_attention.completion.pca_index import PCAIndex, PCAIndexConfig, build_pca_index, pixel_grid
from ppl_attention.sensor import Sensor
from tests.completion._images import bump_images

GRID = Sensor(12, 4, stride=4)


def smooth(n, g):
    """Two-bump images labelled by the first bump's row."""
    x, centres = bump_images(n, g, spread=8)
    return x, (centres[:, 0, 0] > 6).long()


def db_of(path, n=300, seed=0):
    return build_database(
        path, GeneratorSource(smooth, (1, 12, 12), (), "smooth"), n=n, chunk_size=64, seed=seed, progress=False
    )


def test_codes_and_energies_match_brute_force(tmp_path):
    db = db_of(tmp_path / "db")
    idx = build_pca_index(
        tmp_path / "pca",
        db,
        GRID,
        PCAIndexConfig(components=20, fit_samples=200, shift=1, code_dtype="float32", batch_size=100),
        progress=False,
    )
    assert idx.k == 20 and idx.codes.shape == (300, 20)
    W = idx.components
    torch.testing.assert_close(W @ W.T, torch.eye(20), atol=1e-4, rtol=0)
    images = db.get(torch.arange(300))
    torch.testing.assert_close(torch.from_numpy(np.array(idx.codes)), idx.encode(images), atol=1e-4, rtol=1e-4)
    # Energies: || W_p^T z ||^2 = sum of squares of the (mean-free) reconstruction over each stored window.
    recon = idx.reconstruct(torch.from_numpy(np.array(idx.codes))) - idx.mean.view(1, 1, 12, 12)
    pg = pixel_grid(GRID)
    brute = pg.extract(recon.square(), idx.positions.unsqueeze(0)).sum((-1, -2, -3))  # (N, n_pos)
    torch.testing.assert_close(torch.from_numpy(np.array(idx.energies)).T, brute, atol=1e-4, rtol=1e-4)
    # 20 components of this smooth family keep most of its variance.
    assert idx.manifest["explained_variance"] > 0.9


def test_components_clamped_for_small_data(tmp_path):
    db = db_of(tmp_path / "db", n=10)
    idx = build_pca_index(
        tmp_path / "pca", db, GRID, PCAIndexConfig(components=256, code_dtype="float16"), progress=False
    )
    assert idx.k == 9 and idx.codes.dtype == np.float16
    torch.testing.assert_close(idx.codes_chunk(0, 10), idx.encode(db.get(torch.arange(10))), atol=2e-3, rtol=1e-3)


def test_refuses_index_of_another_database(tmp_path):
    a, b = db_of(tmp_path / "a", seed=0), db_of(tmp_path / "b", seed=1)
    build_pca_index(tmp_path / "pca", a, GRID, PCAIndexConfig(components=8, fit_samples=100), progress=False)
    with pytest.raises(ArtifactError, match="built for the database"):
        PCAIndex(tmp_path / "pca", b)
    with pytest.raises(ValueError, match="another config or database"):
        build_pca_index(tmp_path / "pca", b, GRID, PCAIndexConfig(components=8, fit_samples=100), progress=False)
    with pytest.raises(ValueError, match="grid is for 60 x 60"):
        build_pca_index(tmp_path / "pca2", a, Sensor.mnist(), progress=False)
    with pytest.raises(FileNotFoundError):
        PCAIndex(tmp_path / "nothing", a)
    with pytest.raises(ValueError, match="code_dtype"):
        PCAIndexConfig(code_dtype="int8")


def test_interrupted_index_build_resumes(tmp_path, monkeypatch):
    db = db_of(tmp_path / "db")
    cfg = PCAIndexConfig(components=8, fit_samples=100, batch_size=64)
    full = build_pca_index(tmp_path / "full", db, GRID, cfg, progress=False)
    import ppl_attention.completion.pca_index as mod

    real = mod.chunk_digest
    calls = {"n": 0}

    def failing(*a):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated interruption")
        return real(*a)

    monkeypatch.setattr(mod, "chunk_digest", failing)
    with pytest.raises(KeyboardInterrupt):
        build_pca_index(tmp_path / "part", db, GRID, cfg, progress=False)
    with pytest.raises(ArtifactError, match="interrupted build"):
        PCAIndex(tmp_path / "part", db)
    monkeypatch.setattr(mod, "chunk_digest", real)
    resumed = build_pca_index(tmp_path / "part", db, GRID, cfg, progress=False)
    assert resumed.checksum == full.checksum
    np.testing.assert_array_equal(resumed.codes, full.codes)
