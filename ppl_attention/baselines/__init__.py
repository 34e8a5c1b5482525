"""Low-FLOP CNN baselines (MobileNetV2, ShuffleNetV2 over width multipliers and input resolutions) and FLOP
counting, for the accuracy-versus-computation comparison of the workshop paper (its Figure 7)."""

from .cnn import BaselineConfig, build_baseline
from .flops import count_flops

__all__ = ["BaselineConfig", "build_baseline", "count_flops"]
