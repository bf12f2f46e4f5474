"""Small PyTorch spellings that real programs use: Tensor.to's extra arguments, device choice."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg


def test_to_takes_non_blocking_copy_and_a_tensor(device):
    x = gg.ones(2, device=device, requires_grad=True)
    assert x.to(device, non_blocking=True) is x  # nothing to do: the same tensor
    copied = x.to(copy=True)
    assert copied is not x and copied.data is not x.data
    like = gg.zeros(1, dtype="float64", device=device)
    y = x.to(like)
    assert y.dtype == np.float64 and y.device == x.device
    y.sum().backward()
    assert x.grad.dtype == np.float32  # the cast is differentiable back to x's dtype


def test_device_choice_as_pytorch_programs_make_it():
    assert gg.backends.mps.is_available() is False
    assert gg.accelerator.is_available() == gg.cuda.is_available()
    current = gg.accelerator.current_accelerator()
    if gg.cuda.is_available():
        assert current.type == "cuda"
    else:
        assert current is None
    device = current if current is not None else gg.device("cpu")
    assert gg.ones(1, device=device).device == device
    gg.accelerator.synchronize()
    assert gg.accelerator.device_count() == gg.cuda.device_count()


def test_pin_memory_of_a_cpu_tensor():
    x = gg.arange(6).reshape(2, 3)
    pinned = x.pin_memory()
    np.testing.assert_array_equal(pinned.numpy(), x.numpy())
    if not gg.cuda.is_available():
        assert pinned is x  # nothing to pin for
    else:
        assert pinned is not x and pinned.to("cuda", non_blocking=True).device.type == "cuda"


@pytest.mark.gpu
def test_pin_memory_refuses_a_gpu_tensor():
    with pytest.raises(gg.DeviceError, match="cuda"):
        gg.ones(2, device="cuda").pin_memory()
