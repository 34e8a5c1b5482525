"""Stochastic image completion: samples of r(image | glimpses seen so far).

- :mod:`.base`: the :class:`Completion` interface and :class:`CompletionSamples` (every sampler keeps it).
- :mod:`.database`: an on-disk, memory-mapped image database (the empirical prior's support), built in
  resumable chunks from a generator, a generative model or a dataset.
- :mod:`.pca_index`: a faiss PCA of that database; codes and glimpse energies stored on disk.
- :mod:`.importance`: the paper's importance sampler over the database (Algorithm 2) and :func:`open_prior`.
- :mod:`.prior`: :func:`build_prior` (database + index in one directory, kind "prior"), :data:`PRIORS` (the
  kinds of prior directory) and :func:`open_completion`, the sampler of any prior directory.
- :mod:`.canvas`: the MNIST canvases' own generative process (digit x offset x clutter) as a Pyro program, and
  the index of its digit pool; :mod:`.clutter_noise`: its observation model.
- :mod:`.generative`: importance sampling over (digit, offset): :class:`GenerativeCompletion`; its artefact
  (:mod:`.generative_prior`): :func:`build_generative_prior`, :func:`open_generative_prior` (a prior whose
  manifest says ``"generative"``).

The heavy modules (faiss, memmaps) are imported on first use of their names.
"""

from .base import Completion, CompletionSamples, check_observations, check_true_image

__all__ = [
    "Completion",
    "CompletionSamples",
    "check_observations",
    "check_true_image",
    "ImageDatabase",
    "build_database",
    "mnist_canvas_source",
    "PCAIndex",
    "PCAIndexConfig",
    "build_pca_index",
    "ImportanceCompletion",
    "open_prior",
    "build_prior",
    "CanvasPrior",
    "GenerativeCompletion",
    "build_generative_prior",
    "open_generative_prior",
    "open_completion",
    "prior_type",
    "prior_kind",
    "PRIORS",
]

_LAZY = {
    "ImageDatabase": "database",
    "build_database": "database",
    "mnist_canvas_source": "database",
    "PCAIndex": "pca_index",
    "PCAIndexConfig": "pca_index",
    "build_pca_index": "pca_index",
    "ImportanceCompletion": "importance",
    "open_prior": "importance",
    "build_prior": "prior",
    "CanvasPrior": "canvas",
    "GenerativeCompletion": "generative",
    "build_generative_prior": "generative_prior",
    "open_generative_prior": "generative_prior",
    "open_completion": "prior",
    "prior_type": "prior",
    "prior_kind": "prior",
    "PRIORS": "prior",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
