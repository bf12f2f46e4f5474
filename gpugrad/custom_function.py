"""PyTorch-style custom functions: static `forward(ctx, ...)` and `backward(ctx, ...)` on Tensors.

gpugrad's own ops subclass `autograd.Function` with instance methods on raw arrays (see
`autograd.py`). A subclass whose `forward` is a `@staticmethod` is written the PyTorch way
instead, and `Function.__init_subclass__` hands it to `make_ctx_style` here:

    class Cube(gg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x * x * g

    y = Cube.apply(x)

`forward` runs on Tensors with recording off; `backward` gets one gradient Tensor and returns one
gradient (or None) per argument of `forward`. PyTorch's newer split works too: a static
`forward(*args)` without ctx plus `setup_context(ctx, inputs, output)`. With
`create_graph=True` the backward's ops are recorded, so a backward written with gpugrad ops can
be differentiated again.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any

from .autograd import Function, _make, _new, _sequence, _SetGradMode, is_grad_enabled
from .dtypes import is_floating
from .errors import (
    ArgumentTypeError,
    DeviceError,
    DTypeError,
    GraphError,
    InplaceError,
    ShapeError,
)
from .tensor import Tensor


class FunctionCtx:
    """The `ctx` of a custom function: what forward leaves for backward.

    Any attribute may be set on it (`ctx.k = 3`); tensors go through `save_for_backward`, so
    an in-place change made to them before backward is caught.
    """

    def __init__(self, needs_input_grad: tuple[bool, ...]) -> None:
        self.needs_input_grad = needs_input_grad
        self._saved: tuple[tuple[Tensor | None, int], ...] = ()
        self._non_differentiable: set[int] = set()
        self._output: Tensor | None = None  # forward's result, as forward made it
        self._node: Any = None  # weak reference to the node recorded for it

    def save_for_backward(self, *tensors: Tensor | None) -> None:
        """Keep tensors (inputs or outputs of forward) for backward's `ctx.saved_tensors`."""
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise DTypeError(
                    f"save_for_backward takes Tensors (or None); argument {i} is "
                    f"{type(t).__name__}: keep other values as attributes of ctx instead"
                )
        self._saved = tuple((t, t._version[0] if t is not None else 0) for t in tensors)

    @property
    def saved_tensors(self) -> tuple[Tensor | None, ...]:
        """The tensors given to `save_for_backward`, checked for in-place changes since. A
        saved output comes back attached to this function's node, so a backward recorded
        with create_graph=True differentiates through it."""
        for i, (t, version) in enumerate(self._saved):
            if t is not None and t._version[0] != version:
                raise InplaceError(
                    f"saved tensor {i} (shape {t.shape}) was modified in place after "
                    f"save_for_backward (version {version} -> {t._version[0]}), so the "
                    "gradient would be wrong; clone() it before changing it"
                )
        node = self._node() if self._node is not None else None
        return tuple(self._attached(t, node) for t, _ in self._saved)

    def _attached(self, t: Tensor | None, node: Any) -> Tensor | None:
        if t is None or t is not self._output or node is None or not is_grad_enabled():
            return t
        attached = _make(t._data, t._backend, node)
        attached._version = t._version
        return attached

    def set_materialize_grads(self, value: bool) -> None:
        """Accepted for PyTorch code: a gpugrad custom function has one output, whose gradient
        always arrives as a Tensor (never None), so there is nothing to materialise."""
        self.materialize_grads = bool(value)

    def mark_non_differentiable(self, *tensors: Tensor) -> None:
        """Outputs of forward (integer indices, masks) that get no gradient."""
        self._non_differentiable.update(id(t) for t in tensors)

    def mark_dirty(self, *tensors: Tensor) -> None:
        """PyTorch's mark for inputs that forward changed in place: refused with a GraphError,
        since a gpugrad custom function must return a new tensor (the engine would otherwise
        keep a gradient path through the input's old value)."""
        raise GraphError(
            f"ctx.mark_dirty: a custom function cannot change its inputs in place here "
            f"({len(tensors)} tensor(s) marked); compute the result into a new tensor and "
            "return it (x.clone() first, if forward must start from x's values)"
        )


def make_ctx_style(cls: type[Function]) -> None:
    """Give a Function subclass with a static `forward(ctx, ...)` its `apply` and the engine's
    view of its `backward`."""
    backward = inspect.getattr_static(cls, "backward")
    if isinstance(backward, staticmethod):
        cls._user_backward = backward  # type: ignore[attr-defined]
    elif not hasattr(cls, "_user_backward"):
        raise GraphError(
            f"{cls.__name__}: forward is a @staticmethod taking ctx, so backward must be one "
            "too: @staticmethod def backward(ctx, *grads)"
        )
    setup = inspect.getattr_static(cls, "setup_context", None)
    cls._setup_context = setup.__func__ if isinstance(setup, staticmethod) else None
    cls.backward = _engine_backward  # type: ignore[method-assign]
    cls.apply = classmethod(_apply)  # type: ignore[assignment, method-assign]


def _apply(cls: type[Function], *args: Any, **kwargs: Any) -> Any:
    """Run `cls.forward(ctx, *args)` without recording, then record one node for it."""
    if kwargs:  # bound to forward's positions, as PyTorch does: one gradient per argument
        try:
            lead = () if getattr(cls, "_setup_context", None) is not None else (None,)
            bound = inspect.signature(cls.forward).bind(*lead, *args, **kwargs)
        except TypeError as exc:
            raise ArgumentTypeError(f"{cls.__name__}.apply: {exc}") from None
        args, kwargs = bound.args[len(lead) :], bound.kwargs
    backend = None
    for a in args:
        if isinstance(a, Tensor):
            if backend is None:
                backend = a._backend
            elif a._backend is not backend:
                devices = ", ".join(f"'{x.device}'" for x in args if isinstance(x, Tensor))
                raise DeviceError(f"{cls.__name__}: tensors on different devices ({devices})")
    needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
    ctx = FunctionCtx(needs)
    ctx.tensor_positions = {i for i, a in enumerate(args) if isinstance(a, Tensor)}
    with _SetGradMode(False):
        if getattr(cls, "_setup_context", None) is not None:  # forward(*args), then the ctx
            out = cls.forward(*args, **kwargs)
            cls._setup_context(ctx, args, out)
        else:
            out = cls.forward(ctx, *args, **kwargs)
    if not isinstance(out, Tensor):
        raise DTypeError(f"{cls.__name__}.forward must return one Tensor, got {type(out).__name__}")
    if (
        not (any(needs) and is_grad_enabled())
        or id(out) in ctx._non_differentiable
        or not is_floating(out.dtype)  # integer results carry no gradient (PyTorch's rule)
    ):
        return out
    if out._backend is not backend:
        raise DeviceError(f"{cls.__name__}.forward returned a tensor on '{out.device}'")
    node = _new(cls)
    node.ctx = ctx
    node.xp = backend
    node.edges = tuple(
        (a.grad_fn or a) if isinstance(a, Tensor) and a.requires_grad else None for a in args
    )
    node.out_shape = out.shape
    node.seq = next(_sequence)
    ctx._output, ctx._node = out, weakref.ref(node)
    result = _make(out._data, backend, node)
    result._version = out._version  # an in-place change of the result is seen by the saves
    return result


def _engine_backward(node: Function, xp: Any, g: Any, *saved: Any) -> tuple[Any, ...]:
    """What the engine calls: the user's backward on Tensors, its results as the engine's."""
    recording = isinstance(g, Tensor)  # create_graph=True hands over Tensors
    grads = type(node)._user_backward(node.ctx, g if recording else _make(g, xp, None))
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    if len(grads) != len(node.edges):
        raise ShapeError(
            f"{node.name}.backward returned {len(grads)} gradient(s) for the "
            f"{len(node.edges)} argument(s) of forward; return one per argument (None for "
            "those without a gradient)"
        )
    result = []
    for i, (gx, edge) in enumerate(zip(grads, node.edges)):
        if gx is None:
            result.append(None)
        elif not isinstance(gx, Tensor):
            raise DTypeError(
                f"{node.name}.backward returned {type(gx).__name__} for argument {i}; "
                "gradients must be Tensors (or None)"
            )
        elif edge is None:
            if not node.ctx.needs_input_grad[i] and i not in node.ctx.tensor_positions:
                raise GraphError(
                    f"{node.name}.backward returned a gradient for argument {i}, which is not "
                    "a Tensor: return None there"
                )
            result.append(None)
        else:  # (a gradient of the broadcast shape: the engine sums it down, as PyTorch's)
            result.append(gx if recording else gx._data)
    return tuple(result)
