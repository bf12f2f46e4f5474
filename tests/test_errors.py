"""Errors are part of the API (DESIGN.md): each misuse raises a typed error whose message names
what a person needs to fix it (shapes, devices, the op, what to install)."""

from __future__ import annotations

import pytest

import gpugrad as gg
import gpugrad.backend as gb
from gpugrad.backend import NumpyBackend


@pytest.fixture
def other_device(monkeypatch):
    """A second device even on cpu-only machines: a NumPy backend registered as 'cuda:7'."""
    dev = gg.device("cuda:7")
    backend = NumpyBackend()
    backend.device = dev
    monkeypatch.setitem(gb._backends, dev, backend)
    return dev


def test_error_types_are_the_builtin_ones_users_catch():
    assert issubclass(gg.ShapeError, ValueError)
    assert issubclass(gg.DTypeError, TypeError)
    assert issubclass(gg.BackendUnavailableError, gg.DeviceError)
    for err in (gg.ShapeError, gg.DTypeError, gg.DeviceError, gg.GraphError, gg.InplaceError):
        assert issubclass(err, gg.GpugradError)


@pytest.mark.parametrize(
    ("op", "name"),
    [
        (lambda a, b: a + b, "Add"),
        (lambda a, b: a * b, "Mul"),
        (lambda a, b: a - b, "Sub"),
        (lambda a, b: gg.maximum(a, b), "Maximum"),
    ],
)
def test_shape_mismatch_names_both_shapes_and_the_op(device, op, name):
    a = gg.ones(2, 3, device=device, requires_grad=True)
    b = gg.ones(4, device=device)
    with pytest.raises(gg.ShapeError) as info:
        op(a, b)
    message = str(info.value)
    assert "(2, 3)" in message and "(4,)" in message
    assert name in message


def test_matmul_shape_mismatch_names_both_shapes(device):
    with pytest.raises(gg.ShapeError) as info:
        gg.ones(2, 3, device=device) @ gg.ones(4, 2, device=device)
    message = str(info.value)
    assert "(2, 3)" in message and "(4, 2)" in message and "MatMul" in message


def test_device_mismatch_names_both_devices(device, other_device):
    a = gg.ones(2, device=device, requires_grad=True)
    b = gg.ones(2, device=other_device)
    for op in (lambda: a + b, lambda: b * a, lambda: a @ b):
        with pytest.raises(gg.DeviceError) as info:
            op()
        message = str(info.value)
        assert f"'{gg.device(device)}'" in message and "'cuda:7'" in message
        assert ".to(" in message  # says how to fix it


def test_in_place_device_mismatch_names_both_devices(device, other_device):
    a = gg.ones(2, device=device)
    with pytest.raises(gg.DeviceError) as info:
        a.add_(gg.ones(2, device=other_device))
    assert f"'{gg.device(device)}'" in str(info.value) and "'cuda:7'" in str(info.value)


def test_gradient_on_another_device_names_both(device, other_device):
    y = gg.ones(2, device=device, requires_grad=True) * 2
    with pytest.raises(gg.DeviceError) as info:
        y.backward(gg.ones(2, device=other_device))
    assert "cuda:7" in str(info.value) and str(gg.device(device)) in str(info.value)


def test_real_device_mismatch(device):
    if device == "cpu":
        pytest.skip("needs a second real device")
    with pytest.raises(gg.DeviceError) as info:
        gg.ones(2, device=device) + gg.ones(2, device="cpu")
    assert "'cpu'" in str(info.value) and "'cuda:0'" in str(info.value)


def test_backward_through_freed_graph(device):
    x = gg.ones(3, device=device, requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(gg.GraphError) as info:
        y.backward()
    message = str(info.value)
    assert "second time" in message and "retain_graph=True" in message


def test_non_scalar_backward_without_gradient(device):
    y = gg.ones(2, 5, device=device, requires_grad=True) * 3
    with pytest.raises(gg.GraphError) as info:
        y.backward()
    message = str(info.value)
    assert "(2, 5)" in message and "gradient" in message


def test_in_place_change_of_saved_tensor(device):
    x = gg.ones(3, device=device, requires_grad=True)
    h = x * 2
    y = h.sin()  # Sin saves h
    h.mul_(3)
    with pytest.raises(gg.InplaceError) as info:
        y.sum().backward()
    message = str(info.value)
    assert "Sin" in message and "in place" in message and "clone()" in message


def test_cuda_requested_without_cupy(monkeypatch):
    monkeypatch.setattr(gb, "_import_cupy", lambda: None)
    monkeypatch.delitem(gb._backends, gg.device("cuda:0"), raising=False)
    with pytest.raises(gg.BackendUnavailableError) as info:
        gg.ones(2, device="cuda")
    message = str(info.value)
    assert "CuPy" in message and 'pip install "gpugrad[cuda12]"' in message


def test_cuda_requested_without_gpu(monkeypatch):
    monkeypatch.setattr(gb, "_import_cupy", lambda: object())
    monkeypatch.setattr(gb, "cuda_is_available", lambda: False)
    monkeypatch.delitem(gb._backends, gg.device("cuda:0"), raising=False)
    with pytest.raises(gg.BackendUnavailableError) as info:
        gg.ones(2).to("cuda")
    message = str(info.value)
    assert "no usable CUDA GPU" in message and "device='cpu'" in message
