"""The Python face of the library: one function per stage, each returning a handle to the artefact it wrote.

    avp = train_avp("runs/avp", epochs=2)                       # AVP g(label | glimpses)
    prior = build_prior("runs/prior")                           # the image prior of the completions
    seqs = design_sequences("runs/seqs", avp, prior, num_images=4)  # greedy EPE minimisation, a sequence store
    run = train_attention("runs/ps", sequences=seqs)            # PS-NOGS (or RAM without sequences)
    evaluate(avp)                                               # accuracy / NLL / ECE against t

Each function is its stage, and the ``ppl-attention`` subcommand of the same stage is a thin layer over it (parse
the flags, call the function): same validation, same artefacts, same resumption.  Keyword arguments are that
subcommand's options with ``_`` for ``-`` (``num_images=`` for ``--num-images``), and paths may be ``str`` or
:class:`~pathlib.Path`.  A later stage reads the dataset from the artefacts it is given, so it is named once, by the
first stage.  Handles are accepted wherever a directory is.  :func:`tensor_dataset` turns plain tensors into a
dataset the stages accept.

The five core stages hold their logic here, one module each (:mod:`.avp`: :func:`train_avp`, :func:`evaluate`;
:mod:`.prior`: :func:`build_prior`; :mod:`.design`: :func:`design_sequences`; :mod:`.attention`:
:func:`train_attention`).  The other subcommands have their function too (:func:`train_epe_net`,
:func:`evaluate_epe_net`, :func:`evaluate_design`, :func:`calibrate_noise`, :func:`policy_sequences`,
:func:`train_baselines`, :func:`plot`, :func:`plot_attention`), which still runs its subcommand's handler
in-process (``_run``: the options become the subcommand's parsed arguments).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from pathlib import Path
from typing import Any, Iterable

from .. import PIPELINE_NAMES
from ._stage import typed
from .handles import (
    AVPHandle,
    Dataset,
    DatasetArg,
    EPENetHandle,
    PathArg,
    PriorHandle,
    RunHandle,
    SequencesHandle,
    tensor_dataset,
)
from .attention import train_attention
from .avp import evaluate, train_avp
from .design import design_sequences
from .prior import build_prior

__all__ = list(PIPELINE_NAMES)


# --------------------------------------------------------------------------- running a stage


def _subparser(command: str) -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The parser of ``command`` and the words that chose it by their dest (``"plot epe"`` descends into
    ``plot``'s own subcommands: ``{"command": "plot", "figure": "epe"}``)."""
    from ..cli import build_parser

    parser, chosen = build_parser(), {}
    for word in command.split():
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser, chosen[sub.dest] = sub.choices[word], word
    return parser, chosen


def _value(action: argparse.Action, value):
    """``value`` as the subcommand would have parsed it from its text (:func:`._stage.typed` with the flag's type),
    one value of a list flag as a list."""
    if value is None or not (action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction)):
        return typed(value, action.type)
    one_value = isinstance(value, (str, os.PathLike)) or not isinstance(value, Iterable)
    return [typed(v, action.type) for v in ([value] if one_value else value)]


def _namespace(command: str, options: dict[str, Any]) -> argparse.Namespace:
    """The subcommand's parsed defaults, with ``options`` set as if typed (unknown names are refused)."""
    parser, chosen = _subparser(command)
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", argparse.SUPPRESS)}
    ns = argparse.Namespace(**{d: a.default for d, a in actions.items()})
    for a in parser._actions:  # the flags' names too: glimpses= for --glimpses, whatever its dest
        for flag in a.option_strings:
            if flag.startswith("--") and a.help != argparse.SUPPRESS:
                actions.setdefault(flag[2:].replace("-", "_"), a)
    ns.func = parser.get_default("func")
    vars(ns).update(chosen)
    for name, value in options.items():
        if name not in actions:
            raise TypeError(f"{command}: unknown option {name!r}; expected one of {sorted(actions)}")
        setattr(ns, actions[name].dest, _value(actions[name], value))
    return ns


def _dataset_options(dataset) -> dict[str, Any]:
    if dataset is None:
        return {}
    if isinstance(dataset, str):
        return {"dataset": dataset}
    if isinstance(dataset, Dataset):
        return {
            "dataset": dataset.name,
            "root": dataset.root,
            "dataset_option": [f"{k}={_option_text(v)}" for k, v in dataset.options.items()] or None,
        }
    raise TypeError(f"`dataset` must be a dataset name or a Dataset (tensor_dataset), got {type(dataset).__name__}")


def _option_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _run(command: str, where, quiet: bool, **options) -> dict:
    """Run subcommand ``command``; returns the summary it wrote into ``where`` (``where/summary.json``; None: the
    command writes none).  Its ``threads`` are its own, as in the CLI's process per command."""
    import torch

    from ..artifacts import read_json
    from ..runtime import progress_bars
    from ..commands._common import set_threads

    ns = _namespace(command, {k: v for k, v in options.items() if v is not None})
    threads = torch.get_num_threads()
    try:
        set_threads(getattr(ns, "threads", None))
        with (
            contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext(),
            progress_bars(not getattr(ns, "no_progress", False)),
        ):
            code = ns.func(ns)
    finally:
        torch.set_num_threads(threads)
    if code:  # e.g. `generate` with images that failed: what it wrote is kept, a rerun finishes it
        raise RuntimeError(
            f"{command} into {where} did not finish (exit status {code}); what it reported is above, "
            "and calling it again resumes"
        )
    summary = None if where is None else Path(where) / "summary.json"
    return read_json(summary) if summary is not None and summary.is_file() else {}


# --------------------------------------------------------------------------- the stages


# --------------------------------------------------------------------------- the other stages


def train_epe_net(
    out: PathArg,
    stores: PathArg | Iterable[PathArg],
    avp: PathArg,
    *,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = False,
    **options,
) -> EPENetHandle:
    """Train the network that predicts every step's EPE map in one pass into ``out``, from the maps of the
    sequence store(s) ``stores`` (``ppl-attention train-epe-net``; options such as ``epochs``, ``positions``,
    ``tau``); ``design_sequences(..., search="amortised", epe_net=...)`` designs with it."""
    summary = _run("train-epe-net", out, quiet, out=out, store=stores, avp=avp, seed=seed, device=device, **options)
    return EPENetHandle(Path(out), summary)


def evaluate_epe_net(
    out: PathArg,
    epe_net: PathArg,
    avp: PathArg,
    prior: PathArg,
    *,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = False,
    **options,
) -> dict:
    """Regret of the amortised and hybrid searches against the exhaustive one, into ``out``
    (``ppl-attention evaluate-epe-net``; options such as ``num_images``, ``searches``, ``reference``)."""
    return _run(
        "evaluate-epe-net",
        out,
        quiet,
        out=out,
        epe_net=epe_net,
        avp=avp,
        prior=prior,
        seed=seed,
        device=device,
        **options,
    )


def evaluate_design(
    out: PathArg, avp: PathArg, prior: PathArg, *, seed: int = 0, device: str = "auto", quiet: bool = False, **options
) -> dict:
    """The design's noise floor, regret between searches on independent completions, into ``out``
    (``ppl-attention evaluate-design``)."""
    return _run("evaluate-design", out, quiet, out=out, avp=avp, prior=prior, seed=seed, device=device, **options)


def calibrate_noise(
    out: PathArg,
    prior: PathArg,
    dataset: DatasetArg = None,
    *,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = False,
    **options,
) -> dict:
    """The glimpse noise under which the completions of held-out images are calibrated, into ``out``
    (``ppl-attention calibrate-noise``; ``prior`` lends its dataset)."""
    return _run(
        "calibrate-noise",
        out,
        quiet,
        out=out,
        prior=prior,
        seed=seed,
        device=device,
        **_dataset_options(dataset),
        **options,
    )


def policy_sequences(
    out: PathArg, run: PathArg, *, seed: int = 0, device: str = "auto", quiet: bool = False, **options
) -> SequencesHandle:
    """A trained network's own greedy sequences as a sequence store ``out`` (``ppl-attention policy-sequences``),
    the supervision of PS-RAM."""
    summary = _run("policy-sequences", out, quiet, out=out, run=run, seed=seed, device=device, **options)
    return SequencesHandle(Path(out), summary)


def train_baselines(
    out: PathArg, dataset: DatasetArg = None, *, seed: int = 0, device: str = "auto", quiet: bool = False, **options
) -> dict:
    """Low-FLOP CNN baselines and their accuracy against FLOPs, into ``out`` (``ppl-attention baselines``;
    options such as ``archs``, ``widths``, ``resolutions``, ``attention``)."""
    return _run("baselines", out, quiet, out=out, seed=seed, device=device, **_dataset_options(dataset), **options)


def plot(figure: str, store: PathArg, out: PathArg, *, quiet: bool = False, **options) -> Path:
    """A figure of a sequence store (``ppl-attention plot FIGURE``): ``"epe"`` (the EPE maps of image ``index``),
    ``"validity"`` or ``"epe-calibration"`` (with ``avp``); returns the figure's path."""
    if figure not in ("epe", "validity", "epe-calibration"):
        raise ValueError(f"`figure` must be 'epe', 'validity' or 'epe-calibration', got {figure!r}")
    _run(f"plot {figure}", None, quiet, store=store, out=out, **options)
    return Path(out)


def plot_attention(out: PathArg, runs: dict, *, quiet: bool = False, **options) -> Path:
    """Validation curves of training runs on one figure ``out`` (``ppl-attention plot-attention``): ``runs`` maps a
    label to a run directory or a list of them (their seeds, drawn as mean and spread); returns the figure's path."""
    if not isinstance(runs, dict) or not runs:
        raise TypeError(f"`runs` must map labels to run directories, got {runs!r}")
    specs = [
        f"{label}={Path(d)}"
        for label, dirs in runs.items()
        for d in ([dirs] if isinstance(dirs, (str, os.PathLike)) else dirs)
    ]
    _run("plot-attention", None, quiet, out=out, runs=specs, **options)
    return Path(out)
