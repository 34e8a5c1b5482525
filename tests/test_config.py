import argparse
from dataclasses import dataclass, field

import pytest

from ppl_attention.config import add_config_arguments, build_config, config_to_dict


@dataclass
class Example:
    lr: float = field(default=1e-3, metadata={"help": "learning rate"})
    epochs: int = 3
    name: str = "x"
    flip: bool = False
    sizes: tuple[int, ...] = (1, 2)


def parse(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    add_config_arguments(p, Example)
    return p.parse_args(argv)


def test_defaults_yaml_and_flags_merge_in_order(tmp_path):
    assert build_config(Example, parse([])) == Example()
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("lr: 0.5\nepochs: 7\nsizes: [3, 4]\n")
    cfg = build_config(Example, parse(["--config", str(cfg_file), "--epochs", "9", "--flip", "true"]))
    assert cfg == Example(lr=0.5, epochs=9, flip=True, sizes=(3, 4))
    assert config_to_dict(cfg)["sizes"] == [3, 4]


def test_bad_yaml_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 0.5\nunknown_field: 1\n")
    with pytest.raises(ValueError, match="unknown Example field"):
        build_config(Example, parse(["--config", str(bad)]))
    with pytest.raises(ValueError, match="does not exist"):
        build_config(Example, parse(["--config", str(tmp_path / "nope.yaml")]))
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        build_config(Example, parse(["--config", str(tmp_path / "list.yaml")]))


@pytest.mark.parametrize(
    "argv, flip",
    [
        ([], False),
        (["--flip"], True),
        (["--no-flip"], False),
        (["--flip", "false"], False),
        (["--flip", "yes"], True),
        (["--flip", "--epochs", "2"], True),
    ],
)
def test_booleans_are_switches_with_a_no_form(argv, flip):
    assert build_config(Example, parse(argv)).flip is flip


def test_a_boolean_value_that_is_not_one_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse(["--flip", "maybe"])
    assert "expected a boolean" in capsys.readouterr().err


def test_a_setting_is_a_field_whose_help_and_choices_the_flags_show(capsys):
    from ppl_attention.config import setting

    @dataclass
    class Settings:
        mode: str = setting("a", "how to run", choices=["a", "b"])
        sizes: list = setting(help="sizes to try", factory=lambda: [1, 2])
        hidden: int = setting(3, cli=False)

    assert Settings().sizes == [1, 2] and Settings().sizes is not Settings().sizes  # a fresh default each time
    p = argparse.ArgumentParser()
    add_config_arguments(p, Settings)
    assert build_config(Settings, p.parse_args(["--mode", "b"])).mode == "b"
    with pytest.raises(SystemExit):
        p.parse_args(["--mode", "c"])
    with pytest.raises(SystemExit):
        p.parse_args(["--hidden", "4"])  # not a flag
    p.print_help()
    out = capsys.readouterr().out
    assert "how to run" in out and "sizes to try" in out and "--hidden" not in out
