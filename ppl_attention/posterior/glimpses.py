"""Random glimpse sets for training and evaluating the AVP: t ~ U{0..T}, locations uniform over the grid."""

from __future__ import annotations

import torch

from ..sensor import NO_GLIMPSE, Sensor

__all__ = ["random_locations"]


def random_locations(
    grid: Sensor,
    batch: int,
    max_glimpses: int,
    generator: torch.Generator | None = None,
    num_glimpses: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """(batch, max_glimpses) uniform locations; entries past each row's count are ``NO_GLIMPSE``.

    ``num_glimpses``: an int (every row), a (batch,) tensor, or None for t ~ U{0, ..., max_glimpses}.
    """
    if max_glimpses < 0:
        raise ValueError(f"`max_glimpses` must be >= 0, got {max_glimpses}")
    loc = torch.randint(grid.num_locations, (batch, max_glimpses), generator=generator)
    if num_glimpses is None:
        num_glimpses = torch.randint(max_glimpses + 1, (batch,), generator=generator)
    t = torch.as_tensor(num_glimpses).expand(batch)
    if bool((t < 0).any()) or bool((t > max_glimpses).any()):
        raise ValueError(f"`num_glimpses` must lie in [0, {max_glimpses}], got {t.tolist()[:5]}...")
    keep = torch.arange(max_glimpses).unsqueeze(0) < t.unsqueeze(1)
    return torch.where(keep, loc, torch.full_like(loc, NO_GLIMPSE))
