"""examples/write_results.py builds docs/RESULTS.md from tiny fake run folders: every table it finds with its
numbers, its command and machine, figures copied next to the page, and "not run yet" for what is missing."""
import json
import re
from pathlib import Path

import pytest


def _png(path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    fig.savefig(path)
    plt.close(fig)
    return path


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _attention_run(path: Path, supervision, acc, iters, T=4, best=2300):
    _write(path / "manifest.json", {"kind": "attention-run", "config": {"train": {"glimpses": T}},
                                    "versions": {"torch": "9.9.9"}})
    _write(path / "summary.json", {"supervision": supervision, "test_greedy_acc": acc, "best_iteration": best,
                                   "iterations_to_convergence_loss": iters, "iterations_to_convergence_accuracy": iters,
                                   "best_val_acc": acc, "iterations_per_second": 40.0, "flops_per_glimpse": 1_000_000,
                                   "classifier_flops": 5000})


@pytest.fixture
def runs(load_example, tmp_path):
    cs = load_example("compare_supervision")
    rm = load_example("reproduce_mnist")
    runs = tmp_path / "runs"
    # the demo: one seed of RAM and PS-NOGS
    demo = runs / "demo"
    _write(demo / "manifest.json", {"kind": "demo", "config": {"out": "runs/demo", "iterations": 3000, "seeds": [0],
                                                                "glimpses": 4, "dataset": "cluttered-mnist"},
                                    "versions": {"torch": "9.9.9"}})
    _write(demo / "summary.json", {"results": {
        "RAM": {"seeds": 1, "iterations_to_convergence": 2300, "iterations_std": 0.0,
                "iterations_to_convergence_accuracy": 2300, "test_accuracy": 36.4, "test_accuracy_std": 0.0},
        "PS-NOGS": {"seeds": 1, "iterations_to_convergence": 2900, "iterations_std": 0.0,
                    "iterations_to_convergence_accuracy": 2700, "test_accuracy": 58.2, "test_accuracy_std": 0.0}},
        "seconds_per_stage": {"train RAM": 86.0}})
    _png(demo / "figures" / "validation_curves.png")
    _attention_run(demo / "ram-s0", "none", 0.364, 2300)
    _attention_run(demo / "ps-nogs-s0", "nogs", 0.582, 2900, best=2800)
    _png(demo / "ps-nogs-s0" / "glimpse_frequency.png")
    # a reproduction of cluttered MNIST: RAM converges 10x later than PS-NOGS, 3 seeds each
    rep = runs / "reproduce" / "cluttered-mnist"
    results = {"none": [{"iterations_to_convergence_loss": 10_000 + 100 * k, "iterations_to_convergence_accuracy":
                         9000, "test_greedy_acc": 0.60, "best_val_acc": 0.6, "iterations_per_second": 30.0}
                        for k in (-1, 0, 1)],
               "nogs": [{"iterations_to_convergence_loss": 1000, "iterations_to_convergence_accuracy": 900,
                         "test_greedy_acc": 0.70 + 0.01 * k, "best_val_acc": 0.7, "iterations_per_second": 30.0}
                        for k in (-1, 0, 1)]}
    cs.write_tables(results, rep)
    for method, first in (("none", 800), ("nogs", 200)):  # validation accuracy passes 0.45..0.57 (75..95 % of 0.6) here
        for k in range(3):
            _attention_run(rep / f"{method}-s{k}", method, 0.6, 1000)
            (rep / f"{method}-s{k}" / "log.csv").write_text("iteration,val_greedy_acc\n" + "".join(
                f"{it},{0.3 if it < first + 100 * k else 0.6}\n" for it in range(100, 1100, 100)))
    _png(rep / "validation_curves.png")
    md, rows = rm.table1(runs / "reproduce")
    (runs / "reproduce" / "table1.md").write_text(md)
    _write(runs / "reproduce" / "table1.json", {
        "command": "python examples/reproduce_mnist.py --datasets cluttered-mnist", "scale": "cpu",
        "settings": {"glimpses": 5, "num_sequences": 600, "num_samples": 50, "k1": 1000, "search": "halving",
                     "iterations": 15000, "hidden": 256, "lr": 0.001, "batch_size": 64, "validate_every": 100},
        "datasets": {"cluttered-mnist": {"sequences": "runs/demo/sequences", "T": 4, "data_seed": 0,
                                         "avp": "runs/demo/avp", "prior": "runs/demo/prior"}},
        "machine": {"cpu": "Fake CPU 3000", "cpu_count": 7, "torch": "9.9.9", "cuda": None}, "table": rows})
    # an unfinished run of the translated dataset
    _write(runs / "reproduce" / "translated-mnist" / "h1-s0" / "manifest.json", {"kind": "attention-run"})
    (runs / "reproduce" / "translated-mnist" / "h1-s0" / "log.csv").write_text("iteration,x\n100,1\n200,1\n")
    # an AVP and its evaluation
    avp = runs / "avp-x"
    _write(avp / "manifest.json", {"kind": "avp", "config": {"dataset": "cluttered-mnist", "epochs_run": 5,
                                                             "best_epoch": 4, "seed": 0, "train": {"epochs": 5}},
                                   "versions": {"torch": "9.9.9"}})
    _write(avp / "evaluation.json", {"dataset": "cluttered-mnist", "full_image": {"accuracy": 0.9123},
                                     "per_glimpses": [{"t": t, "accuracy": 0.1 + 0.05 * t} for t in range(3)]})
    _png(avp / "avp_evaluation.png")
    # a CNN baseline sweep of two points
    sweep = runs / "baselines" / "cluttered-mnist"
    _write(sweep / "manifest.json", {"kind": "baselines", "config": {
        "dataset": "cluttered-mnist", "archs": ["shufflenet_v2"], "widths": [0.25], "resolutions": [28, 44],
        "epochs": 12, "lr": 0.003, "batch_size": 64}, "versions": {"torch": "9.9.9"}})
    for res, acc, flops in ((28, 0.184, 680_000), (44, 0.251, 2_050_000)):
        _write(sweep / "points" / f"shufflenet_v2_w0.25_r{res}.json", {
            "config": {"arch": "shufflenet_v2", "width": 0.25, "resolution": res}, "flops": flops, "params": 12345,
            "valid_accuracy": acc, "test_accuracy": acc})
    # one saved benchmark, one with its exact command beside it
    _write(runs / "benchmarks" / "bench_avp.json", {"benchmark": "avp_small_cnn_inference", "images_per_s": 4321})
    _write(runs / "benchmarks" / "bench_completion.json", {"benchmark": "completion", "seconds": 0.25})
    (runs / "benchmarks" / "bench_completion.cmd").write_text("python benchmarks/bench_completion.py --prior P\n")
    # a validity check of generated sequences on held-out images
    val = runs / "validity-test"
    _write(val / "validity.json", {"images": 20, "curves": {"near-optimal": [0.3, 0.5], "random": [0.2, 0.25]}})
    _write(val / "manifest.json", {"kind": "sequences", "config": {"dataset": "cluttered-mnist", "split": "test",
                                   "search": "halving", "T": 2, "num_samples": 50}, "inputs": {"avp": "runs/a",
                                   "prior": "runs/p"}, "versions": {"torch": "9.9.9"}})
    _png(val / "validity.png")
    return runs


def test_results_page_from_fake_runs(load_example, runs, tmp_path):
    wr = load_example("write_results")
    out = tmp_path / "docs" / "RESULTS.md"
    wr.main(["--runs", str(runs), "--out", str(out)])
    text = out.read_text()
    # the demo: its numbers, command, machine and an honest reading
    assert "| PS-NOGS | 1 | 2900 ± 0 | 2700 | 58.2 ± 0.0 |" in text and "`ppl-attention demo --out runs/demo" in text
    assert "torch 9.9.9" in text and "[2800] (PS-NOGS)" in text and "no spread is estimated" in text
    # the reproduction: the combined table, the per-dataset table, the computed speed-up and verdict
    assert "| RAM | 10000 ± 100 | 9000 ± 0 | 60.0 ± 0.0 | 3 |" in text
    assert "10.0x by the val. CE criterion (10000 vs 1000 iterations)" in text
    assert "This meets the target" in text and "7 x Fake CPU 3000" in text
    assert "h1-s0 (200 iterations logged)" in text
    # time to 50 / 75 / 90 / 95 % of the lower of RAM's and PS-NOGS's best (0.6): 0.30 at once, the rest later
    assert "| RAM | 100 ± 0 | 900 ± 100 | 900 ± 100 | 900 ± 100 |" in text
    assert "| PS-NOGS | 100 ± 0 | 300 ± 100 | 300 ± 100 | 300 ± 100 |" in text
    # the AVP, the baselines (both points, the demo runs drawn as single points), a saved benchmark
    assert "| 91.2 % | 10.0 % | 15.0 % | 20.0 % | — |" in text
    assert "| shufflenet_v2 | 0.25 | 44 | 2.05 | 12,345 | 25.1 | 25.1 |" in text
    assert "--epochs 12 --lr 0.003" in text and "demo/ram-s0" in text and '"images_per_s": 4321' in text
    # what is missing is listed with its command, never invented
    assert "`bench_design`: not run yet (`python benchmarks/bench_design.py" in text
    assert "command `python benchmarks/bench_completion.py --prior P > " in text
    # the validity of generated sequences: its table and the command that made it
    assert "| near-optimal | 30.0 | 50.0 |" in text and "| random | 20.0 | 25.0 |" in text
    assert "--split test --num-images 20 --avp runs/a --prior runs/p" in text
    assert "Not run yet under runs/. Command: `ppl-attention compare-completion" in text
    # every figure link resolves to a file under docs/figures, none into runs/
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 6 and all(not link.startswith("..") and "runs/" not in link for link in links)
    for link in links:
        assert (out.parent / link).is_file() and (out.parent / link).resolve().is_relative_to(out.parent / "figures")
    assert (out.parent / "figures" / "baselines" / "cluttered-mnist_accuracy_vs_flops.png").stat().st_size > 1000


def test_missing_runs_say_not_run_yet(load_example, tmp_path):
    wr = load_example("write_results")
    (tmp_path / "runs").mkdir()
    text = wr.main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "RESULTS.md")]).read_text()
    assert text.count("Not run yet") == 12 and "examples/reproduce_mnist.py" in text and "![" not in text
    assert "## The sensor" in text and "examples/avp_sensor_comparison.py" in text
    with pytest.raises(FileNotFoundError, match="--runs"):
        wr.main(["--runs", str(tmp_path / "nothing"), "--out", str(tmp_path / "R.md")])


def test_stopping_curve_or_single_point(load_example, tmp_path):
    wr = load_example("write_results")
    _attention_run(tmp_path / "a", "none", 0.5, 100, T=5)
    assert wr.attention_points(tmp_path / "a") == [{"flops": 5 * 1_000_000 + 5000, "accuracy": 0.5}]
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    summary["stopping_curve"] = [{"flops": 1e6, "accuracy": 0.3, "threshold": 0.1}, {"flops": 2e6, "accuracy": 0.4}]
    (tmp_path / "a" / "summary.json").write_text(json.dumps(summary))
    assert wr.attention_points(tmp_path / "a") == [{"flops": 1e6, "accuracy": 0.3}, {"flops": 2e6, "accuracy": 0.4}]
    assert wr.attention_points(tmp_path / "missing") is None


def _logged_run(path: Path, supervision, accs, lr=1e-3, pretrain=False):
    """A run folder with the manifest keys the single-factor table compares, and a validation log."""
    _write(path / "manifest.json", {"config": {"run": {"supervision": supervision, "num_supervised": 600,
                                                       "pretrain": pretrain, "pretrain_iterations": 1000},
                                               "train": {"lr": lr, "supervision_weight": 1.0, "glimpses": 5},
                                               "network": {"network": {"hidden": 256}}}})
    _write(path / "summary.json", {"supervision": supervision, "pretrain": pretrain, "seed": 0,
                                   "dataset": "cluttered-mnist", "best_val_acc": max(accs),
                                   "test_greedy_acc": accs[-1], "iterations": 1000 * len(accs),
                                   "iterations_to_convergence_loss": 1000 * len(accs),
                                   "iterations_to_convergence_accuracy": 1000 * len(accs)})
    (path / "log.csv").write_text("iteration,val_greedy_acc\n" + "".join(
        f"{1000 * (k + 1)},{a}\n" for k, a in enumerate(accs)))


def test_investigation_section_longer_and_single_factor_runs(load_example, tmp_path):
    wr, cs = load_example("write_results"), load_example("compare_supervision")
    runs = tmp_path / "runs"
    for method, accs in (("none", [0.2, 0.3, 0.4, 0.5]), ("nogs", [0.4, 0.5, 0.55, 0.6]), ("h1", [0.3, 0.35])):
        _logged_run(runs / "reproduce" / "cluttered-mnist" / f"{method}-s0", method, accs)
    _logged_run(runs / "investigate" / "nogs-lr3e-3-s0", "nogs", [0.5, 0.6], lr=3e-3)
    _logged_run(runs / "investigate" / "h1-lr3e-3-s0", "h1", [0.4, 0.45], lr=3e-3)
    _logged_run(runs / "investigate" / "h1-lr3e-3-s1", "h1", [0.4, 0.65], lr=3e-3)
    long = runs / "long" / "cluttered-mnist"
    summaries = {}
    for method, accs in (("none", [0.2, 0.4, 0.6, 0.6]), ("nogs", [0.5, 0.6, 0.6, 0.6])):
        _logged_run(long / f"{method}-s0", method, accs)
        summaries[method] = [json.loads((long / f"{method}-s0" / "summary.json").read_text())]
    cs.write_tables(summaries, long)
    _write(long / "comparison.json", {"command": "python examples/compare_supervision.py --iterations 4000",
                                      "machine": {"cpu": "Fake CPU", "cpu_count": 2, "torch": "9.9.9"}})
    _write(runs / "diagnose" / "policy.json", {"command": "python examples/diagnose_policy.py RUN --sequences S"})
    (runs / "diagnose" / "policy.md").write_text("| run | method |\n|---|---|\n| r | RAM |\n")
    page = wr.Page(tmp_path / "RESULTS.md", tmp_path / "figures")
    wr.investigation_section(page, runs, {"cpu": "Here", "cpu_count": 1, "torch": "1"})
    text = "\n".join(page.lines)
    assert "`python examples/diagnose_policy.py RUN --sequences S`" in text and "| r | RAM |" in text
    assert "### cluttered-mnist, 4,000 iterations per run" in text
    assert "`python examples/compare_supervision.py --iterations 4000`" in text and "Fake CPU" in text
    # each single-factor run is shown against the run of its seed and supervision (the longer one when there is
    # one, else the reproduction's), and RAM's
    assert "| investigate/nogs-lr3e-3-s0 (PS-NOGS) | learning rate = 0.003 | 50.0 | 60.0 |" in text
    assert "| long/cluttered-mnist/nogs-s0 (PS-NOGS) | reference | 50.0 | 60.0 | 60.0 |" in text
    assert "| long/cluttered-mnist/none-s0 (RAM) | reference | 20.0 | 40.0 | 60.0 |" in text
    assert "| reproduce/cluttered-mnist/h1-s0 (PS-H1) | reference | 30.0 | 35.0 |" in text
    assert "reproduce/cluttered-mnist/nogs-s0" not in text
    # a setting run with two seeds gets a mean ± std row (test accuracies 45 and 65 %)
    assert "| PS-H1 | learning rate = 0.003 | 2 | 2,000 | 2000 ± 0 | 2000 ± 0 | 55.0 ± 14.1 |" in text
    # nothing at all: no section
    empty = wr.Page(tmp_path / "R.md", tmp_path / "f")
    wr.investigation_section(empty, tmp_path / "nothing", {})
    assert empty.lines == []


def test_equal_flops_sentence(load_example):
    wr = load_example("write_results")
    cnns = [{"config": {"arch": "shufflenet_v2", "width": 0.25, "resolution": r}, "flops": f, "test_accuracy": a}
            for r, f, a in ((28, 1e6, 0.5), (60, 3e6, 0.9), (80, 9e6, 0.95))]
    attention = {"PS-NOGS": [{"flops": 2e6, "accuracy": 0.6}, {"flops": 4e6, "accuracy": 0.7}]}
    text = wr._equal_flops_sentence(cnns, attention)  # 70 % at 4 MFLOPs against the 3-MFLOP CNN's 90 %
    assert "the CNN beats hard attention" in text and "70.0 % at 4.00 MFLOPs" in text and "r = 60) 90.0 %" in text
    assert "does not beat" in wr._equal_flops_sentence(cnns[:1], attention)
    assert "costs less than every CNN" in wr._equal_flops_sentence(cnns[2:], attention)
    assert wr._equal_flops_sentence(cnns, {}) == ""


def test_design_benchmark_table(load_example):
    wr = load_example("write_results")
    r = {"seconds_per_sequence": {"exhaustive": 8.0, "halving-bf16": 0.4},
         "avp_evaluations_per_step": {"exhaustive": 5600.0, "halving-bf16": 940.0},
         "speedup_vs_exhaustive": {"halving-bf16": 20.0}, "mean_relative_epe_regret": {"halving-bf16": 0.005},
         "mean_relative_epe_regret_stderr": {"halving-bf16": 0.002}, "max_relative_epe_regret": {"halving-bf16": 0.07},
         "argmin_agreement": {"halving-bf16": 0.8}, "search_options": {"halving-bf16": {"precision": "bfloat16"}},
         "goal": {"fastest_within_1pct_regret": "halving-bf16", "speedup": 20.0, "mean_regret": 0.005, "met": True},
         "images": 12, "T": 4, "num_samples": 100, "threads": 2, "load_average": [1.0, 1.0, 1.0],
         "avp_evaluations": {"bfloat16": {"epe_loop_evals_per_s": 100.0, "plain_forward_evals_per_s": 110.0,
                                          "overhead": 0.1}},
         "hours_for_600_sequences": {"exhaustive": 1.0, "halving-bf16": 0.05}}
    text = "\n".join(wr._design_table(r))
    assert "| halving-bf16 | bfloat16 | 0.40 | 20.0x | 940 | 0.50 ± 0.20 % | 7.0 % | 80 % |" in text
    assert "**halving-bf16**, 20.0x at 0.50 % (meets the 20x goal)" in text
    assert "36 steps" in text and "overhead 10.0 %" in text and "3.0 min with halving-bf16" in text


def test_search_regret_table(load_example):
    wr = load_example("write_results")
    row = {"search": "halving", "options": {"initial_samples": 7}, "precision": "bfloat16", "steps": 120,
           "evaluations_per_step": 943.0, "exhaustive_evaluations_per_step": 5534.0,
           "mean_relative_epe_regret": 0.0015, "stderr": 0.0007, "max_relative_epe_regret": 0.048}
    text = "\n".join(wr._search_regret_table({"pareto_front": [row], "all": [row, row]}))
    assert "Pareto front of 2 settings replayed on 120 recorded steps" in text
    assert "| halving | initial_samples=7 | bfloat16 | 943 | 17 % | 0.15 ± 0.07 % | 4.8 % |" in text


def _crash(command, identical=True):
    return {"command": command, "reference_seconds": 9.0, "atomic_writes_per_run": 15, "kills": 20, "reruns": 30,
            "refused": [] if identical else ["after t=1.0s: refused: exists"], "kill_moments": [],
            "episodes_compared": 10, "temporaries_left_before_final_rerun": 1, "temporaries_left_at_end": [],
            "artefacts_compared": 11, "artefacts_differing": [] if identical else ["summary.json"],
            "identical": identical}


def test_only_regenerates_sections_and_keeps_the_rest(load_example, tmp_path):
    """--only robustness notebooks: the crash-safety table (one row per command, later files win) and the notebook
    timings are spliced into the existing page; every other section stays byte for byte."""
    wr = load_example("write_results")
    runs, out = tmp_path / "runs", tmp_path / "RESULTS.md"
    old = ["# Results", "", "preamble", "", "## The sensor: kept (`x`)", "", "measured long ago", "",
           "## Crash safety: kill -9 and rerun (`old`)", "", "stale", "", "## Benchmarks (`b`)", "", "- bench", ""]
    out.write_text("\n".join(old) + "\n")
    _write(runs / "benchmarks" / "crash_resume-a.json", {"results": [_crash("generate", identical=False),
                                                                      _crash("train")]})
    _write(runs / "benchmarks" / "crash_resume-b.json", {"results": [_crash("generate"), _crash("build-prior")]})
    _write(runs / "benchmarks" / "time_notebooks.json", {"threads": 1, "results": [
        {"notebook": "walkthrough.ipynb", "small": False, "total_seconds": 540.0, "error": None,
         "cells": [{"cell": 1, "seconds": 2.0, "first_line": "import json"},
                   {"cell": 3, "seconds": 400.0, "first_line": "def artefact(env)"}],
         "load_before": [2.5, 1, 1], "load_after": [3.0, 1, 1]}]})
    text = wr.main(["--runs", str(runs), "--out", str(out), "--only", "robustness", "notebooks"]).read_text()
    lines = text.splitlines()
    assert lines[:8] == old[:8]  # the preamble and the sensor section are untouched
    assert "stale" not in text and text.count("## Crash safety") == 1
    assert "| generate | 20 | 30 | 0 | 10 | 11 | 0 | yes |" in text  # crash_resume-b.json, read last, wins
    assert "| train | 20 | 30 | 0 | 10 | 11 | 0 | yes |" in text and "| build-prior |" in text
    assert "> runs/benchmarks/crash_resume-a.json`" in text and str(tmp_path) not in text
    assert "| walkthrough.ipynb | 9.0 | 400 (`def artefact(env)`) | 2.5 / 3.0 | ran |" in text
    # a section the page did not have goes before the benchmarks, which stay last
    assert text.index("## The notebooks") < text.index("## Benchmarks") and text.rstrip().endswith("- bench")
    # a failed comparison is shown as such
    _write(runs / "benchmarks" / "crash_resume-b.json", {"results": [_crash("generate", identical=False)]})
    text = wr.main(["--runs", str(runs), "--out", str(out), "--only", "robustness"]).read_text()
    assert "| generate | 20 | 30 | 1 | 10 | 11 | 0 | no: summary.json |" in text


def test_validity_section_names_the_sensor_and_no_machine_path(load_example, tmp_path):
    from ppl_attention.sensor import GlimpseGrid

    wr = load_example("write_results")
    runs = tmp_path / "runs"
    val = runs / "validity-retina"
    _write(val / "validity.json", {"images": 200, "curves": {"near-optimal": [0.82, 0.835], "random": [0.455, 0.63]}})
    _write(val / "manifest.json", {"kind": "sequences", "config": {
        "dataset": "cluttered-mnist", "split": "test", "search": "halving", "T": 2, "num_samples": 50,
        "precision": "bfloat16", "grid": GlimpseGrid.retina().to_dict()},
        "inputs": {"avp": "/some/machine/artefacts/avp-x", "prior": str(tmp_path / "p")}})
    text = wr.main(["--runs", str(runs), "--out", str(tmp_path / "R.md"), "--only", "validity"]).read_text()
    assert "--avp .../artefacts/avp-x --prior p --search halving -T 2 --num-samples 50 --precision bfloat16 " \
           "--out runs/validity-retina`" in text
    assert "/some/machine" not in text and str(tmp_path) not in text
    assert "Sensor: 9x9 locations on 60x60, 12x12 glimpses, 3 scales (12, 24, 48 px, factor 2)" in text
    assert "| near-optimal | 82.0 | 83.5 |" in text


def test_mnist100_section_ram_unfinished_and_cnn(load_example, tmp_path):
    """Cluttered 100 x 100: a finished RAM seed with its FLOPs, an unfinished one with its last validation row, and a
    CNN point, with the examples each saw."""
    wr = load_example("write_results")
    runs = tmp_path / "runs"
    folder = runs / "sensor" / "c100"
    cfg = {"run": {"dataset": "cluttered-mnist-100"}, "train": {"glimpses": 8, "batch_size": 64, "iterations": 10000}}
    for seed in (0, 1):
        _write(folder / f"none-s{seed}" / "manifest.json", {"kind": "attention-run", "config": cfg})
    for seed in (0, 2):
        _write(folder / f"none-s{seed}" / "manifest.json", {"kind": "attention-run", "config": cfg})
        _write(folder / f"none-s{seed}" / "summary.json", {"seed": seed, "test_greedy_acc": 0.85 - 0.05 * seed,
                                                         "test_mc_acc": 0.9, "flops_per_glimpse": 1_000_000,
                                                         "classifier_flops": 5000})
    (folder / "none-s1" / "log.csv").write_text("iteration,val_greedy_acc,val_sampled_acc,train_loss\n"
                                                "250,0.1,0.2,\n500,0.4,0.6,\n600,,,1.0\n")
    for name, seed, acc in (("cluttered-mnist-100", 0, 0.8), ("cluttered-mnist-100-s1", 1, 0.7)):
        _write(runs / "baselines" / name / "points" / "mnih_w1_r100.json", {
            "config": {"arch": "mnih", "width": 1.0, "resolution": 100}, "train": {"epochs": 160}, "seed": seed,
            "flops": 1_500_000, "test_accuracy": acc})
    text = wr.main(["--runs", str(runs), "--out", str(tmp_path / "R.md"), "--only", "mnist100"]).read_text()
    assert "| RAM, retina, T = 8 | c100/none-s0 | 640,000 | 8.01 | 85.0 (greedy); 90.0 MC | 15.0 |" in text
    assert "c100/none-s1: **unfinished** at iteration 500 of 10,000 | 32,000 | - | validation 40.0 (greedy), " \
           "60.0 (sampled)" in text
    assert "| CNN `mnih` c = 1, r = 100 | baselines/cluttered-mnist-100 (seed 0) | 160 epochs | 1.50 | 80.0 | 20.0 |" \
        in text
    assert "| CNN `mnih` c = 1, r = 100, **mean ± sd over seeds 0, 1** | baselines | - | - | 75.0 ± 7.1 | 25.0 |" in text
    assert "| RAM, retina, T = 8, **mean ± sd over seeds 0, 2** | c100 | 640,000 each | - | 80.0 ± 7.1 (greedy); " \
           "90.0 ± 0.0 MC | 20.0 |" in text
    assert "16.51 %" in text and "10.83 % test error" in text
    assert (tmp_path / "figures" / "baselines" / "cluttered-mnist-100_accuracy_vs_flops.png").is_file()
    assert "](figures/baselines/cluttered-mnist-100_accuracy_vs_flops.png)" in text


def test_glimpses_digits_section_and_its_place(load_example, tmp_path):
    """RAM at T = 5 and the learning-curve runs get their own section, spliced in next to its neighbour (before the
    100 x 100 section) and kept out of the sensor table, which holds only Mnih's glimpse counts with all digits."""
    wr = load_example("write_results")
    runs, out = tmp_path / "runs", tmp_path / "R.md"
    grid = {"scales": 3}

    def folder(name, dataset, T, digits, accs):
        data = {"name": dataset, "options": {"train_digits": digits}}
        cfg = {"run": {"dataset": dataset}, "train": {"glimpses": T, "batch_size": 64, "iterations": 10000},
               "network": {"grid": grid}, "data": data}
        for seed, acc in enumerate(accs):
            _write(runs / "sensor" / name / f"none-s{seed}" / "manifest.json", {"kind": "attention-run", "config": cfg})
            _write(runs / "sensor" / name / f"none-s{seed}" / "summary.json",
                   {"seed": seed, "test_greedy_acc": acc, "test_mc_acc": acc + 0.05})

    folder("c-T5", "cluttered-mnist", 5, None, [0.80, 0.90])
    folder("c-T8-d1000", "cluttered-mnist", 8, 1000, [0.70])
    _write(runs / "sensor" / "c-T8-d1000" / "none-s1" / "manifest.json",
           {"kind": "attention-run", "config": {"run": {"dataset": "cluttered-mnist"}, "network": {"grid": grid},
                                                "train": {"glimpses": 8, "batch_size": 64, "iterations": 10000}}})
    old = ["# Results", "", "## The sensor: kept", "", "old sensor rows", "",
           "## Cluttered 100 x 100 MNIST: RAM against CNNs (x)", "", "old", "", "## Benchmarks (`b`)", "", "- b", ""]
    out.write_text("\n".join(old) + "\n")
    text = wr.main(["--runs", str(runs), "--out", str(out), "--only", "glimpses_digits", "mnist100"]).read_text()
    assert "old sensor rows" in text and "| c-T5 | cluttered-mnist | 5 | 4,000 | 0, 1 | 85.0 ± 7.1 | 90.0 ± 7.1 | " \
                                      "15.0 | <= 8 | 4: 4.96, 6: 4.08, 8: 4.04 |" in text
    assert "| c-T8-d1000 | cluttered-mnist | 8 | 1,000 | 0 | 70.0 ± 0.0 |" in text
    assert "Started, not finished (rerun the same command to resume): c-T8-d1000/none-s1." in text
    assert text.index("## The sensor") < text.index("## RAM with the retina at T = 5") < text.index("## Cluttered 100")
    # the sensor table itself shows neither folder
    text = wr.main(["--runs", str(runs), "--out", str(tmp_path / "S.md"), "--only", "sensor"]).read_text()
    assert "c-T5" not in text and "c-T8-d1000" not in text


def test_regime_section_shows_the_verdict_without_machine_paths(load_example, tmp_path):
    wr = load_example("write_results")
    runs = tmp_path / "runs"
    folder = runs / "regime" / "fine-60"
    folder.mkdir(parents=True)
    (folder / "none-s1").mkdir()  # started, not finished
    _write(folder / "verdict.json", {"grid": "fine-60", "command": f"python examples/paper_regime.py --out {runs}/regime",
                                     "machine": {"cpu_count": 2, "cpu": "x86", "torch": "2"}})
    (folder / "verdict.md").write_text("| method |\n|---|\n| RAM |\n\nVerdict: not measurable yet.\n")
    text = wr.main(["--runs", str(runs), "--out", str(tmp_path / "R.md"), "--only", "regime"]).read_text()
    assert "## The paper's claim on the fine grids" in text and "### fine-60" in text
    assert "Verdict: not measurable yet." in text and "fine-60/none-s1" in text
    assert "--out runs/regime`" in text and str(tmp_path) not in text
    assert "No CNN baseline" not in text  # no finished run: no accuracy-against-FLOPs figure


def test_regime_section_records_a_grid_whose_stages_are_under_way(load_example, tmp_path):
    """A grid with no finished run yet (its BOED stages take several sessions): which stages are finished and how
    many images the one under way holds, so that the page says what a later session resumes."""
    wr = load_example("write_results")
    runs = tmp_path / "runs"
    grid = runs / "regime" / "fine-100"
    for stage in ("avp", "prior"):
        _write(grid / stage / "summary.json", {})
    for i in range(3):
        _write(grid / "distill-maps" / "records" / f"{i:07d}.json", {"index": i})
    (runs / "regime" / "notes").mkdir()  # not a grid: left out
    text = wr.main(["--runs", str(runs), "--out", str(tmp_path / "R.md"), "--only", "regime"]).read_text()
    assert "### fine-100: in progress, no run finished yet" in text and "notes" not in text
    assert "- train AVP: finished" in text and "- build prior: finished" in text
    assert "- distillation maps (600 images, sub-lattice stride 3): 3 images so far" in text
    assert "- train the EPE-map network: not started" in text and str(tmp_path) not in text


def test_regime_section_shows_a_policy_variant_after_its_grid(load_example, tmp_path):
    wr = load_example("write_results")
    runs = tmp_path / "runs"
    grid = runs / "regime" / "fine-60-patch"
    variant = grid / "policy-factorised"
    (variant / "nogs-s0").mkdir(parents=True)  # started, not finished
    machine = {"cpu_count": 2, "cpu": "x86", "torch": "2"}
    _write(grid / "verdict.json", {"grid": "fine-60-patch", "command": "python examples/paper_regime.py",
                                   "machine": machine})
    (grid / "verdict.md").write_text("Verdict, PS-NOGS: gaussian.\n")
    _write(variant / "verdict.json", {"grid": "fine-60-patch", "name": "fine-60-patch, factorised policy",
                                      "command": "python examples/paper_regime.py --policy factorised",
                                      "machine": machine})
    (variant / "verdict.md").write_text("Verdict, PS-NOGS: factorised.\n")
    (variant / "validation_curves.png").write_bytes(b"png")  # copied as it is
    text = wr.main(["--runs", str(runs), "--out", str(tmp_path / "R.md"), "--only", "regime"]).read_text()
    assert text.index("### fine-60-patch\n") < text.index("Verdict, PS-NOGS: gaussian.") \
        < text.index("### fine-60-patch, factorised policy") < text.index("Verdict, PS-NOGS: factorised.")
    assert "fine-60-patch/policy-factorised/nogs-s0" in text
    assert (tmp_path / "figures" / "regime" / "fine-60-patch-factorised_validation_curves.png").is_file()


def test_regime_section_plots_accuracy_against_flops_beside_the_cnns(load_example, tmp_path):
    wr = load_example("write_results")
    runs = tmp_path / "runs"
    folder = runs / "regime" / "fine-60"
    for name, acc in (("none-s0", 0.90), ("none-s1", 0.91), ("nogs-s0", 0.89)):
        _write(folder / name / "summary.json", {"dataset": "cluttered-mnist", "test_greedy_acc": acc,
                                                 "flops_per_glimpse": 1e5, "classifier_flops": 1e4})
        _write(folder / name / "manifest.json", {"config": {"train": {"glimpses": 8}}})
    _write(folder / "verdict.json", {"grid": "fine-60", "command": "python examples/paper_regime.py",
                                     "machine": {"cpu_count": 2, "cpu": "x86", "torch": "2"}})
    (folder / "verdict.md").write_text("Verdict, PS-NOGS: not measurable yet.\n")
    out = tmp_path / "R.md"
    text = wr.main(["--runs", str(runs), "--out", str(out), "--only", "regime"]).read_text()
    assert "fine-60_accuracy_vs_flops.png" in text and "No CNN baseline on cluttered-mnist canvases yet" in text
    _write(runs / "baselines" / "c60" / "manifest.json", {"config": {"dataset": "cluttered-mnist", "epochs": 320}})
    _write(runs / "baselines" / "c60" / "points" / "s.json", {
        "config": {"arch": "shufflenet_v2", "width": 0.25, "resolution": 60}, "flops": 2.7e6, "test_accuracy": 0.88})
    text = wr.main(["--runs", str(runs), "--out", str(out), "--only", "regime"]).read_text()
    assert "No CNN baseline" not in text
    assert "shufflenet_v2 (c = 0.25, r = 60, 320 epochs) 88.0 % at 2.70 MFLOPs" in text
    assert (tmp_path / "figures" / "regime" / "fine-60_accuracy_vs_flops.png").is_file()


def test_recorded_paths_are_shown_inside_runs_whatever_its_folder_is_called(load_example, tmp_path):
    wr = load_example("write_results")
    runs = tmp_path / "runs-of-session-9"
    (runs / "regime").mkdir(parents=True)
    (runs / "latest").symlink_to(runs / "regime")  # a path recorded through a link inside runs
    assert wr._shown_path(str(runs / "regime" / "fine-60"), runs) == "runs/regime/fine-60"
    assert wr._shown_path(str(runs / "latest"), runs) == "runs/latest"
    assert wr._shown_path(str(tmp_path / "elsewhere" / "x"), runs) == "elsewhere/x"
    assert wr._shown_path("/a/b/c/d", runs) == ".../c/d" and wr._shown_path("runs/x", runs) == "runs/x"


def test_fine_grid_benchmark_table(load_example):
    wr = load_example("write_results")
    row = {"grid": "60x60 stride 1 (2401)", "policy": "gaussian", "location_embedding": "mlp",
           "seconds_per_iteration": 0.089, "time_over_coarse": 1.09, "peak_memory_mib": 28.7, "policy_parameters": 8290}
    lines = wr._fine_grid_table({"rows": [row, {**row, "peak_memory_mib": None}], "batch": 64, "T": 8, "threads": 1,
                                 "device": "cpu", "statistic": "median", "timed_iterations": 15,
                                 "load_average": [2.9, 2.7, 2.6]})
    assert "| 60x60 stride 1 (2401) | gaussian | mlp | 0.089 | 1.09 | 28.7 | 8,290 |" in lines
    assert "| 60x60 stride 1 (2401) | gaussian | mlp | 0.089 | 1.09 | - | 8,290 |" in lines
