"""Interop: DLPack exchange with NumPy / PyTorch / CuPy / JAX, `__array__`, and
`__cuda_array_interface__`. Memory is shared both ways: a write through one side is seen by
the other."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg

DTYPES = ["float16", "float32", "float64", "int32", "int64", "bool"]


def _sample(dtype: str, shape=(2, 3)) -> np.ndarray:
    return (np.arange(int(np.prod(shape))).reshape(shape) % 3).astype(dtype)


def _bump(x):
    """Write 1 into the first element of an array-like (NumPy, torch, gpugrad)."""
    x[(0,) * x.ndim] = 1


# --- NumPy via DLPack --------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_to_gpugrad_shares_memory_and_keeps_dtype(dtype):
    a = np.zeros((2, 3), dtype=dtype)
    t = gg.from_dlpack(a)
    assert isinstance(t, gg.Tensor)
    assert t.device == "cpu" and t.dtype == a.dtype and t.shape == (2, 3)
    assert not t.requires_grad and t.is_leaf
    assert np.shares_memory(t.data, a)
    a[1, 2] = 1
    assert t.data[1, 2] == 1  # a write through NumPy shows in the tensor
    t[0, 0] = 1
    assert a[0, 0] == 1  # and a write through the tensor shows in NumPy


@pytest.mark.parametrize("dtype", DTYPES)
def test_gpugrad_to_numpy_via_dlpack_shares_memory(dtype):
    t = gg.tensor(_sample(dtype))
    a = np.from_dlpack(t)
    assert a.dtype == t.dtype and a.shape == t.shape
    np.testing.assert_array_equal(a, t.numpy())
    t.data[1, 1] = 0
    a[1, 1] = 1
    assert t.data[1, 1] == 1


def test_dlpack_device_on_cpu():
    t = gg.zeros(3)
    assert tuple(int(v) for v in t.__dlpack_device__()) == (1, 0)  # kDLCPU, device 0
    assert t.__dlpack_device__() == np.zeros(3).__dlpack_device__()


def test_dlpack_passes_keywords_through():
    t = gg.arange(4.0)
    np.testing.assert_array_equal(np.from_dlpack(t, copy=True), [0, 1, 2, 3])
    copied = np.from_dlpack(t, copy=True)
    copied[0] = 7
    assert t.data[0] == 0
    assert t.__dlpack__(stream=None) is not None


@pytest.mark.parametrize("direction", ["import", "export"])
def test_non_contiguous_views_round_trip(direction):
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    if direction == "import":
        t = gg.from_dlpack(base.T)
        assert t.shape == (4, 3)
        np.testing.assert_array_equal(t.numpy(), base.T)
        base[2, 1] = -1
        assert t.data[1, 2] == -1
    else:
        t = gg.from_numpy(base).T
        assert not t.data.flags.c_contiguous
        a = np.from_dlpack(t)
        np.testing.assert_array_equal(a, base.T)
        a[1, 2] = -5
        assert base[2, 1] == -5


def test_strided_slice_round_trip():
    base = np.arange(10, dtype=np.int64)
    t = gg.from_dlpack(base[::2])
    np.testing.assert_array_equal(t.numpy(), [0, 2, 4, 6, 8])
    base[4] = 40
    assert t.data[2] == 40


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_d_round_trip(dtype):
    a = np.array(1, dtype=dtype)
    t = gg.from_dlpack(a)
    assert t.shape == () and t.dtype == a.dtype
    back = np.from_dlpack(t)
    assert back.shape == () and back == a


def test_from_dlpack_of_a_tensor_is_a_detached_view():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = gg.from_dlpack(x * 2)
    assert y.is_leaf and not y.requires_grad
    z = gg.from_dlpack(x)
    assert z.data is x.data and not z.requires_grad


def test_export_of_a_tensor_that_requires_grad_gives_the_data():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    a = np.from_dlpack(x)
    np.testing.assert_array_equal(a, [1.0, 2.0])
    y = x * 3
    np.testing.assert_array_equal(np.from_dlpack(y), [3.0, 6.0])


# --- np.asarray / __array__ --------------------------------------------------------------
def test_asarray_shares_memory_on_cpu():
    t = gg.tensor([[1.0, 2.0], [3.0, 4.0]])
    a = np.asarray(t)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    assert np.shares_memory(a, t.data)
    a[0, 0] = 10
    assert t.data[0, 0] == 10
    assert np.asarray(t, copy=False) is t.data


def test_asarray_with_cast_or_copy_copies():
    t = gg.tensor([1.0, 2.0])
    a = np.asarray(t, dtype=np.float64)
    assert a.dtype == np.float64 and not np.shares_memory(a, t.data)
    c = np.array(t)  # np.array copies by default
    assert not np.shares_memory(c, t.data)
    np.testing.assert_array_equal(c, [1.0, 2.0])
    assert np.asarray(t, dtype=np.float32) is t.data  # no cast needed, no copy
    with pytest.raises(ValueError, match="needs a copy"):
        np.asarray(t, dtype=np.float64, copy=False)


def test_asarray_of_a_tensor_that_requires_grad_returns_the_data():
    x = gg.tensor([1.0, -2.0], requires_grad=True)
    a = np.asarray(x)
    np.testing.assert_array_equal(a, [1.0, -2.0])
    y = (x * x).sum()
    assert isinstance(np.asarray(y), np.ndarray) and float(np.asarray(y)) == 5.0
    # NumPy math on it is plain NumPy: nothing is recorded, the tensor's graph is unchanged.
    out = np.exp(x)
    assert isinstance(out, np.ndarray)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, -4.0])


def test_asarray_of_0d_and_numpy_functions():
    assert np.asarray(gg.tensor(3.0)).shape == ()
    t = gg.tensor([1.0, 2.0, 3.0])
    assert np.allclose(t, [1.0, 2.0, 3.0])
    assert np.sum(np.asarray(t)) == 6.0


def test_list_of_tensors_becomes_a_tensor():
    t = gg.tensor([gg.tensor(1.0), gg.tensor(2.0)])
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])


@pytest.mark.parametrize(
    "op",
    [
        lambda a, t: a * t,
        lambda a, t: a + t,
        lambda a, t: a - t,
        lambda a, t: a / t,
        lambda a, t: a**t,
        lambda a, t: a @ t,
        lambda a, t: a == t,
        lambda a, t: a < t,
        lambda a, t: np.float32(2) * t,
        lambda a, t: np.float64(2) - t,
        lambda a, t: np.int64(2) + t,
    ],
    ids=["mul", "add", "sub", "div", "pow", "matmul", "eq", "lt", "f32", "f64", "i64"],
)
def test_numpy_binary_ops_still_defer_to_tensor(op):
    a = np.array([3.0, 4.0], dtype=np.float32)
    t = gg.tensor([1.0, 2.0], requires_grad=True)
    out = op(a, t)
    assert isinstance(out, gg.Tensor), type(out)


def test_ndarray_times_tensor_goes_through_rmul_and_has_gradients():
    a = np.array([3.0, 4.0], dtype=np.float32)
    t = gg.tensor([1.0, 2.0], requires_grad=True)
    out = a * t
    assert isinstance(out, gg.Tensor) and out.grad_fn is not None
    out.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), a)


def test_cuda_array_interface_absent_on_cpu():
    t = gg.zeros(2)
    assert not hasattr(t, "__cuda_array_interface__")
    with pytest.raises(AttributeError, match="cuda"):
        t.__cuda_array_interface__  # noqa: B018


# --- errors ------------------------------------------------------------------------------
def test_from_dlpack_rejects_objects_without_the_protocol():
    with pytest.raises(TypeError, match="__dlpack__"):
        gg.from_dlpack([1.0, 2.0])


@pytest.mark.parametrize("dtype", ["complex64", "complex128", "uint32", "uint64", "float128"])
def test_from_dlpack_rejects_unsupported_numpy_dtypes(dtype):
    try:
        a = np.zeros(2, dtype=dtype)
    except TypeError:
        pytest.skip(f"NumPy has no {dtype} here")
    with pytest.raises(gg.DTypeError, match=dtype) as info:  # float128: NumPy cannot export it
        gg.from_dlpack(a)
    assert "numpy.ndarray" in str(info.value) and "float32" in str(info.value)


class _FakeOnDevice:
    """An object claiming to live on a device gpugrad has no backend for."""

    def __init__(self, kind):
        self.kind = kind

    def __dlpack__(self, **kwargs):  # pragma: no cover - never reached
        raise AssertionError("should not be exported")

    def __dlpack_device__(self):
        return (self.kind, 0)


@pytest.mark.parametrize("kind,name", [(8, "kDLMetal"), (10, "kDLROCM"), (99, "device type 99")])
def test_from_dlpack_rejects_unknown_devices(kind, name):
    with pytest.raises(gg.DeviceError, match=name):
        gg.from_dlpack(_FakeOnDevice(kind))


def test_from_dlpack_of_cuda_memory_without_cupy_says_what_is_missing():
    if gg.cuda.is_available():
        pytest.skip("a GPU is present: cuda memory imports fine")
    with pytest.raises(gg.BackendUnavailableError, match="cuda:0"):
        gg.from_dlpack(_FakeOnDevice(2))


# --- PyTorch -----------------------------------------------------------------------------
TORCH_DTYPES = ["float16", "float32", "float64", "int32", "int64", "bool"]


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_gpugrad_to_torch_shares_memory(dtype):
    torch = pytest.importorskip("torch")
    t = gg.tensor(_sample(dtype))
    x = torch.from_dlpack(t)
    assert str(x.dtype) == f"torch.{dtype}" and tuple(x.shape) == t.shape
    np.testing.assert_array_equal(x.numpy(), t.numpy())
    t.data[0, 0] = 0
    _bump(x)
    assert t.data[0, 0] == 1


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_torch_to_gpugrad_shares_memory(dtype):
    torch = pytest.importorskip("torch")
    x = torch.zeros((2, 3), dtype=getattr(torch, dtype))
    t = gg.from_dlpack(x)
    assert t.device == "cpu" and t.dtype == np.dtype(dtype) and t.shape == (2, 3)
    _bump(x)
    assert t.data[0, 0] == 1
    t[1, 2] = 1
    assert bool(x[1, 2])


def test_torch_non_contiguous_and_0d():
    torch = pytest.importorskip("torch")
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4).T
    t = gg.from_dlpack(x)
    np.testing.assert_array_equal(t.numpy(), x.numpy())
    x[1, 2] = -1
    assert t.data[1, 2] == -1
    back = torch.from_dlpack(gg.from_numpy(np.arange(6.0).reshape(2, 3)).T)
    assert tuple(back.shape) == (3, 2) and back[2, 1].item() == 5.0
    s = gg.from_dlpack(torch.tensor(2.5))
    assert s.shape == () and s.item() == 2.5
    assert torch.from_dlpack(gg.tensor(7)).item() == 7


def test_torch_tensor_that_requires_grad_needs_detach_first():
    torch = pytest.importorskip("torch")
    x = torch.ones(2, requires_grad=True)
    t = gg.from_dlpack(x.detach())
    assert t.shape == (2,)
    y = torch.from_dlpack(gg.tensor([1.0, 2.0], requires_grad=True))
    assert not y.requires_grad


@pytest.mark.parametrize("dtype", ["bfloat16", "complex64", "uint32"])
def test_torch_unsupported_dtypes_raise_dtype_error(dtype):
    torch = pytest.importorskip("torch")
    x = torch.zeros(2, dtype=getattr(torch, dtype))
    with pytest.raises(gg.DTypeError, match=dtype) as info:
        gg.from_dlpack(x)
    assert "torch.Tensor" in str(info.value)


def test_jax_round_trip():
    jnp = pytest.importorskip("jax.numpy")
    j = jnp.arange(6, dtype=jnp.float32).reshape(2, 3)
    t = gg.from_dlpack(j)
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), np.arange(6).reshape(2, 3))
    back = jnp.from_dlpack(gg.tensor([1.0, 2.0]))
    np.testing.assert_array_equal(np.asarray(back), [1.0, 2.0])


# --- CUDA --------------------------------------------------------------------------------
@pytest.mark.gpu
def test_cuda_asarray_raises_device_error():
    t = gg.zeros(3, device="cuda")
    with pytest.raises(gg.DeviceError, match=r"\.cpu\(\)"):
        np.asarray(t)
    np.testing.assert_array_equal(np.asarray(t.cpu()), [0, 0, 0])


@pytest.mark.gpu
def test_cuda_array_interface_and_dlpack_device():
    t = gg.arange(4.0, device="cuda")
    cai = t.__cuda_array_interface__
    assert cai["shape"] == (4,) and cai["data"][0] == t.data.data.ptr
    assert tuple(int(v) for v in t.__dlpack_device__()) == (2, 0)


@pytest.mark.gpu
def test_numpy_scalar_and_cupy_array_times_cuda_tensor_stay_tensors():
    t = gg.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    out = np.float32(2) * t
    assert isinstance(out, gg.Tensor) and out.device == "cuda:0"
    out = t.backend.xp.asarray([3.0, 4.0], dtype="float32") * t
    assert isinstance(out, gg.Tensor) and out.grad_fn is not None


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_cupy_round_trip_shares_memory(dtype):
    t = gg.tensor(_sample(dtype), device="cuda")
    xp = t.backend.xp
    a = xp.from_dlpack(t)
    assert a.dtype == t.dtype and a.data.ptr == t.data.data.ptr
    back = gg.from_dlpack(a)
    assert back.device == "cuda:0" and back.dtype == t.dtype
    a[0, 0] = 1
    assert bool(back.data[0, 0] == 1) and bool(t.data[0, 0] == 1)
    # a transposed view
    v = gg.from_dlpack(xp.arange(6, dtype=xp.float32).reshape(2, 3).T)
    np.testing.assert_array_equal(v.numpy(), np.arange(6).reshape(2, 3).T)


@pytest.mark.gpu
def test_torch_cuda_round_trip():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA")
    x = torch.zeros(2, 3, device="cuda")
    t = gg.from_dlpack(x)
    assert t.device == "cuda:0"
    x[0, 0] = 1
    assert t.data[0, 0].item() == 1
    y = torch.from_dlpack(t)
    assert y.device.type == "cuda" and y.data_ptr() == x.data_ptr()
