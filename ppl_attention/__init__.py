"""ppl_attention: near-optimal glimpse sequences by Bayesian optimal experimental design, and hard-attention
networks trained with them as partial supervision (PS-NOGS)."""
import logging as _logging

# faiss's loader logs at INFO every CPU-specific build it tries and fails to load (with a ModuleNotFoundError),
# which reads like a failure; only its warnings are worth showing.  Set here, before anything imports faiss.
_logging.getLogger("faiss.loader").setLevel(_logging.WARNING)

from .data import load_dataset
from .pipeline import (AVPHandle, Dataset, PriorHandle, RunHandle, SequencesHandle, build_prior, design_sequences,
                       evaluate, tensor_dataset, train_attention, train_avp)
from .sensor import GlimpseGrid, Sensor
from .sequences import read_paper_sequences, write_paper_sequences

__all__ = ["Sensor", "GlimpseGrid", "load_dataset", "read_paper_sequences", "write_paper_sequences",
           "train_avp", "build_prior", "design_sequences", "train_attention", "evaluate", "tensor_dataset", "Dataset",
           "AVPHandle", "PriorHandle", "SequencesHandle", "RunHandle"]
