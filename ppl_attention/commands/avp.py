"""``ppl-attention train-avp`` / ``evaluate-avp``: train the attentional variational posterior and measure its
accuracy, NLL and calibration against the number of random glimpses.

``train-avp`` runs under ``torchrun --nproc_per_node N`` too (DistributedDataParallel; rank 0 writes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import add_config_arguments
from ._common import add_command, stage_options
from ._dataset import add_dataset_arguments


def register(sub, common):
    from ..posterior.training import TrainAVPConfig

    p = add_command(sub, common, "train-avp", run_train, out="output AVP directory")
    add_dataset_arguments(p, default="cluttered-mnist")
    p.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="training canvases per epoch for MNIST datasets (fresh canvases every epoch)",
    )
    p.add_argument(
        "--exclude-design",
        type=int,
        default=None,
        metavar="N",
        help="leave the first N training images (for MNIST: every canvas of their digits) out of training, "
        "so that `generate --num-images N` may design for them (no oracle); recorded in the manifest",
    )
    add_config_arguments(p, TrainAVPConfig)
    _register_evaluate(sub, common)


def _register_evaluate(sub, common) -> None:
    """The ``evaluate-avp`` subcommand and its flags."""
    e = add_command(sub, common, "evaluate-avp", run_evaluate)
    e.add_argument("dir", type=Path, help="AVP directory written by train-avp")
    add_dataset_arguments(e, reads="the AVP")
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument(
        "--glimpses", dest="max_glimpses", type=int, default=None, help="largest t (default: the T it was trained with)"
    )
    e.add_argument("--max-glimpses", dest="max_glimpses", type=int, default=None, help=argparse.SUPPRESS)
    e.add_argument("--batch-size", type=int, default=512, help="masked images per forward pass")
    e.add_argument("--draws", type=int, default=20, help="random glimpse sets per image and t (default: 20)")
    e.add_argument("--bins", type=int, default=15, help="confidence bins of the ECE (default: 15)")
    e.add_argument(
        "--recalibrate",
        action="store_true",
        help="refit the calibration (a temperature or "
        "temperatures per observed fraction) on the validation split before evaluating, and save it",
    )
    e.add_argument(
        "--calibration-draws",
        type=int,
        default=10,
        help="random glimpse sets per validation image and t for --recalibrate (default: 10)",
    )


def run_train(args):
    """Train the attentional variational posterior on masked images with t ~ U{0..T} random glimpses; keeps the
    best validation-NLL epoch, stops early, resumes from DIR's checkpoint, calibrates a temperature. Writes
    DIR/avp.safetensors, avp.json, manifest.json."""
    from ..pipeline import train_avp

    train_avp(**stage_options(args))
    return 0


def run_evaluate(args):
    """Evaluate a trained AVP directory on the test split: every image under --draws random glimpse sets per t;
    ECE with a bootstrap 95% interval over images and the noise floor of a perfectly calibrated predictor. Writes
    DIR/evaluation.json, DIR/summary.json and DIR/avp_evaluation.png (evaluation_summary.json; train-avp's
    summary.json is kept). The dataset, its root, split seed and options are read from DIR's manifest (so the
    test split is the one the AVP was trained beside); a contradicting flag is an error. --recalibrate first
    refits the calibration on the validation split and rewrites DIR's weights and manifest."""
    from ..pipeline import evaluate

    options = stage_options(args)
    evaluate(options.pop("dir"), **options)
    return 0
