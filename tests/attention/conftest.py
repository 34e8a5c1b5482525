"""A toy task for the attention tests: 12 x 12 images, 4 x 4 glimpses on a 3 x 3 grid, 3 classes.

The class is drawn as a vertical bar in the top-left cell (location 0) only; every other pixel is faint noise
that changes each epoch.  A network must look at location 0 to classify.
"""

import pytest
import torch

from ppl_attention.sensor import Sensor
from ppl_attention.runtime import derive_seed, generator


class ToyDataset(torch.utils.data.Dataset):
    task = "categorical"
    num_classes = 3
    channels = 1
    allows_flip = False
    class_names = ("0", "1", "2")
    image_size = (12, 12)

    def __init__(self, n=96, split="train", seed=0):
        self.name, self.split, self.seed, self.n = "toy", split, seed, n
        self.grid = Sensor(12, 4, stride=4)
        self.labels = torch.arange(n) % 3
        self.mean, self.std = torch.tensor([0.1]), torch.tensor([0.2])
        self.bboxes = torch.tensor([[0.0, 0.0, 4.0, 4.0]]).expand(n, 4).clone()
        self.epoch = 0
        self._render(0)

    def _render(self, epoch):
        g = generator(derive_seed(self.seed, self.split, epoch if self.split == "train" else 0))
        images = torch.rand(self.n, 1, 12, 12, generator=g) * 0.1
        images[torch.arange(self.n), 0, 0:4, self.labels + 1] = 1.0
        self.images = images

    def set_epoch(self, epoch):
        if self.split == "train" and epoch != self.epoch:
            self._render(epoch)
        self.epoch = epoch

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"image": self.images[i], "label": self.labels[i], "index": torch.tensor(i), "bbox": self.bboxes[i]}


@pytest.fixture
def toy():
    return {"train": ToyDataset(96, "train"), "valid": ToyDataset(30, "valid"), "test": ToyDataset(30, "test")}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """The networks here are tiny (see tests/conftest.py's ``one_thread``)."""


@pytest.fixture
def resume_without(toy, tmp_path):
    """Run two of four toy iterations, let ``drop(manifest_config, checkpoint_meta)`` delete settings (as a run
    made before they existed), then resume: the resumed run's summary."""

    def run(drop):
        import json

        from ppl_attention.artifacts import load_checkpoint, save_checkpoint
        from ppl_attention.attention.network import NetworkConfig
        from ppl_attention.attention.run import RunConfig, train_run
        from ppl_attention.attention.trainer import TrainConfig

        cfg = TrainConfig(glimpses=2, iterations=4, batch_size=16, validate_every=2, tensorboard=False)
        net_cfg = NetworkConfig(hidden=16, glimpse_dim=8)
        args = (RunConfig(dataset="toy"), cfg, net_cfg, toy, tmp_path, 0, torch.device("cpu"))
        train_run(*args, progress=False, stop_at=2, figures=False)
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        path = tmp_path / "checkpoint" / "last.safetensors"
        tensors, meta = load_checkpoint(path)
        drop(manifest["config"], meta)
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
        save_checkpoint(path, tensors, meta)
        return train_run(*args, progress=False, figures=False)

    return run
