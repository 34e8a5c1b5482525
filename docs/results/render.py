"""Render docs/RESULTS.md from templates and records, and turn run directories into records.

A template (``templates/NN-name.md``, concatenated in name order) is Markdown written by people: the prose and the
conclusions. A record (``records/<section>/<name>.json``) is data: a table (``columns``, ``formats``, ``rows``)
placed in a template by ``{{ table <section>/<name> }}``, or any JSON placed, pretty-printed, by
``{{ json <section>/<name> }}``. A table cell is text, a number, or ``{"mean": .., "sd": ..}``; a column's format
(a Python format spec and a suffix) says how its numbers are written, so no figure is typed twice.

    python docs/results/render.py                  # write docs/RESULTS.md
    python docs/results/render.py --check          # exit 1 if docs/RESULTS.md is not what the records give
    python docs/results/render.py collect RUN_DIR ... --out docs/results/records/<section>/<name>.json

``collect`` reads each run directory's summary.json, groups runs whose names differ only in a ``-s<seed>`` suffix,
and writes one row per group with the mean and sample standard deviation over seeds of each metric.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "RESULTS.md"
PLACEHOLDER = re.compile(r"\{\{ (table|json) ([\w./-]+) \}\}")
SEED = re.compile(r"-s\d+$")


def _dump(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def save_record(path: Path, record) -> Path:
    """Write a record as JSON, a table one row a line (so a diff shows which row changed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(record, dict) and "rows" in record:
        items = [
            ' "rows": [\n' + ",\n".join(f"  {_dump(r)}" for r in v) + "\n ]"
            if k == "rows"
            else f" {_dump(k)}: {_dump(v)}"
            for k, v in record.items()
        ]
        text = "{\n" + ",\n".join(items) + "\n}"
    else:
        text = json.dumps(record, indent=1, ensure_ascii=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)
    return path


def format_cell(cell, spec: dict | None) -> str:
    """A table cell as Markdown text: numbers (and mean ± sd pairs) in the column's format."""
    if isinstance(cell, str):
        return cell
    fmt, suffix = (spec or {}).get("format", "g"), (spec or {}).get("suffix", "")
    if isinstance(cell, dict):
        return f"{format(cell['mean'], fmt)} ± {format(cell['sd'], fmt)}{suffix}"
    if cell is None:
        return "—"
    return f"{format(cell, fmt)}{suffix}"


def render_table(record: dict) -> str:
    """A table record as a Markdown table (no trailing newline)."""
    columns = record["columns"]
    formats = record.get("formats") or [None] * len(columns)
    if len(formats) != len(columns):
        raise ValueError(f"record formats: {len(formats)} formats for {len(columns)} columns")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in record["rows"]:
        if len(row) != len(columns):
            raise ValueError(f"record rows: a row of {len(row)} cells under {len(columns)} columns: {row}")
        lines.append("| " + " | ".join(format_cell(c, f) for c, f in zip(row, formats)) + " |")
    return "\n".join(lines)


def _fill(match: re.Match, records: Path) -> str:
    kind, key = match.groups()
    path = records / f"{key}.json"
    if not path.is_file():
        raise FileNotFoundError(f"template placeholder {match.group(0)!r}: no record at {path}")
    record = json.loads(path.read_text())
    return render_table(record) if kind == "table" else json.dumps(record, indent=1, ensure_ascii=False)


def render(root: Path = HERE) -> str:
    """The results page: every template under ``root/templates`` in name order, placeholders filled from
    ``root/records``."""
    templates = sorted((Path(root) / "templates").glob("*.md"))
    if not templates:
        raise FileNotFoundError(f"root: no templates under {Path(root) / 'templates'}")
    records = Path(root) / "records"
    return "".join(PLACEHOLDER.sub(lambda m: _fill(m, records), t.read_text()) for t in templates)


def _lookup(summary: dict, key: str):
    value = summary
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _numeric_keys(summary: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in summary.items():
        if k == "run":
            continue
        if isinstance(v, dict):
            keys += _numeric_keys(v, f"{prefix}{k}.")
        elif _lookup({k: v}, k) is not None:
            keys.append(prefix + k)
    return keys


def _shown(path: Path) -> str:
    """A run's path as the record keeps it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def collect(run_dirs: list[Path], metrics: list[str] | None = None, fmt: str = ".4g") -> dict:
    """A table record from run directories: one row per run name (seed suffix ``-s<n>`` dropped), with the seeds
    found and each metric's mean and sample standard deviation over them (sd 0 for a single seed).

    ``metrics`` are summary keys (dotted for nested ones), each optionally with its own format spec after ``=``
    (``test_greedy_acc=.1%``); by default every numeric key all runs share, in ``fmt``."""
    if not run_dirs:
        raise ValueError("run_dirs: no run directories given")
    summaries = {}
    for d in map(Path, run_dirs):
        path = d / "summary.json"
        if not path.is_file():
            raise FileNotFoundError(f"run_dirs: {d} has no summary.json")
        summaries[d] = json.loads(path.read_text())
    if metrics is None:
        metrics = sorted(set.intersection(*(set(_numeric_keys(s)) for s in summaries.values())))
    specs = [m.partition("=")[2] or fmt for m in metrics]
    metrics = [m.partition("=")[0] for m in metrics]
    groups: dict[str, list[dict]] = {}
    for d, s in summaries.items():
        groups.setdefault(SEED.sub("", d.name), []).append(s)
    rows = []
    for name, members in groups.items():
        row = [name, len(members)]
        for m in metrics:
            values = [v for v in (_lookup(s, m) for s in members) if v is not None]
            row.append(
                {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
                if values
                else None
            )
        rows.append(row)
    return {
        "columns": ["run", "seeds", *metrics],
        "formats": [None, None] + [{"format": f} for f in specs],
        "rows": rows,
        "source": {
            "runs": [_shown(d) for d in summaries],
            "commands": [s.get("run", {}).get("command") for s in summaries.values()],
        },
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["collect"]:
        p = argparse.ArgumentParser(prog="render.py collect", description=collect.__doc__)
        p.add_argument("runs", nargs="+", type=Path, help="run directories, each with a summary.json")
        p.add_argument("--out", type=Path, required=True, help="the record to write (records/<section>/<name>.json)")
        p.add_argument(
            "--metrics",
            nargs="+",
            help="summary keys (dotted for nested ones), each optionally "
            "KEY=FORMAT; default: every numeric key all runs share",
        )
        p.add_argument("--format", default=".4g", help="Python format spec of the metrics' cells (e.g. .1%%)")
        a = p.parse_args(argv[1:])
        print(f"record written to {save_record(a.out, collect(a.runs, a.metrics, a.format))}")
        return 0
    p = argparse.ArgumentParser(prog="render.py", description="Render docs/RESULTS.md from templates and records.")
    p.add_argument("--root", type=Path, default=HERE, help="folder holding templates/ and records/")
    p.add_argument("--out", type=Path, default=PAGE, help="the page to write")
    p.add_argument("--check", action="store_true", help="only compare the page with what the records give")
    a = p.parse_args(argv)
    text = render(a.root)
    if a.check:
        same = a.out.is_file() and a.out.read_text() == text
        print(f"{a.out} is {'up to date' if same else 'out of date: run docs/results/render.py'}")
        return 0 if same else 1
    a.out.write_text(text)
    print(f"{a.out} rendered from {a.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
