"""Supervision sequences for partially supervised training: which images, and which glimpses.

Sources (``kind``):
- ``nogs``: near-optimal sequences from a sequence store written by ``ppl-attention generate`` (PS-NOGS);
- ``h1`` / ``h5``: heuristic sequences, each location drawn independently from ``softmax(-gamma^-1 EPE_first)``
  with ``gamma^-1`` = 1 or 5 (paper, appendix B.3); EPE_first is the store's ``first_glimpse.json`` or a file;
- ``hgs``: hand-crafted sequences from annotations: for CUB the parts beak, eye, forehead, belly, feet (a hidden
  part replaced by a randomly chosen visible one); for MNIST canvases the digit's bounding box (its centre, then
  the centres of its four quadrants).

Which images are supervised is decided by a seed (:func:`choose_supervised`), never by file order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..sensor import Sensor, NO_GLIMPSE, check_sensor
from ..data.cub import CUB_PART_NAMES
from ..runtime import derive_seed, generator

if TYPE_CHECKING:
    import os
    from typing import Callable, Sequence

__all__ = [
    "Supervision",
    "choose_supervised",
    "heuristic_distribution",
    "heuristic_sequences",
    "bbox_sequences",
    "parts_sequences",
    "load_store_sequences",
    "check_store_data",
    "load_first_glimpse_epe",
    "build_supervision",
    "KINDS",
    "SOURCES",
    "CUB_PART_NAMES",
    "HGS_PARTS",
    "Method",
    "METHODS",
]

INVERSE_TEMPERATURE = {"h1": 1.0, "h5": 5.0}
#: The paper's hand-crafted order; each slot lists the parts that can fill it, preferred first.
HGS_PARTS = (("beak",), ("left eye", "right eye"), ("forehead",), ("belly",), ("left leg", "right leg"))


@dataclass
class Supervision:
    """Supervised training indices (N,) and their sequences (N, T); ``NO_GLIMPSE`` pads shorter sequences."""

    kind: str
    indices: torch.Tensor
    sequences: torch.Tensor

    def table(self, num_train: int, glimpses: int) -> torch.Tensor:
        """(num_train, glimpses) forced locations: the sequence for supervised rows, ``NO_GLIMPSE`` elsewhere."""
        if self.sequences.shape[1] > glimpses:
            raise ValueError(
                f"supervision sequences have {self.sequences.shape[1]} glimpses, longer than the "
                f"network's T={glimpses}; train with `glimpses` {self.sequences.shape[1]} or more"
            )
        if len(self.indices) and (int(self.indices.min()) < 0 or int(self.indices.max()) >= num_train):
            bad = self.indices[(self.indices < 0) | (self.indices >= num_train)][0]
            raise ValueError(f"supervised index {int(bad)} is outside the training split (indices 0..{num_train - 1})")
        table = torch.full((num_train, glimpses), NO_GLIMPSE, dtype=torch.long)
        table[self.indices, : self.sequences.shape[1]] = self.sequences
        return table


def choose_supervised(candidates: Sequence[int] | torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` of the ``candidates`` indices, chosen by a seeded permutation of their sorted values (sorted result)."""
    cand = torch.unique(torch.as_tensor(candidates, dtype=torch.long))  # sorted: independent of input order
    if n < 0:
        raise ValueError(f"`num_supervised` must be >= 0, got {n}")
    if n > len(cand):
        raise ValueError(f"num_supervised={n} but only {len(cand)} training images have supervision sequences")
    perm = torch.randperm(len(cand), generator=generator(derive_seed(seed, "choose-supervised")))
    return cand[perm[:n]].sort().values


def heuristic_distribution(epe_first: Sequence[float] | torch.Tensor, inverse_temperature: float) -> torch.Tensor:
    """p(l) proportional to exp(-gamma^-1 EPE_first(l)) (paper, eq. 17), shape (L,)."""
    epe = torch.as_tensor(epe_first, dtype=torch.float64).flatten()
    if not bool(torch.isfinite(epe).all()):
        raise ValueError("epe_first holds NaN or infinite values; expected finite expected posterior entropies")
    return torch.softmax(-inverse_temperature * epe, 0).float()


def heuristic_sequences(
    epe_first: Sequence[float] | torch.Tensor, n: int, glimpses: int, inverse_temperature: float, seed: int
) -> torch.Tensor:
    """(n, glimpses) locations drawn independently at each step from :func:`heuristic_distribution`."""
    probs = heuristic_distribution(epe_first, inverse_temperature)
    g = generator(derive_seed(seed, "heuristic-sequences", inverse_temperature))
    if n * glimpses == 0:
        return torch.zeros(n, glimpses, dtype=torch.long)
    return torch.multinomial(probs, n * glimpses, replacement=True, generator=g).view(n, glimpses)


def bbox_sequences(bboxes: Sequence[Sequence[float]] | torch.Tensor, grid: Sensor, glimpses: int) -> torch.Tensor:
    """Hand-crafted MNIST sequences: the box centre, then its top-left, top-right, bottom-left, bottom-right
    quadrant centres (repeating if ``glimpses`` > 5); bboxes (n, 4) = (top, left, height, width) in pixels."""
    b = torch.as_tensor(bboxes, dtype=torch.float32)
    if b.dim() != 2 or b.shape[1] != 4:
        raise ValueError(f"`bboxes` must have shape (n, 4) = (top, left, height, width), got {tuple(b.shape)}")
    top, left, h, w = b.unbind(1)
    fr = torch.tensor([0.5, 0.25, 0.25, 0.75, 0.75])
    fc = torch.tensor([0.5, 0.25, 0.75, 0.25, 0.75])
    order = torch.arange(glimpses) % 5
    rows = top[:, None] + h[:, None] * fr[order] - 0.5
    cols = left[:, None] + w[:, None] * fc[order] - 0.5
    return grid.nearest(rows, cols)


def parts_sequences(
    parts: torch.Tensor, grid: Sensor, seed: int, part_names: Sequence[str] = CUB_PART_NAMES
) -> torch.Tensor:
    """Hand-crafted CUB sequences (n, 5): beak, eye, forehead, belly, feet; a hidden part is replaced by a
    visible part chosen at random (seeded); ``parts`` (n, P, 3) = (row, col, visible)."""
    p = torch.as_tensor(parts, dtype=torch.float32)
    if p.dim() != 3 or p.shape[2] != 3 or p.shape[1] != len(part_names):
        raise ValueError(
            f"`parts` must have shape (n, {len(part_names)}, 3) = (row, col, visible), got {tuple(p.shape)}"
        )
    n = p.shape[0]
    names = list(part_names)
    visible = p[..., 2] > 0.5  # (n, P)
    # A random visible part per (image, slot); images with nothing visible fall back to the image centre.
    weights = torch.where(visible.any(1, keepdim=True), visible.float(), torch.ones_like(visible.float()))
    u = torch.rand(n, len(HGS_PARTS), generator=generator(derive_seed(seed, "hgs")))
    # Inverse-CDF draw over visible parts, vectorised over images and slots.
    cdf = (weights / weights.sum(1, keepdim=True)).cumsum(1)  # (n, P)
    random_part = (u.unsqueeze(-1) > cdf.unsqueeze(1)).sum(-1).clamp(max=len(names) - 1)  # (n, 5)
    chosen = random_part.clone()
    for slot, options in enumerate(HGS_PARTS):  # loop over the 5 slots, not images
        for name in reversed(options):
            if name not in names:
                raise ValueError(f"part_names lacks {name!r}; expected CUB parts.txt names {list(CUB_PART_NAMES)}")
            j = names.index(name)
            chosen[:, slot] = torch.where(visible[:, j], torch.full_like(chosen[:, slot], j), chosen[:, slot])
    rc = p[torch.arange(n)[:, None], chosen, :2]  # (n, 5, 2) part pixels
    none_visible = ~visible.any(1)
    centre = torch.tensor([(grid.image_size[0] - 1) / 2, (grid.image_size[1] - 1) / 2])
    rc[none_visible] = centre
    return grid.nearest(rc[..., 0], rc[..., 1])


def load_first_glimpse_epe(
    source: str | os.PathLike | Sequence[float] | torch.Tensor, num_locations: int
) -> torch.Tensor:
    """EPE of every first location from a tensor/list, a ``first_glimpse.json`` file, or a store directory."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            from ..design.store import SequenceStore

            return load_first_glimpse_epe(SequenceStore.open(path).first_glimpse_epe().float(), num_locations)
        if not path.is_file():
            raise FileNotFoundError(
                f"epe_first: {path} does not exist (expected a first_glimpse.json with "
                "{\"epe\": [L floats]} or a sequence store holding one)"
            )
        try:
            source = json.loads(path.read_bytes().decode("utf-8"))["epe"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"epe_first: {path} must hold {{\"epe\": [L floats]}}: {e}") from None
    epe = torch.as_tensor(source, dtype=torch.float32).flatten()
    if epe.numel() != num_locations:
        raise ValueError(f"epe_first has {epe.numel()} values, expected one per grid location ({num_locations})")
    return epe


def check_store_data(store_dir: str | os.PathLike, config: dict, data_spec: dict | None) -> None:
    """Refuse a store designed on another split than the training one, or on canvases made with other dataset
    options than ``data_spec``'s (the training data's recorded spec): its sequences would point at other images."""
    split = config.get("split", "train")
    if split != "train":
        raise ValueError(
            f"`sequences` {store_dir} was designed on the {split!r} split, but supervision needs "
            f"sequences of the training images (split 'train')"
        )
    stored = (config.get("data") or {}).get("options")
    now = (data_spec or {}).get("options")
    if stored is not None and now is not None:
        diff = sorted(k for k in set(stored) | set(now) if stored.get(k) != now.get(k))
        if diff:
            both = "; ".join(f"{k}: store {stored.get(k)!r}, training data {now.get(k)!r}" for k in diff)
            raise ValueError(
                f"`sequences` {store_dir} was designed on canvases with other dataset options than "
                f"this run's training data ({both}); pass the store's `dataset_option` values"
            )


def load_store_sequences(
    store_dir: str | os.PathLike,
    dataset: str,
    grid: Sensor,
    glimpses: int,
    data_seed: int | None = None,
    data_spec: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices (N,), sequences (N, T_store)) from a sequence store, refusing one built for another task.

    ``data_seed``: the seed of the training data; the store's images were drawn with its own seed (the split
    and, for MNIST, the canvases depend on it), so another seed is refused.  ``data_spec``: the training data's
    recorded spec; a store designed on another split or with other options is refused (:func:`check_store_data`).
    """
    from ..design.store import SequenceStore

    store_dir = Path(store_dir)
    if not store_dir.is_dir():
        raise FileNotFoundError(f"`sequences` {store_dir} does not exist (expected a sequence store directory)")
    store = SequenceStore.open(store_dir)
    config = store.config
    if config.get("dataset") != dataset:
        raise ValueError(
            f"`sequences` {store_dir} was built for dataset {config.get('dataset')!r}, expected {dataset!r}"
        )
    store_seed = (config.get("data") or {}).get("seed", config.get("seed"))  # the split seed of its images
    if data_seed is not None and store_seed is not None and int(store_seed) != int(data_seed):
        raise ValueError(
            f"`sequences` {store_dir} was made for the training data of seed {store_seed}, but this "
            f"run's training data uses seed {data_seed}: pass `data_seed` {store_seed}"
        )
    check_store_data(store_dir, config, data_spec)
    check_sensor(store.grid, grid, f"--sequences {store_dir}", f"the dataset {dataset}'s sensor")
    seqs = store.sequences()
    if not seqs:
        raise ValueError(f"`sequences` {store_dir} holds no sequences")
    indices = torch.tensor(sorted(seqs), dtype=torch.long)
    lengths = {len(seqs[int(i)]) for i in indices}
    if max(lengths) > glimpses:
        raise ValueError(
            f"`sequences` {store_dir} holds sequences of {max(lengths)} glimpses, longer than T={glimpses}"
        )
    T = max(lengths)
    out = torch.full((len(indices), T), NO_GLIMPSE, dtype=torch.long)
    for row, i in enumerate(indices.tolist()):  # reading records (small), not a tensor loop
        s = torch.as_tensor(seqs[i]).long()
        out[row, : len(s)] = s
    if bool(((out != NO_GLIMPSE) & ((out < 0) | (out >= grid.num_locations))).any()):
        raise ValueError(f"`sequences` {store_dir} holds locations outside the grid's 0..{grid.num_locations - 1}")
    return indices, out


#: Supervised images of the heuristic supervisions (h1, h5, hgs) unless ``num_supervised`` says (the paper's 600).
DEFAULT_NUM_SUPERVISED = 600


def build_supervision(
    kind: str,
    num_train: int,
    grid: Sensor,
    glimpses: int,
    num_supervised: int | None,
    seed: int,
    dataset: str = "",
    sequences_dir: str | os.PathLike | None = None,
    epe_first: str | os.PathLike | Sequence[float] | torch.Tensor | None = None,
    annotations: Callable[[torch.Tensor], dict] | None = None,
    data_seed: int | None = None,
    data_spec: dict | None = None,
) -> Supervision | None:
    """The supervision of a run.

    Args:
        kind: one of :data:`KINDS` (``none`` returns None).
        num_supervised: supervised images; None: every image of the store (``nogs``), else
            :data:`DEFAULT_NUM_SUPERVISED`.
        num_train: size of the training split (supervised indices must lie in it).
        sequences_dir: the sequence store (``nogs``; also the default EPE_first source for ``h1``/``h5``).
        epe_first: EPE of the first glimpse (tensor, JSON file or store dir) for ``h1``/``h5``.
        annotations: callable ``indices -> dict`` with ``bbox`` (n, 4) or ``parts`` (n, P, 3) (+ ``part_names``)
            of those training images, for ``hgs``.
        data_seed: seed of the training data (its split and canvases); a ``nogs`` store made for other data is
            refused, since its sequences would point at the wrong places.
        data_spec: the training data's recorded spec (name, root, seed, options); a ``nogs`` store designed on
            another split or with other options is refused.
    """
    if kind not in KINDS:
        raise ValueError(f"`supervision` must be one of {list(KINDS)}, got {kind!r}")
    if kind == "none" or num_supervised == 0:
        return None
    request = _Request(
        kind,
        num_train,
        grid,
        glimpses,
        num_supervised,
        seed,
        dataset,
        sequences_dir,
        epe_first,
        annotations,
        data_seed,
        data_spec,
    )
    return SOURCES[kind](request)


@dataclass(frozen=True)
class _Request:
    """The arguments of :func:`build_supervision`, as its sources read them."""

    kind: str
    num_train: int
    grid: Sensor
    glimpses: int
    num_supervised: int | None
    seed: int
    dataset: str
    sequences_dir: object
    epe_first: object
    annotations: object
    data_seed: int | None
    data_spec: dict | None

    def chosen(self) -> torch.Tensor:
        """The supervised training images of a heuristic source (:data:`DEFAULT_NUM_SUPERVISED` by default)."""
        n = DEFAULT_NUM_SUPERVISED if self.num_supervised is None else self.num_supervised
        return choose_supervised(
            torch.arange(self.num_train), min(n, self.num_train) if self.num_supervised is None else n, self.seed
        )


def _store_source(r: _Request) -> Supervision:
    """``nogs``: the store's sequences, for ``num_supervised`` of its images (all of them by default)."""
    if r.sequences_dir is None:
        raise ValueError("supervision 'nogs' needs `sequences` DIR (a store written by `ppl-attention generate`)")
    cand, seqs = load_store_sequences(r.sequences_dir, r.dataset, r.grid, r.glimpses, r.data_seed, r.data_spec)
    if int(cand.min()) < 0 or int(cand.max()) >= r.num_train:
        bad = cand[(cand < 0) | (cand >= r.num_train)][0]
        raise ValueError(
            f"`sequences` {r.sequences_dir} holds index {int(bad)}, outside the training split "
            f"(indices 0..{r.num_train - 1})"
        )
    chosen = choose_supervised(cand, len(cand) if r.num_supervised is None else r.num_supervised, r.seed)
    return Supervision(r.kind, chosen, seqs[torch.searchsorted(cand, chosen)])


def _heuristic_source(r: _Request) -> Supervision:
    """``h1`` / ``h5``: locations drawn from the softmax of the first glimpse's EPE map."""
    source = r.epe_first if r.epe_first is not None else r.sequences_dir
    if source is None:
        raise ValueError(f"supervision {r.kind!r} needs `epe_first` FILE or `sequences` DIR with first_glimpse.json")
    epe = load_first_glimpse_epe(source, r.grid.num_locations)
    chosen = r.chosen()
    return Supervision(
        r.kind, chosen, heuristic_sequences(epe, len(chosen), r.glimpses, INVERSE_TEMPERATURE[r.kind], r.seed)
    )


def _annotation_source(r: _Request) -> Supervision:
    """``hgs``: hand-crafted sequences from the images' parts (CUB) or bounding boxes (MNIST canvases)."""
    if r.annotations is None:
        raise ValueError("supervision 'hgs' needs annotations (bounding boxes or CUB parts) of the training images")
    chosen = r.chosen()
    ann = r.annotations(chosen)
    if "parts" in ann and ann["parts"] is not None:
        seqs = parts_sequences(ann["parts"], r.grid, r.seed, ann.get("part_names") or CUB_PART_NAMES)
        seqs = seqs[:, : r.glimpses]
    elif "bbox" in ann and ann["bbox"] is not None:
        seqs = bbox_sequences(ann["bbox"], r.grid, r.glimpses)
    else:
        raise ValueError("supervision 'hgs' needs items with 'bbox' or 'parts'; this dataset has neither")
    return Supervision(r.kind, chosen, seqs)


#: The supervision sources by kind: the one registry :func:`build_supervision` and :data:`KINDS` follow.
SOURCES = {"nogs": _store_source, "h1": _heuristic_source, "h5": _heuristic_source, "hgs": _annotation_source}
#: ``none`` (RAM, no supervision) and the kinds of :data:`SOURCES`.
KINDS = ("none", *SOURCES)


@dataclass(frozen=True)
class Method:
    """A training method of the paper's comparison: its supervision kind (one of :data:`KINDS`) and whether it
    first pretrains on the heuristic's locations (RAM+)."""

    label: str  # its name in the paper's tables
    supervision: str
    pretrain: bool = False


#: The paper's training methods by name, in its Table 1 order: the one list the examples' comparisons and the demo
#: take their names, labels and settings from.
METHODS = {
    "none": Method("RAM", "none"),
    "ram+": Method("RAM+", "none", pretrain=True),
    "h1": Method("PS-H1", "h1"),
    "h5": Method("PS-H5", "h5"),
    "hgs": Method("PS-HGS", "hgs"),
    "nogs": Method("PS-NOGS", "nogs"),
}
