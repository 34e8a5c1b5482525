"""Settings defaulted once: every command's default for the glimpse count, the importance samplers' k1 and the EPE
loop's precision is the one the library declares (read from the parser, not typed again here)."""

import dataclasses

import pytest

from ppl_attention.cli import build_parser
from ppl_attention.completion.base import DEFAULT_K1
from ppl_attention.config import GLIMPSES
from ppl_attention.design.epe import DEFAULT_PRECISION, default_precision

#: setting -> (its argparse dests, the library's default)
SETTINGS = {"glimpses": (("T", "glimpses", "max_glimpses"), GLIMPSES), "k1": (("k1",), DEFAULT_K1)}


def _subparsers():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices


def _config_classes():
    """The settings objects the commands build their flags from."""
    from ppl_attention.attention.trainer import TrainConfig
    from ppl_attention.pipeline.design import GenerateConfig
    from ppl_attention.completion.noise_calibration import NoiseCalibrationConfig
    from ppl_attention.demo import DemoConfig
    from ppl_attention.design.noise_floor import NoiseFloorConfig
    from ppl_attention.posterior.training import TrainAVPConfig

    return (GenerateConfig, TrainConfig, TrainAVPConfig, DemoConfig, NoiseCalibrationConfig, NoiseFloorConfig)


def _effective_default(parser, dest):
    """What a command uses when the flag is not given: the parser's default, else its settings object's."""
    action = next(a for a in parser._actions if a.dest == dest)
    if action.default is not None:
        return action.default
    defaults = {
        f.name: f.default
        for cls in _config_classes()
        for f in dataclasses.fields(cls)
        if f.name == dest and f.default is not dataclasses.MISSING
    }
    return defaults.get(dest)


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_every_command_defaults_a_setting_to_the_librarys_value(setting):
    dests, expected = SETTINGS[setting]
    seen = {}
    for name, parser in _subparsers().items():
        for dest in {a.dest for a in parser._actions} & set(dests):
            seen[name] = _effective_default(parser, dest)
    assert seen, f"no command takes {setting}"
    assert {name: v for name, v in seen.items() if v != expected} == {}, f"{setting} defaults differ from {expected}"


def test_precision_is_chosen_by_the_device_everywhere():
    for name, parser in _subparsers().items():
        for a in parser._actions:
            if a.dest == "precision":
                assert a.default is None, f"{name} --precision defaults to {a.default!r}, not the device's"
    assert default_precision("cpu") == DEFAULT_PRECISION and default_precision("cuda") == "bfloat16"


def test_every_training_config_takes_the_runtimes_precisions():
    from ppl_attention.attention.trainer import TrainConfig
    from ppl_attention.design.distill import TrainEPENetConfig
    from ppl_attention.posterior.training import TrainAVPConfig
    from ppl_attention.runtime import PRECISIONS

    for cls in (TrainConfig, TrainAVPConfig, TrainEPENetConfig):
        precision = {f.name: f for f in dataclasses.fields(cls)}["precision"]
        assert precision.default is None and tuple(precision.metadata["choices"]) == PRECISIONS, cls.__name__
