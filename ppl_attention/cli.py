"""``ppl-attention``: one command, one subcommand per stage.

``ppl-attention``, ``--help`` and ``--version`` build a light parser from :data:`COMMANDS` without importing any
command module (nor torch); a subcommand builds the full parser.  Each module in :mod:`ppl_attention.commands`
(names not starting with ``_``) defines ``register(subparsers, common)`` and adds its subcommands with
:func:`~ppl_attention.commands._common.add_command` (help from :data:`COMMANDS`, ``parents=[common]``), so the
shared options ``--device``, ``--seed``, ``--config``, ``--verbose``, ``--no-progress`` and ``--threads`` work after
any subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands as _commands_pkg

__all__ = ["main", "build_parser", "COMMANDS"]

#: Every subcommand in pipeline order, with its one-line help: the light top-level parser's, and the full one's
#: through ``commands._common.add_command`` (a test checks that it names what the command modules register).
COMMANDS = (
    ("datasets", "list the datasets, or draw samples of one"),
    ("train-avp", "1. train the AVP g(label | glimpses) on random glimpses"),
    ("evaluate-avp", "accuracy, NLL and ECE of an AVP against the number of glimpses"),
    ("build-prior", "2. build the image prior of the completions"),
    ("calibrate-noise", "choose the glimpse noise on held-out canvases so that completions are calibrated"),
    ("compare-completion", "compare image completions: importance sampling, NUTS in a VAE, conditional GAN"),
    ("generate", "3. near-optimal glimpse sequences by sequential BOED"),
    ("train-epe-net", "train a network that predicts every step's EPE map in one pass"),
    ("evaluate-epe-net", "regret of the amortised and hybrid searches against the exhaustive search"),
    ("evaluate-design", "the design's noise floor: regret between searches on independent completions"),
    ("export-sequences", "write a sequence store in the paper's format"),
    ("import-sequences", "read the paper's released sequences into a store"),
    ("plot", "figures of sequence stores (EPE maps, validity, EPE calibration)"),
    ("train", "4. train a hard-attention network (RAM, RAM+, PS-NOGS, PS-H1/H5, PS-HGS)"),
    ("policy-sequences", "a trained network's own greedy sequences as a store (PS-RAM's supervision)"),
    ("plot-attention", "validation curves of several training runs"),
    ("baselines", "low-FLOP CNN baselines: accuracy against FLOPs"),
    ("demo", "all of the above on cluttered MNIST (--quick: about a minute)"),
    ("migrate", "rewrite artefacts of older formats into today's"),
)

EPILOG = """the pipeline (each stage reads the dataset from the artefacts before it):
  train-avp --dataset D --out AVP  ->  build-prior --dataset-from AVP --out PRIOR
  ->  generate --avp AVP --prior PRIOR --out SEQS  ->  train --supervision nogs --sequences SEQS --out RUN
`ppl-attention COMMAND --help` for a command's options; `ppl-attention demo` runs it all."""


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("shared options")
    g.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where to run: auto picks CUDA when available (default: auto)",
    )
    g.add_argument("--seed", type=int, default=0, help="random seed of the run (default: 0)")
    g.add_argument(
        "--config",
        default=None,
        metavar="FILE.yaml",
        help="load settings from a YAML file, or a "
        "named preset (e.g. cluttered-mnist-fine; `ppl-attention datasets` lists them); flags given on the "
        "command line override it",
    )
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    g.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (default: torch's choice; 1 is "
        "often fastest for the small networks on a busy machine)",
    )
    return common


def command_modules():
    """The modules of ``ppl_attention.commands``, in name order."""
    names = sorted(m.name for m in pkgutil.iter_modules(_commands_pkg.__path__) if not m.name.startswith("_"))
    return [importlib.import_module(f"{_commands_pkg.__name__}.{name}") for name in names]


def build_parser(light: bool = False) -> argparse.ArgumentParser:
    """The ``ppl-attention`` parser, subcommands in pipeline order; ``light``: names and help only (no command
    module imported), enough for ``--help`` and ``--version``."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="ppl-attention",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Near-optimal glimpse sequences by Bayesian optimal experimental design, and hard-attention\n"
        "networks trained with them as partial supervision (PS-NOGS).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if light:
        for name, text in COMMANDS:
            sub.add_parser(name, help=text, add_help=False)
        return parser
    common = common_options()
    for module in command_modules():
        module.register(sub, common)
    order = {name: i for i, (name, _) in enumerate(COMMANDS)}
    sub._choices_actions.sort(key=lambda a: order.get(a.dest, len(order)))
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
        what = {
            PermissionError: "expected a path this user may read (or write)",
            NotADirectoryError: "expected a directory (or a new path), found a file on the way",
            IsADirectoryError: "expected a file, found a directory",
            FileExistsError: "expected a new path or an empty directory",
        }.get(type(e), "")
        target = f" -> {e.filename2}" if getattr(e, "filename2", None) else ""
        return f"{e.filename}{target}: {e.strerror}" + (f" ({what})" if what else "")
    text = str(e).strip() or type(e).__name__
    if isinstance(e, OSError) or type(e).__name__ == "SafetensorError":
        text = f"{type(e).__name__}: {text}"
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv=None) -> int:
    """Run one subcommand: 0 on success, 2 with one ``error:`` line on stderr for every expected failure (the
    traceback only with ``-v``), 1 when no subcommand was given."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "--version"):  # no command module needed: start without torch
        parser = build_parser(light=True)
        parser.parse_args(argv)
        parser.print_help()
        return 1
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    from .runtime import setup_logging

    verbose = bool(getattr(args, "verbose", False))
    setup_logging(verbose)
    try:
        from .commands._common import set_threads

        set_threads(getattr(args, "threads", None))
        from .runtime import progress_bars

        with progress_bars(not getattr(args, "no_progress", False)):
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
