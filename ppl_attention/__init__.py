"""ppl_attention: near-optimal glimpse sequences by Bayesian optimal experimental design, and hard-attention
networks trained with them as partial supervision (PS-NOGS).

The names below are imported on first use, so that ``ppl-attention --help`` starts without torch.
"""

import importlib as _importlib
import logging as _logging

# faiss's loader logs at INFO every CPU-specific build it tries and fails to load (with a ModuleNotFoundError),
# which reads like a failure; only its warnings are worth showing.  Set here, before anything imports faiss.
_logging.getLogger("faiss.loader").setLevel(_logging.WARNING)

__version__ = "0.1.0"

#: The pipeline's public names (``ppl_attention.pipeline.__all__`` is this list), importable from the package.
PIPELINE_NAMES = (
    "train_avp",
    "build_prior",
    "design_sequences",
    "train_attention",
    "evaluate",
    "train_epe_net",
    "evaluate_epe_net",
    "evaluate_design",
    "calibrate_noise",
    "policy_sequences",
    "train_baselines",
    "plot",
    "plot_attention",
    "tensor_dataset",
    "Dataset",
    "AVPHandle",
    "PriorHandle",
    "SequencesHandle",
    "RunHandle",
    "EPENetHandle",
)

_WHERE = {
    "Sensor": "sensor",
    "load_dataset": "data",
    "read_paper_sequences": "sequences",
    "write_paper_sequences": "sequences",
    **{name: "pipeline" for name in PIPELINE_NAMES},
}

__all__ = list(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        value = getattr(_importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
