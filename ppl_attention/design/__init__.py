"""Near-optimal glimpse sequences by sequential Bayesian optimal experimental design (the paper's section 4).

- :mod:`.epe`: expected posterior entropy estimators (the paper's eq. 6; Pyro's ``posterior_eig`` / ``nmc_eig``).
- :mod:`.search`: exhaustive grid search, successive halving, coarse-to-fine, racing (paired sequential tests).
- :mod:`.sequential`: the greedy loop (Algorithm 1) over a generic :class:`DesignProblem`.
- :mod:`.store`: the on-disk sequence store (records, manifest, first-glimpse cache).
- :mod:`.executors`: local / Ray generation into a store, resumable and shardable.
- :mod:`.evaluate`: accuracy along generated, random and first-glimpse-heuristic sequences.
- :mod:`.amortised`: the EPE-map network (every location's EPE in one pass) for the amortised and hybrid searches.
- :mod:`.distill`: its training on the maps of exhaustive sequence stores.
- :mod:`.regret`: regret of the amortised / hybrid choices against the exhaustive search, every search timed.
- :mod:`.toy`: enumerable database problems (exact posterior, exact completions, exact EPE).
"""

from .epe import entropy_matrix, expected_posterior_entropy
from .search import SEARCHES, SearchResult, coarse_to_fine, exhaustive_search, racing, run_search, successive_halving
from .sequential import DesignProblem, DesignSettings, SequenceResult, first_glimpse_epe, greedy_sequence, image_seed
from .store import SequenceStore

__all__ = [
    "expected_posterior_entropy",
    "entropy_matrix",
    "SearchResult",
    "exhaustive_search",
    "successive_halving",
    "coarse_to_fine",
    "racing",
    "SEARCHES",
    "run_search",
    "DesignProblem",
    "DesignSettings",
    "SequenceResult",
    "first_glimpse_epe",
    "greedy_sequence",
    "image_seed",
    "SequenceStore",
]
