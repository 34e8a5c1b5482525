"""Greedy sequences on the paper's CUB preset (one scale), written by the code before the multi-scale sensor.

``python tests/design/paper_preset_sequences.py OUT.json`` builds a small, fully seeded problem (a 60-row prior of
blurred random 3 x 128 x 128 images, an untrained width-4 AVP on the CUB grid) and writes the locations and EPE maps
of exhaustive greedy sequences for two images.  ``tests/fixtures/cub_preset_sequences.json`` was written this way
by commit 7ae59e7 (the last one before the sensor); ``test_paper_presets_keep_todays_sequences`` reruns it with
the current code and requires the same locations and EPE maps.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch


def blurred_images(n: int, generator: torch.Generator) -> torch.Tensor:
    """Smooth random RGB images (uint8): a coarse 8 x 8 random field upsampled to 128 x 128."""
    coarse = torch.rand(n, 3, 8, 8, generator=generator)
    return (torch.nn.functional.interpolate(coarse, size=128, mode="bilinear", align_corners=False) * 255).to(
        torch.uint8
    )


def preset_sequences(root: Path) -> dict:
    from ppl_attention.completion.database import GeneratorSource
    from ppl_attention.completion.importance import ImportanceCompletion
    from ppl_attention.completion.pca_index import PCAIndexConfig
    from ppl_attention.completion.prior import build_prior
    from ppl_attention.design.sequential import DesignProblem, DesignSettings, greedy_sequence
    from ppl_attention.sensor import Sensor
    from ppl_attention.posterior.network import AVPConfig, build_avp

    torch.manual_seed(0)
    grid = Sensor.cub()
    source = GeneratorSource(
        lambda n, g: (blurred_images(n, g), torch.randint(0, 4, (n,), generator=g)), (3, 128, 128), (), "blurred"
    )
    build_prior(root / "prior", source, 60, grid, PCAIndexConfig(components=6, fit_samples=60), progress=False)
    avp = build_avp(
        AVPConfig(grid=grid.to_dict(), channels=3, num_classes=4, width=4, mean=(0.5,) * 3, std=(0.25,) * 3)
    ).eval()
    sampler = ImportanceCompletion.from_prior(root / "prior", k1=40, sigma=[80.0])
    problem = DesignProblem(avp, sampler, grid, channels=3)
    images = blurred_images(2, torch.Generator().manual_seed(7)).float() / 255
    out = {"locations": [], "epe": []}
    with torch.no_grad():
        for i in range(2):
            seq = greedy_sequence(problem, images[i], DesignSettings(T=2, num_samples=8), seed=100 + i)
            out["locations"].append(seq.locations.tolist())
            out["epe"].append(seq.epe.double().tolist())
    return out


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        result = preset_sequences(Path(tmp))
    Path(sys.argv[1]).write_text(json.dumps(result))
    print(result["locations"])
