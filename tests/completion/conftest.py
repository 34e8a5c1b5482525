"""Shared fixtures of the completion tests."""

import pytest
import torch


class ListDataset(torch.utils.data.Dataset):
    """Items ``{"image", "label"}`` from two in-memory sequences: the layout every dataset of the package yields."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": self.labels[i]}


@pytest.fixture
def list_dataset():
    """The :class:`ListDataset` class (tests are imported by path, so they cannot import this file)."""
    return ListDataset
