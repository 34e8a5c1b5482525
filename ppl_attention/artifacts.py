"""Artefact directories: atomic writes, manifest.json, and weights as safetensors plus a JSON config.

Every directory a stage writes has a ``manifest.json`` (its config, package versions and checksums of its
inputs).  Files are written to a temporary name and renamed, so an interrupted write never leaves a file that
looks complete.  Weights are safetensors plus JSON; nothing is ever unpickled.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import torch

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "read_json", "file_checksum",
           "dir_checksum", "package_versions", "write_manifest", "read_manifest", "check_manifest",
           "save_weights", "load_weights", "ArtifactError"]

MANIFEST = "manifest.json"
_UMASK = os.umask(0)
os.umask(_UMASK)


class ArtifactError(ValueError):
    """An artefact is missing, malformed, or was built for something else."""


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the mode a plain open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj):
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def atomic_write_json(path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path} is not valid JSON: {e}") from None


def file_checksum(path, algorithm: str = "sha256", chunk: int = 1 << 22) -> str:
    """Hex digest of a file, streamed in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return f"{algorithm}:{h.hexdigest()}"


def dir_checksum(path, pattern: str = "*") -> str:
    """A checksum of a directory: its manifest if it has one, otherwise every matching file's name and digest."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return file_checksum(path / MANIFEST)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob(pattern) if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(file_checksum(f).encode())
    return f"sha256:{h.hexdigest()}"


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("ppl_attention", "torch", "torchvision", "pyro-ppl", "numpy", "faiss-cpu"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_manifest(directory, kind: str, config: Mapping[str, Any], inputs: Mapping[str, Any] | None = None,
                   **extra) -> Path:
    """Write ``directory/manifest.json``: what the artefact is, its config, package versions, input checksums and
    the machine it was made on (so results pages can say where a number was measured)."""
    from .runtime import machine_info

    manifest = {"kind": kind, "config": dict(config), "versions": package_versions(), "inputs": dict(inputs or {}),
                "machine": machine_info()}
    manifest.update(extra)
    return atomic_write_json(Path(directory) / MANIFEST, manifest)


def read_manifest(directory, kind: str | None = None) -> dict:
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"artefact directory {directory} does not exist")
    manifest = read_json(directory / MANIFEST)
    if kind is not None and manifest.get("kind") != kind:
        raise ArtifactError(f"{directory} holds a {manifest.get('kind')!r} artefact, expected {kind!r}")
    return manifest


def check_manifest(directory, kind: str, expected: Mapping[str, Any]) -> dict:
    """Read a manifest and refuse it unless its config agrees with ``expected`` on every given key."""
    manifest = read_manifest(directory, kind)
    config = manifest.get("config", {})
    for key, value in expected.items():
        if config.get(key) != value:
            raise ArtifactError(f"{directory} was built with {key}={config.get(key)!r}, expected {value!r}")
    return manifest


def save_weights(path, tensors: Mapping[str, torch.Tensor] | torch.nn.Module, config: Mapping[str, Any]) -> Path:
    """Save ``path`` (``.safetensors``) and ``path`` with ``.json`` (the config needed to rebuild the module)."""
    from safetensors.torch import save as st_save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"weights path must end in .safetensors, got {path}")
    if isinstance(tensors, torch.nn.Module):
        tensors = tensors.state_dict()
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(data))
    atomic_write_json(path.with_suffix(".json"), dict(config))
    return path


def load_weights(path, expected_config: Mapping[str, Any] | None = None) -> tuple[dict, dict]:
    """Load (tensors, config) saved by :func:`save_weights`; refuse non-safetensors files or another config."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ArtifactError(f"weights must be a .safetensors file, got {path}")
    if not path.is_file():
        raise ArtifactError(f"weights file {path} does not exist")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, Exception) as e:  # safetensors raises several types for corrupt headers
        raise ArtifactError(f"{path} is not a valid safetensors file: {e}") from None
    config_path = path.with_suffix(".json")
    config = read_json(config_path)
    if expected_config is not None:
        for key, value in expected_config.items():
            if config.get(key) != value:
                raise ArtifactError(f"{path} was saved with {key}={config.get(key)!r}, expected {value!r}")
    return tensors, config
