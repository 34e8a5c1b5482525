"""Train and evaluate one CNN baseline; sweep architectures x widths x resolutions, one result file per point.

Each point's result is written atomically to ``DIR/points/<arch>_w<width>_r<res>.json``, so an interrupted sweep
resumes where it stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..artifacts import atomic_write_json, read_json
from ..config import config_to_dict, setting
from ..runtime import derive_seed
from .cnn import BaselineConfig, build_baseline
from .flops import count_flops

if TYPE_CHECKING:
    import os
    from typing import Sequence
    from torch.utils.data import Dataset

__all__ = ["TrainBaselineConfig", "train_baseline", "sweep_baselines", "evaluate_classifier"]

log = logging.getLogger(__name__)


@dataclass
class TrainBaselineConfig:
    epochs: int = setting(5, "training epochs per baseline")
    batch_size: int = setting(64, "minibatch size")
    lr: float = setting(1e-3, "Adam learning rate")
    weight_decay: float = setting(1e-4, "Adam weight decay")


def _loader(dataset, batch_size, shuffle, seed):
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=g, num_workers=0)


def _labels(batch) -> torch.Tensor:
    label = batch["label"]
    if label.dim() != 1:
        raise ValueError(f"CNN baselines need categorical labels of shape (B,), got shape {tuple(label.shape)}")
    return label.long()


@torch.no_grad()
def evaluate_classifier(
    model: torch.nn.Module, dataset: Dataset, batch_size: int = 256, device: str | torch.device = "cpu"
) -> dict:
    """Accuracy and mean cross-entropy of ``model`` on ``dataset``."""
    model.eval()
    correct = total = 0
    nll = 0.0
    for batch in _loader(dataset, batch_size, False, 0):
        x, y = batch["image"].to(device), _labels(batch).to(device)
        logits = model(x)
        nll += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(-1) == y).sum())
        total += len(y)
    if total == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    return {"accuracy": correct / total, "nll": nll / total}


def train_baseline(
    arch: BaselineConfig, train: TrainBaselineConfig, datasets: dict, seed: int = 0, device: str | torch.device = "cpu"
) -> dict:
    """Train ``arch`` on ``datasets['train']``, keep the epoch with the best validation accuracy, test it."""
    torch.manual_seed(derive_seed(seed, "baseline", arch.arch, arch.width, arch.resolution))
    model = build_baseline(arch).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    best = {"accuracy": -1.0}
    best_state = None
    image = datasets["train"][0]["image"]
    flops = count_flops(model, image.unsqueeze(0).to(device))
    curve = []
    for epoch in tqdm(range(train.epochs), desc=f"{arch.arch} c={arch.width} r={arch.resolution}", leave=False):
        if hasattr(datasets["train"], "set_epoch"):
            datasets["train"].set_epoch(epoch)
        model.train()
        for batch in _loader(datasets["train"], train.batch_size, True, derive_seed(seed, "order", epoch)):
            x, y = batch["image"].to(device), _labels(batch).to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        val = evaluate_classifier(model, datasets["valid"], device=device)
        curve.append({"epoch": epoch, **val})
        if val["accuracy"] > best["accuracy"]:
            best = val
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    test = evaluate_classifier(model, datasets["test"], device=device)
    return {
        "config": config_to_dict(arch),
        "train": config_to_dict(train),
        "seed": seed,
        "flops": flops,
        "params": sum(p.numel() for p in model.parameters()),
        "valid_accuracy": best["accuracy"],
        "test_accuracy": test["accuracy"],
        "test_nll": test["nll"],
        "curve": curve,
    }


def sweep_baselines(
    datasets: dict,
    out_dir: str | os.PathLike,
    archs: Sequence[str] = ("mobilenet_v2", "shufflenet_v2"),
    widths: Sequence[float] = (0.25, 0.5, 1.0),
    resolutions: Sequence[int] = (28, 60),
    train: TrainBaselineConfig | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list:
    """Every (arch, width, resolution) point; finished points (their JSON exists) are read, not retrained, and
    refused when they were trained with other settings or another seed."""
    train = train or TrainBaselineConfig()
    sample = datasets["train"][0]
    channels = sample["image"].shape[0]
    num_classes = getattr(datasets["train"], "num_classes", None)
    if num_classes is None:
        raise ValueError("the training dataset must expose num_classes")
    results = []
    points = Path(out_dir) / "points"
    for arch, width, res in product(archs, widths, resolutions):
        path = points / f"{arch}_w{width:g}_r{res}.json"
        if path.exists():
            done = read_json(path)
            if done.get("train") != config_to_dict(train) or done.get("seed") != seed:
                raise ValueError(
                    f"{path} was trained with {done.get('train')} (seed {done.get('seed')}), not "
                    f"{config_to_dict(train)} (seed {seed}); use another output directory"
                )
            results.append(done)
            continue
        cfg = BaselineConfig(
            arch=arch, width=float(width), resolution=int(res), in_channels=channels, num_classes=num_classes
        )
        result = train_baseline(cfg, train, datasets, seed=seed, device=device)
        atomic_write_json(path, result)
        log.info(
            "%s c=%g r=%d: %.1f MFLOPs, test accuracy %.3f",
            arch,
            width,
            res,
            result["flops"] / 1e6,
            result["test_accuracy"],
        )
        results.append(result)
    return results
