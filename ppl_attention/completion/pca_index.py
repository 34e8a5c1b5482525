"""A faiss PCA index of an image database: the cheap approximate glimpses the proposal scores.

``z_i = W (I_i - mu)`` with ``W`` (k, P) orthonormal rows (``faiss.PCAMatrix``, fitted on a streaming sample of
the database), and the reconstruction ``mu + W^T z_i``.  The proposal needs, for every image ``i`` and glimpse
position ``p``, ``|| y - (mu_p + W_p^T z_i) ||^2`` where ``W_p`` are the basis columns of the glimpse's pixels.
Expanded with ``d = y - mu_p``::

    || d ||^2  -  2 (W_p d) . z_i  +  || W_p^T z_i ||^2

The last term does not depend on the observation, so the index stores it (``energies``, one row per glimpse
position, computed once from the stored codes).  A query then costs one (N, k) x (k, t) matmul -- not the
(N, k) x (k, t h w) reconstruction -- and is exactly the paper's PCA-reconstruction likelihood.

Layout of an index directory (kind ``"pca-index"``)::

    pca.safetensors / pca.json   mean (P,), components (k, P) float32
    codes.npy                    (N, k) float16 or float32 memmap
    energies.npy                 (n_positions, N) float32: || W_p^T z_i ||^2 per glimpse position p (position-major,
                                 so one position is one contiguous read)
    positions.npy                int64 (n_positions,): flat indices on the stride-1 grid of the stored positions
                                 (every grid location shifted by up to ``shift`` pixels, clipped to the image)
    manifest.json                written LAST; ``inputs.database`` is the database's checksum
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass

from ..checks import check_choice, check_int
from ..config import setting
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..artifacts import ArtifactError, atomic_write_bytes, load_weights, save_weights, write_manifest
from ..sensor import Sensor
from ..runtime import derive_seed
from ._build import ChunkedBuild, already_built, chunk_digest, load_array, open_array, open_finished
from .database import ImageDatabase

if TYPE_CHECKING:
    import os

__all__ = ["PCAIndexConfig", "build_pca_index", "PCAIndex", "pixel_grid", "shift_positions", "KIND"]

log = logging.getLogger(__name__)

KIND = "pca-index"


@dataclass
class PCAIndexConfig:
    components: int = setting(256, "PCA components (fewer when the data is small)")
    fit_samples: int = setting(20_000, "database rows the PCA is fitted on")
    code_dtype: str = setting(
        "float32",
        "storage type of the codes (float16 halves the disk and memory but a query converts them, ~3x slower)",
        choices=["float16", "float32"],
    )
    shift: int = setting(0, "store glimpse energies for shifts of up to this many pixels")
    batch_size: int = setting(4096, "rows per streaming batch")

    def __post_init__(self):
        for name in ("components", "fit_samples", "batch_size"):
            check_int(name, getattr(self, name))
        check_choice("code_dtype", self.code_dtype, ("float16", "float32"))
        check_int("shift", self.shift, minimum=0)


def pixel_grid(grid: Sensor) -> Sensor:
    """The stride-1 grid with ``grid``'s image and glimpse sizes: every pixel position is a location."""
    return Sensor(grid.image_size, grid.glimpse_size, stride=1)


def shift_offsets(shift: int) -> torch.Tensor:
    """Offsets ``(S, 2)`` of a window centred on 0: every (dr, dc) with |dr|, |dc| <= shift."""
    ar = torch.arange(-shift, shift + 1)
    return torch.stack(torch.meshgrid(ar, ar, indexing="ij"), -1).reshape(-1, 2)


def shift_positions(grid: Sensor, locations: torch.Tensor, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stride-1 positions ``(t, S)`` of each location shifted by the centred window, and which are valid
    (inside the image).  Invalid entries hold position 0 and must be masked."""
    pg = pixel_grid(grid)
    px = grid.pixels(locations).unsqueeze(1) + shift_offsets(shift).to(locations.device)  # (t, S, 2)
    H, W = grid.image_size
    h, w = grid.glimpse_size
    valid = (px[..., 0] >= 0) & (px[..., 0] <= H - h) & (px[..., 1] >= 0) & (px[..., 1] <= W - w)
    r = px[..., 0].clamp(0, H - h)
    c = px[..., 1].clamp(0, W - w)
    return r * pg.n_cols + c, valid


def _all_positions(grid: Sensor, shift: int) -> torch.Tensor:
    pos, valid = shift_positions(grid, grid.all_locations(), shift)
    return torch.unique(pos[valid])


def _window_sums(x: torch.Tensor, h: int, w: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Sums of ``x`` (B, H, W) over the h x w windows with top-left pixels (rows, cols): (B, n), from an
    integral image (a box filter; far cheaper on CPU than avg_pool2d with a 12 x 12 kernel)."""
    s = F.pad(x.cumsum(1).cumsum(2), (1, 0, 1, 0))
    return s[:, rows + h, cols + w] - s[:, rows, cols + w] - s[:, rows + h, cols] + s[:, rows, cols]


def _fit_pca(database: ImageDatabase, components: int, fit_samples: int, seed: int):
    import faiss  # the trusted PCA (the paper's pipeline used one too); fitted on a sample

    rows = len(database)
    P = int(np.prod(database.image_shape))
    m = min(fit_samples, rows)
    rng = np.random.default_rng(derive_seed(seed, "pca-fit"))
    idx = np.sort(rng.choice(rows, size=m, replace=False))
    x = database.get_uint8(idx).reshape(m, P).astype(np.float32) / 255.0
    k = int(min(components, P, max(m - 1, 1)))
    pca = faiss.PCAMatrix(P, k)
    pca.train(np.ascontiguousarray(x))
    mean = faiss.vector_to_array(pca.mean).astype(np.float32)
    comp = faiss.vector_to_array(pca.A).reshape(k, P).astype(np.float32)
    # Fraction of the sample's variance the k components keep (a figure for the summary).
    xc = x - mean
    total = float((xc.astype(np.float64) ** 2).sum())
    kept = float(((xc @ comp.T).astype(np.float64) ** 2).sum())
    explained = kept / total if total > 0 else 1.0
    return mean, comp, explained, m


def _fitted_pca(out_dir: Path, database: ImageDatabase, config: PCAIndexConfig, seed: int, resume: bool):
    """The PCA of a resumed build as saved, else fitted now and saved: (mean, components, explained, fit rows)."""
    if resume and (out_dir / "pca.safetensors").is_file():
        tensors, info = load_weights(out_dir / "pca.safetensors")
        return tensors["mean"].numpy(), tensors["components"].numpy(), info["explained_variance"], info["fit_rows"]
    log.info("fitting a %d-component PCA on up to %d rows", config.components, config.fit_samples)
    mean, comp, explained, fit_rows = _fit_pca(database, config.components, config.fit_samples, seed)
    save_weights(
        out_dir / "pca.safetensors",
        {"mean": torch.from_numpy(mean), "components": torch.from_numpy(comp)},
        {
            "components": int(comp.shape[0]),
            "pixels": int(comp.shape[1]),
            "explained_variance": explained,
            "fit_rows": fit_rows,
        },
    )
    return mean, comp, explained, fit_rows


def _encode_chunk(
    x: torch.Tensor, mean: torch.Tensor, comp: torch.Tensor, grid: Sensor, positions: torch.Tensor, code_dtype: str
) -> tuple[np.ndarray, np.ndarray]:
    """Codes (B, k) of uint8 images ``x`` (B, C, H, W) and the glimpse energies (n_pos, B) of their
    reconstructions at ``positions``."""
    B, C, H, W = x.shape
    z = ((x.reshape(B, -1).float().div_(255.0) - mean) @ comp.T).numpy().astype(code_dtype)
    # Energies from the codes as stored (rounded), so the proposal is exactly the stored reconstruction's.
    recon = torch.from_numpy(z.astype(np.float32)) @ comp  # (B, P): W^T z, without the mean
    sq = recon.square_().reshape(-1, C, H, W).sum(1).double()
    pr, pc = positions // (W - grid.glimpse_size[1] + 1), positions % (W - grid.glimpse_size[1] + 1)
    e = _window_sums(sq, *grid.glimpse_size, pr, pc).float()  # (B, n_pos)
    return z, e.T.contiguous().numpy()


def build_pca_index(
    out_dir: str | os.PathLike,
    database: ImageDatabase,
    grid: Sensor,
    config: PCAIndexConfig | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> "PCAIndex":
    """Fit a PCA of ``database`` and store codes and glimpse energies for ``grid`` in ``out_dir``."""
    config = config or PCAIndexConfig()
    out_dir = Path(out_dir)
    if not isinstance(database, ImageDatabase):
        raise ValueError(f"`database` must be an ImageDatabase, got {type(database).__name__}")
    C, H, W = database.image_shape
    if tuple(grid.image_size) != (H, W):
        raise ValueError(
            f"grid is for {grid.image_size[0]} x {grid.image_size[1]} images but the database holds {H} x {W} images"
        )
    cfg = {"components": config.components, "fit_samples": config.fit_samples, "code_dtype": config.code_dtype}
    cfg.update(shift=config.shift, batch_size=config.batch_size, grid=grid.to_dict(), seed=int(seed))
    inputs = {"database": database.checksum}
    if already_built(out_dir, KIND, {"config": cfg, "inputs": inputs}, overwrite, "PCA index", "config or database"):
        return PCAIndex(out_dir, database)
    build_cfg = {**cfg, "database": database.checksum}
    files = ("pca.safetensors", "pca.json", "codes.npy", "energies.npy", "positions.npy")
    build = ChunkedBuild(out_dir, build_cfg, files)
    resume = build.start()
    mean, comp, explained, fit_rows = _fitted_pca(out_dir, database, config, seed, resume)
    k = comp.shape[0]
    positions = _write_positions(out_dir / "positions.npy", grid, config.shift)
    rows = len(database)
    codes = open_array(out_dir / "codes.npy", (rows, k), config.code_dtype, resume)
    energies = open_array(out_dir / "energies.npy", (len(positions), rows), np.float32, resume)
    n_chunks = -(-rows // int(config.batch_size))
    todo = [c for c in range(n_chunks) if not build.is_done(c)]
    for c in tqdm(todo, desc=f"PCA index {out_dir.name}", unit="chunk", disable=not progress):
        start = c * int(config.batch_size)
        x = torch.from_numpy(np.array(database.images[start : start + int(config.batch_size)]))
        z, e = _encode_chunk(x, torch.from_numpy(mean), torch.from_numpy(comp), grid, positions, config.code_dtype)
        codes[start : start + len(z)] = z
        energies[:, start : start + len(z)] = e
        codes.flush()
        energies.flush()
        build.mark_done(c, chunk_digest(z, e))
    checksum = build.checksum(n_chunks)
    del codes, energies
    stats = dict(rows=rows, components=int(k), n_positions=len(positions), explained_variance=explained)
    write_manifest(out_dir, KIND, cfg, inputs=inputs, **stats, fit_rows=fit_rows, checksum=checksum)
    build.finish()
    return PCAIndex(out_dir, database)


def _write_positions(path: Path, grid: Sensor, shift: int) -> torch.Tensor:
    """The stride-1 positions whose glimpse energies the index stores, written to ``path`` (.npy)."""
    positions = _all_positions(grid, shift)
    bio = io.BytesIO()
    np.save(bio, np.asarray(positions.numpy(), dtype=np.int64))
    atomic_write_bytes(path, bio.getvalue())
    return positions


class PCAIndex:
    """A finished PCA index, opened for ``database`` (refused if it was built for another one)."""

    def __init__(self, directory: str | os.PathLike, database: ImageDatabase) -> None:
        directory, manifest = open_finished(directory, KIND, "PCA index")
        built_for = manifest.get("inputs", {}).get("database")
        if built_for != database.checksum:
            raise ArtifactError(
                f"PCA index {directory} was built for the database with checksum {built_for}, "
                f"not for {database.directory} (checksum {database.checksum})"
            )
        self.directory = directory
        self.manifest = manifest
        self.config = manifest["config"]
        self.database = database
        self.grid = Sensor.from_dict(self.config["grid"])
        self.shift = int(self.config["shift"])
        self.rows = int(manifest["rows"])
        if self.rows != len(database):
            raise ArtifactError(f"PCA index {directory} has {self.rows} rows, the database {len(database)}")
        tensors, _ = load_weights(directory / "pca.safetensors")
        self.mean = tensors["mean"].float()
        self.components = tensors["components"].float()
        self.k = self.components.shape[0]
        self.codes = load_array(directory / "codes.npy", (self.rows, self.k), self.config["code_dtype"], "codes")
        try:
            self.positions = torch.from_numpy(np.load(directory / "positions.npy", allow_pickle=False))
        except (OSError, ValueError, EOFError) as e:
            raise ArtifactError(
                f"positions file {directory / 'positions.npy'} is not a valid .npy array: {e}"
            ) from None
        self.energies = load_array(directory / "energies.npy", (len(self.positions), self.rows), np.float32, "energies")
        lookup = torch.full((pixel_grid(self.grid).num_locations,), -1, dtype=torch.long)
        lookup[self.positions] = torch.arange(len(self.positions))
        self._row_of_position = lookup
        self.checksum = manifest["checksum"]

    def __len__(self) -> int:
        return self.rows

    def energy_rows(self, positions: torch.Tensor) -> torch.Tensor:
        """Rows of ``energies`` for stride-1 ``positions``; refuses positions the index did not store."""
        rows = self._row_of_position[positions]
        if bool((rows < 0).any()):
            raise ValueError(
                "the PCA index stores no energies for some requested glimpse positions; rebuild it "
                f"for this grid with shift >= the shift asked for (it has shift={self.shift})"
            )
        return rows

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, k)`` of float images ``(B, C, H, W)`` in [0, 1]."""
        return (images.reshape(images.shape[0], -1).float() - self.mean) @ self.components.T

    def reconstruct(self, codes: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` from codes (not clipped)."""
        return (codes.float() @ self.components + self.mean).reshape(-1, *self.database.image_shape)

    def codes_chunk(self, start: int, stop: int, device: str | torch.device | None = None) -> torch.Tensor:
        """Codes of rows ``start:stop`` as float32 (a zero-copy view of the memmap for float32 codes; float16
        codes are converted by torch, faster than numpy's half conversion)."""
        with warnings.catch_warnings():  # a read-only memmap view: we never write to it
            warnings.simplefilter("ignore", UserWarning)
            z = torch.from_numpy(np.asarray(self.codes[start:stop]))
        return z.to(device=device, dtype=torch.float32)
