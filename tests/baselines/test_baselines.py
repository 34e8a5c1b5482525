import json

import pytest
import torch

from ppl_attention.baselines import BaselineConfig, build_baseline, count_flops
from ppl_attention.baselines.train import TrainBaselineConfig, sweep_baselines
from ppl_attention.plots.baselines import pareto_front, plot_accuracy_vs_flops


class TinyDataset(torch.utils.data.Dataset):
    """Two classes told apart by which half of the image is bright."""

    num_classes = 2

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 2, (n,), generator=g)
        self.images = torch.rand(n, 1, 32, 32, generator=g) * 0.2
        self.images[self.labels == 1, :, :16] += 0.8
        self.images[self.labels == 0, :, 16:] += 0.8

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": self.labels[i], "index": torch.tensor(i)}


@pytest.mark.parametrize("arch", ["mobilenet_v2", "shufflenet_v2", "mnih"])
def test_baselines_take_any_channels_and_resolution(arch):
    net = build_baseline(BaselineConfig(arch=arch, width=0.25, resolution=32, in_channels=3, num_classes=7))
    assert net(torch.rand(2, 3, 60, 60)).shape == (2, 7)


def test_mnih_cnn_is_mnih_et_al_s_two_layer_baseline():
    """8 filters of 10 x 10 at stride 5, 256 ReLUs, the output: on 100 x 100 a 19 x 19 x 8 map."""
    net = build_baseline(BaselineConfig(arch="mnih", resolution=100)).net
    conv, fc, out = net[0], net[3], net[5]
    assert (conv.out_channels, conv.kernel_size, conv.stride) == (8, (10, 10), (5, 5))
    assert (fc.in_features, fc.out_features, out.out_features) == (19 * 19 * 8, 256, 10)
    flops = count_flops(build_baseline(BaselineConfig(arch="mnih", resolution=100)), torch.zeros(1, 1, 100, 100))
    assert flops == 2 * (19 * 19 * 8 * 100 + 2888 * 256 + 256 * 10)  # multiply-adds of the conv and both linears
    half = build_baseline(BaselineConfig(arch="mnih", width=0.5, resolution=60)).net
    assert half[0].out_channels == 4 and half[3].out_features == 128
    with pytest.raises(ValueError, match="at least 10 pixels"):
        build_baseline(BaselineConfig(arch="mnih", resolution=8))


def test_flops_grow_with_width_and_resolution():
    small = count_flops(build_baseline(BaselineConfig(width=0.25, resolution=28)), torch.zeros(1, 1, 60, 60))
    wide = count_flops(build_baseline(BaselineConfig(width=1.0, resolution=28)), torch.zeros(1, 1, 60, 60))
    big = count_flops(build_baseline(BaselineConfig(width=0.25, resolution=60)), torch.zeros(1, 1, 60, 60))
    assert small < wide and small < big


def test_flop_counter_counts_a_multiply_add_as_two():
    assert count_flops(torch.nn.Linear(10, 20, bias=False), torch.zeros(1, 10)) == 2 * 10 * 20
    assert count_flops(torch.nn.Linear(10, 20, bias=False), torch.zeros(4, 10)) == 4 * 2 * 10 * 20


def test_bad_baseline_configs_are_refused():
    with pytest.raises(ValueError, match="`arch` must be one of"):
        build_baseline(BaselineConfig(arch="resnet"))
    with pytest.raises(ValueError, match="`width` must be positive"):
        build_baseline(BaselineConfig(width=0))
    with pytest.raises(ValueError, match="`resolution` must be at least 16"):
        build_baseline(BaselineConfig(resolution=8))


def test_pareto_front_keeps_only_undominated_points():
    assert pareto_front([(1, 50), (2, 40), (3, 60), (4, 55), (5, 70)]) == [(1, 50), (3, 60), (5, 70)]


def test_sweep_learns_resumes_and_plots(tmp_path):
    data = {"train": TinyDataset(256, 0), "valid": TinyDataset(64, 1), "test": TinyDataset(64, 2)}
    cfg = TrainBaselineConfig(epochs=4, batch_size=16, lr=3e-3)
    results = sweep_baselines(data, tmp_path, archs=["mobilenet_v2"], widths=[0.25], resolutions=[24, 32], train=cfg)
    assert len(results) == 2
    assert all(r["test_accuracy"] > 0.8 for r in results), [r["test_accuracy"] for r in results]
    assert results[0]["flops"] < results[1]["flops"]
    # (BatchNorm running statistics need ~60 steps, hence 4 x 16 batches.)
    # A second sweep reads the finished points instead of retraining them.
    path = tmp_path / "points" / "mobilenet_v2_w0.25_r24.json"
    record = json.loads(path.read_text())
    record["test_accuracy"] = 0.123
    path.write_text(json.dumps(record))
    again = sweep_baselines(data, tmp_path, archs=["mobilenet_v2"], widths=[0.25], resolutions=[24, 32], train=cfg)
    assert again[0]["test_accuracy"] == 0.123
    fig = plot_accuracy_vs_flops(
        again,
        tmp_path / "acc.png",
        {"hard attention": [{"flops": 1e5, "accuracy": 0.6}, {"flops": 3e5, "accuracy": 0.9}]},
    )
    assert fig.stat().st_size > 1000


def test_sweep_refuses_points_trained_with_other_settings(tmp_path):
    data = {"train": TinyDataset(32, 0), "valid": TinyDataset(16, 1), "test": TinyDataset(16, 2)}
    cfg = TrainBaselineConfig(epochs=1, batch_size=16)
    sweep_baselines(data, tmp_path, archs=["shufflenet_v2"], widths=[0.25], resolutions=[16], train=cfg)
    with pytest.raises(ValueError, match="shufflenet_v2_w0.25_r16.json was trained with .*'epochs': 1"):
        sweep_baselines(
            data,
            tmp_path,
            archs=["shufflenet_v2"],
            widths=[0.25],
            resolutions=[16],
            train=TrainBaselineConfig(epochs=2, batch_size=16),
        )
    with pytest.raises(ValueError, match="seed 0"):
        sweep_baselines(data, tmp_path, archs=["shufflenet_v2"], widths=[0.25], resolutions=[16], train=cfg, seed=1)


def test_baselines_command_refuses_bad_threads(tmp_path, capsys):
    from ppl_attention.cli import main

    assert main(["baselines", "--out", str(tmp_path), "--threads", "0"]) == 2
    assert "--threads must be an int >= 1, got 0" in capsys.readouterr().err


def test_per_seed_points_show_their_mean_and_sd_and_stay_apart(tmp_path, monkeypatch):
    import ppl_attention.plots.baselines as plots

    seen = {}

    def keep(fig, path):
        seen["ax"] = fig.axes[0]
        return plots_save(fig, path)

    plots_save = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", keep)
    same_cost = {
        "RAM": [{"flops": 1e7, "accuracy": a} for a in (0.90, 0.92, 0.94)],
        "PS-NOGS": [{"flops": 1e7, "accuracy": 0.91}],
    }
    path = plot_accuracy_vs_flops([], tmp_path / "pts.png", attention_points=same_cost)
    assert path.stat().st_size > 1000
    labels = [t.get_text() for t in seen["ax"].get_legend().get_texts()]
    assert labels == ["RAM: 92.0 ± 2.0 % (3 seeds)", "PS-NOGS: 91.0 % (1 seed)"]
    from matplotlib.collections import PathCollection

    xs = [c.get_offsets()[:, 0] for c in seen["ax"].collections if isinstance(c, PathCollection)]
    assert len({round(float(x[0]), 6) for x in xs}) == 2  # one cost, two methods: drawn side by side
