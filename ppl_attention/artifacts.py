"""Artefact directories: atomic writes, manifest.json, and weights as safetensors plus a JSON config.

Every directory a stage writes has a ``manifest.json`` (its config, package versions and checksums of its
inputs).  This module is the one home of crash safety:

- :func:`atomic_write_bytes` (and its text / JSON forms): a file is written to a temporary name beside the target
  (``.NAME.tmp-HOST-PID-XXXX.tmp``), fsynced and renamed into place, so an interrupted write never leaves a file
  that looks complete;
- :func:`atomic_dir`: a directory is built under a temporary name beside the target and renamed into place;
- :func:`save_checkpoint` / :func:`load_checkpoint`: a training checkpoint is ONE safetensors file whose header
  metadata holds the JSON state, so it is written (and replaced) in one rename;
- :func:`clean_temporaries`: removes the temporaries a killed process left behind (those of dead processes of
  this host, or older than a day).

Weights are safetensors plus JSON; nothing is ever unpickled.

Crash tests: with ``PPL_ATTENTION_CRASH_AT=N`` in the environment the process kills itself (SIGKILL) at its
N-th atomic write, after the temporary file is written and before it is renamed (``PPL_ATTENTION_CRASH_PHASE=
after`` kills right after the rename instead); ``benchmarks/crash_resume.py`` and the tests use it to land a
kill between the writes of an artefact (``PPL_ATTENTION_COUNT_WRITES=FILE`` appends a run's number of writes to
FILE at exit, to choose N).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Mapping, TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from typing import Collection, Iterable

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_dir",
    "clean_temporaries",
    "clean_beside",
    "temporary_name",
    "read_json",
    "json_bytes",
    "file_checksum",
    "dir_checksum",
    "package_versions",
    "write_manifest",
    "read_manifest",
    "check_manifest",
    "save_weights",
    "load_weights",
    "save_checkpoint",
    "load_checkpoint",
    "ArtifactError",
    "config_differences",
    "check_compatible",
    "load_state",
]

MANIFEST = "manifest.json"
_UMASK = os.umask(0)
os.umask(_UMASK)


class ArtifactError(ValueError):
    """An artefact is missing, malformed, or was built for something else."""


def config_differences(
    stored: dict, requested: dict, keys: Iterable[str] | None = None, ignore: Collection[str] = ()
) -> list[str]:
    """``"key: stored X, now Y"`` for every setting where a stored artefact's config and the requested one
    differ (over ``keys``, default both configs' keys, less ``ignore``); nested dicts are compared key by key
    (``"train.lr: ..."``)."""
    keys = sorted(set(stored) | set(requested)) if keys is None else keys
    out = []
    for key in keys:
        if key in ignore:
            continue
        a, b = stored.get(key), requested.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [
                f"{key}.{d}"
                for d in config_differences(a, b, ignore=[i[len(key) + 1 :] for i in ignore if i.startswith(key + ".")])
            ]
        elif a != b:
            out.append(f"{key}: stored {a!r}, now {b!r}")
    return out


def check_compatible(
    what: str,
    stored: dict,
    requested: dict,
    keys: Iterable[str] | None = None,
    ignore: Collection[str] = (),
    remedy: str = "",
) -> None:
    """Refuse to reuse or resume an artefact when its stored config differs from the requested one, naming every
    difference: ``"{what} made with other settings (...)"``, ``what`` the subject (``"checkpoint X was"``,
    ``"out X holds a run"``); the one compatibility check of every artefact kind."""
    diff = config_differences(stored, requested, keys, ignore)
    if diff:
        raise ArtifactError(f"{what} made with other settings ({'; '.join(diff)})" + (f"; {remedy}" if remedy else ""))


_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
#: ``.NAME.tmp-HOST-PID-RANDOM.tmp`` (mkstemp's random part has no '-')
_TEMP_RE = re.compile(r"^\..+\.tmp-(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)-[A-Za-z0-9_]+(\.tmp)?$")
_STALE_S = 24 * 3600
_writes = 0


def temporary_name(path: str | os.PathLike) -> str:
    """The prefix of the temporaries beside ``path`` (this host and process)."""
    return f".{Path(path).name}.tmp-{_HOST}-{os.getpid()}-"


def _count_writes_at_exit() -> None:
    target = os.environ.get("PPL_ATTENTION_COUNT_WRITES")
    if target:
        with open(target, "a") as f:
            f.write(f"{_writes}\n")


if os.environ.get("PPL_ATTENTION_COUNT_WRITES"):  # crash tests: how many atomic writes a run makes
    import atexit

    atexit.register(_count_writes_at_exit)


def _crash_point(phase: str) -> None:
    """The crash-test hook (see the module docstring); costs one environment look-up per write."""
    at = os.environ.get("PPL_ATTENTION_CRASH_AT")
    if not at:
        return
    if phase == os.environ.get("PPL_ATTENTION_CRASH_PHASE", "before") and _writes == int(at):
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    global _writes
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(21, "is a directory, expected a file path", str(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_name(path), suffix=".tmp")
    _writes += 1
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the mode a plain open() would
        _crash_point("before")
        os.replace(tmp, path)
        _crash_point("after")
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _is_stale(p: Path) -> bool:
    m = _TEMP_RE.match(p.name)
    if m is None:
        return False
    try:
        if time.time() - p.lstat().st_mtime > _STALE_S:
            return True
    except FileNotFoundError:
        return False
    if m.group("host") != _HOST:
        return False
    pid = int(m.group("pid"))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def clean_temporaries(directory: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Remove the temporaries (files or folders) that killed processes left in ``directory``; returns them.

    A temporary is removed when its process (named in it) is dead on this host, or when it is older than a day;
    the live temporaries of concurrent writers (e.g. shards of one ``generate``) are left alone."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for p in list(directory.rglob(".*.tmp-*") if recursive else directory.glob(".*.tmp-*")):
        if _is_stale(p):
            try:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
    return removed


def clean_beside(target: str | os.PathLike, inside: bool = True) -> list[Path]:
    """Remove the stale temporaries of ``target`` itself (``.NAME.tmp-*`` in its folder, e.g. a directory a
    killed :func:`atomic_dir` was building) and, with ``inside``, those inside it."""
    target = Path(target)
    removed = []
    if target.parent.is_dir():
        for p in list(target.parent.glob(f".{glob_escape(target.name)}.tmp-*")):
            if _is_stale(p):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
    return removed + (clean_temporaries(target) if inside else [])


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temporary name beside ``target``; rename it into place on success.

    ``target`` must not exist or be an empty directory (it is replaced).  On any exception the temporary folder
    is removed and ``target`` is left as it was.  Yields the temporary folder to write into."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(17, "exists and is not an empty folder", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=temporary_name(target)))
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        yield tmp
        _crash_point("before")
        os.replace(tmp, target)  # replaces an empty directory atomically (POSIX rename)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
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


def json_bytes(obj: Any) -> bytes:
    """The bytes :func:`atomic_write_json` writes for ``obj`` (so a file's checksum can be known before it is)."""
    return (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode("utf-8")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_bytes(path, json_bytes(obj))


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; ArtifactError naming the file when it is missing, not UTF-8 text or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} does not exist")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ArtifactError(
            f"{path} is not a JSON file (expected UTF-8 text, found byte {e.object[e.start]:#04x} at offset {e.start})"
        ) from None
    except (json.JSONDecodeError, RecursionError) as e:
        raise ArtifactError(f"{path} is not valid JSON: {e}") from None


def file_checksum(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 22) -> str:
    """Hex digest of a file, streamed in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return f"{algorithm}:{h.hexdigest()}"


def dir_checksum(path: str | os.PathLike, pattern: str = "*") -> str:
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


def write_manifest(
    directory: str | os.PathLike, kind: str, config: Mapping[str, Any], inputs: Mapping[str, Any] | None = None, **extra
) -> Path:
    """Write ``directory/manifest.json``: what the artefact is, its config, package versions, input checksums and
    the machine it was made on (so results pages can say where a number was measured)."""
    from .runtime import machine_info

    manifest = {
        "kind": kind,
        "config": dict(config),
        "versions": package_versions(),
        "inputs": dict(inputs or {}),
        "machine": machine_info(),
    }
    manifest.update(extra)
    return atomic_write_json(Path(directory) / MANIFEST, manifest)


def read_manifest(directory: str | os.PathLike, kind: str | None = None) -> dict:
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"artefact directory {directory} does not exist")
    manifest = read_json(directory / MANIFEST)
    if kind is not None and manifest.get("kind") != kind:
        raise ArtifactError(f"{directory} holds a {manifest.get('kind')!r} artefact, expected {kind!r}")
    return manifest


def check_manifest(directory: str | os.PathLike, kind: str, expected: Mapping[str, Any]) -> dict:
    """Read a manifest and refuse it unless its config agrees with ``expected`` on every given key."""
    manifest = read_manifest(directory, kind)
    config = manifest.get("config", {})
    for key, value in expected.items():
        if config.get(key) != value:
            raise ArtifactError(f"{directory} was built with {key}={config.get(key)!r}, expected {value!r}")
    return manifest


def save_weights(
    path: str | os.PathLike, tensors: Mapping[str, torch.Tensor] | torch.nn.Module, config: Mapping[str, Any]
) -> Path:
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


def load_weights(path: str | os.PathLike, expected_config: Mapping[str, Any] | None = None) -> tuple[dict, dict]:
    """Load (tensors, config) saved by :func:`save_weights`; refuse non-safetensors files or another config."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ArtifactError(f"`weights` must be a .safetensors file, got {path}")
    if not path.is_file():
        raise ArtifactError(f"weights file {path} does not exist")
    tensors = _load_safetensors(path)
    config_path = path.with_suffix(".json")
    config = read_json(config_path)
    if expected_config is not None:
        for key, value in expected_config.items():
            if config.get(key) != value:
                raise ArtifactError(f"{path} was saved with {key}={config.get(key)!r}, expected {value!r}")
    return tensors, config


def _load_safetensors(path: Path, what: str = "") -> dict:
    """``safetensors.torch.load_file`` with every failure (corrupt header, pickle bytes...) named by its file."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises several types for corrupt headers  # noqa: BLE001
        raise ArtifactError(f"{what}{path} is not a valid safetensors file: {e}") from None


CHECKPOINT_META = "ppl_attention.checkpoint"


def save_checkpoint(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Write a training checkpoint as ONE safetensors file: the tensors, and ``meta`` (JSON) in its header.

    One file renamed into place: a kill at any moment leaves either the previous checkpoint or this one."""
    from safetensors.torch import save as st_save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path must end in .safetensors, got {path}")
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    text = json.dumps(dict(meta), sort_keys=True, default=_json_default)
    atomic_write_bytes(path, st_save(data, metadata={CHECKPOINT_META: text}))
    return path


def optimizer_to_checkpoint(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    """An optimizer's state as checkpoint tensors (``optim.<param id>.<key>``) and its ``param_groups`` (meta)."""
    state = opt.state_dict()
    tensors = {
        f"optim.{pid}.{key}": torch.as_tensor(value)
        for pid, pstate in state["state"].items()
        for key, value in pstate.items()
    }
    return tensors, {"param_groups": state["param_groups"]}


def optimizer_from_checkpoint(
    opt: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> None:
    """Load into ``opt`` the state that :func:`optimizer_to_checkpoint` put in a checkpoint's tensors and meta."""
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, key = k.split(".", 2)
            state.setdefault(int(pid), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def load_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """(tensors, meta) of a checkpoint written by :func:`save_checkpoint`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"checkpoint {path} does not exist")
    tensors = _load_safetensors(path, "checkpoint ")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except Exception as e:  # noqa: BLE001
        raise ArtifactError(f"checkpoint {path} is not a valid safetensors file: {e}") from None
    if CHECKPOINT_META in header:
        try:
            meta = json.loads(header[CHECKPOINT_META])
        except json.JSONDecodeError as e:
            raise ArtifactError(f"checkpoint {path}: its metadata is not valid JSON: {e}") from None
    elif path.with_suffix(".json").is_file():
        raise ArtifactError(
            f"checkpoint {path} keeps its metadata in {path.with_suffix('.json').name} (an older "
            f"format); run `ppl-attention migrate {path.parent}`"
        )
    else:
        raise ArtifactError(f"checkpoint {path} holds no {CHECKPOINT_META!r} metadata (not a checkpoint)")
    if not isinstance(meta, dict):
        raise ArtifactError(f"checkpoint {path}: its metadata must be a JSON object, got {type(meta).__name__}")
    return tensors, meta


def load_state(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], what: str) -> torch.nn.Module:
    """Load ``tensors`` into ``module`` exactly (every key, every shape), or an ArtifactError naming ``what`` (the
    weights file and its config) and the first mismatch; returns ``module``."""
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise ArtifactError(f"{what} does not match its config: {str(e).splitlines()[0]}") from None
    return module
