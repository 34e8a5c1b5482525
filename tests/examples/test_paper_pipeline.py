"""examples/_paper_pipeline.py's shared pieces, without running a stage: smoke sizes, scale flags, the train-AVP
stage and the deferred EPE figure; and the option helpers of the DAgger and supervision-comparison examples."""

import argparse
from dataclasses import dataclass

import pytest


@pytest.fixture(scope="module")
def pp(load_example):
    return load_example("_paper_pipeline")


@dataclass(frozen=True)
class Sizes:
    iterations: int = 1000
    seeds: tuple[int, ...] = (0, 1, 2)
    hidden: int = 64
    avp_epochs: int = 12
    avp_width: int | None = None
    label: str = "x"


def test_shrunk_takes_the_smoke_sizes_the_settings_have_and_its_own_on_top(pp):
    small = pp.shrunk(Sizes(), hidden=3)
    assert small.iterations == pp.SMOKE["iterations"] and small.seeds == pp.SMOKE["seeds"]
    assert small.avp_epochs == pp.SMOKE["avp_epochs"] and small.avp_width == pp.SMOKE["avp_width"]
    assert small.hidden == 3 and small.label == "x"  # not a smoke size: left as it was
    assert pp.shrunk(Sizes(), iterations=7).iterations == 7


def test_scale_flags_override_the_chosen_scale(pp):
    scales = {"cpu": Sizes(), "quick": pp.shrunk(Sizes())}
    p = argparse.ArgumentParser()
    pp.add_scale_flags(p, scales, "cpu", "seeds of every run")

    def settings(*argv, **changes):
        return pp.scale_settings(p, p.parse_args(argv), scales, **changes)

    assert settings() == scales["cpu"]
    assert settings("--quick") == scales["quick"]
    assert settings("--iterations", "5", "--seeds", "4", "5", hidden=None, label="y") == Sizes(5, (4, 5), label="y")
    with pytest.raises(SystemExit):
        settings("--iterations", "-1")


def test_the_avp_stage_passes_every_avp_setting_as_a_train_avp_option(pp, tmp_path):
    stage = pp.avp_stage(Sizes(avp_width=2), tmp_path, "data", exclude_design=4)
    assert stage.call.func is pp.pipeline.train_avp and stage.call.args == (tmp_path, "data")
    assert stage.call.keywords == {"epochs": 12, "width": 2, "exclude_design": 4}
    assert stage.done == tmp_path / "summary.json" and not stage.finished()


def test_the_epe_figure_draws_the_first_designed_image_once_designed(pp, tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(pp.pipeline, "plot", lambda *args, **options: drawn.append((args, options)))
    stage = pp.epe_figure_stage(tmp_path / "seqs", tmp_path / "epe.png", tmp_path / "root")
    with pytest.raises(FileNotFoundError, match="no records"):
        stage.call()
    (tmp_path / "seqs" / "records").mkdir(parents=True)
    for index in (7, 5, 12):
        (tmp_path / "seqs" / "records" / f"{index:07d}.json").write_text("{}")
    stage.call()
    assert drawn == [(("epe", tmp_path / "seqs", tmp_path / "epe.png"), {"index": 5, "root": tmp_path / "root"})]


def test_dagger_refuses_a_count_under_one_by_its_flag(load_example, capsys):
    dagger = load_example("dagger_epe_net")
    base = ["--avp", "a", "--prior", "p", "--out", "o"]
    for flag in dagger.COUNTS:
        with pytest.raises(SystemExit):
            dagger.parse_args([*base, flag, "0"])
        assert f"{flag} must be >= 1, got 0" in capsys.readouterr().err
    args = dagger.parse_args([*base, "--threads", "3", "--net-option", "width=4", "--net-option", "hidden=8"])
    assert args.net_option == ["width=4", "hidden=8"] and args.epochs == dagger.COUNTS["--epochs"][0]
    assert dagger._run_options(args) == {"seed": 0, "device": "auto", "threads": 3, "no_progress": True}


def test_compare_supervision_configs_take_the_flags_named_after_their_fields(load_example):
    cs = load_example("compare_supervision")
    args = cs.parse_args(["--out", "o", "--methods", "none", "--lr", "0.02", "--hidden", "12", "--core", "lstm"])
    train = cs._config(cs.TrainConfig, args, supervision_until=None)
    net = cs._config(cs.NetworkConfig, args)
    assert train.lr == 0.02 and train.iterations == args.iterations and train.supervision_until is None
    assert net.hidden == 12 and net.core == "lstm" and net.policy == args.policy
