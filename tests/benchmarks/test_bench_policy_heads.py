"""benchmarks/bench_policy_heads.py times every head and both dense samplers (one tiny run)."""

import json

from ppl_attention.attention import policy as policy_module


def test_every_head_and_sampler_is_timed(load_benchmark, capsys):
    module = load_benchmark("bench_policy_heads")
    original = policy_module.DenseLocations.sample
    module.main(["--quick", "--heads", "dense", "dense (multinomial)"])
    result = json.loads(capsys.readouterr().out)
    assert [r["head"] for r in result["rows"]] == ["dense", "dense (multinomial)"]
    assert all(r["seconds_per_iteration"] > 0 and r["locations"] == 2401 for r in result["rows"])
    assert set(result["sampling_seconds"]["64"]) == {"inverse_cdf", "multinomial"}
    assert policy_module.DenseLocations.sample is original  # the benchmark's patch is undone
