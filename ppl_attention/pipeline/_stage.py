"""What every stage function does around its own logic: its keyword arguments as settings objects, the dataset
it was given, its threads, progress bars and printing, and the summary it writes."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import typing
from pathlib import Path
from typing import Any, Iterable

from ..checks import check_int
from .handles import Dataset

#: Options every stage takes besides its settings: a YAML file of settings, debug logging (the CLI's), hidden
#: progress bars, torch's CPU threads for the stage.
SHARED = ("config", "verbose", "no_progress", "threads")

#: The dataset's options (beside ``dataset``): its folder, split seed, class options, artefacts to read it from.
DATASET_OPTIONS = ("root", "data_seed", "dataset_option", "option", "dataset_from")


def field_names(cls: type, skip: Iterable[str] = ()) -> dict[str, str]:
    """Name a caller may use -> the field of dataclass ``cls`` it sets: the field's name, its flag's name
    (``glimpses`` for ``max_glimpses``) and earlier spellings."""
    names: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init or f.metadata.get("cli") is False:
            continue
        names.setdefault(f.name, f.name)
        names.setdefault(f.metadata.get("flag", f.name), f.name)
        for old in f.metadata.get("old_flags", ()):
            if old.startswith("--"):
                names.setdefault(old[2:].replace("-", "_"), f.name)
    return names


def typed(value, tp):
    """One value as a flag of type ``tp`` would have parsed it: paths as text (or a Path for a Path flag), numbers
    through a float or str flag's type (``rank_weight=3`` is 3.0), text through an int or float flag's type
    (``k1="400"`` is 400; text that is no number is left for the setting's own check to name)."""
    if isinstance(value, os.PathLike) or (isinstance(value, str) and tp is Path):
        return Path(value) if tp is Path else str(Path(value))
    if tp in (float, str) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return tp(value)
    if tp in (int, float) and isinstance(value, str):
        try:
            return tp(value)
        except ValueError:
            return value
    return value


def _coerce(hint, value):
    """``value`` as the field's flag would have parsed it (:func:`typed`), one value of a list field as a list."""
    from ..config import _base_type

    tp, _ = _base_type(hint)
    origin = typing.get_origin(tp)
    if value is None or not (origin in (list, tuple) or tp in (list, tuple)):
        return typed(value, tp)
    item = (typing.get_args(tp) or (str,))[0]
    item = item if item in (int, float, str) else str
    single = isinstance(value, (str, os.PathLike)) or not isinstance(value, Iterable)
    return [typed(v, item) for v in ([value] if single else value)]


def split_options(stage: str, options: dict[str, Any], classes: Iterable[type], extra: Iterable[str] = (), skip=()):
    """``options`` (None values dropped) as ``[{field: value} per class]`` and ``{name: value}`` of ``extra``
    (the stage's own options and :data:`SHARED`); an unknown name is a TypeError listing the known ones."""
    classes = list(classes)
    names = [field_names(cls, skip) for cls in classes]
    hints = [typing.get_type_hints(cls) for cls in classes]
    known = set(extra) | set(SHARED)
    per_class: list[dict[str, Any]] = [{} for _ in classes]
    rest: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        owner = next((i for i, n in enumerate(names) if name in n), None)
        if owner is not None:
            field = names[owner][name]
            per_class[owner][field] = _coerce(hints[owner][field], value)
        elif name in known:
            rest[name] = value
        else:
            expected = sorted(known.union(*names))
            raise TypeError(f"{stage}: unknown option {name!r}; expected one of {expected}")
    return per_class, rest


def _option_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _paths(value) -> list[str]:
    """One path or several, as text."""
    if value is None:
        return []
    values = [value] if isinstance(value, (str, os.PathLike)) or not isinstance(value, Iterable) else value
    return [str(Path(v)) if isinstance(v, os.PathLike) else v for v in values]


def dataset_flags(
    dataset=None, root=None, data_seed=None, dataset_option=None, dataset_from=None, config=None, option=None
):
    """What the caller said about the dataset: ``config`` YAML keys (``dataset``, ``root``, ``data_seed``,
    ``dataset_options`` as a mapping, ``dataset_from``), overridden by the arguments.  ``dataset`` is a name or a
    :class:`Dataset`; ``dataset_option`` (or ``option``) ``KEY=VALUE`` texts; ``dataset_from`` artefact
    directories whose recorded dataset is read."""
    from ..config import load_yaml
    from ..data.spec import DatasetFlags, parse_options

    texts = _paths(dataset_option) + _paths(option)
    if isinstance(dataset, Dataset):
        texts = [f"{k}={_option_text(v)}" for k, v in dataset.options.items()] + texts
        dataset, root = dataset.name, dataset.root if dataset.root is not None else root
    elif dataset is not None and not isinstance(dataset, str):
        raise TypeError(f"`dataset` must be a dataset name or a Dataset (tensor_dataset), got {type(dataset).__name__}")
    yaml = {k.replace("-", "_"): v for k, v in (load_yaml(config) if config else {}).items()}
    options = yaml.get("dataset_options") or {}
    if not isinstance(options, dict):
        raise ValueError(
            f"`config` {config}: dataset_options must be a mapping of option names to values, got {options!r}"
        )
    options = {str(k).replace("-", "_"): v for k, v in options.items()}
    options.update(parse_options(texts))
    sources = yaml.get("dataset_from") or []
    sources = [sources] if isinstance(sources, str) else list(sources)
    sources += _paths(dataset_from)
    for s in sources:
        if not (Path(s) / "manifest.json").is_file():
            raise FileNotFoundError(f"`dataset_from` {s} is not an artefact directory (no manifest.json)")
    name = dataset or yaml.get("dataset")
    root = root or yaml.get("root")
    seed = yaml.get("data_seed") if data_seed is None else data_seed
    return DatasetFlags(
        name=name,
        root=None if root is None else str(root),
        seed=None if seed is None else int(seed),
        options=options,
        sources=tuple(sources),
    )


def resolve_dataset(flags, artefacts=(), default: str | None = "cluttered-mnist", seed: int = 0):
    """The stage's :class:`~ppl_attention.data.spec.DatasetSpec`: ``artefacts`` are directories (or
    ``(label, spec dict)`` pairs) whose recorded dataset ``flags`` must agree with."""
    from ..data.spec import recorded_spec, resolve_spec

    records = [a if isinstance(a, tuple) else recorded_spec(a) for a in artefacts]
    return resolve_spec(flags, records, default_name=default, default_seed=int(seed))


@contextlib.contextmanager
def running(quiet: bool = False, threads: int | None = None, no_progress: bool = False, **_):
    """A stage's surroundings: its own ``threads`` (restored after it, as in the CLI's process per command),
    stdout swallowed when ``quiet``, every progress bar hidden with ``no_progress``."""
    import torch

    from ..runtime import progress_bars

    before = torch.get_num_threads()
    try:
        if threads is not None:
            check_int("threads", threads)
            torch.set_num_threads(threads)
        with (
            contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext(),
            progress_bars(not no_progress),
        ):
            yield
    finally:
        torch.set_num_threads(before)


def _path_text(value):
    """``value`` as an absolute path when it names something on disk (so a summary's output paths can be copied
    from any working directory), else None."""
    if isinstance(value, str) and value and len(value) < 4096 and Path(value).exists():
        return str(Path(value).absolute())
    return None


def print_summary(summary: dict) -> None:
    """One line per key; paths are printed whole and absolute (a list of them one per line), other long values
    are cut at 120 characters."""
    for key, value in summary.items():
        paths = [_path_text(v) for v in value] if isinstance(value, list) and value else [None]
        if all(paths):
            print(f"  {key}:" + "".join(f"\n    {p}" for p in paths))
            continue
        path = _path_text(value)
        if path is not None:
            value = path
        elif isinstance(value, (dict, list)):
            value = json.dumps(value)
            if len(value) > 120:
                value = value[:117] + "..."
        print(f"  {key}: {value}")


def write_summary(out_dir, summary: dict, name: str = "summary.json") -> dict:
    """Write ``summary.json`` (or ``name``) next to a stage's outputs, with the run's record (command, versions,
    machine) under ``"run"``, print a short version, and return what was written."""
    from ..artifacts import atomic_write_json, read_json
    from ..runtime import run_record

    path = atomic_write_json(Path(out_dir) / name, {**summary, "run": run_record()})
    print_summary(summary)
    print(f"summary written to {path.absolute()}")
    return read_json(path)
