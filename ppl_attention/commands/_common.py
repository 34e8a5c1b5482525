"""Helpers shared by the CLI subcommands."""

from __future__ import annotations

import argparse
import inspect
import re
from pathlib import Path

from .. import checks
from ..checks import check_int, check_number  # the CLI's checks are the library's, named by flag

__all__ = [
    "add_command",
    "write_summary",
    "print_summary",
    "check_out_dir",
    "check_out_file",
    "check_in_dir",
    "check_int",
    "check_number",
    "set_threads",
    "stage_options",
]


def add_command(
    sub, common: argparse.ArgumentParser, name: str, run, description: str | None = None, out: str | None = None
) -> argparse.ArgumentParser:
    """Add subcommand ``name``, run by ``run(args)``, with the shared options of ``common``: its one-line help is
    the one :data:`ppl_attention.cli.COMMANDS` lists, its ``--help`` text ``run``'s docstring unless
    ``description`` is given (one place for each, as click does); ``out``: the help of its required ``--out``
    path (None: it has none)."""
    from ..cli import COMMANDS

    text = description if description is not None else inspect.getdoc(run)
    p = sub.add_parser(name, parents=[common], help=dict(COMMANDS)[name], description=text)
    p.set_defaults(func=run)
    if out is not None:
        p.add_argument("--out", required=True, type=Path, help=out)
    return p


def write_summary(out_dir, summary: dict, name: str = "summary.json") -> Path:
    """Write ``summary.json`` (or ``name``) next to a command's outputs, with the run's record (command, versions,
    machine) under ``"run"``, and print a short version (as every stage does)."""
    from ..pipeline._stage import write_summary as write

    write(out_dir, summary, name)
    return Path(out_dir) / name


def print_summary(summary: dict) -> None:
    """One line per key of ``summary`` (:func:`ppl_attention.pipeline._stage.print_summary`)."""
    from ..pipeline._stage import print_summary as show

    show(summary)


# --------------------------------------------------------------------------- argument checks
# Run at the top of each command, before anything is loaded or written: a command refused on its arguments
# leaves its --out as it was.


def check_out_dir(path, flag: str = "--out") -> Path:
    """The library's :func:`~ppl_attention.checks.check_out_dir`, named by the command's flag."""
    return checks.check_out_dir(path, flag)


def check_out_file(path, flag: str = "--out", suffixes: tuple[str, ...] = ()) -> Path:
    """The library's :func:`~ppl_attention.checks.check_out_file`, named by the command's flag."""
    return checks.check_out_file(path, flag, suffixes)


def check_in_dir(path, flag: str, what: str = "an artefact directory") -> Path:
    """``path`` is an existing directory (FileNotFoundError / ValueError naming ``flag`` otherwise).  Not the
    library's :func:`~ppl_attention.checks.check_in_dir`: a positional's name (``store``) must stay as typed, where
    the library's backticks would make the CLI translate it into another command's flag."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{flag} {path} does not exist (expected {what})")
    if not path.is_dir():
        raise ValueError(f"{flag} {path} is a file, expected {what}")
    return path


def set_threads(threads: int | None, flag: str = "--threads") -> None:
    """torch's CPU threads from a command's ``--threads`` (None: torch's choice), refused unless a positive int."""
    if threads is None:
        return
    check_int(flag, threads)
    import torch

    torch.set_num_threads(threads)


_ARGUMENT = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(
        (
            a.choices
            for a in parser._actions  # argparse keeps its subparsers here, no public accessor
            if isinstance(a, argparse._SubParsersAction)
        ),
        {},
    )


def _options(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``dest -> --flag`` of one parser and its own subcommands (``datasets show``); the first option of a setting
    is its name, later ones are hidden aliases."""
    flags: dict[str, str] = {}
    for a in parser._actions:
        if a.option_strings and a.dest != argparse.SUPPRESS:
            flags.setdefault(a.dest, max(a.option_strings, key=len))
    for sub in _subcommands(parser).values():
        for dest, flag in _options(sub).items():
            flags.setdefault(dest, flag)
    return flags


def flags_of(parser: argparse.ArgumentParser, command: str | None) -> dict[str, str]:
    """``dest -> --flag`` for the options of subcommand ``command`` of ``parser`` (the top level's without one);
    a setting only another subcommand has is shown with it (``train-avp --exclude-design``)."""
    commands = _subcommands(parser)
    flags = _options(commands.get(command, parser))
    for name, sub in commands.items():
        for dest, flag in _options(sub).items():
            flags.setdefault(dest, f"{name} {flag}")
    return flags


def cli_message(text: str, flags: dict[str, str]) -> str:
    """A library error for the command line: an argument named as `name` becomes the flag that sets it
    (``--name``) where the command has one, else the bare name."""
    return _ARGUMENT.sub(lambda m: flags.get(m.group(1), m.group(1)), text)


def stage_options(args: argparse.Namespace) -> dict:
    """A parsed subcommand as the keyword arguments of its stage function: every option given (None: not given),
    without the parser's own entries and the CLI's ``verbose`` (its logging is set up by ``main``); ``dataset``
    always (None: read from the artefacts, not the stage function's default)."""
    skip = ("func", "command", "verbose", "quiet")
    return {k: v for k, v in vars(args).items() if (v is not None or k == "dataset") and k not in skip}
