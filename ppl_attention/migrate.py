"""Rewrite artefacts of older formats into today's, so that every reader knows one format.

:func:`migrate` walks a folder (one artefact, or a folder of them) and rewrites in place:

- a manifest that names its dataset but records no dataset spec (``config["data"]``): the spec its name and, where
  it was the split's, its seed give (what the readers once guessed from them);
- a prior manifest that does not name its kind (``config["prior"]``): a database prior, the only kind then;
- a two-file training checkpoint (``X.safetensors`` + ``X.json``): one safetensors file holding its metadata.

A manifest's checksum is how other artefacts name it (a store records its AVP's and prior's), so every manifest
under the folder that records a rewritten manifest's old checksum gets the new one.  Each file is replaced
atomically; a second run changes nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .artifacts import (
    CHECKPOINT_META,
    MANIFEST,
    ArtifactError,
    atomic_write_bytes,
    file_checksum,
    json_bytes,
    read_json,
    save_checkpoint,
)

if TYPE_CHECKING:
    import os

__all__ = ["migrate", "legacy_spec"]


def _dataset_name(config: dict):
    return config.get("dataset") or (config.get("run") or {}).get("dataset")


def legacy_spec(manifest: dict) -> dict | None:
    """The dataset spec a manifest of the older format implies (its dataset's name, and its seed for the kinds
    whose seed was the split's), or None for today's format (a ``config["data"]``, None where the data had no
    spec) or a manifest of no dataset."""
    config = manifest.get("config", {})
    name = _dataset_name(config)
    if "data" in config or not isinstance(name, str) or name in ("", "toy"):
        return None
    spec: dict[str, Any] = {"name": name}
    kind = manifest.get("kind")
    if kind in ("avp", "sequences") and config.get("seed") is not None:
        spec["seed"] = int(config["seed"])
    if kind == "attention-run" and config.get("data_seed") is not None:
        spec["seed"] = int(config["data_seed"])
    return spec


def _upgrade_manifest(manifest: dict) -> list[str]:
    """Bring one manifest (in memory) to today's format; what changed."""
    changes = []
    spec = legacy_spec(manifest)
    if spec is not None:
        manifest["config"]["data"] = spec
        changes.append(f"records its dataset spec {spec}")
    if manifest.get("kind") == "prior" and "prior" not in manifest.get("config", {}):
        manifest["config"]["prior"] = "database"
        changes.append("names its kind of prior, 'database'")
    return changes


def _replace(value: Any, sums: dict[str, str]) -> Any:
    """``value`` with every string that is an old checksum of ``sums`` replaced by its new one."""
    if isinstance(value, str):
        return sums.get(value, value)
    if isinstance(value, dict):
        return {k: _replace(v, sums) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, sums) for v in value]
    return value


def _manifests(root: Path) -> list[Path]:
    """Every manifest under ``root``, not those of temporaries (``.NAME.tmp-*``) a killed write left."""
    found = [root / MANIFEST] if (root / MANIFEST).is_file() else []
    found += [p for p in root.rglob(MANIFEST) if p.parent != root]
    return sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(root).parts))


def _migrate_manifests(root: Path) -> list[str]:
    manifests = {p: read_json(p) for p in _manifests(root)}
    old = {p: file_checksum(p) for p in manifests}
    report = {p: [f"{p}: {c}" for c in _upgrade_manifest(m)] for p, m in manifests.items()}
    changed = {p for p, lines in report.items() if lines}
    past = {p: {old[p]} for p in manifests}  # every checksum a manifest had, on disk or during this migration
    while True:  # until no manifest records an earlier checksum of a changed one
        now = {p: "sha256:" + hashlib.sha256(json_bytes(manifests[p])).hexdigest() for p in changed}
        sums = {c: now[p] for p in changed for c in past[p] if c != now[p]}
        for p in changed:
            past[p].add(now[p])
        more = set()
        for p, m in manifests.items():
            updated = _replace(m, sums)
            if updated != m:
                manifests[p] = updated
                more.add(p)
                report[p].append(f"{p}: records the new checksum of a migrated artefact")
        if not more:
            break
        changed |= more
    for p in sorted(changed):
        atomic_write_bytes(p, json_bytes(manifests[p]))
    return [line for p in sorted(changed) for line in dict.fromkeys(report[p])]


def _migrate_checkpoints(root: Path) -> list[str]:
    """Two-file checkpoints (tensors with ``meta.iteration``, metadata in a ``.json`` beside) as one file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    lines = []
    for path in sorted(root.rglob("*.safetensors")):
        pair = path.with_suffix(".json")
        if not pair.is_file() or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        with safe_open(str(path), framework="pt") as f:
            if CHECKPOINT_META in (f.metadata() or {}) or "meta.iteration" not in f.keys():
                continue  # a checkpoint already, or weights with their config
        meta = read_json(pair)
        if not isinstance(meta, dict):
            raise ArtifactError(f"checkpoint {path}: {pair.name} must hold a JSON object, got {type(meta).__name__}")
        save_checkpoint(path, load_file(str(path)), meta)
        pair.unlink()
        lines.append(f"{path}: one checkpoint file (its metadata from {pair.name}, now removed)")
    return lines


def migrate(directory: str | os.PathLike) -> list[str]:
    """Rewrite every artefact of an older format under ``directory`` into today's; one line per change made."""
    root = Path(directory)
    if not root.is_dir():
        raise ValueError(f"`directory` must be an artefact folder, got {directory} (not a folder)")
    return _migrate_checkpoints(root) + _migrate_manifests(root)
