"""examples/compare_supervision.py: the methods' settings reach the trainer."""

import pytest


@pytest.fixture
def trained(load_example, monkeypatch):
    """compare_supervision with a trainer that records its run, training and network configurations per run
    folder instead of training (and data that is never loaded)."""
    cs = load_example("compare_supervision")
    seen = {}

    def fake_train_run(run, cfg, net_cfg, datasets, out, seed, device, progress=True, figures=True):
        seen[out.name] = (run, cfg, net_cfg)
        return {"iterations": cfg.iterations, "test_greedy_acc": 0.5, "iterations_to_convergence_loss": 1}

    class Spec:
        def load(self, split):
            return split

    monkeypatch.setattr(cs, "train_run", fake_train_run)
    monkeypatch.setattr("ppl_attention.data.spec.DatasetSpec.make", lambda *a, **k: Spec())
    return cs, seen


#: Seed 0 of 400 iterations on the sequences of ``store``, at split seed 0.
ONE_SEED_OF_400 = ["--seeds", "0", "--sequences", "store", "--data-seed", "0", "--iterations", "400"]


def test_nogs_stop_stops_the_supervision_and_nogs_does_not(trained, tmp_path):
    cs, runs = trained
    policy = ["--policy", "gaussian", "--supervision-probability", "0.15"]
    args = cs.parse_args(["--out", str(tmp_path), "--methods", "nogs", "nogs-stop", *ONE_SEED_OF_400, *policy])
    assert args.supervision_until == 100  # a quarter of the iterations
    cs.run_all(args)
    seen = {
        name: (run.supervision, cfg.supervision_until, net.policy, cfg.supervision_probability)
        for name, (run, cfg, net) in runs.items()
    }
    assert seen == {"nogs-s0": ("nogs", None, "gaussian", 0.15), "nogs-stop-s0": ("nogs", 100, "gaussian", 0.15)}


def test_nogs_all_supervises_every_sequence_at_psnogs_rate(trained, monkeypatch, tmp_path):
    cs, runs = trained
    monkeypatch.setattr("ppl_attention.design.store.SequenceStore.open", lambda d: [0] * 4000)
    argv = ["--out", str(tmp_path), "--methods", "nogs", "nogs-all", *ONE_SEED_OF_400, "--num-supervised", "600"]
    cs.run_all(cs.parse_args(argv))
    seen = {name: (run.num_supervised, cfg.supervision_probability) for name, (run, cfg, _) in runs.items()}
    # every one of the 4,000 sequences, supervised 600 / 4,000 of the draws: PS-NOGS's supervised share per batch
    assert seen == {"nogs-s0": (600, None), "nogs-all-s0": (4000, pytest.approx(0.15))}
    cs.run_all(cs.parse_args([*argv, "--all-supervision-probability", "0.5", "--out", str(tmp_path / "q")]))
    run, cfg, _ = runs["nogs-all-s0"]
    assert (run.num_supervised, cfg.supervision_probability) == (4000, 0.5)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--methods", "nogs-all"], "need --sequences"),
        (["--methods", "none", "--all-supervision-probability", "1.5"], "--all-supervision-probability"),
        (["--methods", "nogs-stop"], "need --sequences"),
        (["--methods", "none", "--iterations", "100", "--supervision-until", "200"], "--supervision-until"),
    ],
)
def test_bad_method_settings_are_refused(load_example, tmp_path, capsys, argv, message):
    cs = load_example("compare_supervision")
    with pytest.raises(SystemExit):
        cs.parse_args(["--out", str(tmp_path), "--data-seed", "0", *argv])
    assert message in capsys.readouterr().err


def test_settings_from_keywords_are_the_parsed_command_line(load_example, tmp_path):
    """examples/paper_regime.py and reproduce_mnist.py run the comparison with keyword settings; they must be what
    the same flags give, and be refused the same way."""
    cs = load_example("compare_supervision")
    argv = [
        "--out",
        str(tmp_path),
        "--methods",
        "none",
        "h1",
        "--seeds",
        "0",
        "1",
        "--data-seed",
        "2",
        "--lr",
        "1",
        "--dataset-option",
        "stride=1",
        "--dataset-option",
        "scales=1",
        "--no-tensorboard",
        "--sequences",
        str(tmp_path / "s"),
        "--policy",
        "gaussian",
    ]
    keywords = {
        "out": tmp_path,
        "methods": ("none", "h1"),
        "seeds": (0, 1),
        "data_seed": 2,
        "lr": 1,
        "dataset_options": {"stride": 1, "scales": 1},
        "tensorboard": False,
        "sequences": tmp_path / "s",
        "policy": "gaussian",
    }
    parsed, built = vars(cs.parse_args(argv)), vars(cs.settings(**keywords))
    assert built == parsed and type(built["lr"]) is float and type(built["sequences"]) is str
    with pytest.raises(ValueError, match="`methods` must be one of"):
        cs.settings(out=tmp_path, methods=["ram"])
    with pytest.raises(ValueError, match="need --sequences"):
        cs.settings(out=tmp_path, methods=["nogs"], data_seed=0)
    with pytest.raises(TypeError, match="unknown settings \\['method'\\]"):
        cs.settings(out=tmp_path, method=["none"])
