"""The paper's loss options and the no-imitation control are `train` flags."""

from ppl_attention.cli import build_parser
from ppl_attention.commands._common import stage_options
from ppl_attention.pipeline.attention import train_configs


def _configs(args):
    """The settings ``train`` builds from its flags."""
    return train_configs(**{k: v for k, v in stage_options(args).items() if k not in ("out", "seed", "device")})


def test_loss_option_flags_reach_the_training_config():
    args = build_parser().parse_args(
        [
            "train",
            "--out",
            "x",
            "--imitate",
            "false",
            "--supervision-reduction",
            "sum",
            "--supervision-anneal",
            "500",
            "--supervised-fraction",
            "0.022",
        ]
    )
    _, cfg, _ = _configs(args)
    assert (cfg.imitate, cfg.supervision_reduction, cfg.supervision_anneal) == (False, "sum", 500)
    assert cfg.supervised_fraction == 0.022
    _, default, _ = _configs(build_parser().parse_args(["train", "--out", "x"]))
    assert (default.imitate, default.supervision_reduction, default.supervision_anneal) == (True, "mean", None)
