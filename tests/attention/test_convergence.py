import pytest

from ppl_attention.attention.convergence import convergence_summary, iterations_to_convergence


def test_first_point_within_tolerance_of_the_best():
    its = [100, 200, 300, 400, 500]
    assert iterations_to_convergence(its, [2.0, 0.5, 0.305, 0.3, 0.35], "loss") == 300
    assert iterations_to_convergence(its, [0.5, 0.80, 0.905, 0.91, 0.9], "accuracy") == 300
    assert iterations_to_convergence(its, [0.5, 0.80, 0.899, 0.91, 0.9], "accuracy") == 500 - 100


def test_summary_reports_both_criteria():
    hist = [
        {"iteration": 10 * (i + 1), "val_greedy_ce": ce, "val_greedy_acc": acc}
        for i, (ce, acc) in enumerate([(1.0, 0.5), (0.5, 0.9), (0.495, 0.85)])
    ]
    s = convergence_summary(hist)
    assert s["iterations_to_convergence_loss"] == 20 and s["iterations_to_convergence_accuracy"] == 20
    assert s["best_val_ce"] == 0.495 and s["best_val_acc"] == 0.9


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="equal length"):
        iterations_to_convergence([1, 2], [0.1], "loss")
    with pytest.raises(ValueError, match="mode"):
        iterations_to_convergence([1], [0.1], "speed")
    with pytest.raises(ValueError, match="NaN"):
        iterations_to_convergence([1, 2], [0.1, float("nan")], "loss")
