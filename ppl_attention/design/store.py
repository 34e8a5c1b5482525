"""The sequence store: one directory of generated (or imported) glimpse sequences.

Layout (kind ``"sequences"``, see docs/INTERFACES.md "Design")::

    DIR/manifest.json             config: dataset, task, grid, T, AVP and prior checksums, search settings
    DIR/records/{index:07d}.json  {"index", "seed", "locations": [T ints], "maps": {"file", "dtype", "shape",
                                   "sha256"}, ...}
    DIR/records/{index:07d}.maps.safetensors  the (T, L) EPE maps ("epe", float16), when the record has maps
    DIR/first_glimpse.json        {"epe": [L floats], ...} the cached EPE of every first location

The maps are binary because JSON does not scale to fine grids: a record holds ``T x L`` numbers, and parsing them
as text dominates reading a store of thousands of images (``benchmarks/bench_store_maps.py`` measures size and
read time).  float16 keeps ~3.3 significant digits (relative error <= 2**-11), a rounding below what the bfloat16
AVP passes already move an EPE, so it changes an argmin only between locations equal to within that rounding.
A record whose maps are inside its JSON (``"epe": [[L floats] per step]``) is read as well.

Every file is written atomically (temporary name, then rename); a record's maps file is written before its JSON,
and the JSON names the file's checksum, so an image has a record only once both are complete (a kill in between
leaves a maps file without a record: the image is designed again, its maps file overwritten).  A new store is
built under a temporary name
beside DIR and renamed into place (records/ and manifest.json together), so a run killed at any moment leaves
either nothing or a store with only complete records; re-running skips the images that already have one and
removes the temporaries killed runs left.  A store is refused for a run whose
config (grid, T, AVP, prior...) differs from the one it was built with.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping, Sequence, TYPE_CHECKING

import torch

from ..artifacts import (
    ArtifactError,
    atomic_dir,
    atomic_write_bytes,
    atomic_write_json,
    check_compatible,
    clean_beside,
    clean_temporaries,
    read_json,
    read_manifest,
    write_manifest,
)
from ..sensor import Sensor

if TYPE_CHECKING:
    import os

__all__ = ["SequenceStore", "KIND", "REQUIRED_CONFIG_KEYS"]

log = logging.getLogger(__name__)

KIND = "sequences"
#: Keys every store's config must hold.
REQUIRED_CONFIG_KEYS = ("dataset", "task", "grid", "T")
FIRST_GLIMPSE = "first_glimpse.json"
#: Suffix of a record's binary maps file (beside its JSON) and the dtype the maps are stored in.
MAPS_SUFFIX = ".maps.safetensors"
MAPS_DTYPE = torch.float16


def _canonical(value: Any) -> Any:
    """JSON round-trip, so tuples and lists (and ints/floats) compare as they will once stored."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


class SequenceStore:
    """A directory of glimpse sequences, one atomically written JSON record per image."""

    def __init__(self, directory: Path, manifest: dict):
        self.directory = Path(directory)
        self.manifest = manifest
        self.config: dict = manifest["config"]
        self.grid = Sensor.from_dict(self.config["grid"])
        self.T = int(self.config["T"])

    # -------------------------------------------------------------- create / open
    @classmethod
    def create(
        cls,
        directory: str | os.PathLike,
        config: Mapping[str, Any],
        inputs: Mapping[str, Any] | None = None,
        resume: bool = True,
    ) -> "SequenceStore":
        """Create a store, or reopen one built with exactly the same ``config`` (resume).

        ``config`` must hold ``dataset``, ``task``, ``grid`` (a :class:`Sensor` or its dict) and ``T``; put
        AVP / prior checksums and search settings in it too, so a store is never resumed with other inputs.
        Raises :class:`ArtifactError` (a ValueError) when ``directory`` holds a store with another config, or
        ``resume`` is False and it already holds one.
        """
        config = {"data": None, **config}  # the dataset spec (None: the images had none)
        missing = [k for k in REQUIRED_CONFIG_KEYS if k not in config]
        if missing:
            raise ValueError(f"config is missing {missing}; a sequence store needs {list(REQUIRED_CONFIG_KEYS)}")
        if isinstance(config["grid"], Sensor):
            config["grid"] = config["grid"].to_dict()
        Sensor.from_dict(config["grid"])  # validates
        if not isinstance(config["T"], int) or config["T"] <= 0:
            raise ValueError(f"config T must be a positive int, got {config['T']!r}")
        config = _canonical(config)
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise ArtifactError(f"{directory} is a file, expected a sequence store directory (or a new path)")
        clean_beside(directory, inside=False)  # a new store a killed run was building beside DIR
        if not (directory / "manifest.json").exists() and cls._is_blank(directory):
            with contextlib.suppress(OSError):
                (directory / "records").rmdir()  # an empty records/ without a manifest holds no store
            try:
                with atomic_dir(directory) as tmp:  # built beside, renamed into place: never half-made
                    (tmp / "records").mkdir()
                    write_manifest(tmp, KIND, config, inputs)
                return cls.open(directory)
            except OSError:
                if not (directory / "manifest.json").exists():  # not a concurrent shard that created it first
                    raise
        if (directory / "manifest.json").exists():
            if not resume:
                raise ArtifactError(f"{directory} already holds a sequence store (resume=False)")
            store = cls.open(directory)
            check_compatible(
                f"the sequence store {directory} was",
                store.config,
                config,
                remedy="refusing to resume into it; use another `out`",
            )
            clean_temporaries(directory)  # records a killed run left half-written (only once the config agrees)
            log.info("resuming the sequence store %s (%d records)", directory, len(store.indices()))
            return store
        raise ArtifactError(
            f"{directory} exists, is not empty and has no manifest.json; refusing to write a sequence store into it"
        )

    @staticmethod
    def _is_blank(directory: Path) -> bool:
        """Missing, empty, or holding only an empty ``records/`` (a store whose ``records/`` was made but
        whose manifest was never written)."""
        if not directory.exists():
            return True
        entries = list(directory.iterdir())
        return all(e.name == "records" and e.is_dir() and not any(e.iterdir()) for e in entries)

    def remove_if_empty(self) -> bool:
        """Delete this store if it holds no record and no first-glimpse cache (a run that failed before writing
        anything leaves ``--out`` as it was); True if it was removed."""
        if self.indices() or self.has_first_glimpse():
            return False
        import shutil

        with contextlib.suppress(FileNotFoundError):
            (self.directory / "manifest.json").unlink()
        shutil.rmtree(self.directory, ignore_errors=True)
        return True

    @classmethod
    def open(cls, directory: str | os.PathLike) -> "SequenceStore":
        """Open an existing store; FileNotFoundError if the folder does not exist, ArtifactError if malformed."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"sequence store {directory} does not exist")
        manifest = read_manifest(directory, KIND)
        config = manifest.get("config")
        if not isinstance(config, dict) or any(k not in config for k in REQUIRED_CONFIG_KEYS):
            raise ArtifactError(f"{directory}/manifest.json must have a config with {list(REQUIRED_CONFIG_KEYS)}")
        return cls(directory, manifest)

    # -------------------------------------------------------------- records
    def record_path(self, index: int) -> Path:
        return self.directory / "records" / f"{int(index):07d}.json"

    def maps_path(self, index: int) -> Path:
        return self.directory / "records" / f"{int(index):07d}{MAPS_SUFFIX}"

    def has(self, index: int) -> bool:
        return self.record_path(index).is_file()

    def indices(self) -> list[int]:
        """Indices of the images that have a record, sorted (temporary files are ignored)."""
        folder = self.directory / "records"
        if not folder.is_dir():
            return []
        return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())

    def __len__(self) -> int:
        return len(self.indices())

    def write_record(
        self,
        index: int,
        seed: int | None,
        locations: Sequence[int] | torch.Tensor,
        epe: Sequence[Sequence[float]] | torch.Tensor | None = None,
        **extra,
    ) -> Path:
        """Atomically write the record of image ``index``: ``T`` locations and (optionally) ``(T, L)`` EPE maps."""
        if not isinstance(index, int) and not (isinstance(index, torch.Tensor) and index.numel() == 1):
            raise ValueError(f"`index` must be an int, got {index!r}")
        index = int(index)
        if index < 0:
            raise ValueError(f"`index` must be >= 0, got {index}")
        loc = torch.as_tensor(locations)
        if loc.dim() != 1 or loc.numel() != self.T or loc.dtype.is_floating_point:
            raise ValueError(f"`locations` must be {self.T} integer locations, got {loc.tolist()!r}")
        if bool(((loc < 0) | (loc >= self.grid.num_locations)).any()):
            raise ValueError(f"`locations` must lie in [0, {self.grid.num_locations - 1}], got {loc.tolist()}")
        record: dict[str, Any] = {
            "index": index,
            "seed": None if seed is None else int(seed),
            "locations": [int(x) for x in loc],
        }
        if epe is not None:
            e = torch.as_tensor(epe, dtype=torch.float64)
            if e.dim() != 2 or e.shape[0] != self.T or e.shape[1] != self.grid.num_locations:
                raise ValueError(
                    f"`epe` must have shape ({self.T}, {self.grid.num_locations}) (one map per step), "
                    f"got {tuple(e.shape)}"
                )
            if not bool(torch.isfinite(e).all()):
                raise ValueError("epe holds NaN or infinite values")
            record["maps"] = self._write_maps(index, e)
        record.update(extra)
        return atomic_write_json(self.record_path(index), record)

    def _write_maps(self, index: int, e: torch.Tensor) -> dict:
        """Write the ``(T, L)`` maps of image ``index`` as safetensors (atomically) and return what its JSON
        record says about them (file name, dtype, shape, checksum of the bytes)."""
        import hashlib

        from safetensors.torch import save

        data = save({"epe": e.to(MAPS_DTYPE).contiguous()})
        path = atomic_write_bytes(self.maps_path(index), data)
        return {
            "file": path.name,
            "dtype": str(MAPS_DTYPE).removeprefix("torch."),
            "shape": list(e.shape),
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    def record(self, index: int) -> dict:
        """The record of one image, checked; KeyError-free: FileNotFoundError if it has none."""
        path = self.record_path(index)
        if not path.is_file():
            raise FileNotFoundError(f"the sequence store {self.directory} has no record for image {index}")
        rec = read_json(path)
        loc = rec.get("locations") if isinstance(rec, dict) else None
        if (
            not isinstance(loc, list)
            or len(loc) != self.T
            or not all(isinstance(x, int) for x in loc)
            or not all(0 <= x < self.grid.num_locations for x in loc)
        ):
            raise ArtifactError(
                f"{path} is malformed: expected {self.T} locations in [0, {self.grid.num_locations - 1}], got {loc!r}"
            )
        if rec.get("index") != int(index):
            raise ArtifactError(f"{path} holds index {rec.get('index')!r}, expected {index}")
        return rec

    def epe_maps(self, index: int) -> torch.Tensor:
        """The ``(T, L)`` EPE maps of one image, float64 (ArtifactError if the record has none, or its maps file is
        missing, corrupt or not the one the record names)."""
        rec = self.record(index)
        if "maps" in rec:
            return self._read_maps(index, rec["maps"])
        if "epe" not in rec:
            raise ArtifactError(
                f"the record of image {index} in {self.directory} holds no EPE maps "
                "(imported sequences do not have them)"
            )
        return torch.tensor(rec["epe"], dtype=torch.float64)  # a record with its maps inside the JSON

    def _read_maps(self, index: int, info) -> torch.Tensor:
        import hashlib

        from safetensors.torch import load

        expected = [self.T, self.grid.num_locations]
        name = self.maps_path(index).name
        if not isinstance(info, dict) or info.get("file") != name or info.get("shape") != expected:
            raise ArtifactError(
                f"{self.record_path(index)} is malformed: 'maps' must name {name} of shape {expected}, got {info!r}"
            )
        path = self.maps_path(index)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"{path} is missing (the record {self.record_path(index).name} names it)") from None
        if hashlib.sha256(data).hexdigest() != info.get("sha256"):
            raise ArtifactError(
                f"{path} does not match the checksum its record {self.record_path(index).name} "
                "holds (a maps file of another run or a corrupt copy)"
            )
        try:
            e = load(data)["epe"]
        except Exception as err:  # noqa: BLE001 -- safetensors raises several types for corrupt data
            raise ArtifactError(f"{path} is not a valid maps file: {err}") from None
        if list(e.shape) != expected:
            raise ArtifactError(f"{path} holds maps of shape {list(e.shape)}, expected {expected}")
        return e.double()

    def sequences(self) -> dict[int, torch.Tensor]:
        """Every stored sequence: ``{image index: LongTensor (T,)}``."""
        return {i: torch.tensor(self.record(i)["locations"], dtype=torch.long) for i in self.indices()}

    # -------------------------------------------------------------- first glimpse
    @property
    def first_glimpse_path(self) -> Path:
        return self.directory / FIRST_GLIMPSE

    def has_first_glimpse(self) -> bool:
        return self.first_glimpse_path.is_file()

    def write_first_glimpse(self, epe: torch.Tensor | Sequence[float], **info) -> Path:
        """Cache the EPE of every first location (nothing observed yet); ``info``: seed, num_samples..."""
        e = torch.as_tensor(epe, dtype=torch.float64).flatten()
        if e.numel() != self.grid.num_locations:
            raise ValueError(f"`epe` must hold one value per location ({self.grid.num_locations}), got {e.numel()}")
        if not bool(torch.isfinite(e).all()):
            raise ValueError("epe holds NaN or infinite values")
        return atomic_write_json(self.first_glimpse_path, {**info, "epe": e.tolist()})

    def first_glimpse(self) -> dict:
        """The whole first-glimpse cache (``{"epe": [L floats], ...}``)."""
        if not self.has_first_glimpse():
            raise FileNotFoundError(f"{self.first_glimpse_path} does not exist (no first glimpse was computed)")
        data = read_json(self.first_glimpse_path)
        epe = data.get("epe") if isinstance(data, dict) else None
        if (
            not isinstance(epe, list)
            or len(epe) != self.grid.num_locations
            or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in epe)
        ):
            raise ArtifactError(f"{self.first_glimpse_path} must hold 'epe': {self.grid.num_locations} finite floats")
        return data

    def first_glimpse_epe(self) -> torch.Tensor:
        """The cached EPE of every first location, ``(L,)`` float64."""
        return torch.tensor(self.first_glimpse()["epe"], dtype=torch.float64)

    # -------------------------------------------------------------- paper format
    def export_paper(self, out_dir: str | os.PathLike, image_path_template: str | None = None) -> list[Path]:
        """Write ``out_dir/{index}.txt`` in the paper's released format (:mod:`ppl_attention.sequences`):
        ``r, c`` lines; with ``image_path_template`` (e.g. ``"data/birds/train/images/{index}.png"``) the birds
        layout's last line.  Returns the files written."""
        from ..sequences import write_paper_sequences

        seqs = self.sequences()
        if not seqs:
            raise ValueError(f"the sequence store {self.directory} holds no records to export")
        stored = {i: self.record(i).get("image_path") for i in seqs}
        paths = {i: p for i, p in stored.items() if p} or None
        if image_path_template is not None:
            if "{index}" not in image_path_template:
                raise ValueError(f"`image_path_template` must contain {{index}}, got {image_path_template!r}")
            paths = {i: image_path_template.format(index=i) for i in seqs}
        return write_paper_sequences(out_dir, seqs, self.grid, paths)

    @classmethod
    def import_paper(
        cls,
        src: str | os.PathLike,
        grid: Sensor,
        out_dir: str | os.PathLike,
        dataset: str | None = None,
        task: str | None = None,
    ) -> "SequenceStore":
        """Read the paper's released sequence files under ``src`` into a store (records without EPE maps)."""
        from ..sequences import read_paper_sequences

        seqs = read_paper_sequences(src, grid)
        lengths = {len(s.locations) for s in seqs.values()}
        if len(lengths) != 1:
            raise ValueError(f"the sequences under {src} have different lengths {sorted(lengths)}")
        config = {
            "dataset": dataset or "imported",
            "data": {"name": dataset} if dataset else None,
            "task": task or "imported",
            "grid": grid.to_dict(),
            "T": lengths.pop(),
            "source": "paper",
            "src": str(Path(src).resolve()),
        }
        store = cls.create(out_dir, config)
        for index, seq in seqs.items():
            extra = {"image_path": seq.image_path} if seq.image_path else {}
            store.write_record(int(index), None, seq.locations.long(), **extra)
        return store
