"""The generative-process prior as an artefact: :func:`build_generative_prior` writes it, :func:`open_generative_prior`
reads it back as a :class:`~.generative.GenerativeCompletion` (the inference lives in :mod:`.generative`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..artifacts import ArtifactError, load_weights, read_manifest, save_weights, write_manifest
from ..model import NoiseSchedule
from ..sensor import Sensor, check_sensor
from .canvas import DIGIT, CanvasPrior, DigitIndex
from .clutter_noise import ClutterNoise, measure_clutter
from .importance import PRIOR_KIND

if TYPE_CHECKING:
    import os
    from typing import Sequence

    from ..data.spec import DatasetSpec
    from .generative import GenerativeCompletion

__all__ = ["build_generative_prior", "open_generative_prior", "GENERATIVE", "DEFAULT_SIGMA"]

#: The manifest's ``config["prior"]`` of a generative-process prior (a database prior says ``"database"``).
GENERATIVE = "generative"
#: Default observation noise (0..255 after 1, 2, ... glimpses) of the generative prior; see docs/generative_prior.md.
DEFAULT_SIGMA = tuple(round(48.0 * math.sqrt(t), 1) for t in range(1, 6))


def build_generative_prior(
    out_dir: str | os.PathLike,
    spec: DatasetSpec,
    components: int = 24,
    prototypes: int = 32,
    seed: int = 0,
    sigma: Sequence[float] = DEFAULT_SIGMA,
    clutter_samples: int = 2000,
    command: dict | None = None,
) -> dict:
    """Write the generative-process prior of an MNIST canvas dataset (``spec``: a ``DatasetSpec``) to ``out_dir``:
    ``digits.safetensors`` (the training pool, its faiss PCA and k-means prototypes) and ``manifest.json``
    (kind "prior", ``config["prior"] = "generative"``, the dataset, the sensor, the clutter model, the noise)."""
    from ..artifacts import atomic_dir, clean_temporaries, file_checksum
    from ..data.mnist import load_digits

    out_dir = Path(out_dir)
    dataset = spec.load("valid")  # its sensor and canvas settings (valid: the smallest split to render)
    if not hasattr(dataset, "digits") or not hasattr(dataset, "cluttered"):
        raise ValueError(
            f"a generative prior models MNIST canvases (translated-mnist, cluttered-mnist, "
            f"cluttered-mnist-100); {spec.name} has no generative process here: use `kind` database"
        )
    t0 = time.perf_counter()
    digits, labels = load_digits("train")
    index = DigitIndex.fit(digits.float() / 255.0, components, prototypes, seed)
    noise = measure_clutter(dataset, clutter_samples, seed)
    config = _prior_config(spec, dataset, digits, index, noise, NoiseSchedule(tuple(float(s) for s in sigma)), seed)
    config["command"] = command or {}
    offsets = (dataset.canvas_size - DIGIT + 1) ** 2
    summary = {
        "prior": GENERATIVE,
        "digits": config["digits"],
        "offsets": offsets,
        "equivalent_canvases": config["digits"] * offsets,
        "components": config["components"],
        "prototypes": config["prototypes"],
        "clutter": noise.to_dict(),
        "out": str(out_dir),
    }
    if (out_dir / "manifest.json").is_file():
        _check_reuse(out_dir, config)
        return {**summary, "seconds": round(time.perf_counter() - t0, 2), "reused": True}
    if out_dir.exists() and any(out_dir.iterdir()):
        clean_temporaries(out_dir)
        if any(out_dir.iterdir()):
            raise ValueError(f"out_dir {out_dir} is not empty; choose a new directory for a generative prior")
    with atomic_dir(out_dir) as tmp:
        save_weights(
            Path(tmp) / "digits.safetensors",
            {"digits": digits, "labels": labels, **index.tensors()},
            {"digits": int(digits.shape[0]), "components": config["components"]},
        )
        write_manifest(tmp, PRIOR_KIND, config, inputs={"digits": file_checksum(Path(tmp) / "digits.safetensors")})
    return {**summary, "seconds": round(time.perf_counter() - t0, 2)}


def _prior_config(
    spec: DatasetSpec, dataset, digits, index: DigitIndex, noise: ClutterNoise, schedule: NoiseSchedule, seed: int
) -> dict:
    """The manifest's config of a generative prior (without the command that built it)."""
    data = spec.to_dict()
    data["seed"] = None  # the pool is the fixed training digits: no split seed
    config = {"prior": GENERATIVE, "dataset": spec.name, "data": data, "grid": dataset.grid.to_dict()}
    config.update(
        canvas_size=dataset.canvas_size,
        cluttered=bool(dataset.cluttered),
        n_clutter=dataset.n_clutter,
        clutter_size=dataset.clutter_size,
        pool="train",
        digits=int(digits.shape[0]),
    )
    config.update(
        components=int(index.components.shape[0]),
        prototypes=int(index.prototypes.shape[0]),
        seed=int(seed),
        clutter=noise.to_dict(),
        sigma=list(schedule.sigmas),
    )
    return config


def _check_reuse(out_dir: Path, config: dict) -> None:
    """Refuse an ``out_dir`` that holds another artefact, or a generative prior built with other settings."""
    found = read_manifest(out_dir)
    if found.get("kind") != PRIOR_KIND:
        raise ValueError(f"out_dir {out_dir} holds another kind of artefact; choose another directory")
    same = {k: v for k, v in found.get("config", {}).items() if k != "command"} == {
        k: v for k, v in config.items() if k != "command"
    }
    if not same:
        raise ValueError(f"out_dir {out_dir} already holds a prior built with other settings; choose another directory")


def open_generative_prior(directory: str | os.PathLike, grid: Sensor | None = None, **kw) -> GenerativeCompletion:
    """A :class:`GenerativeCompletion` from a prior directory of kind generative; refuses another sensor."""
    from ..artifacts import file_checksum
    from .generative import GenerativeCompletion

    directory = Path(directory)
    manifest = read_manifest(directory, PRIOR_KIND)
    config = manifest["config"]
    if config.get("prior") != GENERATIVE:
        raise ArtifactError(f"prior {directory} is a {config.get('prior', 'database')!r} prior, not a generative one")
    path = directory / "digits.safetensors"
    if manifest.get("inputs", {}).get("digits") != file_checksum(path):
        raise ArtifactError(f"prior {directory}: digits.safetensors does not match its manifest")
    tensors, _ = load_weights(path)
    prior_grid = Sensor.from_dict(config["grid"])
    if grid is not None:
        check_sensor(prior_grid, grid, f"the prior {directory}", "the completion's sensor")
    prior = CanvasPrior(
        tensors["digits"],
        tensors["labels"],
        prior_grid,
        config["canvas_size"],
        config["cluttered"],
        config["n_clutter"],
        config["clutter_size"],
    )
    index = DigitIndex(
        tensors["pca_mean"].float(),
        tensors["pca_components"].float(),
        tensors["codes"].float(),
        tensors["prototypes"].float(),
        tensors["prototype_sizes"].float(),
    )
    noise = ClutterNoise(config["clutter"]["rho"], config["clutter"]["rate"])
    if kw.get("sigma") is None:
        kw["sigma"] = config.get("sigma")
    comp = GenerativeCompletion(prior, index, noise, **kw)
    comp.directory, comp.manifest = directory, manifest
    return comp
