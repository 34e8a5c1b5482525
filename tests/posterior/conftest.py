"""A tiny synthetic labelled-image dataset with the ``ppl_attention.data`` attributes, for fast AVP tests.

Class k of K = 4 puts a bright 6 x 6 square in quadrant k of a noisy 24 x 24 image, so a glimpse at the right
place reveals the label and no glimpse leaves it at chance.
"""

import pytest
import torch

from ppl_attention.sensor import Sensor
from ppl_attention.runtime import derive_seed, generator


class ToyDataset(torch.utils.data.Dataset):
    name = "toy"
    num_classes = 4
    channels = 1
    image_size = (24, 24)
    task = "categorical"
    allows_flip = False
    class_names = ["tl", "tr", "bl", "br"]

    def __init__(self, n=64, seed=0, split="train"):
        self.n, self.seed, self.split = n, seed, split
        self.grid = Sensor(24, 8, stride=4)
        self.set_epoch(0)

    def set_epoch(self, epoch):
        g = generator(derive_seed(self.seed, self.split, epoch))
        self.labels = torch.randint(4, (self.n,), generator=g)
        images = 0.2 * torch.rand(self.n, 1, 24, 24, generator=g)
        r = (self.labels // 2) * 12 + torch.randint(0, 6, (self.n,), generator=g)
        c = (self.labels % 2) * 12 + torch.randint(0, 6, (self.n,), generator=g)
        rr, cc = torch.arange(24).view(1, 24, 1), torch.arange(24).view(1, 1, 24)
        sq = (
            (rr >= r.view(-1, 1, 1))
            & (rr < r.view(-1, 1, 1) + 6)
            & (cc >= c.view(-1, 1, 1))
            & (cc < c.view(-1, 1, 1) + 6)
        )
        self.images = torch.where(sq.unsqueeze(1), torch.ones_like(images), images)
        self.mean, self.std = torch.tensor([float(self.images.mean())]), torch.tensor([float(self.images.std())])

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"image": self.images[i], "label": self.labels[i], "index": torch.tensor(i)}


@pytest.fixture
def toy():
    return ToyDataset
