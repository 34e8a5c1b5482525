"""Loading a completion network (the VAE, the cGAN's generator) saved with :func:`~ppl_attention.artifacts.save_weights`
into an artefact directory: one place for the checks and the errors that name the file at fault."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..artifacts import ArtifactError, load_state, load_weights, read_manifest
from ..runtime import resolve_device

if TYPE_CHECKING:
    import os
    from typing import Callable, Sequence

    import torch

__all__ = ["load_network"]


def load_network(
    directory: str | os.PathLike,
    kind: str,
    name: str,
    build: Callable[[dict], torch.nn.Module],
    device: str | torch.device = "cpu",
    expected: dict | None = None,
    needs: Sequence[str] = (),
) -> tuple[torch.nn.Module, dict]:
    """The network ``directory/name.safetensors`` of an artefact of ``kind``, made by ``build(config)`` from
    ``name.json`` and loaded on ``device`` in eval mode, and that config.  ``expected`` config values must match;
    ``needs``: the keys the caller reads from the config besides ``build``'s."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{kind} directory {directory} does not exist")
    read_manifest(directory, kind)
    tensors, config = load_weights(directory / f"{name}.safetensors", expected)
    missing = [k for k in needs if k not in config]
    if not missing:
        try:
            net = build(config)
        except KeyError as e:
            missing = [e.args[0]]
    if missing:
        raise ArtifactError(f"{directory}/{name}.json is missing the key {missing[0]!r}")
    load_state(net, tensors, f"{directory}/{name}.safetensors")
    return net.to(resolve_device(device)).eval(), config
