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
    assert pinned is not x and pinned.data is not x.data  # a copy, GPU or not
    if gg.cuda.is_available():
        assert pinned.to("cuda", non_blocking=True).device.type == "cuda"


@pytest.mark.gpu
def test_pin_memory_refuses_a_gpu_tensor():
    with pytest.raises(gg.DeviceError, match="cuda"):
        gg.ones(2, device="cuda").pin_memory()


def test_to_refuses_two_devices_or_two_dtypes():
    x = gg.ones(2)
    with pytest.raises(gg.ArgumentError, match="two devices"):
        x.to("cpu", "cpu")
    with pytest.raises(gg.ArgumentError, match="two dtypes"):
        x.to(gg.float64, gg.float16)
    with pytest.raises(gg.ArgumentError, match="two dtypes"):
        x.to(gg.zeros(1), dtype=gg.float64)
    assert x.to("cpu", gg.float64).dtype == np.float64


def test_deepcopy_of_a_model_copies_its_parameters_and_keeps_ties():
    import copy

    import gpugrad.nn as nn

    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    model[2].weight = nn.Parameter(model[0].weight.T.detach().clone())
    model[0].bias.grad = gg.ones(3)
    ema = copy.deepcopy(model)
    assert isinstance(ema[0].weight, nn.Parameter) and ema[0].weight.requires_grad
    assert ema[0].weight.data is not model[0].weight.data
    np.testing.assert_array_equal(ema[0].weight.numpy(), model[0].weight.numpy())
    np.testing.assert_array_equal(ema[0].bias.grad.numpy(), [1.0, 1.0, 1.0])
    with gg.no_grad():
        ema[0].weight.mul_(0)
    assert model[0].weight.numpy().any()  # the original is untouched
    tied = nn.Linear(2, 2)
    pair = nn.ModuleList([tied, tied])
    twin = copy.deepcopy(pair)
    assert twin[0].weight is twin[1].weight  # shared stays shared
    with pytest.raises(gg.GraphError, match="leaf"):
        copy.deepcopy(model[0].weight * 2)
