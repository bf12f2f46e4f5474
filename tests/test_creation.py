"""Creation functions, random seeding, device parsing, and the CUDA-unavailable errors."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.backend as gb


# --- tensor / as_tensor / from_numpy -------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "dtype"),
    [
        (1.5, np.float32),
        ([1.0, 2.0], np.float32),
        ([1, 2.5], np.float32),  # mixed ints and floats: floats win
        (3, np.int64),
        ([[1, 2], [3, 4]], np.int64),
        (True, np.bool_),
        ([True, False], np.bool_),
    ],
)
def test_tensor_from_python_infers_dtype(device, data, dtype):
    t = gg.tensor(data, device=device)
    assert t.dtype == dtype
    np.testing.assert_array_equal(t.numpy(), np.array(data, dtype=dtype))


def test_tensor_nested_lists(device):
    data = [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]
    t = gg.tensor(data, device=device)
    assert t.shape == (2, 2, 2)
    assert t.tolist() == data


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "int32", "uint8", "bool"])
def test_tensor_from_numpy_array_keeps_dtype(device, dtype):
    a = np.arange(6).reshape(2, 3).astype(dtype)
    t = gg.tensor(a, device=device)
    assert t.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(t.numpy(), a)


def test_tensor_with_explicit_dtype(device):
    t = gg.tensor([0.1, 0.2], dtype="float64", device=device)
    assert t.dtype == np.float64
    assert t.tolist() == [0.1, 0.2]  # exact: not rounded through float32 on the way
    assert gg.tensor([1.7, -2.2], dtype=gg.int32, device=device).dtype == np.int32
    assert gg.tensor(np.zeros(2), dtype=np.float32, device=device).dtype == np.float32


def test_tensor_copies_its_data(device):
    a = np.array([1.0, 2.0], dtype=np.float32)
    t = gg.tensor(a, device=device)
    a[0] = 100.0
    assert t.tolist() == [1.0, 2.0]
    u = gg.tensor(t)  # from a Tensor: also a copy, on the same device
    assert u.device == device
    u.data[1] = -1.0
    assert t.tolist() == [1.0, 2.0]


def test_tensor_requires_grad(device):
    t = gg.tensor([1.0], device=device, requires_grad=True)
    assert t.requires_grad and t.is_leaf and t.grad is None


def test_tensor_of_unsupported_dtype_raises(device):
    with pytest.raises(gg.DTypeError, match="complex128"):
        gg.tensor(np.zeros(2, dtype=np.complex128), device=device)
    with pytest.raises(gg.DTypeError):
        gg.tensor([1.0], dtype="not-a-dtype", device=device)


def test_as_tensor_shares_memory_when_dtype_matches():
    a = np.zeros(3, dtype=np.float64)
    t = gg.as_tensor(a)
    assert t.dtype == np.float64
    a[0] = 5.0
    assert t.tolist() == [5.0, 0.0, 0.0]
    assert np.shares_memory(t.data, a)


def test_as_tensor_copies_when_dtype_differs():
    a = np.zeros(3, dtype=np.float64)
    t = gg.as_tensor(a, dtype=gg.float32)
    assert t.dtype == np.float32 and not np.shares_memory(t.data, a)


def test_as_tensor_on_device(device):
    a = np.arange(4, dtype=np.float32)
    t = gg.as_tensor(a, device=device, requires_grad=True)
    assert t.device == device and t.requires_grad
    np.testing.assert_array_equal(t.numpy(), a)
    assert gg.as_tensor(t) is t  # already a tensor where asked: itself
    assert gg.as_tensor([1, 2], device=device).dtype == np.int64


def test_as_tensor_keeps_non_contiguous_view():
    a = np.arange(6.0).reshape(2, 3)
    t = gg.as_tensor(a.T)
    assert t.shape == (3, 2)
    assert np.shares_memory(t.data, a)
    np.testing.assert_array_equal(t.numpy(), a.T)


def test_from_numpy_shares_memory():
    a = np.arange(4, dtype=np.int32)
    t = gg.from_numpy(a)
    assert t.dtype == np.int32 and t.device == "cpu"
    t.data[0] = 9
    assert a[0] == 9
    a[1] = 7
    assert t.tolist()[1] == 7
    with pytest.raises(TypeError):
        gg.from_numpy([1, 2, 3])


# --- filled --------------------------------------------------------------------------------
@pytest.mark.parametrize(("fn", "value"), [(gg.zeros, 0.0), (gg.ones, 1.0)])
def test_zeros_ones_sizes(device, fn, value):
    for t in (fn(2, 3, device=device), fn((2, 3), device=device), fn([2, 3], device=device)):
        assert t.shape == (2, 3) and t.dtype == np.float32 and t.device == device
        np.testing.assert_array_equal(t.numpy(), np.full((2, 3), value))
    assert fn(4, device=device).shape == (4,)
    assert fn((), device=device).shape == ()
    assert fn(2, dtype="int32", device=device).dtype == np.int32
    assert fn(2, device=device, requires_grad=True).requires_grad


def test_empty_sizes(device):
    assert gg.empty(2, 3, device=device).shape == (2, 3)
    assert gg.empty((4,), dtype=gg.float64, device=device).dtype == np.float64


def test_full(device):
    t = gg.full((2, 2), 3.5, device=device)
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), np.full((2, 2), 3.5))
    assert gg.full(3, 7, device=device).dtype == np.int64
    assert gg.full(3, True, device=device).dtype == np.bool_
    assert gg.full([2], 1, dtype="float64", device=device).dtype == np.float64
    assert gg.full((2,), 1.0, device=device, requires_grad=True).requires_grad


# --- ranges --------------------------------------------------------------------------------
def test_arange_infers_int_or_float(device):
    t = gg.arange(5, device=device)
    assert t.dtype == np.int64 and t.tolist() == [0, 1, 2, 3, 4]
    assert gg.arange(1, 7, 2, device=device).tolist() == [1, 3, 5]
    f = gg.arange(0.0, 1, 0.25, device=device)
    assert f.dtype == np.float32
    np.testing.assert_allclose(f.numpy(), [0.0, 0.25, 0.5, 0.75])
    assert gg.arange(0, 1, 0.5, device=device).dtype == np.float32  # a float step
    assert gg.arange(3, dtype="float64", device=device).dtype == np.float64
    assert gg.arange(3.0, device=device, requires_grad=True).requires_grad


def test_linspace(device):
    t = gg.linspace(-1, 1, 5, device=device)
    assert t.dtype == np.float32
    np.testing.assert_allclose(t.numpy(), np.linspace(-1, 1, 5))
    assert gg.linspace(0, 1, 3, dtype=gg.float64, device=device).dtype == np.float64
    assert gg.linspace(0, 1, 3, device=device, requires_grad=True).requires_grad


def test_eye(device):
    np.testing.assert_array_equal(gg.eye(3, device=device).numpy(), np.eye(3))
    np.testing.assert_array_equal(gg.eye(2, 4, device=device).numpy(), np.eye(2, 4))
    assert gg.eye(2, device=device).dtype == np.float32
    assert gg.eye(2, dtype="int64", device=device).dtype == np.int64
    assert gg.eye(2, device=device, requires_grad=True).requires_grad


# --- random --------------------------------------------------------------------------------
def test_rand_range_shape_dtype(device):
    t = gg.rand(50, 40, device=device)
    assert t.shape == (50, 40) and t.dtype == np.float32 and t.device == device
    a = t.numpy()
    assert a.min() >= 0.0 and a.max() < 1.0
    assert 0.4 < a.mean() < 0.6
    assert len(np.unique(a)) > 1000
    assert gg.rand((3,), dtype="float64", device=device).dtype == np.float64
    assert gg.rand(2, dtype="float16", device=device).dtype == np.float16
    assert gg.rand(2, device=device, requires_grad=True).requires_grad


def test_randn_shape_dtype_moments(device):
    t = gg.randn(100, 50, device=device)
    assert t.shape == (100, 50) and t.dtype == np.float32
    a = t.numpy()
    assert abs(a.mean()) < 0.1 and 0.9 < a.std() < 1.1
    assert gg.randn((2, 3), dtype=gg.float64, device=device).dtype == np.float64
    assert gg.randn(2, device=device, requires_grad=True).requires_grad


def test_randint_range_shape_dtype(device):
    t = gg.randint(3, 8, (40, 30), device=device)
    assert t.shape == (40, 30) and t.dtype == np.int64
    a = t.numpy()
    assert a.min() == 3 and a.max() == 7  # 1200 draws hit both ends of [3, 8)
    u = gg.randint(4, size=500, device=device)  # one bound: [0, 4)
    assert u.shape == (500,) and set(u.tolist()) == {0, 1, 2, 3}
    assert gg.randint(0, 5, (2,), dtype="int32", device=device).dtype == np.int32
    assert gg.randint(0, 5, device=device).shape == ()


def test_random_draws_refuse_dtypes_that_cannot_hold_them(device):
    with pytest.raises(gg.DTypeError, match="int64"):
        gg.rand(3, dtype="int64", device=device)  # would be all zeros
    with pytest.raises(gg.DTypeError, match="bool"):
        gg.randn(3, dtype="bool", device=device)
    with pytest.raises(gg.DTypeError, match="float32"):
        gg.randint(0, 5, (3,), dtype="float32", device=device)
    with pytest.raises(gg.DTypeError):
        gg.rand_like(gg.tensor([1, 2], device=device))  # an int model tensor needs a dtype
    assert gg.rand_like(gg.tensor([1, 2], device=device), dtype="float32").dtype == np.float32


@pytest.mark.parametrize(
    "draw",
    [
        lambda d: gg.rand(20, device=d),
        lambda d: gg.randn(20, device=d),
        lambda d: gg.randint(0, 1000, (20,), device=d),
    ],
)
def test_manual_seed_makes_draws_repeat(device, draw):
    gg.manual_seed(123)
    first = draw(device).numpy()
    second = draw(device).numpy()
    gg.manual_seed(123)
    np.testing.assert_array_equal(draw(device).numpy(), first)
    np.testing.assert_array_equal(draw(device).numpy(), second)
    assert not np.array_equal(first, second)  # successive draws differ
    gg.manual_seed(124)
    assert not np.array_equal(draw(device).numpy(), first)


# --- *_like --------------------------------------------------------------------------------
def test_like_functions_follow_the_model_tensor(device):
    x = gg.tensor(np.ones((2, 3)), device=device)  # float64
    for t in (
        gg.zeros_like(x),
        gg.ones_like(x),
        gg.empty_like(x),
        gg.full_like(x, 2.5),
        gg.rand_like(x),
        gg.randn_like(x),
    ):
        assert t.shape == (2, 3) and t.dtype == np.float64 and t.device == device
        assert not t.requires_grad
    np.testing.assert_array_equal(gg.zeros_like(x).numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(gg.ones_like(x).numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(gg.full_like(x, 2.5).numpy(), np.full((2, 3), 2.5))
    r = gg.rand_like(x).numpy()
    assert r.min() >= 0 and r.max() < 1
    i = gg.randint_like(x, 2, 5)
    assert i.shape == (2, 3) and i.dtype == np.int64 and i.device == device
    assert set(i.tolist()[0] + i.tolist()[1]) <= {2, 3, 4}


@pytest.mark.parametrize(
    "like", [gg.zeros_like, gg.ones_like, gg.empty_like, gg.rand_like, gg.randn_like]
)
def test_like_functions_take_dtype_device_requires_grad(device, like):
    x = gg.tensor([[1, 2]], device="cpu")
    t = like(x, dtype="float32", device=device, requires_grad=True)
    assert t.shape == (1, 2) and t.dtype == np.float32 and t.device == device
    assert t.requires_grad and t.is_leaf


def test_full_like_and_randint_like_options(device):
    x = gg.zeros(3, device="cpu")
    t = gg.full_like(x, 1, dtype="float64", device=device, requires_grad=True)
    assert t.dtype == np.float64 and t.device == device and t.requires_grad
    r = gg.randint_like(x, 10, dtype="int32", device=device)
    assert r.dtype == np.int32 and r.device == device and r.shape == (3,)


# --- devices -------------------------------------------------------------------------------
def test_device_parsing():
    cpu, cuda, cuda1 = gg.device("cpu"), gg.device("cuda"), gg.device("cuda:1")
    assert (cpu.type, cpu.index) == ("cpu", None)
    assert (cuda.type, cuda.index) == ("cuda", 0)
    assert (cuda1.type, cuda1.index) == ("cuda", 1)
    assert str(cpu) == "cpu" and str(cuda) == "cuda:0" and str(cuda1) == "cuda:1"
    assert gg.device() is cpu and gg.device(None) is cpu
    assert gg.device(cuda1) is cuda1
    assert gg.device(" CUDA:1 ") is cuda1
    assert gg.device("cuda:0") is cuda  # interned: `is` and == agree
    assert "cuda:1" in repr(cuda1)


def test_device_equality_with_strings():
    assert gg.device("cpu") == "cpu"
    assert gg.device("cuda") == "cuda:0"
    assert gg.device("cuda:0") == "cuda"
    assert gg.device("cuda:1") == "cuda:1"
    assert gg.device("cuda:1") != "cuda:0"
    assert gg.device("cpu") != "cuda"
    assert gg.device("cpu") != "not a device"  # unequal, not an error
    assert gg.device("cuda:1") != gg.device("cuda:0")
    assert {gg.device("cuda:0"): 1}[gg.device("cuda")] == 1


# (an id other than "gpu": conftest skips tests with a "gpu" keyword on machines without one)
@pytest.mark.parametrize(
    "bad",
    [pytest.param("gpu", id="gpu-name"), "", "cuda:x", "cuda:-1", "cpu:1", "cuda:1:2", "tpu:0"],
)
def test_bad_device_strings_raise(bad):
    with pytest.raises(gg.DeviceError, match="device"):
        gg.device(bad)


def test_bad_device_type_raises():
    with pytest.raises(gg.DeviceError):
        gg.device(3)


def test_creating_on_a_bad_device_raises():
    with pytest.raises(gg.DeviceError, match="gpu"):
        gg.zeros(2, device="gpu")


def test_cuda_without_cupy_says_what_to_install(monkeypatch):
    monkeypatch.setattr(gb, "_import_cupy", lambda: None)
    monkeypatch.delitem(gb._backends, gg.device("cuda:0"), raising=False)
    with pytest.raises(gg.BackendUnavailableError) as info:
        gg.zeros(2, device="cuda")
    message = str(info.value)
    assert 'pip install "gpugrad[cuda12]"' in message
    assert "CuPy" in message and "cuda:0" in message
    assert isinstance(info.value, gg.DeviceError)
    assert gg.cuda.is_available() is False
    assert gg.cuda.device_count() == 0


def test_cuda_without_gpu_says_no_gpu(monkeypatch):
    monkeypatch.setattr(gb, "_import_cupy", lambda: object())  # "installed"
    monkeypatch.setattr(gb, "cuda_is_available", lambda: False)
    monkeypatch.delitem(gb._backends, gg.device("cuda:2"), raising=False)
    with pytest.raises(gg.BackendUnavailableError) as info:
        gg.tensor([1.0], device="cuda:2")
    message = str(info.value)
    assert "cuda:2" in message and "GPU" in message
    assert "pip install" not in message  # CuPy is there; the hardware is missing


def test_cuda_queries_have_the_right_types():
    assert isinstance(gg.cuda.is_available(), bool)
    count = gg.cuda.device_count()
    assert isinstance(count, int) and count >= 0
    assert (count > 0) == gg.cuda.is_available()
