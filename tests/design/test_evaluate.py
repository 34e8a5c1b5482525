"""EPE calibration: the predicted EPE of the chosen locations against the realised posterior entropy."""

import math

import pytest
import torch

from ppl_attention.design.evaluate import epe_calibration
from ppl_attention.sensor import Sensor


class InkPosterior(torch.nn.Module):
    """Two classes; the logit gap grows with the ink seen, so the entropy falls as glimpses accumulate."""

    def forward(self, x):
        ink = 0.05 * (x[:, 0] * x[:, 1]).sum((-1, -2))
        return torch.stack([ink, torch.zeros_like(ink)], -1)


def _entropy(logits):
    p = torch.softmax(logits.double(), -1)
    return -(p * p.log()).sum(-1)


def test_calibration_pairs_each_chosen_locations_epe_with_the_realised_entropy():
    grid = Sensor(12, 4, stride=4)  # 3 x 3 locations, one scale
    g = torch.Generator().manual_seed(0)
    images = torch.rand(5, 1, 12, 12, generator=g)
    seq = torch.stack([torch.randperm(9, generator=g)[:3] for _ in range(5)])
    post = InkPosterior()
    # the realised entropies, computed here one image and one step at a time
    want = torch.zeros(5, 3, dtype=torch.float64)
    for i in range(5):
        for t in range(3):
            canvas, mask = grid.observe(images[i : i + 1], seq[i : i + 1, : t + 1])
            want[i, t] = _entropy(post(torch.cat([canvas * mask, mask], 1)))[0]
    # maps whose chosen entries are the realised entropies x 0.8 (and junk elsewhere)
    maps = torch.rand(5, 3, 9, generator=g, dtype=torch.float64) + 5.0
    maps.scatter_(2, seq.unsqueeze(-1), 0.8 * want.unsqueeze(-1))
    out = epe_calibration(post, images, grid, seq, maps)
    assert torch.allclose(torch.tensor(out["rows"]["realised"], dtype=torch.float64), want, atol=1e-6)
    for t, step in enumerate(out["steps"]):
        assert step["predicted"]["mean"] == pytest.approx(0.8 * float(want[:, t].mean()), rel=1e-5)
        assert step["relative"] == pytest.approx(0.25, rel=1e-3)  # realised / predicted - 1
        assert step["realised"]["lo"] <= step["realised"]["mean"] <= step["realised"]["hi"]
        assert math.isfinite(step["difference"]["mean"])
    with pytest.raises(ValueError, match="`epe_maps` must have shape"):
        epe_calibration(post, images, grid, seq, maps[:, :2])
    # an independent draw's estimate, recorded from step 2 on (step 1 NaN): reported where every image has one
    independent = torch.cat([torch.full((5, 1), math.nan, dtype=torch.float64), 0.5 * want[:, 1:]], 1)
    out = epe_calibration(post, images, grid, seq, maps, independent=independent)
    assert "independent" not in out["steps"][0]
    for step in out["steps"][1:]:
        assert step["independent_relative"] == pytest.approx(1.0, rel=1e-3)  # realised / independent - 1
    with pytest.raises(ValueError, match="`independent` must have shape"):
        epe_calibration(post, images, grid, seq, maps, independent=independent[:, :2])
