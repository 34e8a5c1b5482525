"""examples/policy_bandit.py: the gaussian head at lambda 1 lands between two targets, the dense head on one."""

import json


def test_the_dense_head_keeps_a_mode_the_gaussian_at_lambda_one_averages(load_example, capsys):
    bandit = load_example("policy_bandit")
    rows = bandit.main(
        [
            "--side",
            "24",
            "--places",
            "1",
            "1",
            "11",
            "11",
            "--radius",
            "1",
            "--iterations",
            "150",
            "--lr",
            "2e-2",
            "--heads",
            "dense:1",
            "gaussian:1",
            "factorised:1",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert out["grid"] == [13, 13] and [r["head"] for r in out["rows"]] == ["dense", "gaussian", "factorised"]
    dense, gaussian, factorised = rows
    assert dense["greedy_reward"] > 0.9 and factorised["greedy_reward"] > 0.9
    assert gaussian["greedy_reward"] < 0.1
    assert all(abs(c - 6) <= 2 for c in gaussian["greedy_cell"])  # between the two places
