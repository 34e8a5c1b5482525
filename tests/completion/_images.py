"""Small synthetic image families the completion tests build databases from."""

import torch


def bump_images(n: int, g: torch.Generator, spread: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` 1 x 12 x 12 images of two smooth bumps each (a low-dimensional family, well captured by PCA), and the
    bumps' centres ``(n, 2, 2)`` (bump, row / col) for the tests to label them by."""
    centres = torch.rand(n, 2, 2, generator=g) * 12
    ar = torch.arange(12).float()
    d = (ar[None, None, :, None] - centres[:, :, 0, None, None]) ** 2 + (
        ar[None, None, None, :] - centres[:, :, 1, None, None]
    ) ** 2
    return torch.exp(-d / spread).amax(1, keepdim=True), centres
