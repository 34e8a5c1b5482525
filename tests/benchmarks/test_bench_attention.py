"""benchmarks/bench_attention.py times its networks interleaved, so a change of the machine's load hits them alike,
and reports the retina's cost against one scale (a tiny hidden size)."""

import json


def test_steps_are_interleaved_and_medians_skip_the_warm_up(load_benchmark):
    module = load_benchmark("bench_attention")
    calls = []

    def step(name, seconds):
        def run(i):
            calls.append((name, i))
            return seconds[i]

        return run

    med = module.time_interleaved({"a": step("a", [9, 9, 1, 2, 3]), "b": step("b", [9, 9, 5, 4, 6])}, 3)
    assert calls[:4] == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]  # iteration i of every step, then i + 1
    assert med == {"a": 2, "b": 5}  # medians of the timed iterations, the two warm-ups left out


def test_the_benchmark_reports_the_retina_against_one_scale(load_benchmark, capsys):
    load_benchmark("bench_attention").main(["--quick", "--threads", "1", "--hidden", "8"])
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert run["one_scale_s"] > 0 and run["retina_over_one_scale"] == run["retina_s"] / run["one_scale_s"]
    assert run["target_retina_over_one_scale_at_most"] == 1.5
