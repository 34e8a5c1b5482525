"""One-off: split the hand-kept docs/RESULTS.md into templates (prose) and records (tables, saved JSON)."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import render  # noqa: E402

NUMBER = re.compile(r"^(-?[\d,]*\.?\d+)(?: ± (-?[\d,]*\.?\d+))?( %|%|x)?$")
SEPARATOR = re.compile(r"^\|(-+\|)+$")


NAMES = ["header", "paper", "sensor", "demo", "table1-mnist", "why-not-5x", "cnn-baselines", "avp-evaluations",
         "validity", "completion", "notebooks", "crash-safety", "retina-learning-curve", "cluttered-100",
         "fine-grids", "benchmarks"]


def parse_cell(text: str):
    m = NUMBER.match(text)
    if not m:
        return None
    mean, sd, suffix = m.groups()
    digits = len(mean.split(".")[1]) if "." in mean else 0
    value = float(mean.replace(",", "")) if "." in mean else int(mean.replace(",", ""))
    cell = value if sd is None else {"mean": value, "sd": float(sd.replace(",", "")) if "." in sd else
                                     int(sd.replace(",", ""))}
    return cell, digits, "," in text, suffix or ""


def column_spec(cells: list[str]):
    """The one number format every numeric cell of a column round-trips through, or None (keep text)."""
    parsed = [parse_cell(c) for c in cells]
    numeric = [p for p in parsed if p]
    if not numeric or len({(p[1], p[3]) for p in numeric}) != 1:
        return None, cells
    for comma in ("", ","):
        spec = {"format": f"{comma}.{numeric[0][1]}f"} | ({"suffix": numeric[0][3]} if numeric[0][3] else {})
        out = [p[0] if p else c for p, c in zip(parsed, cells)]
        if all(render.format_cell(o, spec) == c for o, c in zip(out, cells)):
            return spec, out
    return None, cells


def table_record(lines: list[str]) -> dict:
    split = [[c.strip() for c in line.strip()[1:-1].split("|")] for line in lines]
    columns, rows = split[0], split[2:]
    formats, cols = [], []
    for j in range(len(columns)):
        spec, values = column_spec([r[j] for r in rows])
        formats.append(spec)
        cols.append(values)
    record = {"columns": columns, "formats": formats, "rows": [list(r) for r in zip(*cols)],
              "source": "migrated from docs/RESULTS.md as generated on 2026-11-22"}
    assert render.render_table(record) == "\n".join(lines), lines[0]
    return record


def split_section(name: str, lines: list[str], records: Path) -> str:
    out, i, n = [], 0, {"table": 0, "json": 0}
    while i < len(lines):
        line = lines[i]
        if line.startswith("|") and i + 1 < len(lines) and SEPARATOR.match(lines[i + 1]):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            n["table"] += 1
            key = f"{name}/table-{n['table']}"
            render.save_record(records / f"{key}.json", table_record(lines[i:j]))
            out.append(f"{{{{ table {key} }}}}")
            i = j
            continue
        if line == "```json":
            j = lines.index("```", i + 1)
            text = "\n".join(lines[i + 1:j])
            if json.dumps(json.loads(text), indent=1, ensure_ascii=False) == text:
                n["json"] += 1
                key = f"{name}/json-{n['json']}"
                render.save_record(records / f"{key}.json", json.loads(text))
                out += ["```json", f"{{{{ json {key} }}}}", "```"]
                i = j + 1
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def main(page: Path = HERE.parent / "RESULTS.md") -> None:
    text = page.read_text()
    parts = re.split(r"(?m)^(?=## )", text)
    for k, part in enumerate(parts):
        name = f"{k:02d}-{NAMES[k]}"
        body = split_section(name, part.split("\n"), HERE / "records")
        (HERE / "templates").mkdir(exist_ok=True)
        (HERE / "templates" / f"{name}.md").write_text(body)
    assert render.render(HERE) == text, "the split does not render back to the page"


if __name__ == "__main__":
    main()
