"""House rules the package keeps: library errors name arguments, not CLI flags; no issue numbers in the code."""

import ast
import re
from pathlib import Path

import ppl_attention

PACKAGE = Path(ppl_attention.__file__).parent
#: Modules that are the command line: they may name flags.
CLI_MODULES = ("cli.py", "commands/")
FLAG = re.compile(r"(?<![\w-])--(?:[a-z][a-z0-9]*(?:-[a-z0-9]+)*|\{\})")


def _library_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith(CLI_MODULES):
            yield rel, path


def _strings(node):
    """The literal text of an expression: its string constants, and its f-strings with ``{}`` for each value (so
    a flag built from a name, ``f"--{name}"``, shows as ``--{}``)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub.value
        elif isinstance(sub, ast.JoinedStr):
            yield "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in sub.values)


def test_library_errors_name_arguments_not_flags():
    offenders = []
    for rel, path in _library_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                for text in _strings(node.exc):
                    if FLAG.search(text):
                        offenders.append(f"{rel}:{node.lineno}: {FLAG.search(text).group()}")
    assert not offenders, "library errors that name CLI flags:\n" + "\n".join(offenders)


#: An error that starts with a bare argument name and what it must be (``"n must be ..."``): the house names it in
#: backticks (```n` must be ...``), so the command line can show the flag that sets it.
BARE_NAME = re.compile(r"^[a-z_][a-z0-9_]* (?:must|should) ")


def test_library_errors_name_their_argument_in_backticks():
    offenders = []
    for rel, path in _library_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                first = next(_strings(node.exc), "")
                if BARE_NAME.match(first):
                    offenders.append(f"{rel}:{node.lineno}: {first[:60]}")
    assert not offenders, "library errors that name their argument without backticks:\n" + "\n".join(offenders)


def test_the_scan_sees_a_flag_in_an_error():
    tree = ast.parse('raise ValueError(f"lr (--lr) must be positive, got {x}")')
    assert {FLAG.search(t).group() for t in _strings(tree.body[0].exc) if FLAG.search(t)} == {"--lr"}
    tree = ast.parse('raise ValueError(f"{name} (--{name.replace(1, 2)}) must be positive")')
    assert {FLAG.search(t).group() for t in _strings(tree.body[0].exc) if FLAG.search(t)} == {"--{}"}
    tree = ast.parse('raise ValueError(f"`lr` must be positive, got {x} (a decrement: x--)")')
    assert not [t for t in _strings(tree.body[0].exc) if FLAG.search(t)]


def test_no_issue_numbers_or_issue_talk_in_the_package():
    hits = [
        f"{path.relative_to(PACKAGE)}:{i}"
        for path in PACKAGE.rglob("*.py")
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bissues?\b", line, re.I)
    ]
    assert not hits, "the package mentions issues: " + ", ".join(hits)
