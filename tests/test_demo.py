"""The demo end to end at a tiny size: every stage runs, the table is printed, a second run is all cached."""

import json

from ppl_attention.cli import main


def test_demo_runs_every_stage_then_caches(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = [
        "demo",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--avp-epochs",
        "1",
        "--prior-size",
        "2000",
        "--num-sequences",
        "3",
        "--glimpses",
        "2",
        "--num-samples",
        "8",
        "--iterations",
        "20",
        "--validate-every",
        "10",
        "--pca-components",
        "16",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| RAM |" in printed and "| PS-NOGS |" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["results"]) == {"RAM", "PS-NOGS"}
    for row in summary["results"].values():
        assert 0 <= row["test_accuracy"] <= 100 and row["iterations_to_convergence"] <= 20
    for name in ("dataset.png", "epe.png", "validation_curves.png"):
        assert (out / "figures" / name).stat().st_size > 1000
    assert len(list((out / "sequences" / "records").glob("*.json"))) == 3
    # A second run finds every stage finished.
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert again.count(": cached") == 8


def test_quick_scales_the_pipeline_down_and_flags_still_override(monkeypatch):
    import ppl_attention.demo as demo

    seen = {}
    monkeypatch.setattr(demo, "run_demo", lambda cfg, device, seed, progress: seen.update(cfg=cfg, progress=progress))
    assert main(["demo", "--quick", "--iterations", "50", "--no-progress"]) == 0
    cfg = seen["cfg"]
    assert cfg.iterations == 50 and seen["progress"] is False
    assert cfg.num_sequences == demo.DemoConfig.quick().num_sequences < demo.DemoConfig().num_sequences
    assert str(cfg.out) == "runs/demo-quick" and cfg.avp_train_size is not None and cfg.threads == 1
