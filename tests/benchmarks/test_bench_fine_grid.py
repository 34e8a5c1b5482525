"""benchmarks/bench_fine_grid.py runs and reports time, memory and sizes per configuration (one tiny case)."""

import json
from pathlib import Path

import pytest


def test_one_configuration_is_timed_and_measured(load_benchmark, capsys):
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("the memory probe needs Linux's /proc/self/clear_refs")
    module = load_benchmark("bench_fine_grid")
    module.main(
        [
            "--quick",
            "--grids",
            "60x60 stride 1 (2401)",
            "--policies",
            "gaussian",
            "--embeddings",
            "mlp",
            "--hidden",
            "8",
        ]
    )
    out = capsys.readouterr()
    result = json.loads(out.out)
    (row,) = result["rows"]
    assert row["locations"] == 2401 and row["seconds_per_iteration"] > 0 and row["peak_memory_mib"] > 0
    assert row["policy_parameters"] == 8 * 32 + 32 + 32 * 2 + 2  # O(1) in the number of locations
    assert "60x60 stride 1 (2401)" in out.err  # the table
