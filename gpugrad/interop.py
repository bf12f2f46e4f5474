"""Interop: zero-copy exchange of tensors with NumPy, CuPy, PyTorch, JAX and friends.

* `gg.from_dlpack(obj)` imports anything implementing the DLPack protocol (`__dlpack__` and
  `__dlpack_device__`) without copying: host memory becomes a cpu tensor, CUDA memory a
  `cuda:N` tensor (which needs CuPy). The dtype is kept; dtypes gpugrad cannot hold
  (complex, bfloat16, uint32, ...) raise `DTypeError`.
* `Tensor.__dlpack__` / `Tensor.__dlpack_device__` export a tensor the same way, so
  `np.from_dlpack(t)`, `torch.from_dlpack(t)`, `cupy.from_dlpack(t)` and
  `jax.numpy.from_dlpack(t)` share its memory.
* `Tensor.__array__` lets NumPy read a cpu tensor (`np.asarray(t)` is the tensor's own array);
  on cuda it raises `DeviceError`, because that would be a silent device-to-host copy.
* `Tensor.__cuda_array_interface__` exists on cuda tensors only (Numba, CuPy, PyTorch read it).

Memory shared this way is outside autograd: gradients do not flow through the other library,
and writes made through it do not bump the tensor's version counter (as with `.numpy()`).
The methods are bound onto Tensor here, the way `gpugrad.ops` binds the ops.
"""

from __future__ import annotations

from typing import Any

from .backend import get_backend
from .dtypes import SUPPORTED
from .errors import DeviceError, DTypeError
from .tensor import Tensor, _make

__all__ = ["from_dlpack"]

# DLPack's DLDeviceType codes gpugrad can take: host memory, and CUDA device memory.
_KDL_CPU, _KDL_CUDA, _KDL_CUDA_HOST, _KDL_ROCM_HOST, _KDL_CUDA_MANAGED = 1, 2, 3, 11, 13
_HOST_TYPES = frozenset({_KDL_CPU, _KDL_CUDA_HOST, _KDL_ROCM_HOST})
_CUDA_TYPES = frozenset({_KDL_CUDA, _KDL_CUDA_MANAGED})
_DEVICE_NAMES = {
    1: "kDLCPU", 2: "kDLCUDA", 3: "kDLCUDAHost", 4: "kDLOpenCL", 7: "kDLVulkan", 8: "kDLMetal",
    9: "kDLVPI", 10: "kDLROCM", 11: "kDLROCMHost", 12: "kDLExtDev", 13: "kDLCUDAManaged",
    14: "kDLOneAPI", 15: "kDLWebGPU", 16: "kDLHexagon", 17: "kDLMAIA",
}  # fmt: skip
_SUPPORTED_NAMES = frozenset(dt.name for dt in SUPPORTED)


def _supported_list() -> str:
    return ", ".join(sorted(_SUPPORTED_NAMES))


def _dtype_name(obj: Any) -> str | None:
    """The element type `obj` says it has, as a plain name ("float32", "bfloat16"), if any."""
    dt = getattr(obj, "dtype", None)
    if dt is None:
        return None
    name = getattr(dt, "name", None)
    if not isinstance(name, str):  # torch.dtype has no .name: str() is "torch.bfloat16"
        name = str(dt)
    return name.rsplit(".", 1)[-1]


def _type_name(obj: Any) -> str:
    """The class with its top-level package ("torch.Tensor", "numpy.ndarray"), for messages."""
    cls = type(obj)
    return f"{cls.__module__.partition('.')[0]}.{cls.__qualname__}"


def _unsupported_dtype(name: str, obj: Any) -> DTypeError:
    return DTypeError(
        f"cannot import a {_type_name(obj)} of dtype {name} with from_dlpack: gpugrad "
        f"tensors hold {_supported_list()}; cast it in its own library first"
    )


def from_dlpack(obj: Any) -> Tensor:
    """A tensor sharing memory with `obj`, anything implementing the DLPack protocol.

    NumPy arrays, PyTorch tensors, CuPy arrays, JAX arrays (and gpugrad tensors) all do.
    Host memory becomes a cpu tensor; memory on CUDA GPU N becomes a `cuda:N` tensor, which
    needs CuPy (`BackendUnavailableError` otherwise). The dtype and strides are kept, nothing
    is copied: a write through either side is seen by the other. The result is a leaf that
    does not require grad; gradients do not flow back into the other library.
    """
    if isinstance(obj, Tensor):
        return obj.detach()  # the same memory and version counter, cut from the graph
    if not hasattr(obj, "__dlpack__"):
        raise TypeError(
            f"from_dlpack expects an object implementing the DLPack protocol (__dlpack__), "
            f"got {_type_name(obj)}; use gg.tensor(...) or gg.as_tensor(...) for other data"
        )
    kind, index = _KDL_CPU, 0
    if hasattr(obj, "__dlpack_device__"):
        kind, index = (int(v) for v in obj.__dlpack_device__())
    if kind in _HOST_TYPES:
        backend = get_backend("cpu")
        importer = backend.xp.from_dlpack
    elif kind in _CUDA_TYPES:
        backend = get_backend(f"cuda:{index}")  # BackendUnavailableError without CuPy or GPU N
        xp = backend.xp

        def importer(o: Any) -> Any:
            with xp.cuda.Device(index):
                return xp.from_dlpack(o)

    else:
        name = _DEVICE_NAMES.get(kind, f"device type {kind}")
        raise DeviceError(
            f"cannot import a {_type_name(obj)} on {name} (DLPack device ({kind}, {index})) "
            "with from_dlpack: gpugrad tensors live on cpu or cuda only; move it there first"
        )
    try:
        array = importer(obj)
    except (BufferError, RuntimeError, TypeError, ValueError) as exc:
        name = _dtype_name(obj)
        if name is not None and name not in _SUPPORTED_NAMES:  # e.g. bfloat16: NumPy has none
            raise _unsupported_dtype(name, obj) from exc
        raise
    if array.dtype not in SUPPORTED:
        raise _unsupported_dtype(array.dtype.name, obj)
    return _make(array, backend, None)


# --- methods bound onto Tensor -------------------------------------------------------------
def _dlpack(
    self: Tensor,
    *,
    stream: Any = None,
    max_version: tuple[int, int] | None = None,
    dl_device: Any = None,
    copy: bool | None = None,
) -> Any:
    """Export the data as a DLPack capsule (what `np.from_dlpack(t)`, `torch.from_dlpack(t)`
    call). Arguments go to the underlying array's `__dlpack__`; ones left as None are not
    passed, so array libraries that predate them still work. The consumer shares the memory;
    gradients do not flow through it."""
    kwargs: dict[str, Any] = {}
    if stream is not None:
        kwargs["stream"] = stream
    if max_version is not None:
        kwargs["max_version"] = max_version
    if dl_device is not None:
        kwargs["dl_device"] = dl_device
    if copy is not None:
        kwargs["copy"] = copy
    return self.data.__dlpack__(**kwargs)


def _dlpack_device(self: Tensor) -> tuple[int, int]:
    """The DLPack (device type, device index) of the data: (1, 0) on cpu, (2, N) on cuda:N."""
    return self.data.__dlpack_device__()


def _array(self: Tensor, dtype: Any = None, copy: bool | None = None) -> Any:
    """The data for NumPy (`np.asarray(t)`): the tensor's own array on cpu, so memory is shared
    unless a cast or `copy=True` is asked for. Gradients do not flow through NumPy."""
    if self._backend.device.type != "cpu":
        raise DeviceError(
            f"cannot turn a tensor on '{self.device}' into a NumPy array implicitly (that would "
            "be a hidden device-to-host copy); call .cpu() or .numpy() first"
        )
    data = self.data
    if dtype is not None and data.dtype != dtype:
        if copy is False:
            raise ValueError(
                f"np.asarray(..., copy=False) of a {data.dtype} tensor as {dtype} needs a copy"
            )
        return data.astype(dtype)
    return data.copy() if copy else data


# The NumPy ufuncs behind Python's operators, and the gpugrad op each one means.
_OPERATOR_UFUNCS = {
    "add": "add", "subtract": "sub", "multiply": "mul", "divide": "div", "power": "pow",
    "matmul": "matmul", "equal": "eq", "not_equal": "ne", "less": "lt", "less_equal": "le",
    "greater": "gt", "greater_equal": "ge", "bitwise_and": "logical_and",
    "bitwise_or": "logical_or", "bitwise_xor": "logical_xor",
}  # fmt: skip


def _host_array(x: Any) -> Any:
    """A ufunc operand as NumPy sees it: a cpu tensor's own array (no copy), by the same rule
    as np.asarray(tensor) (a cuda tensor raises instead of a hidden device-to-host copy)."""
    return _array(x) if isinstance(x, Tensor) else x


def _array_ufunc(self: Tensor, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
    """NumPy ufuncs that meet a Tensor. `array += tensor` (NumPy calls the ufunc with
    out=(array,)) writes into the array, as PyTorch's `p.data += ...` writes into p's storage
    (so a parameter's array, its optimizer bank and from_numpy's array stay one); an operator
    with an array on the left (`array * tensor`) is the gpugrad op, recorded for backward; any
    other ufunc runs on the cpu tensor's array and returns NumPy's result."""
    out = kwargs.get("out")
    if out is not None:
        if any(isinstance(o, Tensor) for o in out):
            return NotImplemented  # writing into a Tensor: gpugrad's in-place ops do that
        return getattr(ufunc, method)(*(_host_array(x) for x in inputs), **kwargs)
    op = _OPERATOR_UFUNCS.get(ufunc.__name__)
    if method == "__call__" and op is not None and len(inputs) == 2 and not kwargs:
        from . import ops

        return getattr(ops, op)(*inputs)
    return getattr(ufunc, method)(*(_host_array(x) for x in inputs), **kwargs)


def _cuda_array_interface(self: Tensor) -> dict[str, Any]:
    if self._backend.device.type != "cuda":
        raise AttributeError(
            f"__cuda_array_interface__ exists only on cuda tensors; this one is on "
            f"'{self.device}' (use np.asarray(t) or t.__dlpack__() there)"
        )
    return self.data.__cuda_array_interface__


def _bind_methods() -> None:
    for name, fn in (
        ("__dlpack__", _dlpack),
        ("__dlpack_device__", _dlpack_device),
        ("__array__", _array),
        ("__array_ufunc__", _array_ufunc),
    ):
        fn.__name__, fn.__qualname__ = name, f"Tensor.{name}"
        setattr(Tensor, name, fn)
    Tensor.__cuda_array_interface__ = property(
        _cuda_array_interface,
        doc="The CUDA Array Interface of a cuda tensor's data (absent on cpu tensors).",
    )


_bind_methods()
