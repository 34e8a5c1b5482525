import subprocess
import sys

import pytest

from ppl_attention.cli import build_parser, main


def test_help_lists_subcommands_and_shared_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        opts = {s for a in p._actions for s in a.option_strings}
        assert {"--device", "--seed", "--config"} <= opts, name


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "ppl_attention.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "ppl-attention" in out.stdout


def test_errors_are_reported_not_raised(capsys, tmp_path):
    assert main(["baselines", "--out", str(tmp_path / "x"), "--attention", "no-equals-sign"]) == 2
    assert "NAME=FILE.json" in capsys.readouterr().err


def test_faiss_loader_info_lines_are_quiet():
    """faiss's loader logs a ModuleNotFoundError at INFO for each CPU build it cannot load: not shown."""
    code = (
        "import logging; logging.basicConfig(level=logging.INFO); import ppl_attention.cli; "
        "from ppl_attention.runtime import setup_logging; setup_logging(); import faiss; "
        "logging.getLogger('ppl_attention').info('still logging')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "still logging" in out.stderr
    assert "faiss.loader" not in out.stderr and "ModuleNotFoundError" not in out.stderr


def test_light_parser_lists_every_subcommand_in_pipeline_order():
    from ppl_attention.cli import COMMANDS

    full = next(a for a in build_parser()._actions if a.dest == "command")
    listed = [a.dest for a in full._choices_actions]
    assert sorted(listed) == sorted(name for name, _ in COMMANDS)  # COMMANDS names every registered command
    assert listed == [name for name, _ in COMMANDS]
    assert listed.index("train-avp") < listed.index("build-prior") < listed.index("generate") < listed.index("train")


def test_each_command_text_is_written_once():
    """A subcommand's line in the listing is COMMANDS's; its --help text is its run function's docstring."""
    import inspect

    from ppl_attention.cli import COMMANDS

    full = next(a for a in build_parser()._actions if a.dest == "command")
    assert {a.dest: a.help for a in full._choices_actions} == dict(COMMANDS)
    for name, parser in full.choices.items():
        doc = inspect.getdoc(parser.get_default("func"))
        assert parser.description, name
        assert doc is None or parser.description == doc, name
        assert "%%" not in parser.description, name  # argparse shows a description as written


def test_help_and_version_start_without_torch():
    code = (
        "import sys; from ppl_attention.cli import main\n"
        "for argv in (['--help'], ['--version']):\n"
        "    try: main(argv)\n"
        "    except SystemExit as e: assert e.code == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "generate --avp AVP --prior PRIOR" in out.stdout  # the epilog shows the pipeline
    from ppl_attention import __version__

    assert f"ppl-attention {__version__}" in out.stdout


def test_one_name_and_one_default_for_the_glimpse_count():
    from ppl_attention.attention.trainer import TrainConfig
    from ppl_attention.pipeline.design import GenerateConfig
    from ppl_attention.demo import DemoConfig
    from ppl_attention.posterior.training import TrainAVPConfig

    assert GenerateConfig().T == TrainConfig().glimpses == TrainAVPConfig().max_glimpses == DemoConfig().glimpses
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in ("train-avp", "evaluate-avp", "generate", "train", "demo"):
        shown = {s for a in sub.choices[name]._actions if a.help != "==SUPPRESS==" for s in a.option_strings}
        assert "--glimpses" in shown and "-T" not in shown and "--max-glimpses" not in shown, name


def test_no_progress_is_shared_by_every_command_and_hides_every_bar(monkeypatch):
    import ppl_attention.cli as cli
    from tqdm import tqdm

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert "--no-progress" in {s for a in p._actions for s in a.option_strings}, name
    seen = []

    def fake(args):
        seen.append(tqdm(range(3), disable=False).disable)  # a bar that asks to be shown
        return 0

    parser = build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda light=False: parser)
    parser.set_defaults(func=fake)
    for p in next(a for a in parser._actions if a.dest == "command").choices.values():
        p.set_defaults(func=fake)
    assert main(["datasets", "--no-progress"]) == 0 and main(["datasets"]) == 0
    assert seen == [True, False]


def test_threads_is_shared_by_every_command_and_set_before_it_runs(monkeypatch, capsys):
    import torch

    import ppl_attention.cli as cli

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert "--threads" in {s for a in p._actions for s in a.option_strings}, name
    seen = []
    parser = build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda light=False: parser)
    for p in next(a for a in parser._actions if a.dest == "command").choices.values():
        p.set_defaults(func=lambda args: seen.append(torch.get_num_threads()) or 0)
    before = torch.get_num_threads()
    try:
        assert main(["datasets", "--threads", "1"]) == 0 and seen == [1]
        assert main(["datasets", "--threads", "0"]) == 2 and seen == [1]
        assert "--threads must be an int >= 1, got 0" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
