"""The AVP as the guide q(label | y, design) of ``pyro.contrib.oed.eig.posterior_eig``.

The guide pastes the (noisy) glimpses ``y`` of the model's ``"y"`` site into a blank canvas at the design's
locations (with ``grid.paste``), builds the mask of those locations, runs the AVP and samples ``"label"`` from
a Categorical on its label logits.  Its parameters go through ``pyro.module`` so that ``posterior_eig`` with
``num_steps > 0`` trains them (with ``num_steps=0`` it only scores designs).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from .network import AVP

__all__ = ["AVPGuide"]


class AVPGuide:
    """``guide(y_dict, design, observation_labels, target_labels)`` for a :class:`~ppl_attention.model.GlimpseModel`.

    Args:
        avp: the AVP (its grid must be the model's grid).
        past: optional ``(locations (t0,), glimpses (t0, C, h, w))`` already observed; they are pasted under the
            new glimpses (for a model conditioned on them).
        name: the ``pyro.module`` name.
    """

    def __init__(self, avp: AVP, past: tuple[torch.Tensor, torch.Tensor] | None = None, name: str = "avp") -> None:
        if avp.head == "multilabel":
            raise ValueError("AVPGuide scores the categorical 'label' site; got a multilabel AVP")
        self.avp, self.past, self.name = avp, past, name

    def canvas(self, y: torch.Tensor, design: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(canvas, mask) of glimpses ``y`` (batch + (t, k*C, h, w)) at ``design`` (batch + (t,)), flattened batch."""
        grid = self.avp.grid
        batch = torch.broadcast_shapes(y.shape[:-4], design.shape[:-1])
        t = design.shape[-1]
        loc = design.expand(batch + (t,)).reshape(-1, t)
        patches = y.expand(batch + y.shape[-4:]).reshape((-1,) + y.shape[-4:])
        if self.past is not None:
            p_loc, p_g = self.past
            n = loc.shape[0]
            loc = torch.cat([p_loc.to(loc).expand(n, -1), loc], 1)
            patches = torch.cat([p_g.to(patches).expand((n,) + p_g.shape), patches], 1)
        H, W = grid.image_size
        if loc.shape[1] == 0:
            canvas = patches.new_zeros(loc.shape[0], grid.glimpse_channels(self.avp.channels), H, W)
        else:
            canvas = grid.paste(patches, loc)
        return canvas, grid.mask(loc, dtype=canvas.dtype, device=canvas.device), batch

    def __call__(self, y_dict, design, observation_labels, target_labels):
        if list(target_labels) != ["label"]:
            raise ValueError(f"AVPGuide scores the target 'label' only, got target_labels={list(target_labels)}")
        pyro.module(self.name, self.avp)
        canvas, mask, batch = self.canvas(y_dict["y"], design)
        logits = self.avp.label_logits(self.avp(self.avp.make_input(canvas.clamp(0, 1), mask)))
        logits = logits.reshape(batch + logits.shape[-1:])
        with pyro.plate_stack("design", design.shape[:-1]):
            pyro.sample("label", dist.Categorical(logits=logits))
