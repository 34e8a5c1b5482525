"""Command-line pieces several test files share: each stage's tiny settings and the digits folder's options, written
once so that a test reads as the command it runs."""

#: The dataset options of the 16 x 16 digit PNGs of :func:`ppl_attention.data.fixtures.make_digits_folder` (one
#: through ``--option``, the alias of ``--dataset-option``).
FOLDER_FLAGS = ["--dataset-option", "size=16", "--dataset-option", "channels=1", "--option", "glimpse_size=4"]
FOLDER_FLAGS += ["--dataset-option", "stride=4", "--dataset-option", "noise_schedule=60,80"]
#: A one-epoch AVP of width 4 (``train-avp``).
TINY_AVP = ["--epochs", "1", "--width", "4", "--batch-size", "32"]
#: A 1000-image database prior on 4 principal components (``build-prior``).
TINY_PRIOR = ["--database-size", "1000", "--components", "4", "--fit-samples", "50", "--chunk-size", "40"]
#: One epoch of the smallest CNN baseline at 16 pixels (``baselines``).
TINY_BASELINES = ["--archs", "mobilenet_v2", "--widths", "0.25", "--resolutions", "16", "--epochs", "1"]
#: No progress bar and no TensorBoard log (``train``).
QUIET_TRAIN = ["--no-progress", "--tensorboard", "false"]


def folder_dataset(root, seed=1) -> list[str]:
    """``--dataset folder`` at ``root`` with split seed ``seed`` and the digits folder's options."""
    return ["--dataset", "folder", "--root", str(root), "--data-seed", str(seed), *FOLDER_FLAGS]


def tiny_train(glimpses=2, iterations=2) -> list[str]:
    """A quiet ``train`` run of 8 hidden units on batches of 8, validated every 2 iterations."""
    sizes = ["--validate-every", "2", "--batch-size", "8", "--hidden", "8", "--glimpses", str(glimpses)]
    return ["--iterations", str(iterations), *sizes, *QUIET_TRAIN]


def generate_argv(avp, prior, device="cpu") -> list[str]:
    """The start of a ``generate`` command that designs with the AVP at ``avp`` and the prior at ``prior``."""
    return ["generate", "--device", device, "--avp", str(avp), "--prior", str(prior)]


def train_avp_argv(out) -> list[str]:
    """A ``train-avp`` run on the CPU into ``out``: 16 training images, one epoch, width 4, up to 2 glimpses."""
    sizes = ["--train-size", "16", "--epochs", "1", "--width", "4", "--glimpses", "2"]
    return ["train-avp", "--device", "cpu", "--out", str(out), *sizes]


def untrained_avp_and_prior(root, seed=0) -> None:
    """An untrained width-4 AVP (``root / "avp"``, drawn at torch seed ``seed``) and a 200-canvas database prior
    (``root / "prior"``) on the cluttered-MNIST retina: the smallest inputs a design runs on."""
    import torch

    from ppl_attention.completion.database import mnist_canvas_source
    from ppl_attention.completion.pca_index import PCAIndexConfig
    from ppl_attention.completion.prior import build_prior
    from ppl_attention.posterior.network import AVPConfig, build_avp, save_avp
    from ppl_attention.sensor import Sensor

    grid = Sensor.retina()
    torch.manual_seed(seed)
    save_avp(build_avp(AVPConfig(grid=grid.to_dict(), width=4)), root / "avp", "cluttered-mnist", 2)
    index = PCAIndexConfig(components=6, fit_samples=200)
    build_prior(root / "prior", mnist_canvas_source(), 200, grid, index, progress=False)


def untrained_avp_and_generative_prior(root) -> None:
    """An untrained width-4 AVP (``root / "avp"``) on 40-canvas translated MNIST with one scale, and the generative
    prior of its dataset (``root / "gp"``): the smallest inputs of the honest-design measurements."""
    import torch

    from ppl_attention.cli import main
    from ppl_attention.data.spec import DatasetSpec
    from ppl_attention.posterior.network import AVPConfig, build_avp, save_avp

    spec = DatasetSpec.make("translated-mnist", options={"size": 40, "scales": 1})
    grid = spec.load("valid").grid
    torch.manual_seed(0)
    avp = build_avp(AVPConfig(grid=grid.to_dict(), width=4))
    save_avp(avp, root / "avp", "translated-mnist", 2, extra_config={"data": spec.to_dict()})
    assert main(["build-prior", "--dataset-from", str(root / "avp"), "--out", str(root / "gp")]) == 0
