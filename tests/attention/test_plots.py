import pytest
import torch

from ppl_attention.sensor import Sensor
from ppl_attention.plots.attention import (
    animate_glimpses,
    glimpse_frequency,
    plot_glimpse_frequency,
    plot_glimpse_strip,
    plot_stopping_curve,
    plot_validation_curves,
    trailing_mean,
)

GRID = Sensor(12, 4, stride=4)


def test_glimpse_frequency_counts_pixels_observed_per_step():
    locs = torch.tensor([[0, 4], [0, 8], [1, 4], [0, 4]])
    f = glimpse_frequency(GRID, locs)
    assert f.shape == (2, 12, 12)
    assert f[0, 0, 0] == 0.75 and f[0, 0, 4] == 0.25 and f[0, 8, 8] == 0
    assert f[1, 5, 5] == 0.75 and f[1, 9, 9] == 0.25 and f[1, 0, 0] == 0
    # Each step's map integrates to the glimpse area (non-overlapping grid).
    assert torch.allclose(f.sum((1, 2)), torch.tensor([16.0, 16.0]))
    with pytest.raises(ValueError, match="shape"):
        glimpse_frequency(GRID, torch.zeros(0, 2, dtype=torch.long))


def test_figures_are_written(tmp_path):
    locs = torch.tensor([[0, 4], [8, 4]])
    assert plot_glimpse_frequency(GRID, locs, tmp_path / "f.png").stat().st_size > 0
    assert plot_glimpse_strip(torch.rand(2, 1, 12, 12), locs, GRID, tmp_path / "s.png", labels=[1, 2]).is_file()
    hist = [{"iteration": 1, "val_greedy_acc": 0.5}, {"iteration": 2, "val_greedy_acc": 0.7}]
    assert plot_validation_curves({"a": hist, "b": [hist, hist]}, tmp_path / "c.png").is_file()
    rows = [{"flops": 1e6, "accuracy": 0.5, "mean_glimpses": 1}, {"flops": 2e6, "accuracy": 0.7, "mean_glimpses": 2}]
    assert plot_stopping_curve({"net": rows}, tmp_path / "st.png").is_file()
    gif = animate_glimpses(torch.rand(2, 1, 12, 12), locs, GRID, tmp_path / "a.gif")
    assert gif.read_bytes()[:6] == b"GIF89a"
    with pytest.raises(ValueError, match="at least one"):
        plot_validation_curves({}, tmp_path / "x.png")


def test_validation_curves_smooth_and_draw_levels(tmp_path):
    """The smoothing is a trailing running mean (shorter at the start); a level is a dashed line; a bad window is
    refused by name."""
    import numpy as np

    out = trailing_mean(np.array([[1.0, 3.0, 5.0, 7.0]]), 2)
    assert out.tolist() == [[1.0, 2.0, 4.0, 6.0]]
    assert trailing_mean(np.array([[1.0, 3.0]]), 5).tolist() == [[1.0, 2.0]]
    hist = [{"iteration": i, "val_greedy_acc": a} for i, a in enumerate([0.2, 0.5, 0.4, 0.8])]
    path = plot_validation_curves({"a": [hist, hist]}, tmp_path / "c.png", levels={"RAM's final": 0.6}, smooth=3)
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="`smooth`"):
        plot_validation_curves({"a": hist}, tmp_path / "d.png", smooth=0)
