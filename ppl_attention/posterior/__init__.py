"""The attentional variational posterior (AVP): network, training, calibration, evaluation and Pyro guide."""

from .calibration import calibrate_avp, fit_temperature
from .evaluation import evaluate_avp
from .glimpses import random_locations
from .guide import AVPGuide
from .metrics import expected_calibration_error
from .network import (
    AVP,
    AVP_KIND,
    AVP_WEIGHTS,
    BACKBONES,
    HEADS,
    AVPConfig,
    build_avp,
    entropy_from_logits,
    load_avp,
    save_avp,
)
from .training import TrainAVPConfig, avp_config_for, train_avp

__all__ = [
    "AVP",
    "AVPConfig",
    "build_avp",
    "entropy_from_logits",
    "load_avp",
    "save_avp",
    "BACKBONES",
    "HEADS",
    "AVP_WEIGHTS",
    "AVP_KIND",
    "AVPGuide",
    "TrainAVPConfig",
    "train_avp",
    "avp_config_for",
    "evaluate_avp",
    "calibrate_avp",
    "fit_temperature",
    "expected_calibration_error",
    "random_locations",
]
