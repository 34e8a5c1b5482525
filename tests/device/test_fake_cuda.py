"""The stand-in CUDA device itself: it must refuse what a real GPU refuses and allow what a real GPU allows."""

import copy

import pytest
import torch
from torch import nn

from ppl_attention import runtime
from ppl_attention.runtime import resolve_device
from ppl_attention.testing import DeviceMixError, is_fake_cuda


def test_auto_and_cuda_resolve_to_the_stand_in(fake_cuda):
    assert torch.cuda.is_available()
    assert resolve_device("auto").type == "cuda" and resolve_device("cuda").type == "cuda"
    x = torch.zeros(3, device="cuda")
    assert is_fake_cuda(x) and x.device.type == "cuda" and x.is_cuda
    assert torch.ones_like(x).device.type == "cuda" and torch.arange(3, device=x.device).is_cuda


def test_the_patches_are_undone_afterwards():
    from ppl_attention.testing import fake_cuda as stand_in

    real = torch.cuda.is_available()
    with stand_in():
        pass
    assert torch.cuda.is_available() == real
    assert torch.randn(2).device.type == "cpu" and not is_fake_cuda(torch.randn(2))


def test_mixing_cpu_and_cuda_in_one_op_raises(fake_cuda):
    x = torch.randn(3, 4, device="cuda")
    with pytest.raises(DeviceMixError, match="CPU tensor of shape"):
        x + torch.randn(3, 4)
    with pytest.raises(DeviceMixError):
        torch.cat([x, torch.randn(1, 4)])
    with pytest.raises(DeviceMixError):
        torch.randn(4, 3) @ x
    assert (x * torch.tensor(2.0)).is_cuda  # a 0-dim CPU tensor is a scalar, as on a real GPU
    assert x[torch.tensor([0, 2])].shape == (2, 4)  # CPU indices into a CUDA tensor are allowed


def test_generators_must_match_the_device(fake_cuda):
    with pytest.raises(DeviceMixError, match="CPU generator drew for CUDA"):
        torch.randn(3, device="cuda", generator=runtime.generator(0))
    with pytest.raises(DeviceMixError, match="CPU generator drew for CUDA"):
        torch.multinomial(torch.ones(2, 5, device="cuda"), 1, generator=runtime.generator(0))
    with pytest.raises(DeviceMixError, match="CUDA generator drew for CPU"):
        torch.randn(3, generator=runtime.generator(0, "cuda"))
    a = torch.randn(3, device="cuda", generator=runtime.generator(7, "cuda"))
    b = torch.randn(3, device="cuda", generator=runtime.generator(7, "cuda"))
    assert torch.equal(a.cpu(), b.cpu())


def test_numpy_raises_and_host_syncs_are_counted(fake_cuda):
    x = torch.randn(4, device="cuda")
    with pytest.raises(DeviceMixError, match="numpy"):
        x.numpy()
    x.sum().item()
    x.tolist()
    bool(x.sum() > 0)
    y = x.cpu()
    assert type(y) is torch.Tensor and y.device.type == "cpu"
    assert y.numpy().shape == (4,)
    assert fake_cuda.syncs == {"item": 1, "tolist": 1, "bool": 1, "cpu": 1}


def test_a_module_trains_on_the_stand_in(fake_cuda):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).to("cuda")
    assert all(p.is_cuda for p in net.parameters()) and all(b.is_cuda for b in net.buffers())
    assert isinstance(net[0].weight, nn.Parameter)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    x = torch.randn(5, 1, 6, 6, device="cuda")
    before = net[3].weight.detach().cpu().clone()
    nn.functional.cross_entropy(net(x), torch.zeros(5, dtype=torch.long, device="cuda")).backward()
    assert net[3].weight.grad.is_cuda
    opt.step()
    assert not torch.equal(before, net[3].weight.detach().cpu())
    assert copy.deepcopy(net)[0].weight.is_cuda and net.cpu()[0].weight.device.type == "cpu"
    with pytest.raises(DeviceMixError):
        net.to("cuda")(torch.randn(5, 1, 6, 6))  # a CPU batch into a CUDA network


def test_training_autocasts_to_bfloat16_on_cuda_only(fake_cuda):
    """The trainers' forward passes run under runtime.autocast: bfloat16 on CUDA by default, float32 on the CPU, and
    whatever ``precision`` says."""
    import torch

    from ppl_attention.runtime import autocast

    lin, x = torch.nn.Linear(4, 3), torch.randn(2, 4)
    with autocast("cpu"):
        assert lin(x).dtype == torch.float32
    with autocast("cpu", "bfloat16"):
        assert lin(x).dtype == torch.bfloat16
    assert autocast("cuda").fast_dtype == torch.bfloat16 and autocast("cuda")._enabled
    assert not autocast("cuda", "float32")._enabled
    with pytest.raises(ValueError, match="`precision` must be one of"):
        autocast("cpu", "float16")
