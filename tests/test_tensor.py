"""The Tensor class: attributes, conversions out of gpugrad, casts and moves, Python protocols,
repr, and hashing by identity."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.backend import NumpyBackend


@pytest.fixture
def fake_cuda(monkeypatch):
    """A NumPy backend registered as device 'cuda:7', to see non-cpu behaviour on any machine."""
    dev = gg.device("cuda:7")
    backend = NumpyBackend()
    backend.device = dev
    monkeypatch.setitem(gg.backend._backends, dev, backend)
    return dev


# --- attributes ----------------------------------------------------------------------------
def test_attributes(device, rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    t = gg.tensor(a, device=device)
    assert t.shape == (2, 3, 4)
    assert t.ndim == 3
    assert t.size == 24  # NumPy's meaning: the number of elements
    assert t.dtype == np.float32 and t.dtype == gg.float32
    assert t.device == device
    assert t.is_leaf
    assert (t * 2).is_leaf  # no grad recorded, so still a leaf
    assert not (gg.tensor([1.0], device=device, requires_grad=True) * 2).is_leaf
    if device == "cpu":
        assert isinstance(t.data, np.ndarray)
    else:
        assert type(t.data).__module__.startswith("cupy")


def test_transpose_attribute_reverses_axes(device, rng):
    a = rng.standard_normal((2, 3, 4))
    t = gg.tensor(a, device=device)
    assert t.T.shape == (4, 3, 2)
    np.testing.assert_array_equal(t.T.numpy(), a.T)
    v = gg.tensor([1.0, 2.0], device=device)
    np.testing.assert_array_equal(v.T.numpy(), [1.0, 2.0])


def test_zero_dim_attributes(device):
    t = gg.tensor(3.5, device=device)
    assert t.shape == () and t.ndim == 0 and t.size == 1


# --- leaving gpugrad -----------------------------------------------------------------------
def test_numpy_returns_values_and_shares_memory_on_cpu(device, rng):
    a = rng.standard_normal((2, 3))
    t = gg.tensor(a, device=device)
    n = t.numpy()
    assert isinstance(n, np.ndarray)
    np.testing.assert_array_equal(n, a)
    if device == "cpu":
        n[0, 0] = 100.0
        assert t.data[0, 0] == 100.0


def test_numpy_of_tensor_requiring_grad(device):
    t = gg.tensor([1.0, 2.0], device=device, requires_grad=True)
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])


def test_item(device):
    assert gg.tensor(2.5, device=device).item() == 2.5
    assert gg.tensor([[7]], device=device).item() == 7
    assert isinstance(gg.tensor([7], device=device).item(), int)
    assert isinstance(gg.tensor([7.0], device=device).item(), float)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        gg.tensor([[1.0, 2.0], [3.0, 4.0]], device=device).item()


def test_tolist(device):
    data = [[1.5, 2.0], [3.0, -4.25]]
    assert gg.tensor(data, device=device).tolist() == data
    assert gg.tensor([1, 2, 3], device=device).tolist() == [1, 2, 3]
    assert gg.tensor(2.0, device=device).tolist() == 2.0


# --- moving and casting --------------------------------------------------------------------
def test_to_device_round_trip(device, rng):
    a = rng.standard_normal(4).astype(np.float32)
    t = gg.tensor(a)
    moved = t.to(device)
    assert moved.device == device
    back = moved.cpu()
    assert back.device == "cpu"
    np.testing.assert_array_equal(back.numpy(), a)
    assert t.to("cpu") is t and t.cpu() is t  # already there: no copy


def test_to_device_with_device_object(device):
    t = gg.tensor([1.0], device=device)
    assert t.to(gg.device(device)).device == device


def test_to_dtype(device):
    t = gg.tensor([1.5, -2.5], device=device)
    d = t.to(gg.float64)
    assert d.dtype == np.float64
    np.testing.assert_array_equal(d.numpy(), [1.5, -2.5])
    assert t.to(dtype="int32").dtype == np.int32
    assert t.to(device, gg.float16).dtype == np.float16  # device and dtype at once


def test_to_dtype_by_name(device):
    # dtype names are accepted everywhere else (dtype="float64"); no device has such a name
    t = gg.tensor([1.5, -2.5], device=device)
    assert t.to("float64").dtype == np.float64
    assert t.to(device, "float16").dtype == np.float16


def test_to_dtype_is_differentiable(device):
    x = gg.tensor([1.0, 2.0], device=device, requires_grad=True)
    (x.to(gg.float64) * 3).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_float_double_half_astype(device):
    t = gg.tensor([1, 2, 3], device=device)
    assert t.float().dtype == np.float32
    assert t.double().dtype == np.float64
    assert t.half().dtype == np.float16
    assert t.astype("int32").dtype == np.int32
    assert t.astype(gg.uint8).dtype == np.uint8
    np.testing.assert_array_equal(t.double().numpy(), [1.0, 2.0, 3.0])
    f = gg.tensor([1.0], device=device)
    assert f.float() is f  # same dtype: itself
    assert t.float().data is not t.data


def test_astype_unsupported_dtype_raises(device):
    with pytest.raises(gg.DTypeError, match="complex128"):
        gg.tensor([1.0], device=device).astype("complex128")


# --- Python protocols ----------------------------------------------------------------------
def test_len_and_iteration(device, rng):
    a = rng.standard_normal((3, 2))
    t = gg.tensor(a, device=device)
    assert len(t) == 3
    rows = list(t)
    assert len(rows) == 3
    for row, expected in zip(rows, a):
        assert isinstance(row, gg.Tensor) and row.shape == (2,)
        np.testing.assert_array_equal(row.numpy(), expected)
    with pytest.raises(TypeError):
        len(gg.tensor(1.0, device=device))


def test_iteration_is_differentiable(device):
    x = gg.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    total = None
    for i, v in enumerate(x):
        total = v * (i + 1) if total is None else total + v * (i + 1)
    total.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0, 3.0])


def test_bool(device):
    assert bool(gg.tensor([1.0], device=device)) is True
    assert bool(gg.tensor(0.0, device=device)) is False
    assert bool(gg.tensor([[True]], device=device)) is True
    with pytest.raises(ValueError, match="ambiguous"):
        bool(gg.tensor([1.0, 2.0], device=device))
    with pytest.raises(ValueError):
        if gg.tensor([1.0, 2.0], device=device) > 0:
            pass


def test_float_and_int(device):
    assert float(gg.tensor(2.75, device=device)) == 2.75
    assert int(gg.tensor(2.75, device=device)) == 2
    assert int(gg.tensor([-3], device=device)) == -3
    assert isinstance(float(gg.tensor(1, device=device)), float)
    with pytest.raises(ValueError):
        float(gg.tensor([1.0, 2.0], device=device))


def test_index_protocol(device):
    items = ["a", "b", "c"]
    assert items[gg.tensor(2, device=device)] == "c"
    with pytest.raises(TypeError):
        items[gg.tensor(1.0, device=device)]


# --- repr ----------------------------------------------------------------------------------
def test_repr_shows_values(device):
    r = repr(gg.tensor([[1.5, -2.0], [3.25, 4.0]], device=device))
    assert r.startswith("tensor(")
    for value in ("1.5", "-2.", "3.25", "4."):
        assert value in r
    assert "grad_fn" not in r and "requires_grad" not in r
    assert "dtype=float64" in repr(gg.tensor([1.0], dtype="float64", device=device))
    assert "dtype" not in repr(gg.tensor([1, 2], device=device))


def test_repr_shows_autograd_state(device):
    x = gg.tensor([1.0, 2.0], device=device, requires_grad=True)
    assert "requires_grad=True" in repr(x)
    r = repr(x * x)
    assert "grad_fn=<" in r and "Backward>" in r
    assert "requires_grad" not in r
    assert "Exp" in repr(x.exp())


def test_repr_shows_device_unless_cpu(device, fake_cuda):
    assert "device" not in repr(gg.tensor([1.0]))
    t = gg.tensor([1.0, 2.0], device=fake_cuda)
    r = repr(t)
    assert "device='cuda:7'" in r and "2." in r
    if device != "cpu":
        assert f"device='{gg.device(device)}'" in repr(gg.tensor([1.0], device=device))


# --- identity and hashing ------------------------------------------------------------------
def test_hash_by_identity_in_sets_and_dicts(device):
    a = gg.tensor([1.0, 2.0], device=device)
    b = gg.tensor([1.0, 2.0], device=device)  # equal values, a different tensor
    assert len({a, b}) == 2
    assert a in {a} and b not in {a}
    d = {a: "a", b: "b"}
    assert d[a] == "a" and d[b] == "b"
    eq = a == b  # elementwise, as in NumPy
    assert isinstance(eq, gg.Tensor) and eq.dtype == np.bool_
    np.testing.assert_array_equal(eq.numpy(), [True, True])


def test_tensor_constructor_matches_gg_tensor(device):
    t = gg.Tensor([1.0, 2.0], device=device, requires_grad=True)
    assert t.dtype == np.float32 and t.requires_grad and t.device == device
