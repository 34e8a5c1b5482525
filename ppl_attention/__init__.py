"""ppl_attention: near-optimal glimpse sequences by Bayesian optimal experimental design, and hard-attention
networks trained with them as partial supervision (PS-NOGS)."""
from .data import load_dataset
from .geometry import GlimpseGrid
from .sequences import read_paper_sequences, write_paper_sequences

__all__ = ["GlimpseGrid", "load_dataset", "read_paper_sequences", "write_paper_sequences"]
