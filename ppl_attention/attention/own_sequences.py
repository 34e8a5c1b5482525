"""PS-RAM's supervision: a trained network's own greedy glimpse sequences, written into a sequence store.

The control the paper's final version adds: supervise a fresh network with the sequences of a trained RAM (as many
as PS-NOGS's near-optimal ones, on the same training images), so what near-optimal design adds over "sequences a
good policy takes" is measured.  The sequences are taken on the epoch-0 training canvases, the ones a supervised
image keeps in training, and the store records the run's dataset spec and split like a designed one, so
``train --supervision nogs --sequences STORE`` takes it as it takes any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..design.store import SequenceStore
from .network import HardAttentionNet
from .trainer import SplitData

if TYPE_CHECKING:
    import os
    from typing import Sequence

__all__ = ["greedy_sequences", "write_policy_sequences"]


@torch.no_grad()
def greedy_sequences(
    net: HardAttentionNet, data: SplitData, indices: torch.Tensor, glimpses: int, batch_size: int = 500
) -> torch.Tensor:
    """(N, glimpses) greedy locations of ``net`` on the epoch-0 canvases of ``data``'s images ``indices``."""
    if glimpses < 1:
        raise ValueError(f"`glimpses` must be >= 1, got {glimpses}")
    data.set_epoch(0)
    device, was_training = net.h0.device, net.training
    net.eval()
    out = []
    for start in range(0, len(indices), batch_size):
        images, _ = data.batch(indices[start : start + batch_size])
        out.append(net(images.to(device), glimpses, policy="greedy").locations.cpu())
    net.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, glimpses, dtype=torch.long)


def write_policy_sequences(
    net: HardAttentionNet,
    data: SplitData,
    indices: Sequence[int] | torch.Tensor,
    glimpses: int,
    store_dir: str | os.PathLike,
    config: dict,
    batch_size: int = 500,
) -> SequenceStore:
    """Write ``net``'s greedy sequences of the training images ``indices`` into the store ``store_dir``.

    ``config``: what the store records besides its grid and T: at least ``dataset``, ``task`` and ``data`` (the
    training data's spec), plus what identifies the network (its weights' checksum), so that a store is never
    resumed with another network's sequences.  The split is always ``train``."""
    indices = torch.as_tensor(indices, dtype=torch.long).unique()
    if len(indices) == 0:
        raise ValueError("`indices` must name at least one training image")
    if int(indices.min()) < 0 or int(indices.max()) >= len(data):
        raise ValueError(
            f"`indices` must lie in the training split (0..{len(data) - 1}), got "
            f"{int(indices.min())}..{int(indices.max())}"
        )
    store_config = {**config, "grid": net.grid.to_dict(), "T": int(glimpses), "split": "train", "source": "policy"}
    store = SequenceStore.create(Path(store_dir), store_config)
    todo = torch.tensor([i for i in indices.tolist() if not store.has(i)], dtype=torch.long)
    seqs = greedy_sequences(net, data, todo, glimpses, batch_size)
    for i, s in zip(todo.tolist(), seqs):  # one small JSON record per image
        store.write_record(i, None, s)
    return store
