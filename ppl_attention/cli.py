"""``ppl-attention``: one command, one subcommand per stage.

Each module in :mod:`ppl_attention.commands` (names not starting with ``_``) defines
``register(subparsers, common)`` and adds its subcommands with ``parents=[common]``, so the shared options
``--device``, ``--seed``, ``--config`` and ``--verbose`` work after any subcommand.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands as _commands_pkg

__all__ = ["main", "build_parser"]


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("shared options")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to run: auto picks CUDA when available (default: auto)")
    g.add_argument("--seed", type=int, default=0, help="random seed of the run (default: 0)")
    g.add_argument("--config", default=None, metavar="FILE.yaml", help="load settings from a YAML file, or a "
                   "named preset (e.g. cluttered-mnist-fine; `ppl-attention datasets` lists them); flags given on the "
                   "command line override it")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return common


def command_modules():
    """The modules of ``ppl_attention.commands``, in name order."""
    names = sorted(m.name for m in pkgutil.iter_modules(_commands_pkg.__path__) if not m.name.startswith("_"))
    return [importlib.import_module(f"{_commands_pkg.__name__}.{name}") for name in names]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppl-attention",
        description="Near-optimal glimpse sequences by Bayesian optimal experimental design, and hard-attention "
                    "networks trained with them as partial supervision (PS-NOGS).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = common_options()
    for module in command_modules():
        module.register(sub, common)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    """What a command may fail with on bad input or a bad file (reported in one line, exit status 2)."""
    errors: list[type[BaseException]] = [ValueError, OSError, FloatingPointError]  # ArtifactError, JSON and
    # Unicode decoding errors are ValueErrors; FileNotFoundError, PermissionError... are OSErrors
    for module, name in (("safetensors", "SafetensorError"), ("yaml", "YAMLError")):
        mod = sys.modules.get(module)
        if mod is not None and hasattr(mod, name):
            errors.append(getattr(mod, name))
    return tuple(errors)


def error_message(e: BaseException) -> str:
    """One line for an expected failure: an OSError names its file(s), what happened and what was expected."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        what = {PermissionError: "expected a path this user may read (or write)",
                NotADirectoryError: "expected a directory (or a new path), found a file on the way",
                IsADirectoryError: "expected a file, found a directory",
                FileExistsError: "expected a new path or an empty directory"}.get(type(e), "")
        target = f" -> {e.filename2}" if getattr(e, "filename2", None) else ""
        return f"{e.filename}{target}: {e.strerror}" + (f" ({what})" if what else "")
    text = str(e).strip() or type(e).__name__
    if isinstance(e, OSError) or type(e).__name__ == "SafetensorError":
        text = f"{type(e).__name__}: {text}"
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv=None) -> int:
    """Run one subcommand: 0 on success, 2 with one ``error:`` line on stderr for every expected failure (the
    traceback only with ``-v``), 1 when no subcommand was given."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    from .runtime import setup_logging
    verbose = bool(getattr(args, "verbose", False))
    setup_logging(verbose)
    try:
        result = args.func(args)
    except _expected_errors() as e:
        if verbose:
            import traceback
            traceback.print_exc(file=sys.stderr)
        from .commands._common import cli_message, flags_of

        message = cli_message(error_message(e), flags_of(parser, args.command))
        print(f"ppl-attention {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ppl-attention {args.command}: interrupted (run the same command again to resume)", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
