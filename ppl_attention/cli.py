"""``ppl-attention``: one command, one subcommand per stage.

Each module in :mod:`ppl_attention.commands` (names not starting with ``_``) defines
``register(subparsers, common)`` and adds its subcommands with ``parents=[common]``, so the shared options
``--device``, ``--seed``, ``--config`` and ``--verbose`` work after any subcommand.
"""
from __future__ import annotations

import argparse
import importlib
import logging
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
    g.add_argument("--config", default=None, metavar="FILE.yaml", help="load settings from a YAML file; "
                   "flags given on the command line override it")
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


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    from .runtime import setup_logging
    setup_logging(getattr(args, "verbose", False))
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError) as e:
        logging.getLogger("ppl_attention").debug("command failed", exc_info=True)
        print(f"ppl-attention {args.command}: error: {e}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
