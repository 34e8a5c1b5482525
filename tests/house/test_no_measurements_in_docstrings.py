"""Docstrings and comments explain the design; measured figures live in benchmarks/ and docs/RESULTS.md.

The scan looks only at docstrings and comments (not at messages or help text) and only for figures that can
only be measurements of a machine: throughputs, wall-clock times, speed-up factors, load averages and dates.
"""

import ast
import io
import re
import tokenize
from pathlib import Path

import ppl_attention

PACKAGE = Path(ppl_attention.__file__).parent
NUMBER = r"~?\d[\d,]*(?:\.\d+)?"
MEASUREMENT = re.compile(
    "|".join(
        [
            rf"{NUMBER}\s*(?:images|samples|iterations|queries|sequences|passes)\s*/\s*s\b",  # throughput
            rf"{NUMBER}\s*(?:ms|milliseconds)\b",  # a short wall-clock time
            rf"{NUMBER}\s*s\s+(?:per|/)\s",  # "0.3 s per image"
            rf"{NUMBER}\s*x\s+(?:faster|slower|cheaper|less time|more time)",  # speed-up factor
            r"\bload average\b",
            r"\(measured\b[^)]*\d",  # "(measured 10x ...)"
            r"\bmeasured\s+(?:on|at)\s+20\d\d\b|\b20\d\d-\d\d-\d\d\b",  # when it was measured
        ]
    ),
    re.IGNORECASE,
)


def _docstrings(tree):
    """Every bare string statement: module, class and function docstrings, and attribute docstrings."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            yield node.lineno, node.value.value


def _comments(text):
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string


def _offenders(text, name="<text>"):
    prose = [*_docstrings(ast.parse(text)), *_comments(text)]
    return [f"{name}:{line}: {m.group()!r}" for line, s in prose for m in MEASUREMENT.finditer(s)]


def test_docstrings_and_comments_carry_no_measurements():
    hits = [
        h
        for path in sorted(PACKAGE.rglob("*.py"))
        for h in _offenders(path.read_text(), path.relative_to(PACKAGE).as_posix())
    ]
    assert not hits, "measured figures in docstrings or comments (move them to docs/RESULTS.md):\n" + "\n".join(hits)


def test_the_scan_sees_measurements_and_spares_design_figures():
    measured = [
        '"""Fast: ~2,950 images/s at 128."""',
        "x = 1  # 3x faster than numpy",
        '"""Takes 0.3 s per sequence."""',
        '"""Measured on 2026-12-05 at load average 8."""',
        'def f():\n    """About 12 ms on a CPU."""',
        '"""Slow (measured: 4 of 5 runs)."""',
    ]
    for text in measured:
        assert _offenders(text), text
    design = [
        '"""Noise std 192 sqrt(t) on 0..255 pixels; 95 % intervals; 4,000 digits x 1,089 offsets."""',
        "x = 1  # at most 65,536 pairs per pass, 2 threads",
        'raise ValueError("took 3 s")',
        'HELP = "vectorized is ~2.5x faster"',
        '"""A checkpoint every 10 minutes."""',
    ]
    for text in design:
        assert not _offenders(text), text
