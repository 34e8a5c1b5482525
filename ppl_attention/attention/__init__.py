"""Hard-attention network and its partially supervised training (RAM, RAM+, PS-NOGS, PS-H1/H5, PS-HGS).

Read in this order: :mod:`.network` (the model), :mod:`.policy` (its location policies), :mod:`.supervision`
(where supervision sequences come from), :mod:`.train_config` (a run's settings), :mod:`.trainer` (losses,
validation, checkpoints), :mod:`.run` (one complete run), :mod:`.convergence` and :mod:`.stopping` (iterations
to convergence; adaptive stopping).
"""

from .convergence import convergence_summary, iterations_to_convergence
from .network import HardAttentionNet, NetworkConfig, Rollout, classifier_flops, flops_per_glimpse
from .policy import POLICIES, LocationPolicy
from .run import RunConfig, build_network, load_run_network, train_run
from .stopping import gain_targets, stopping_curve, stopping_times
from .supervision import Supervision, build_supervision, choose_supervised, heuristic_sequences
from .trainer import SplitData, TrainConfig, Trainer

__all__ = [
    "HardAttentionNet",
    "NetworkConfig",
    "Rollout",
    "flops_per_glimpse",
    "classifier_flops",
    "POLICIES",
    "LocationPolicy",
    "Supervision",
    "build_supervision",
    "choose_supervised",
    "heuristic_sequences",
    "TrainConfig",
    "Trainer",
    "SplitData",
    "RunConfig",
    "train_run",
    "build_network",
    "load_run_network",
    "iterations_to_convergence",
    "convergence_summary",
    "gain_targets",
    "stopping_curve",
    "stopping_times",
]
