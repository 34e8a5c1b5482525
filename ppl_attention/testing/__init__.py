"""Test helpers shipped with the package: a stand-in CUDA device for machines without a GPU."""

from .fake_cuda import DeviceMixError, FakeCuda, FakeCudaMode, fake_cuda, is_fake_cuda

__all__ = ["DeviceMixError", "FakeCuda", "FakeCudaMode", "fake_cuda", "is_fake_cuda"]
