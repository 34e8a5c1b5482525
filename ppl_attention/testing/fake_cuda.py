"""A stand-in CUDA device made of CPU tensors, strict about device mixing as a real GPU is.

Inside ``fake_cuda()``, ``torch.cuda.is_available()`` is true, anything made or moved to ``"cuda"`` is a CPU tensor of
class :class:`FakeCuda` that reports ``device == cuda``, and a ``TorchFunctionMode`` checks every torch call: an op
mixing a stand-in CUDA tensor with a CPU tensor of one or more dimensions, a CPU generator drawing for CUDA (or a
CUDA generator for the CPU), and ``.numpy()`` of a CUDA tensor raise :class:`DeviceMixError`; host syncs
(``.item()``, ``.tolist()``, ``bool()``, ``.cpu()``...) are counted in ``mode.syncs``. CI has no GPU, so this is how
a test sees a CPU/CUDA mix before a GPU user does.
"""

from __future__ import annotations

import collections
import contextlib

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

__all__ = ["DeviceMixError", "FakeCuda", "FakeCudaMode", "fake_cuda", "is_fake_cuda"]

CUDA = torch.device("cuda", 0)
T = torch.Tensor


class DeviceMixError(RuntimeError):
    """A CPU/CUDA mix a real GPU would refuse."""


class FakeCuda(torch.Tensor):
    """A CPU tensor standing in for a CUDA one; the mode gives it its CUDA face (device, is_cuda)."""

    __torch_function__ = torch._C._disabled_torch_function_impl


def is_fake_cuda(x) -> bool:
    return isinstance(x, FakeCuda)


def _cuda_device(d) -> bool:
    if isinstance(d, (str, torch.device)):
        try:
            return torch.device(d).type == "cuda"
        except RuntimeError:
            return False
    return isinstance(d, int) and not isinstance(d, bool)  # .to(0) / .cuda(0)


def _to_cpu_device(d):
    return "cpu" if _cuda_device(d) else d


def _wrap(x):
    if isinstance(x, T) and not isinstance(x, FakeCuda):
        return x.as_subclass(FakeCuda)
    return x


def _plain(x):
    return x.as_subclass(torch.Tensor) if isinstance(x, FakeCuda) else x


_SYNCS = {
    T.item: "item",
    T.tolist: "tolist",
    T.__bool__: "bool",
    T.__float__: "float",
    T.__int__: "int",
    T.__index__: "index",
    T.nonzero: "nonzero",
    torch.nonzero: "nonzero",
    T.cpu: "cpu",
}
_ALLOW_MIX = {
    T.copy_,
    T.to,
    T.__getitem__,
    T.__setitem__,
    T.index_put_,
    T.index_put,
    T.type_as,
    T.new_tensor,
    T.__repr__,
    T.__format__,
    T.set_,
    T.__deepcopy__,
    T.__reduce_ex__,
    T.__setstate__,
    torch._has_compatible_shallow_copy_type,
    torch.is_same_size,
}
_REFUSED = {T.numpy: "numpy", T.__array__: "numpy (via __array__)"}


class FakeCudaMode(TorchFunctionMode):
    """Checks and reroutes every torch call; see the module docstring."""

    def __init__(self):
        super().__init__()
        self.syncs: collections.Counter = collections.Counter()
        self._cuda_generators: dict[int, torch.Generator] = {}

    # generators -------------------------------------------------------------------------------------------
    def cuda_generator(self) -> torch.Generator:
        """A CPU generator registered as the stand-in device's."""
        g = torch.Generator()
        self._cuda_generators[id(g)] = g
        return g

    def _check_generator(self, func, g, on_cuda: bool):
        if not isinstance(g, torch.Generator):
            return
        g_cuda = id(g) in self._cuda_generators
        if g_cuda != on_cuda:
            where = "a CPU generator drew for CUDA tensors" if on_cuda else "a CUDA generator drew for CPU tensors"
            raise DeviceMixError(f"{_name(func)}: {where}")

    # dispatch ---------------------------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        flat, _ = tree_flatten((args, kwargs))
        fakes = [x for x in flat if isinstance(x, FakeCuda)]
        if func in _REFUSED and fakes:
            raise DeviceMixError(f"{_REFUSED[func]}() of a CUDA tensor: move it to the CPU first")
        if func in _SYNCS and fakes:
            self.syncs[_SYNCS[func]] += 1
        special = self._special(func, args, kwargs, fakes)
        if special is not NotImplemented:
            return special
        wants_cuda = _cuda_device(kwargs.get("device"))
        if "device" in kwargs:
            kwargs["device"] = _to_cpu_device(kwargs["device"])
        on_cuda = bool(fakes) or wants_cuda
        if fakes and func not in _ALLOW_MIX:
            cpu = [x for x in flat if isinstance(x, T) and not isinstance(x, FakeCuda) and x.dim() > 0]
            if cpu:
                raise DeviceMixError(
                    f"{_name(func)}: CUDA tensors mixed with a CPU tensor of shape "
                    f"{tuple(cpu[0].shape)} (expected all tensors on the same device)"
                )
        if "generator" in kwargs:
            self._check_generator(func, kwargs["generator"], on_cuda)
        for x in flat:
            if isinstance(x, torch.Generator):
                self._check_generator(func, x, on_cuda)
        out = func(*args, **kwargs)
        return tree_map(_wrap, out) if on_cuda else out

    def _special(self, func, args, kwargs, fakes):
        """Device properties and transfers; NotImplemented for an ordinary op."""
        getter = getattr(func, "__self__", None) if getattr(func, "__name__", "") == "__get__" else None
        if getter is T.device:
            return CUDA if fakes else func(*args)
        if getter is T.is_cuda:
            return bool(fakes)
        if getter is T.grad or getter is T.data:
            out = func(*args)
            return _wrap(out) if fakes and out is not None else out
        if func is T.cuda:
            return _wrap(args[0])
        if func in (T.cpu,):
            return _plain(args[0])
        if func is T.pin_memory or func is T.is_pinned:
            return args[0] if func is T.pin_memory else False
        if func is T.to:
            return self._to(args, kwargs)
        if func is T.__deepcopy__ and fakes:
            return _deepcopy(*args)
        if func is T.get_device:
            return 0 if fakes else -1
        return NotImplemented

    def _to(self, args, kwargs):
        self_, rest = args[0], list(args[1:])
        target = None
        if rest and isinstance(rest[0], T):  # .to(other, ...)
            other = rest.pop(0)
            target = "cuda" if isinstance(other, FakeCuda) else "cpu"
            rest.insert(0, other.dtype)
        elif rest and (isinstance(rest[0], (str, torch.device)) or type(rest[0]) is int):
            target = rest[0]
            rest[0] = "cpu"
        if kwargs.get("device") is not None:
            target = kwargs["device"]
            kwargs["device"] = "cpu"
        out = self_.to(*rest, **kwargs)
        if target is None:
            return _wrap(out) if isinstance(self_, FakeCuda) else out
        if _cuda_device(target):
            return _wrap(out)
        if isinstance(self_, FakeCuda):
            self.syncs["cpu"] += 1
        return _plain(out)


def _deepcopy(x, memo):
    copy = _wrap(x.as_subclass(torch.Tensor).detach().clone()).requires_grad_(x.requires_grad)
    if getattr(x, "_is_param", False):
        copy._is_param = True
    memo[id(x)] = copy
    return copy


def _name(func) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))


class _Patches:
    """setattr with undo, in reverse order."""

    def __init__(self):
        self._undo = []

    def setattr(self, obj, name, value):
        self._undo.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    def undo(self):
        while self._undo:
            obj, name, value = self._undo.pop()
            setattr(obj, name, value)


class _Autocast(torch.autocast):
    """``torch.autocast("cuda", ...)`` on the stand-in device: the CPU's autocast (bfloat16 there too)."""

    def __init__(self, device_type, *args, **kwargs):
        super().__init__("cpu" if device_type == "cuda" else device_type, *args, **kwargs)


def _patch_torch_cuda(mp: _Patches) -> None:
    mp.setattr(torch.cuda, "is_available", lambda: True)
    mp.setattr(torch.cuda, "device_count", lambda: 1)
    mp.setattr(torch.cuda, "current_device", lambda: 0)
    mp.setattr(torch.cuda, "get_device_name", lambda *a, **k: "stand-in CUDA (CPU)")
    for name in (
        "synchronize",
        "empty_cache",
        "reset_peak_memory_stats",
        "set_device",
        "manual_seed",
        "manual_seed_all",
    ):
        mp.setattr(torch.cuda, name, lambda *a, **k: None)
    for name in ("max_memory_allocated", "memory_allocated"):
        mp.setattr(torch.cuda, name, lambda *a, **k: 0)
    mp.setattr(torch, "autocast", _Autocast)
    if hasattr(torch, "accelerator"):  # the optimisers' graph-capture check would start the real CUDA runtime
        mp.setattr(torch.accelerator, "current_accelerator", lambda *a, **k: None)


def _patch_generators(mp: _Patches, mode: FakeCudaMode) -> None:
    """``runtime.generator(seed, "cuda")`` -> a stand-in CUDA generator, in every package module that imported it."""
    import sys

    from .. import runtime

    real = runtime.generator

    def generator(seed, device="cpu"):
        if _cuda_device(device):
            return mode.cuda_generator().manual_seed(int(seed))
        return real(seed, device)

    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith("ppl_attention"):
            continue
        for attr, value in list(vars(module).items()):
            if value is real:
                mp.setattr(module, attr, generator)


@contextlib.contextmanager
def fake_cuda():
    """Run the body with the stand-in CUDA device; yields the mode (``mode.syncs`` counts host syncs).

    Patches ``torch.cuda``'s queries, makes ``nn.Module.to("cuda")`` replace parameters (so they keep the CUDA face)
    and makes the package's generators for ``"cuda"`` stand-in CUDA generators.
    """
    mode = FakeCudaMode()
    mp = _Patches()
    before = torch.__future__.get_overwrite_module_params_on_conversion()
    try:
        _patch_torch_cuda(mp)
        _patch_generators(mp, mode)
        torch.__future__.set_overwrite_module_params_on_conversion(True)
        with mode:
            yield mode
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(before)
        mp.undo()
