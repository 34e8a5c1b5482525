"""The image design problem of the CLI: a dataset, a trained AVP and a prior directory (importance sampler).

:class:`ImageFactory` is a frozen (picklable, hashable) description; calling it in any process loads the AVP
(``posterior.load_avp``), the completion (the sampler of the directory's kind of prior, ``completion.prior.PRIORS``) and
the dataset (``data.load_dataset``), and returns ``(DesignProblem, image_fn)`` for :mod:`.executors`;
``image_fn.exclusions(index, image)`` (unless ``allow_oracle``) is what the prior must leave out for that image.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..completion.base import DEFAULT_K1
from ..sensor import check_sensor
from .epe import DEFAULT_PRECISION
from .sequential import DesignProblem

__all__ = ["ImageFactory"]


@dataclass(frozen=True)
class ImageFactory:
    dataset: str
    avp: str
    prior: str
    split: str = "train"
    root: str | None = None
    seed: int = 0
    attribute: int | None = None
    k1: int = DEFAULT_K1
    batch_size: int = 128
    device: str = "cpu"
    sigma: tuple[float, ...] | None = None  # completion noise schedules (0..255 stds per glimpse count)
    sigma_q: tuple[float, ...] | None = None
    target_ess: float | None = None
    shift: int = 0
    precision: str = DEFAULT_PRECISION  # of the AVP's forward passes in the EPE loop (float32 or bfloat16)
    min_ess: float | None = None  # generative prior: grow the candidates until this ESS (None: one round of k1)
    max_k1: int | None = None  # ... up to this many draws
    options: tuple = ()  # the dataset's options: sorted (key, value) pairs (``DatasetSpec.options``)
    epe_net: str | None = None  # an EPE-map network directory (train-epe-net), for the amortised / hybrid searches
    allow_oracle: bool = False  # True: the completions may propose the design image itself (a diagnosis only)

    def __call__(self):
        from ..data.spec import DatasetSpec
        from ..posterior import load_avp
        from ..runtime import resolve_device

        device = resolve_device(self.device)
        avp = load_avp(self.avp, device)
        data = DatasetSpec(self.dataset, self.root, self.seed, tuple(self.options)).load(self.split)
        grid = getattr(data, "grid", None)
        if grid is not None:
            check_sensor(avp.grid, grid, f"--avp {self.avp}", f"the dataset {self.dataset}'s sensor")
        sampler = self._sampler(avp, device)
        epe_map = self._epe_map(avp, device) if self.epe_net is not None else None
        problem = DesignProblem(
            avp,
            sampler,
            avp.grid,
            attribute=self.attribute,
            batch_size=self.batch_size,
            channels=avp.channels,
            precision=self.precision,
            epe_net=epe_map,
        )

        def image(index: int):
            return data[int(index)]["image"].to(device)

        image.size = len(data)  # the split's number of images (generate checks --indices against it)
        if not self.allow_oracle:  # what the prior leaves out for each image (``executors.design_batch`` applies it)
            from .honest import prior_exclusions

            image.exclusions = prior_exclusions(sampler, self.prior, data, self.split)
        return problem, image

    def _sampler(self, avp, device):
        """The prior's importance sampler, with the options that apply to its kind (refusing the others)."""
        from ..completion.prior import PRIORS, prior_kind

        kind = prior_kind(self.prior)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for other in PRIORS.values():  # a setting of another kind's sampler, changed, would be silently ignored
            for name in set(other.sampler_options) - set(kind.sampler_options):
                if getattr(self, name) != defaults[name]:
                    raise ValueError(
                        f"`{name}` applies to a {other.name} prior, not to the {kind.name} prior {self.prior}"
                    )
        options = {name: getattr(self, name) for name in kind.sampler_options}
        if kind.on_device:
            options["device"] = device
        noise = {
            "sigma": list(self.sigma) if self.sigma else None,
            "sigma_q": list(self.sigma_q) if self.sigma_q else None,
        }
        return kind.open(self.prior, grid=avp.grid, k1=self.k1, **noise, **options)

    def _epe_map(self, avp, device):
        """The EPE-map network's predictions for this AVP (checked: made for this AVP, prior and sensor)."""
        from ..artifacts import dir_checksum
        from .amortised import AmortisedMap, avp_weights_checksum, check_epe_net, load_epe_net

        net = load_epe_net(self.epe_net, device)
        check_epe_net(
            net,
            avp.grid,
            dir_checksum(self.avp),
            dir_checksum(self.prior),
            f"--epe-net {self.epe_net}",
            f"--avp {self.avp}",
            f"--prior {self.prior}",
            avp_weights_checksum(self.avp),
        )
        return AmortisedMap(net, avp)
