"""The Python pipeline: the tensor adapter, option checking, and handles that open what a stage wrote."""

import sys
from pathlib import Path

import pytest
import torch

import ppl_attention
from ppl_attention import pipeline
from ppl_attention.pipeline import AVPHandle, Dataset, SequencesHandle, _namespace, tensor_dataset, train_attention

#: every stage function, the subcommand it runs, and arguments for it (paths need not exist: nothing runs)
STAGES = {
    "train_epe_net": ("train-epe-net", ("net", ["maps"], "avp"), {"epochs": 1, "positions": "coords"}),
    "evaluate_epe_net": ("evaluate-epe-net", ("eval", "net", "avp", "prior"), {"num_images": 2}),
    "evaluate_design": ("evaluate-design", ("floor", "avp", "prior"), {"num_images": 2}),
    "calibrate_noise": ("calibrate-noise", ("cal", "prior"), {"num_images": 2, "scales": [1, 2]}),
    "policy_sequences": ("policy-sequences", ("seqs", "run"), {"num_images": 3}),
    "train_baselines": ("baselines", ("base", "translated-mnist"), {"archs": "mobilenet_v2", "epochs": 1}),
    "plot": ("plot epe", ("epe", "store", "epe.png"), {"index": 0}),
    "plot_attention": ("plot-attention", ("curves.png", {"RAM": ["r0", "r1"], "PS-NOGS": "p0"}), {}),
}


def test_stages_are_exported_from_the_package():
    core = ("train_avp", "build_prior", "design_sequences", "train_attention", "evaluate", "tensor_dataset")
    for name in (*core, *STAGES):
        assert callable(getattr(ppl_attention, name)) and name in pipeline.__all__


def test_tensor_dataset_round_trips_images_and_labels(tmp_path):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(20, 1, 32, 32, generator=g)
    labels = torch.arange(20) % 2
    data = tensor_dataset(images, labels, tmp_path / "tensors", class_names=["even", "odd"])
    assert data == Dataset("folder", str(tmp_path / "tensors"), {"size": 32, "channels": 1})
    splits = [data.load(s) for s in ("train", "valid", "test")]
    assert sum(len(s) for s in splits) == 20
    assert list(splits[0].class_names) == ["even", "odd"] and splits[0].num_classes == 2
    item = splits[0][0]
    assert tuple(item["image"].shape) == (1, 32, 32)


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (torch.rand(4, 2, 8, 8), torch.zeros(4, dtype=torch.long), "`images` must be"),
        (torch.rand(4, 1, 8, 8), torch.zeros(3, dtype=torch.long), "`labels` must be"),
        (torch.rand(4, 1, 8, 8) + 1, torch.zeros(4, dtype=torch.long), r"in \[0, 1\]"),
    ],
)
def test_tensor_dataset_refuses_bad_tensors(tmp_path, images, labels, match):
    with pytest.raises(ValueError, match=match):
        tensor_dataset(images, labels, tmp_path / "x")


def test_options_are_the_subcommands_and_unknown_ones_are_refused(tmp_path):
    ns = _namespace("generate", {"num_images": 3, "out": tmp_path / "s"})
    assert ns.num_images == 3 and ns.out == str(tmp_path / "s") and ns.search is None
    assert _namespace("train-avp", {"glimpses": 3}).max_glimpses == 3  # a flag's name, whatever its dest
    with pytest.raises(TypeError, match="unknown option 'num_imagez'"):
        _namespace("generate", {"num_imagez": 3})


def test_a_repeatable_flag_takes_one_value_or_a_list(tmp_path):
    """``dataset_from=avp`` is ``--dataset-from AVP`` typed once (not one flag per character of the path)."""
    avp = AVPHandle(tmp_path / "avp")
    assert _namespace("train", {"dataset_from": avp}).dataset_from == [str(tmp_path / "avp")]
    assert _namespace("train", {"dataset_from": [avp, "b"]}).dataset_from == [str(tmp_path / "avp"), "b"]
    assert _namespace("train-avp", {"dataset_option": "size=32"}).dataset_option == ["size=32"]


def test_a_stages_threads_are_its_own(tmp_path):
    """``threads=1`` holds for that stage only, as in the CLI's process per command: the stages after it run with
    the session's thread count, and so compute what the CLI computes."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        (tmp_path / "file").write_text("")
        with pytest.raises(ValueError, match="is a file"):  # refused after the stage set its threads
            train_attention(tmp_path / "file", "cluttered-mnist", threads=1, quiet=True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_sequences_handle_reads_the_store(tmp_path):
    from ppl_attention.design.store import SequenceStore
    from ppl_attention.sensor import Sensor

    grid = Sensor(8, 4, stride=2)
    store = SequenceStore.create(tmp_path / "s", {"dataset": "toy", "task": "label", "grid": grid, "T": 2})
    store.write_record(0, 0, [1, 2])
    assert SequencesHandle(tmp_path / "s").sequences() == {0: [1, 2]}


@pytest.mark.parametrize("name", list(STAGES))
def test_every_stage_runs_its_subcommand_with_options_it_has(name, monkeypatch):
    """Each function hands its subcommand only options the subcommand declares (as ``_namespace`` checks them)."""
    command, args, options = STAGES[name]
    calls = []
    monkeypatch.setattr(pipeline, "_run", lambda cmd, where, quiet, **kw: calls.append((cmd, kw)) or {})
    getattr(pipeline, name)(*args, **options)
    assert [c for c, _ in calls] == [command]
    ns = _namespace(command, {k: v for k, v in calls[0][1].items() if v is not None})
    assert all(getattr(ns, _namespace_dest(command, k)) is not None for k in options)


def _namespace_dest(command, name):
    parser, _ = pipeline._subparser(command)
    return next(a.dest for a in parser._actions if a.dest == name or f"--{name.replace('_', '-')}" in a.option_strings)


def test_options_are_typed_as_the_command_line_would(tmp_path):
    ns = _namespace("train-epe-net", {"store": tmp_path / "m", "rank_weight": 3, "avp": str(tmp_path / "a")})
    assert ns.store == [tmp_path / "m"] and ns.rank_weight == 3.0 and isinstance(ns.rank_weight, float)
    assert ns.avp == tmp_path / "a"  # a Path flag gets a Path
    ns = _namespace("generate", {"task": 20, "sigma": 80, "search_options": "stride=6"})
    assert ns.task == "20" and ns.sigma == [80.0] and ns.search_options == ["stride=6"]
    ns = _namespace("plot epe", {"store": "s", "index": 0, "out": "e.png"})
    assert (ns.command, ns.figure, ns.store) == ("plot", "epe", Path("s"))
    assert ns.func.__name__ == "run_plot_epe"
    # text (a KEY=VALUE option read from a command line) through a number flag's type, as argparse would
    ns = _namespace("train-epe-net", {"epochs": "4", "tau": "0.5", "rank_weight": "x"})
    assert (ns.epochs, ns.tau, ns.rank_weight) == (4, 0.5, "x")  # not a number: left for the setting's check


def test_a_core_stages_options_are_typed_as_the_command_line_would():
    from ppl_attention.pipeline._stage import typed

    assert typed("400", int) == 400 and typed("0.25", float) == 0.25 and typed("bfloat16", str) == "bfloat16"
    assert typed(3, float) == 3.0 and typed("abc", int) == "abc" and typed("runs/a", Path) == Path("runs/a")


def test_a_stage_that_did_not_finish_raises():
    with pytest.raises(RuntimeError, match="plot .*exit status 1"):  # `plot` without a figure: its help, status 1
        pipeline._run("plot", None, True)


def test_plot_attention_draws_the_runs(tmp_path):
    for run, acc in (("r0", 0.5), ("r1", 0.6)):
        (tmp_path / run).mkdir()
        (tmp_path / run / "log.csv").write_text(f"iteration,val_greedy_acc\n10,{acc}\n20,{acc + 0.1}\n")
    figure = pipeline.plot_attention(tmp_path / "curves.png", {"RAM": [tmp_path / "r0", tmp_path / "r1"]}, quiet=True)
    assert figure == tmp_path / "curves.png" and figure.stat().st_size > 0
    with pytest.raises(ValueError, match="not a column"):
        pipeline.plot_attention(tmp_path / "c.png", {"RAM": tmp_path / "r0"}, metric="val_loss", quiet=True)
    with pytest.raises(ValueError, match="`figure`"):
        pipeline.plot("epes", tmp_path, tmp_path / "e.png")


def test_plot_epe_draws_a_stored_image(tmp_path):
    from ppl_attention.design.store import SequenceStore
    from ppl_attention.sensor import Sensor

    grid = Sensor(8, 4, stride=2)
    store = SequenceStore.create(tmp_path / "s", {"dataset": "toy", "task": "label", "grid": grid, "T": 2})
    store.write_record(0, 0, [1, 2], torch.rand(2, grid.num_locations, generator=torch.Generator().manual_seed(0)))
    figure = pipeline.plot("epe", tmp_path / "s", tmp_path / "epe.png", index=0, quiet=True)
    assert figure.is_file()


#: every core stage function and arguments that make it refuse its output path (a file) after parsing its options
CORE = {
    "train_avp": lambda f: pipeline.train_avp(f, epochs=1, glimpses=2, threads=1, quiet=True),
    "evaluate": lambda f: pipeline.evaluate(f, draws=1, glimpses=2, quiet=True),
    "build_prior": lambda f: pipeline.build_prior(f, "cluttered-mnist", database_size=8, quiet=True),
    "design_sequences": lambda f: pipeline.design_sequences(f, f.parent, f.parent, num_images=1, quiet=True),
    "train_attention": lambda f: pipeline.train_attention(f, "cluttered-mnist", iterations=1, quiet=True),
}


@pytest.mark.parametrize("name", list(CORE))
def test_core_stages_hold_their_logic_and_call_no_command_handler(name, tmp_path, monkeypatch):
    """The core stages run without the CLI: with every subcommand's handler and ``_run`` raising, each still
    checks its arguments itself (naming them, not flags) and refuses an output that is a file."""
    import argparse

    from ppl_attention.cli import build_parser

    def forbidden(*args, **kwargs):
        raise AssertionError("a core stage went through the command line")

    parser = build_parser()
    for sub in (a for a in parser._actions if isinstance(a, argparse._SubParsersAction)):
        for command in sub.choices.values():
            func = command.get_default("func")
            if func is not None and hasattr(sys.modules[func.__module__], func.__name__):  # not a lambda
                monkeypatch.setattr(sys.modules[func.__module__], func.__name__, forbidden)
    monkeypatch.setattr(pipeline, "_run", forbidden)
    monkeypatch.setattr(pipeline, "_namespace", forbidden)
    target = tmp_path / "file"
    target.write_text("")
    with pytest.raises((ValueError, FileNotFoundError), match=r"is a file|`out`|AVP directory"):
        CORE[name](target)
    with pytest.raises(TypeError, match="unknown option 'num_imagez'"):
        getattr(pipeline, name)(tmp_path / "x", num_imagez=3) if name != "evaluate" else pipeline.evaluate(
            tmp_path / "x", num_imagez=3
        )
