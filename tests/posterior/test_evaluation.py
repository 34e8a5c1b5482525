"""Evaluation under many random glimpse draws per image: sizes, grouping and the ECE's sampling error."""

import pytest
import torch

from ppl_attention.sensor import Sensor
from ppl_attention.posterior import AVP, AVPConfig, evaluate_avp
from ppl_attention.posterior.evaluation import collect_draws
from ppl_attention.posterior.metrics import ece_bootstrap_interval, ece_noise_floor, expected_calibration_error


def toy_avp(toy_data):
    torch.manual_seed(0)
    return AVP(
        AVPConfig(
            grid=Sensor(24, 8, stride=4).to_dict(),
            width=4,
            num_classes=4,
            mean=(float(toy_data.mean),),
            std=(float(toy_data.std),),
        )
    ).eval()


def test_draws_give_draws_times_images_rows_image_major(toy):
    data = toy(10, 0, "test")
    avp = toy_avp(data)
    d = collect_draws(avp, data, 2, seed=0, draws=3, batch_size=8)  # 8 rows per forward: chunks of 2 images
    assert d["logits"].shape == (30, 4) and d["attributes"] is None
    assert torch.equal(d["image"], torch.arange(10).repeat_interleave(3))
    assert torch.equal(d["labels"], data.labels.repeat_interleave(3))
    area = 64 / 576  # two 8 x 8 glimpses of a 24 x 24 image: between one and two glimpses' area
    assert bool((d["fraction"] >= area - 1e-6).all()) and bool((d["fraction"] <= 2 * area + 1e-6).all())
    assert d["fraction"].view(10, 3).std(1).sum() > 0  # the draws of an image differ
    # the whole image is one deterministic draw whatever ``draws`` says
    full = collect_draws(avp, data, 0, seed=0, draws=5, full=True)
    assert full["logits"].shape == (10, 4) and bool((full["fraction"] == 1).all())
    with pytest.raises(ValueError, match="`draws` must be >= 1"):
        collect_draws(avp, data, 1, seed=0, draws=0)


def test_evaluate_reports_intervals_noise_floor_and_uncalibrated_scores(toy):
    data = toy(40, 0, "test")
    avp = toy_avp(data)
    avp.temperature.fill_(2.0)
    ev = evaluate_avp(avp, data, 2, draws=4, batch_size=64)
    assert ev["draws"] == 4 and [r["t"] for r in ev["per_glimpses"]] == [0, 1, 2]
    for r in ev["per_glimpses"]:
        assert r["n"] == 160 and r["images"] == 40 and r["draws"] == 4
        assert 0 <= r["ece_low"] <= r["ece_high"] <= 1 and 0 < r["ece_noise_floor"] < 1
        assert r["uncalibrated"]["nll"] != pytest.approx(r["nll"])  # the temperature is applied, and only once
    assert ev["full_image"]["n"] == 40 and ev["full_image"]["fraction"] == 1.0
    assert ev["calibration"] == {"temperature": 2.0}
    # reproducible from the seed
    assert evaluate_avp(avp, data, 2, draws=4, batch_size=64)["per_glimpses"] == ev["per_glimpses"]


def test_noise_floor_matches_the_ece_of_a_perfectly_calibrated_predictor():
    g = torch.Generator().manual_seed(0)
    n = 2000
    conf = 0.1 + 0.9 * torch.rand(n, generator=g)
    measured = torch.tensor(
        [expected_calibration_error(conf, (torch.rand(n, generator=g) < conf).float()) for _ in range(200)]
    )
    floor, sd = ece_noise_floor(conf, simulations=50, generator=g)
    assert floor == pytest.approx(float(measured.mean()), rel=0.1)
    assert sd == pytest.approx(float(measured.std()), rel=0.35)
    # the floor falls like 1 / sqrt(n): more draws make small ECEs measurable
    big = 0.1 + 0.9 * torch.rand(16 * n, generator=g)
    assert ece_noise_floor(big, generator=g)[0] < 0.4 * floor
    # a miscalibrated predictor lies far above its floor
    hits = (torch.rand(n, generator=g) < conf - 0.1).float()
    assert expected_calibration_error(conf, hits) > floor + 5 * sd


def test_bootstrap_over_images_widens_the_interval_of_repeated_draws():
    g = torch.Generator().manual_seed(1)
    conf = 0.3 + 0.6 * torch.rand(300, generator=g)
    hits = (torch.rand(300, generator=g) < conf - 0.1).float()
    ece = expected_calibration_error(conf, hits)
    lo, hi = ece_bootstrap_interval(conf, hits, torch.arange(300), generator=g)
    assert lo < ece < hi
    # ten identical draws per image are not ten times the evidence: resampling images keeps the width
    rep = lambda v: v.repeat_interleave(10)  # noqa: E731
    lo_img, hi_img = ece_bootstrap_interval(rep(conf), rep(hits), rep(torch.arange(300)), generator=g)
    lo_row, hi_row = ece_bootstrap_interval(rep(conf), rep(hits), torch.arange(3000), generator=g)
    assert hi_img - lo_img > 2 * (hi_row - lo_row)
    assert hi_img - lo_img == pytest.approx(hi - lo, rel=0.3)
    with pytest.raises(ValueError, match="same shape"):
        ece_bootstrap_interval(conf, hits, torch.arange(5))
    with pytest.raises(ValueError, match="zero predictions"):
        ece_noise_floor(torch.zeros(0))
