"""Tensor: an array on a device, plus what autograd needs to know about it.

A Tensor holds `data` (a `numpy.ndarray` on cpu, a `cupy.ndarray` on cuda), the backend that
owns that array, and its autograd state: `requires_grad`, `grad`, and `grad_fn` (the Function
that produced it, None for leaves). Operators and math methods are attached in `gpugrad.ops`,
which is where each op lives.
"""

from __future__ import annotations

import weakref
from typing import Any

from . import autograd
from .backend import Backend, Device, cuda_is_available, get_backend
from .backend.device import DEVICE_TYPES
from .dtypes import default_dtype_for, is_floating, to_dtype
from .errors import (
    ArgumentError,
    ArgumentTypeError,
    DeviceError,
    DTypeError,
    GraphError,
    IndexOutOfRangeError,
    ShapeError,
)

_new = object.__new__


def _make(data: Any, backend: Backend, grad_fn: Any) -> Tensor:
    """Wrap an array without copying or checking: the fast path every op output takes."""
    t = _new(Tensor)
    t._data = data
    t._backend = backend
    t.grad_fn = grad_fn
    t.requires_grad = grad_fn is not None
    t._grad = None
    t._version = [0, 0]  # [changes in place, epoch of the last one]
    return t


def to_array(data: Any, backend: Backend, dtype: Any = None, copy: bool = False) -> Any:
    """Turn array-like data into an array of `backend`, picking gpugrad's default dtype."""
    dtype = to_dtype(dtype)
    if isinstance(data, Tensor):
        if data._backend is not backend:
            data = data._backend.to_numpy(data.data)
        else:
            data = data.data
    if backend.is_array(data) or hasattr(data, "__array_interface__") or hasattr(data, "dtype"):
        array = backend.asarray(data, copy=copy)
        from_python = False
    else:
        try:
            array = backend.asarray(data)  # Python scalars and (nested) lists
        except ValueError as exc:  # ragged nesting such as [[1, 2], [3]]
            raise ShapeError(f"cannot make a tensor from {type(data).__name__}: {exc}") from exc
        from_python = True
        copy = False
    target = dtype if dtype is not None else default_dtype_for(array, from_python)
    if array.dtype != target:
        array = array.astype(target)
    elif copy:
        array = array.copy()
    return array


def _check_grad(t: Tensor, g: Any) -> None:
    """A gradient assigned to `t.grad` must be a Tensor like `t`: same shape, dtype, device."""
    if not isinstance(g, Tensor):
        raise DTypeError(f"a .grad must be a Tensor or None, got {type(g).__name__}")
    if g._backend is not t._backend:
        raise DeviceError(f"the gradient is on '{g.device}' but the tensor is on '{t.device}'")
    if g.shape != t.shape:
        raise ShapeError(f"the gradient has shape {g.shape} but the tensor has shape {t.shape}")
    if g.dtype != t.dtype:
        raise DTypeError(f"the gradient has dtype {g.dtype} but the tensor has dtype {t.dtype}")


class Size(int):
    """An element count that is also PyTorch's size() when called (see Tensor.size)."""

    def __new__(cls, shape: tuple[int, ...]) -> Size:
        count = 1
        for n in shape:
            count *= n
        obj = super().__new__(cls, count)
        obj.shape = tuple(shape)
        return obj

    def __getnewargs__(self) -> tuple[tuple[int, ...]]:  # pickle and copy rebuild from shape
        return (self.shape,)

    def __call__(self, axis: int | None = None, *, dim: int | None = None) -> Any:
        """The shape (a tuple), or the length of one axis (`dim=` too: size() is PyTorch's)."""
        if dim is not None:
            axis = dim
        if axis is None:
            return self.shape
        ndim = len(self.shape)
        if isinstance(axis, bool) or not hasattr(axis, "__index__"):
            raise ShapeError(f"size() takes an int axis, got {axis!r}")
        if not -ndim <= axis < ndim:
            raise IndexOutOfRangeError(
                f"axis {axis} is out of range for shape {self.shape} (valid: {-ndim}..{ndim - 1})"
            )
        return self.shape[axis]


def _is_device_name(name: str) -> bool:
    return name.strip().lower().partition(":")[0] in DEVICE_TYPES


class Tensor:
    """An n-dimensional array on a device that can record the ops applied to it.

    Make tensors with `gg.tensor(...)`, `gg.zeros(...)`, `gg.randn(...)` and friends;
    `Tensor(data, ...)` does the same as `gg.tensor(data, ...)`.
    """

    # `_hooks` stays unset (no cost) until a hook is registered on the tensor.
    # `data` and `grad` are properties over `_data` and `_grad`, so that what is assigned to
    # them is checked (the engine's hot path reads and writes the slots directly).
    __slots__ = (
        "__weakref__",
        "_backend",
        "_data",
        "_data_replaced_at",
        "_grad",
        "_hooks",
        "_version",
        "grad_fn",
        "requires_grad",
    )
    __array_priority__ = 1000  # so `ndarray * Tensor` defers to Tensor.__rmul__
    __hash__ = object.__hash__  # by identity: == is elementwise, as in NumPy

    def __init__(
        self,
        data: Any,
        dtype: Any = None,
        device: str | Device | None = None,
        requires_grad: bool = False,
    ) -> None:
        if device is None and isinstance(data, Tensor):
            device = data.device
        backend = get_backend(device)
        self._data = to_array(data, backend, dtype, copy=True)
        self._backend = backend
        self.grad_fn = None
        self._grad = None
        self._version = [0, 0]
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # --- the array and its gradient ------------------------------------------------------
    @property
    def data(self) -> Any:
        """The raw array (numpy.ndarray on cpu, cupy.ndarray on cuda), outside autograd."""
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        # `p.data += -lr * p.grad` ends in `p.data = <Tensor>` (the array defers `+=` to
        # Tensor.__radd__): keep the array, never a Tensor, as PyTorch's `.data` does.
        if isinstance(value, Tensor):
            if value._backend is not self._backend:
                raise DeviceError(
                    f"cannot assign data on '{value.device}' to a tensor on '{self.device}'; "
                    "move it with .to(device) first"
                )
            value = value._data
        elif not self._backend.is_array(value):
            raise DTypeError(
                f"data must be a {self._backend.array_type.__name__} or a Tensor on "
                f"'{self.device}', got {type(value).__name__}"
            )
        if self.requires_grad and not is_floating(value.dtype):
            raise DTypeError(
                f"cannot assign {value.dtype} data to a tensor that requires grad "
                "(only floating-point tensors can have gradients)"
            )
        if value.shape != self._data.shape:  # ops recorded before cannot fit gradients to it
            self._data_replaced_at = next(autograd._sequence)
        self._data = value

    @property
    def grad(self) -> Tensor | None:
        """The gradient backward accumulated here (None until then), same shape and device."""
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        if value is not None:
            _check_grad(self, value)
        self._grad = value

    # --- what it is --------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The size of each axis."""
        return self._data.shape

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return self._data.ndim

    @property
    def size(self) -> Size:
        """The number of elements (NumPy's attribute: `x.size == 6`), which can also be called
        as PyTorch's size(): `x.size()` is the shape, `x.size(0)` one axis's length."""
        return Size(self._data.shape)

    @property
    def dtype(self) -> Any:
        """The element type (a NumPy dtype object)."""
        return self._data.dtype

    @property
    def device(self) -> Device:
        """The device the data lives on."""
        return self._backend.device

    @property
    def backend(self) -> Backend:
        """The backend holding the data."""
        return self._backend

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded op (their .grad gets filled)."""
        return self.grad_fn is None

    @property
    def version(self) -> int:
        """How many times the data was changed in place (shared by views of the same data)."""
        return self._version[0]

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ShapeError(
                f"the truth value of a tensor with {self._data.size} elements is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iu" or self._data.size != 1:
            raise DTypeError(  # a TypeError, as the __index__ protocol expects
                f"only one-element integer tensors can be used as an index, got shape "
                f"{self.shape} {self.dtype}"
            )
        return int(self.item())

    def __format__(self, spec: str) -> str:
        # As PyTorch: f"{loss:.4f}" formats a 0-d tensor's value; other tensors take no spec.
        if self._data.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def __repr__(self) -> str:
        import numpy as np

        body = np.array2string(
            self.numpy(), separator=", ", prefix="tensor(", precision=4, threshold=200
        )
        extras = []
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self._data.dtype.name not in ("float32", "int64", "bool"):
            extras.append(f"dtype={self._data.dtype.name}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}{''.join(', ' + e for e in extras)})"

    # --- leaving gpugrad ----------------------------------------------------------------
    def numpy(self) -> Any:
        """The data as a NumPy array (the same memory on cpu, a host copy on cuda)."""
        return self._backend.to_numpy(self._data)

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number (a host sync on cuda)."""
        if self._data.size != 1:
            raise ShapeError(
                f"item() needs a tensor with one element, this one has shape {self.shape}"
            )
        return self._data.item()

    def tolist(self) -> Any:
        """The data as (nested) Python lists."""
        return self.numpy().tolist()

    # --- autograd state -----------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Mark a leaf as needing gradients (in place); returns self."""
        if not isinstance(requires_grad, bool):
            raise ArgumentTypeError(
                f"requires_grad_ takes True or False, got {requires_grad!r} "
                f"({type(requires_grad).__name__})"
            )
        if self.grad_fn is not None:
            raise GraphError(
                "requires_grad can only be changed on leaf tensors; use .detach() to get a leaf"
            )
        if requires_grad and not is_floating(self._data.dtype):
            raise DTypeError(
                f"only floating-point tensors can require gradients, this one is {self.dtype}"
            )
        self.requires_grad = requires_grad
        return self

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data (and version counter), cut from the graph."""
        t = _make(self._data, self._backend, None)
        t._version = self._version
        return t

    def retain_grad(self) -> None:
        """Keep `.grad` for this non-leaf tensor too when backward runs."""
        if not self.requires_grad:
            raise GraphError("retain_grad() on a tensor that does not require grad")
        if self.grad_fn is None:
            return
        node = self.grad_fn
        if node.retained is None:
            node.retained = []
        node.retained.append(weakref.ref(self))

    def register_hook(self, hook: Any) -> Any:
        """Call hook(grad) each time backward computes this tensor's gradient; a Tensor the
        hook returns replaces it. Returns a handle whose remove() unregisters the hook."""
        return autograd.register_tensor_hook(self, hook)

    def backward(
        self, gradient: Any = None, retain_graph: bool | None = None, create_graph: bool = False
    ) -> None:
        """Backpropagate from this tensor, adding into `.grad` of every leaf it depends on.

        A non-scalar tensor needs `gradient` (same shape): the vector in the
        vector-Jacobian product. The graph's saved arrays are freed unless `retain_graph`.
        """
        autograd.backward(self, gradient, retain_graph, create_graph)

    # --- moving and casting -------------------------------------------------------------
    def to(
        self,
        *args: Any,
        dtype: Any = None,
        device: Any = None,
        non_blocking: bool = False,
        copy: bool = False,
    ) -> Tensor:
        """Move to a device and/or cast: `t.to("cuda")`, `t.to(gg.float64)`, both at once, or
        `t.to(other)` for other's device and dtype. `copy=True` always returns a new tensor;
        `non_blocking` is accepted for PyTorch code (CuPy's copies are ordered on the stream).

        Differentiable: gradients flow back to the original device and dtype.
        """
        given: dict[str, Any] = {}
        for arg in args:
            if isinstance(arg, Tensor):
                found = {"device": arg.device, "dtype": arg.dtype}
            elif isinstance(arg, Device) or (isinstance(arg, str) and _is_device_name(arg)):
                found = {"device": arg}
            else:
                found = {"dtype": arg}
            for key, value in found.items():
                if (
                    key in given
                    or (key == "device" and device is not None)
                    or (key == "dtype" and dtype is not None)
                ):
                    raise ArgumentError(f"to() got two {key}s: {args!r}")
                given[key] = value
        device = given.get("device", device)
        dtype = given.get("dtype", dtype)
        from .ops import astype, clone, to_device

        out = self
        if device is not None:
            out = to_device(out, device)
        if dtype is not None:
            out = astype(out, dtype)
        if copy and out is self:
            out = clone(self)
        return out

    def __deepcopy__(self, memo: dict[int, Any]) -> Tensor:
        """A copy with its own data (and its own copy of .grad), for copy.deepcopy of tensors
        and modules; only leaves can be copied, as in PyTorch."""
        if self.grad_fn is not None:
            raise GraphError(
                "only leaf tensors support deepcopy (this one was made by an op); detach() it first"
            )
        copied = _new(type(self))
        copied._data = self._data.copy()
        copied._backend = self._backend
        copied.grad_fn = None
        copied.requires_grad = self.requires_grad
        copied._grad = None if self._grad is None else self._grad.__deepcopy__(memo)
        copied._version = [0, 0]
        memo[id(self)] = copied
        return copied

    def pin_memory(self) -> Tensor:
        """This cpu tensor copied into page-locked host memory, which a GPU copies from
        directly (`x.pin_memory().to("cuda", non_blocking=True)`), as a new leaf: staging
        data is not part of a graph. Without a GPU there is nothing to pin for, and a plain
        copy is returned."""
        if self.device.type != "cpu":
            raise DeviceError(f"only cpu tensors can be pinned, this one is on '{self.device}'")
        if not cuda_is_available():  # nothing to pin for: still a copy, as PyTorch's is
            return _make(self._data.copy(), self._backend, None)
        return _make(get_backend("cuda").pin(self._data), self._backend, None)

    def cpu(self) -> Tensor:
        """This tensor on the cpu (itself when already there)."""
        return self.to("cpu")

    def cuda(self, index: int | None = None) -> Tensor:
        """This tensor on a CUDA device (cuda:0 unless `index` says otherwise)."""
        return self.to("cuda" if index is None else f"cuda:{index}")

    def float(self) -> Tensor:
        """Cast to float32."""
        return self.to(dtype="float32")

    def double(self) -> Tensor:
        """Cast to float64."""
        return self.to(dtype="float64")

    def half(self) -> Tensor:
        """Cast to float16."""
        return self.to(dtype="float16")

    def long(self) -> Tensor:
        """Cast to int64."""
        return self.to(dtype="int64")

    def int(self) -> Tensor:
        """Cast to int32."""
        return self.to(dtype="int32")

    def bool(self) -> Tensor:
        """Cast to bool."""
        return self.to(dtype="bool")
