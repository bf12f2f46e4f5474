"""The autograd engine: graph recording, backward, grad modes.

Every op is a `Function`. Calling `Op.apply(a, b)` runs `forward` on the raw arrays and, when
any input requires grad, returns a Tensor whose `grad_fn` is the Function instance: a node of the
graph that remembers its inputs and whatever `forward` saved.

`backward` walks the graph from the output in reverse topological order (an explicit stack, so
graphs of any depth work) and applies the chain rule at each node: the gradient arriving at the
node's output is turned by `Function.backward` into one gradient per input, and gradients that
reach the same tensor along several paths add up.

One backward formula serves two purposes. `backward(self, xp, g, *saved)` is written with
operators and the NumPy-named functions of `xp`:

- in a plain backward, `xp` is the backend and `g` and `saved` are raw arrays: fast;
- with `create_graph=True`, `xp` is `gpugrad.ops` and `g` and `saved` are Tensors, so the
  backward pass is itself recorded and can be differentiated again.

For the second case to be right, `save` may hold only the forward's inputs and its output;
anything else a backward needs (a mask, an axis) is a plain attribute and counts as a constant.
"""

from __future__ import annotations

import functools
import heapq
import inspect
import itertools
import math
import os
import threading
import traceback
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn, TypeVar

from .errors import (
    AnomalyError,
    ArgumentTypeError,
    DeviceError,
    DTypeError,
    GraphError,
    IndexOutOfRangeError,
    InplaceError,
    ShapeError,
)  # fmt: skip

F = TypeVar("F", bound=Callable[..., Any])


# --- grad mode ---------------------------------------------------------------------------
class _GradMode(threading.local):
    """Whether ops record the graph; per thread, as in PyTorch, so a `no_grad` block in one
    thread (a data loader, say) never switches recording off in another."""

    enabled = True


_mode = _GradMode()


class _EngineState(threading.local):
    """Whether this thread is inside the engine's backward loop on arrays: only there may
    GetItem hand back a lazy SliceGrad (gg.explain and direct calls get arrays)."""

    lazy_slices = False


_engine = _EngineState()


def lazy_slices() -> bool:
    """Whether a gradient may be returned as a SliceGrad (see _EngineState)."""
    return _engine.lazy_slices


class _AnomalyMode(threading.local):
    """Whether backward checks every gradient for NaN/inf (per thread; off by default)."""

    enabled = False


_anomaly = _AnomalyMode()
# How many threads have anomaly mode on: while none has, the compiled apply skips reading the
# thread-local flag (the Python apply reads it only after forward, for a recorded node).
_anomaly_threads = [0]
_anomaly_lock = threading.Lock()


class _SetAnomalyMode:
    """Context manager that switches anomaly detection and restores it afterwards."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.saved: list[bool] = []

    def __enter__(self) -> None:
        self.saved.append(_anomaly.enabled)
        self._switch(bool(self.enabled))

    def __exit__(self, *exc: object) -> None:
        self._switch(self.saved.pop())

    @staticmethod
    def _switch(enabled: bool) -> None:
        with _anomaly_lock:
            _anomaly_threads[0] += int(enabled) - int(_anomaly.enabled)
            _anomaly.enabled = enabled


def detect_anomaly(enabled: bool = True) -> _SetAnomalyMode:
    """Inside `with gg.detect_anomaly():`, ops remember where in your code they were made,
    and backward raises AnomalyError naming the op whose gradient first turned NaN or inf,
    with that place. Off by default: it costs a stack capture per op."""
    return _SetAnomalyMode(enabled)


def is_anomaly_enabled() -> bool:
    """True inside `detect_anomaly()`."""
    return _anomaly.enabled


def is_grad_enabled() -> bool:
    """True when ops record the graph for backward."""
    return _mode.enabled


class _SetGradMode:
    """Context manager and decorator that sets grad mode and restores it afterwards."""

    def __init__(self, enabled: bool | None) -> None:
        self.enabled = enabled  # None: leave the mode as it is
        self.saved: list[bool] = []

    def __enter__(self) -> None:
        self.saved.append(_mode.enabled)
        if self.enabled is not None:
            _mode.enabled = self.enabled

    def __exit__(self, *exc: object) -> None:
        _mode.enabled = self.saved.pop()

    def _fresh(self) -> _SetGradMode:
        """A new manager for one call of a decorated function (calls may overlap)."""
        return _SetGradMode(self.enabled)

    def __call__(self, fn: F) -> F:
        if inspect.isgeneratorfunction(fn):  # keep the mode while the generator's body runs
            return _generator_in_mode(self.enabled, fn)  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def _generator_in_mode(enabled: bool | None, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` (a generator function) with each step of its body run in grad mode `enabled`,
    while the caller's code between the steps keeps its own mode."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        gen = fn(*args, **kwargs)
        step, arg = gen.send, None
        while True:
            try:
                with _SetGradMode(enabled):
                    value = step(arg)
            except StopIteration as stop:
                return stop.value
            try:
                arg, step = (yield value), gen.send
            except GeneratorExit:
                with _SetGradMode(enabled):
                    gen.close()
                raise
            except BaseException as exc:
                arg, step = exc, gen.throw

    return wrapper


def no_grad(fn: F | None = None) -> Any:
    """Stop recording the graph: `with gg.no_grad(): ...`, `@gg.no_grad()` or `@gg.no_grad`."""
    mode = _SetGradMode(False)
    return mode if fn is None else mode(fn)


def enable_grad(fn: F | None = None) -> Any:
    """Record the graph again inside a `no_grad` block (context manager or decorator)."""
    mode = _SetGradMode(True)
    return mode if fn is None else mode(fn)


class _InferenceMode(threading.local):
    """Whether this thread is inside an inference_mode(True) block."""

    enabled = False


_inference = _InferenceMode()


class _SetInferenceMode(_SetGradMode):
    """inference_mode(mode): recording off (mode True) or on (mode False), as PyTorch's
    switch sets grad mode to `not mode`; is_inference_mode_enabled() reports `mode`."""

    def __init__(self, mode: bool) -> None:
        super().__init__(not mode)
        self.mode = mode
        self.saved_modes: list[bool] = []

    def __enter__(self) -> None:
        super().__enter__()
        self.saved_modes.append(_inference.enabled)
        _inference.enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        _inference.enabled = self.saved_modes.pop()
        super().__exit__(*exc)

    def _fresh(self) -> _SetGradMode:
        return _SetInferenceMode(self.mode)


def inference_mode(mode: Any = True) -> Any:
    """Run without recording the graph, for evaluation and serving: `with gg.inference_mode():`,
    `@gg.inference_mode()` or `@gg.inference_mode`. gpugrad's no_grad already keeps no autograd
    state, so the two compute alike; `inference_mode(False)` records again, as PyTorch's does."""
    if callable(mode):  # used bare as a decorator
        return _SetInferenceMode(True)(mode)
    return _SetInferenceMode(bool(mode))


def is_inference_mode_enabled() -> bool:
    """True inside an `inference_mode()` block (not merely inside no_grad, as in PyTorch)."""
    return _inference.enabled


class _SetGradEnabled(_SetGradMode):
    """set_grad_enabled: switches at once when called (PyTorch's rule), and as a context
    manager puts the earlier mode back on exit; as a decorator it leaves the caller's mode."""

    def __init__(self, enabled: bool) -> None:
        super().__init__(bool(enabled))
        self.previous = _mode.enabled
        _mode.enabled = self.enabled

    def __enter__(self) -> None:
        self.saved.append(self.previous)

    def __call__(self, fn: F) -> F:
        _mode.enabled = self.previous  # decorating only: the switch applies inside fn
        return super().__call__(fn)


def set_grad_enabled(enabled: bool) -> _SetGradMode:
    """Turn graph recording on or off: at once as a call (`gg.set_grad_enabled(False)`),
    for a block as a context manager, or for a function as a decorator."""
    return _SetGradEnabled(enabled)


# --- the graph node ------------------------------------------------------------------------
class Function:
    """One application of an op: a node of the graph.

    Subclasses define `forward(self, *arrays, **params)` returning an array, and
    `backward(self, xp, g, *saved)` returning the gradient for each input (a tuple, or a
    single gradient for one-input ops; None for inputs that get no gradient). A gradient may
    have the shape of its input broadcast (the output's shape, for elementwise ops): the
    engine sums it back down with `unbroadcast`.
    `self.xp` is the backend inside `forward`; `self.save(...)` keeps arrays for backward.
    """

    __slots__ = ("__dict__", "edges", "out_shape", "seq", "xp")
    # Class-level defaults, overridden per node only when used (keeps apply short).
    saved: tuple[Any, ...] | None = ()  # what forward kept for backward; None once freed
    inputs: tuple[Any, ...] | None = None  # kept only by nodes that saved arrays, and views
    is_view = False  # set by ops whose output may share the input's memory
    epoch = -1  # the in-place epoch when forward saved arrays (-1: it saved none)
    input_views: dict[int, int] = {}  # noqa: RUF012 - id of a view made for input i -> i
    retained: list[Any] | None = None  # weak references to non-leaf tensors that retain_grad()
    tensor_hooks: dict[int, Callable[..., Any]] | None = None  # hooks of the output tensor
    trace: list[str] | None = None  # where the op was made (under detect_anomaly)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if isinstance(inspect.getattr_static(cls, "forward", None), staticmethod):
            from .custom_function import make_ctx_style  # PyTorch-style: forward(ctx, ...)

            make_ctx_style(cls)

    def save(self, *arrays: Any) -> None:
        """Keep the forward's inputs and/or output for backward (they are passed to it)."""
        self.saved = arrays

    def needs_grad(self, i: int) -> bool:
        """Whether input `i` wants a gradient; lets backward skip costly work (matmul)."""
        return self.edges[i] is not None

    @property
    def name(self) -> str:
        """The op's name, as errors and reprs show it."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"

    # apply(*inputs, **params), the op on Tensors: `_apply` below, set after it is defined.
    apply: Callable[..., Tensor]


def _apply(cls: type[Function], *inputs: Any, **params: Any) -> Tensor:
    """Run the op on Tensors (and Python scalars) and record it when a gradient is needed."""
    node = _new(cls)
    if len(inputs) == 1:  # the common case, kept short
        x = inputs[0]
        if not isinstance(x, Tensor):
            raise _not_a_tensor(node.name, x)
        backend = node.xp = x._backend
        track = x.requires_grad
        edges = (x.grad_fn or x,)
        try:
            out = node.forward(x._data, **params)
        except (ValueError, TypeError, IndexError, OverflowError) as exc:
            _forward_failed(node, inputs, exc)
    elif len(inputs) == 2 and type(inputs[0]) is Tensor and type(inputs[1]) is Tensor:
        # Two plain tensors, the other common case (a + b, a * b, a @ b), unrolled.
        a, b = inputs
        backend = node.xp = a._backend
        if b._backend is not backend:
            raise _device_mismatch(node.name, inputs)
        a_data, b_data = a._data, b._data
        if a_data is b_data and a is not b:  # x and x.detach(): see the general case
            b_data = b_data.view()
            node.input_views = {id(b_data): 1}
        track = a.requires_grad or b.requires_grad
        edges = (
            (a.grad_fn or a) if a.requires_grad else None,
            (b.grad_fn or b) if b.requires_grad else None,
        )
        try:
            out = node.forward(a_data, b_data, **params)
        except (ValueError, TypeError, IndexError, OverflowError) as exc:
            _forward_failed(node, inputs, exc)
    elif (
        len(inputs) == 3
        and isinstance(inputs[0], Tensor)
        and isinstance(inputs[1], Tensor)
        and isinstance(inputs[2], Tensor)
        and inputs[0]._data is not inputs[1]._data
        and inputs[0]._data is not inputs[2]._data
        and inputs[1]._data is not inputs[2]._data
    ):
        # Three tensors of distinct arrays (x, weight, bias of a linear layer), unrolled;
        # the same array twice takes the general case, which gives it a view.
        a, b, c = inputs
        backend = node.xp = a._backend
        if b._backend is not backend or c._backend is not backend:
            raise _device_mismatch(node.name, inputs)
        track = a.requires_grad or b.requires_grad or c.requires_grad
        edges = (
            (a.grad_fn or a) if a.requires_grad else None,
            (b.grad_fn or b) if b.requires_grad else None,
            (c.grad_fn or c) if c.requires_grad else None,
        )
        try:
            out = node.forward(a._data, b._data, c._data, **params)
        except (ValueError, TypeError, IndexError, OverflowError) as exc:
            _forward_failed(node, inputs, exc)
    else:
        backend = None
        arrays = []
        edge_list = []
        track = False
        seen = set()  # ids of the arrays taken so far: a set keeps n inputs linear in n
        for x in inputs:
            if isinstance(x, Tensor):
                if backend is None:
                    backend = x._backend
                elif x._backend is not backend:
                    raise _device_mismatch(node.name, inputs)
                data = x._data
                if id(data) in seen:
                    # Another input holds this very array (x and x.detach()): give this
                    # one its own view object, so saved arrays map back to their input.
                    data = data.view()
                    node.input_views = {**node.input_views, id(data): len(arrays)}
                seen.add(id(data))
                arrays.append(data)
                if x.requires_grad:
                    track = True
                    edge_list.append(x.grad_fn or x)
                else:
                    edge_list.append(None)
            else:
                if isinstance(x, (list, tuple)):
                    raise _not_a_tensor(node.name, x)
                arrays.append(x)
                edge_list.append(None)
        edges = edge_list
        node.xp = backend
        try:
            out = node.forward(*arrays, **params)
        except (ValueError, TypeError, IndexError, OverflowError) as exc:
            _forward_failed(node, inputs, exc)
    if out.__class__ is not backend.array_type:
        out = _array_output(node, out)
    if not (track and _mode.enabled):
        return _make(out, backend, None)
    node.edges = edges
    node.out_shape = out.shape
    node.seq = next(_sequence)
    if _anomaly.enabled:  # the user's frames: gpugrad's own add nothing to look at
        node.trace = [f for f in traceback.format_stack()[:-1] if _PACKAGE not in f]
    result = _make(out, backend, node)
    if node.saved:
        node.inputs = inputs
        node.epoch = _epoch[0]
        node.out_version = result._version
        node.out_id = id(out)
    elif node.is_view:
        node.inputs = inputs
    return result


Function.apply = classmethod(_apply)  # type: ignore[assignment]  (compiled where built)


def _forward_failed(node: Function, inputs: Sequence[Any], exc: Exception) -> NoReturn:
    """Raise an array library's error in forward as a typed error naming the op's inputs."""
    raise _explain_failure(node.name, inputs, exc) from exc


def _array_output(node: Function, out: Any) -> Any:
    """NumPy turns 0-d results into scalars: make it a 0-d array again (in what the node
    saved, too)."""
    scalar, out = out, node.xp.xp.asarray(out)
    if node.saved:
        node.saved = tuple(out if a is scalar else a for a in node.saved)
    return out


_new = object.__new__
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
# In-place changes are numbered by a global epoch; each tensor's version counter records the
# epoch of its last change ([count, epoch], shared by views). A node that saved arrays at
# epoch e needs checking only if the epoch has moved since, and then only for tensors whose
# last change is later than e. This keeps the check off the forward's hot path.
_epoch = [0]


def share_version(view: Tensor, base: Tensor, index: Any = None) -> None:
    """Make `view` (whose data is a view of base's memory) share base's version counter, and
    register both as aliases of that memory: a recorded in-place write through one must know
    the others. `index` is given for slices (view = base[index]), which can be written
    through; other views (reshape, transpose, ...) cannot."""
    counter = base._version
    if len(counter) == 2:
        counter.append({id(base): (weakref.ref(base), None, None)})
    counter[2][id(view)] = (weakref.ref(view), weakref.ref(base), index)
    view._version = counter


def alias_info(t: Tensor) -> tuple[list[Tensor], Tensor | None, Any]:
    """(other live tensors sharing t's memory, t's base if t is a view of one, the index of
    that view when it is a slice). Forgets tensors that died."""
    counter = t._version
    if len(counter) < 3:
        return [], None, None
    registry = counter[2]
    others: list[Tensor] = []
    base = index = None
    for key, (ref, base_ref, idx) in list(registry.items()):
        obj = ref()
        if obj is None:
            del registry[key]
        elif obj is t:
            base = base_ref() if base_ref is not None else None
            index = idx
        else:
            others.append(obj)
    return others, base, index


def bump_version(t: Tensor) -> None:
    """Record an in-place change of t's data (seen by t and every view sharing its counter)."""
    _epoch[0] += 1
    counter = t._version
    counter[0] += 1
    counter[1] = _epoch[0]


def bump_versions(tensors: Iterable[Tensor]) -> None:
    """bump_version(t) for each tensor in turn (an optimizer step changes many)."""
    for t in tensors:
        bump_version(t)


# Nodes are numbered as they are made. Inputs are always made before the ops that use them, so
# visiting nodes from the highest number down is a valid order for backward.
_sequence = itertools.count()


def _describe(inputs: Sequence[Any]) -> str:
    parts = []
    for x in inputs:
        if isinstance(x, Tensor):
            parts.append(f"Tensor(shape={x.shape}, dtype={x.dtype}, device='{x.device}')")
        else:
            parts.append(repr(x))
    return ", ".join(parts)


def _not_a_tensor(op: str, x: Any) -> DTypeError:
    """Ops take Tensors, never Python lists (PyTorch's rule too): one spelling everywhere."""
    shown = repr(x) if len(repr(x)) <= 60 else repr(x)[:57] + "..."
    return DTypeError(
        f"{op} expects a Tensor, got a {type(x).__name__} {shown}; make it a tensor first "
        "with gg.tensor(...)"
    )


def _device_mismatch(op: str, inputs: Sequence[Any]) -> DeviceError:
    return DeviceError(
        f"{op}: expected all tensors on the same device, got {_describe(inputs)}; "
        "move them with .to(device) first"
    )


def _explain_failure(op: str, inputs: Sequence[Any], exc: Exception) -> Exception:
    """Re-raise an array library error as a typed error that names the op and its inputs."""
    if isinstance(exc, IndexError):
        kind: type[Exception] = IndexOutOfRangeError
    else:
        kind = ShapeError if isinstance(exc, ValueError) else DTypeError
    return kind(f"{op}: {exc} (inputs: {_describe(inputs)})")


# --- backward ------------------------------------------------------------------------------
def _source(node: Function, s: Any) -> int:
    """Which input a saved array came from (its position), or -1 for the node's output."""
    position = node.input_views.get(id(s))
    if position is not None:
        return position
    for i, x in enumerate(node.inputs):
        if x is s or (isinstance(x, Tensor) and x.data is s):
            return i
    if id(s) != node.out_id:
        raise GraphError(
            f"{node.name} saved an array that is neither its input nor its output any more "
            "(was an input's .data replaced after the forward?)"
        )
    return -1


def _check_versions(node: Function) -> None:
    """Raise if an array the node saved was changed in place after forward saved it."""
    for s in node.saved:
        i = _source(node, s)
        x = node.inputs[i] if i >= 0 else None
        if i >= 0 and not isinstance(x, Tensor):
            continue  # a Python scalar: nothing to change
        counter = x._version if x is not None else node.out_version
        if counter[1] > node.epoch:
            raise InplaceError(
                f"an array that {node.name} saved for backward was modified in place after "
                f"it was saved (it is now at version {counter[0]}), so the gradient would be "
                "wrong; use an out-of-place op (x = x + y instead of x += y), or clone() the "
                "tensor before changing it"
            )


def _saved_as_tensors(node: Function) -> list[Any]:
    """The node's saved arrays as the Tensors they came from, so a backward can be recorded."""
    result = []
    for s in node.saved:
        i = _source(node, s)
        if i < 0:
            result.append(_make(s, node.xp, node))  # the node's own output
            continue
        x, edge = node.inputs[i], node.edges[i]
        if not isinstance(x, Tensor):
            result.append(x)  # a Python scalar
        elif isinstance(edge, Tensor):
            result.append(edge)  # a leaf
        else:
            # Rebuild the input from the edge recorded at forward time: an in-place op may
            # have given the Tensor object x a newer grad_fn since.
            result.append(_make(s, node.xp, edge))
    return result


def _seed(root: Tensor, gradient: Any, create_graph: bool) -> Any:
    """The gradient to start backward from: `gradient`, or 1 for a one-element root."""
    if not root.requires_grad:
        raise GraphError(
            f"this tensor (shape {root.shape}) does not require grad and has no grad_fn, so "
            "there is nothing to differentiate; create its inputs with requires_grad=True"
        )
    if gradient is None:
        if root.data.size != 1:
            raise GraphError(
                f"backward of a non-scalar tensor of shape {root.shape} needs a gradient of "
                "the same shape: call .backward(gradient) (for example gg.ones_like(t)), or "
                "reduce the tensor to a scalar first (t.sum())"
            )
        data = root._data
        xp = root._backend.xp
        # A 0-d root (a loss) takes asarray, a C call; ones_like is Python in NumPy.
        g = xp.asarray(1, dtype=data.dtype) if data.ndim == 0 else xp.ones_like(data)
        return _make(g, root._backend, None) if create_graph else g
    if not isinstance(gradient, Tensor):
        if isinstance(gradient, (str, bytes)) or not _is_array_like(gradient, root._backend):
            raise DTypeError(
                f"backward's gradient must be a Tensor of shape {root.shape}, got "
                f"{type(gradient).__name__} {gradient!r:.60}"
            )
        gradient = _make(root._backend.asarray(gradient, dtype=root.dtype), root._backend, None)
    if gradient._backend is not root._backend:
        raise DeviceError(
            f"the gradient is on '{gradient.device}' but the tensor is on '{root.device}'"
        )
    if gradient.shape != root.shape:
        raise ShapeError(
            f"the gradient has shape {gradient.shape} but the tensor has shape {root.shape}"
        )
    return gradient if create_graph else gradient.data


def _is_array_like(x: Any, backend: Any) -> bool:
    """A number, a (nested) list of numbers, or an array of `backend`."""
    if isinstance(x, (bool, int, float)) or backend.is_array(x):
        return True
    if isinstance(x, (list, tuple)):
        return all(_is_array_like(v, backend) for v in x)
    return hasattr(x, "__array_interface__") and backend.device.type == "cpu"


def _as_array(g: Any, backend: Any) -> Any:
    return g if isinstance(g, backend.xp.ndarray) else backend.xp.asarray(g)


def _deposit(leaf: Tensor, g: Any, create_graph: bool) -> None:
    """Add a leaf's total gradient into `leaf.grad` (in place when one is already there).
    Shapes were checked as gradients left each node, so the slot is written directly."""
    total = leaf._grad
    if create_graph:
        leaf._grad = g if total is None else total + g
        return
    backend = leaf._backend
    g = _as_array(g, backend)
    if g.dtype != leaf._data.dtype:
        g = g.astype(leaf._data.dtype)
    if total is None:
        leaf._grad = _make(g, backend, None)
    elif total.requires_grad:  # a graph-carrying grad from an earlier create_graph pass
        leaf._grad = _make(total._data + g, backend, None)
    else:
        total._data += g


def _run_backward(
    roots: Sequence[Tensor],
    seeds: Sequence[Any],
    retain_graph: bool,
    create_graph: bool,
    capture: Sequence[Tensor] | None = None,
) -> dict[Any, Any] | None:
    """Backpropagate from `roots` with initial gradients `seeds`.

    Deposits into `.grad` of the leaves; or, given `capture`, returns the gradients of those
    tensors instead (keyed by the tensor for leaves, by its grad_fn for others).
    """
    grads: dict[Function, Any] = {}  # gradient arriving at each pending node's output
    leaf_grads: dict[Tensor, Any] = {}  # total gradient of each leaf reached
    heap: list[tuple[int, Function]] = []  # pending nodes, newest first
    capture_nodes = {x.grad_fn for x in capture if x.grad_fn is not None} if capture else ()
    capture_leaves = {x for x in capture if x.grad_fn is None} if capture else set()
    grads_of_captured: dict[Function, Any] = {}
    needed = None  # with capture: the nodes that lead to a captured tensor; others are skipped

    for root, seed in zip(roots, seeds):
        fn = root.grad_fn
        if fn is None:
            prev = leaf_grads.get(root)
            leaf_grads[root] = _owned(seed, seed) if prev is None else prev + seed
        elif fn in grads:
            grads[fn] = grads[fn] + seed
        else:
            grads[fn] = seed
            push(heap, (-fn.seq, fn))

    if capture is not None:
        needed = _nodes_leading_to(list(grads), capture_leaves, capture_nodes)
    capturing = capture is not None  # grad(): the loop keeps or skips per captured tensor
    if create_graph:
        from . import ops as namespace
    previous_mode, previous_lazy = _mode.enabled, _engine.lazy_slices
    _mode.enabled = create_graph
    _engine.lazy_slices = not create_graph
    check_finite = _anomaly.enabled
    try:
        if _compiled is not None and not (capturing or create_graph or check_finite):
            # The same loop, compiled (kernels/engine/engine.cpp); these cases are rare.
            _compiled.backward_loop(heap, grads, leaf_grads, retain_graph)
            heap = []
        while heap:
            node = pop(heap)[1]
            g = grads.pop(node)
            if g.__class__ is SliceGrad:
                g = g.dense()
            if node.tensor_hooks:
                g = _run_hooks(node.tensor_hooks, g, node.xp, create_graph)
            if capturing:
                if node in capture_nodes:
                    grads_of_captured[node] = g
                if node not in needed:
                    continue  # nothing requested lies below this node
            edges = node.edges
            if edges is None:
                raise _freed_graph(node)
            if node.retained is not None:
                _give_retained(node, g)
            epoch = node.epoch
            if epoch >= 0 and epoch != _epoch[0]:
                _check_versions(node)
            if create_graph:
                if not isinstance(g, Tensor):
                    g = _make(g, node.xp, None)
                gs = node.backward(namespace, g, *_saved_as_tensors(node))
            else:
                gs = node.backward(node.xp, g, *node.saved)
            if gs.__class__ is not tuple:
                gs = (gs,) if len(edges) == 1 or type(gs) is not list else tuple(gs)
            if len(gs) != len(edges):
                raise _wrong_count(node, gs)
            if check_finite:
                gs = tuple(_dense(gx) for gx in gs)
                _check_finite(node, gs)
            for edge, gx in zip(edges, gs):
                if gx is None or edge is None:
                    continue
                if isinstance(edge, Tensor):  # a leaf
                    if getattr(gx, "shape", ()) != edge._data.shape:
                        gx = _fit(node, edges, gs, edge, gx, edge._data.shape)
                    if gx.__class__ is SliceGrad:
                        gx = gx.dense()
                    if capturing and edge not in capture_leaves:
                        continue
                    prev = leaf_grads.get(edge)
                    if prev is None:
                        # Owned: copied if it may share memory with another gradient (a
                        # pass-through or a view), so editing a .grad in place changes no other.
                        leaf_grads[edge] = _owned(gx, g)
                    elif create_graph:
                        leaf_grads[edge] = prev + gx
                    else:  # prev is owned here, so add in place
                        leaf_grads[edge] = _accumulate(prev, gx)
                    continue
                if getattr(gx, "shape", ()) != edge.out_shape:  # a number is a 0-d gradient
                    gx = _fit(node, edges, gs, edge, gx, edge.out_shape)
                if capturing and edge not in needed and edge not in capture_nodes:
                    continue
                prev = grads.get(edge)
                if prev is None:
                    grads[edge] = gx
                    push(heap, (-edge.seq, edge))
                else:
                    grads[edge] = prev + gx
            if not retain_graph:
                node.edges = None
                # Forward's saved arrays and attributes (and a custom function's ctx) go too.
                node.__dict__.clear()
    finally:
        _mode.enabled = previous_mode
        _engine.lazy_slices = previous_lazy

    if _any_leaf_hooks[0]:
        for leaf, g in leaf_grads.items():
            hooks = leaf_hooks(leaf)
            if hooks:
                leaf_grads[leaf] = _run_hooks(hooks, g, leaf._backend, create_graph)
    if capture is not None:
        return {**leaf_grads, **grads_of_captured}
    # Threads may backpropagate into the same leaf: adding into .grad is read-modify-write
    # (and NumPy releases the GIL inside `+=`), so deposits take turns.
    with _deposit_lock:
        for leaf, g in leaf_grads.items():
            _deposit(leaf, g, create_graph)
    return None


_deposit_lock = threading.Lock()
push, pop = heapq.heappush, heapq.heappop


def unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum a gradient down to `shape`: the one place that undoes broadcasting.

    Broadcasting copies an input along new leading axes and along its size-1 axes, so the
    gradient of that input is the sum of the output gradient over exactly those axes.
    Works on arrays and on Tensors alike. The engine applies it to every gradient a backward
    returns in its input's broadcast shape (`_fit`), so an op's backward may skip it.
    """
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)  # axes broadcasting added in front, then the stretched 1s
    stretched = [lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1]
    # One reduction, kept as an array of `shape` (summing every axis away leaves a 0-d array,
    # not a NumPy scalar, so the next backward gets an array).
    return g.sum(axis=(*range(lead), *stretched), keepdims=True).reshape(shape)


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether broadcasting turns `shape` into `target` (new leading axes, stretched 1s)."""
    if len(shape) > len(target):
        return False
    return all(n == m or n == 1 for n, m in zip(shape[::-1], target[::-1]))


def _fit(
    node: Function, edges: Sequence[Any], gs: Sequence[Any], edge: Any, gx: Any,
    shape: tuple[int, ...],
) -> Any:  # fmt: skip
    """A gradient whose shape is not its input's `shape`: summed down when it is that shape
    broadcast (as PyTorch's engine does), else the ShapeError naming op, input and shapes."""
    if getattr(edge, "_data_replaced_at", -1) > node.seq:
        raise ShapeError(
            f"the data of input {next(i for i, e in enumerate(edges) if e is edge)} of "
            f"{node.name} (now of shape "
            f"{tuple(shape)}) was replaced by an array of another shape after {node.name} "
            "used it, so its gradient has no shape to take; replace .data before the forward"
        )
    if _broadcasts_to(shape, tuple(getattr(gx, "shape", ()))):
        return unbroadcast(_dense(gx), shape)
    raise _wrong_shape(node, edges, gs, edge, gx)


def fit_gradients(node: Function, gs: Sequence[Any]) -> tuple[Any, ...]:
    """A backward's gradients as the engine passes them on: each one for an input that takes
    a gradient summed down to that input's shape (`_fit`); for gg.explain's own walk."""
    edges = node.edges
    fitted = list(gs)
    for i, (edge, gx) in enumerate(zip(edges, gs)):
        if gx is None or edge is None:
            continue
        shape = edge._data.shape if isinstance(edge, Tensor) else edge.out_shape
        if getattr(gx, "shape", ()) != shape:
            fitted[i] = _fit(node, edges, gs, edge, gx, shape)
    return tuple(fitted)


def _freed_graph(node: Function) -> GraphError:
    return GraphError(
        f"trying to backward through the graph a second time (at {node.name}): its saved "
        "arrays were freed by the first backward; pass retain_graph=True to the first "
        "backward() to call it twice"
    )


def _wrong_count(node: Function, gs: Sequence[Any]) -> ShapeError:
    n = len(node.edges)
    return ShapeError(
        f"{node.name}.backward returned {len(gs)} gradient(s) for its {n} input(s); it must "
        f"return one per input (None for an input without a gradient)"
    )


def _wrong_shape(
    node: Function, edges: Sequence[Any], gs: Sequence[Any], edge: Any, gx: Any
) -> ShapeError:
    i = next(i for i, (e, x) in enumerate(zip(edges, gs)) if e is edge and x is gx)
    expected = edge.shape if isinstance(edge, Tensor) else edge.out_shape
    return ShapeError(
        f"{node.name}.backward returned a gradient of shape {tuple(getattr(gx, 'shape', ()))} "
        f"for its input "
        f"{i}, whose shape is {tuple(expected)}; a gradient must have its input's shape, or "
        "a shape that input broadcasts to (which the engine sums back down)"
    )


def _nodes_leading_to(
    roots: list[Function], leaves: set[Tensor], nodes: set[Function]
) -> set[Function]:
    """The nodes under `roots` from which one of `leaves` or `nodes` can be reached, found
    by an iterative depth-first walk (children are settled before their parents)."""
    needed: set[Function] = set()
    visited: set[Function] = set()
    stack = [(root, False) for root in roots]
    while stack:
        node, expanded = stack.pop()
        edges = node.edges
        if edges is None:  # freed by an earlier backward: unless it is a requested tensor's
            if node not in nodes:  # node (where the walk may stop), using it must raise
                needed.add(node)
            continue
        if expanded:
            for e in edges:
                if isinstance(e, Tensor):
                    if e in leaves:
                        needed.add(node)
                        break
                elif e is not None and (e in nodes or e in needed):
                    needed.add(node)
                    break
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        stack.extend((e, False) for e in edges if isinstance(e, Function) and e not in visited)
    return needed


def _accumulate(total: Any, g: Any) -> Any:
    """total + g, in place when the result keeps total's shape and dtype."""
    if total.shape == g.shape and total.dtype == g.dtype:
        total += g
        return total
    return total + g


def _owned(g: Any, upstream: Any) -> Any:
    """`g`, copied if it may share memory with another gradient (a pass-through or a view),
    so that editing one leaf's .grad in place never changes another's."""
    if isinstance(g, Tensor):  # create_graph: graph-carrying grads are never edited in place
        if not g.requires_grad and (g is upstream or g.data.base is not None):
            return _make(g.data.copy(), g._backend, None)
        return g
    if g is upstream or g.base is not None:
        return g.copy()
    return g


class SliceGrad:
    """A gradient that is zero but at a few basic-index places (what GetItem's backward gives
    for x[a:b] inside the engine): the zeros are written once, when the node it belongs to
    needs the array, and the pieces added in. So the three slices of a split (q, k, v of a
    transformer) cost one buffer, not three zero-padded arrays and two full additions.

    Only the engine holds these, each for one edge, so adding into one in place is safe. A
    piece's values are copied when it is made (the array may be another gradient that a later
    in-place accumulation changes), and once the pieces add up to the whole array's size they
    are folded into one buffer, so many overlapping slices never hold more than that.
    """

    __slots__ = ("backend", "buffer", "dtype", "pending", "pieces", "shape", "size")
    __array_ufunc__ = None  # `array + SliceGrad` comes to __radd__, not to NumPy

    def __init__(self, backend: Any, shape: tuple[int, ...], index: Any, values: Any):
        self.backend, self.shape, self.dtype = backend, shape, values.dtype
        self.size = math.prod(shape)
        self.pieces = [(index, values.copy())]
        self.pending = values.size
        self.buffer = None

    def __add__(self, other: Any) -> Any:
        if other.__class__ is SliceGrad and other.dtype == self.dtype:
            if other.buffer is not None:
                if self.buffer is None:
                    self.buffer = other.buffer  # other is the engine's too, and is dropped
                else:
                    self.buffer += other.buffer
            self.pieces += other.pieces
            self.pending += other.pending
            if self.pending >= self.size:
                self._fold()
            return self
        if other.__class__ is SliceGrad:  # dtypes differ: promote as dense arrays would
            return self.dense() + other.dense()
        if (
            self.backend.is_array(other)
            and other.shape == self.shape
            and (other.dtype == self.dtype)
        ):
            self.buffer = other.copy() if self.buffer is None else self.buffer + other
            self._fold()
            return self.buffer
        return self.dense() + other

    __radd__ = __add__

    def _fold(self) -> None:
        """Add the pending pieces into the buffer (made of zeros if there is none); where the
        pieces tile the whole array along one axis (a split's), join them instead: one pass,
        no zeros."""
        if self.buffer is None and (order := self._tiling()) is not None:
            axis, pieces = order
            self.buffer = self.backend.xp.concatenate(pieces, axis=axis)
            self.pieces, self.pending = [], 0
            return
        if self.buffer is None:
            self.buffer = self.backend.xp.zeros(self.shape, dtype=self.dtype)
        for index, values in self.pieces:
            self.buffer[index] += values
        self.pieces, self.pending = [], 0

    def _tiling(self) -> tuple[int, list[Any]] | None:
        """(axis, the pieces' values in order) where every piece is x[..., a:b, ...] on one
        axis (full slices elsewhere) and together they cover that axis once; else None."""
        axis, spans = None, []
        for index, values in self.pieces:
            if index.__class__ is not tuple or len(index) > len(self.shape):
                return None
            cut = [k for k, part in enumerate(index) if part != _FULL]
            if len(cut) != 1 or (axis is not None and cut[0] != axis):
                return None
            axis = cut[0]
            part = index[axis]
            if part.__class__ is not slice or part.step not in (None, 1):
                return None
            start, stop, _ = part.indices(self.shape[axis])
            if (start, stop) != (part.start, part.stop) or values.shape[axis] != stop - start:
                return None
            spans.append((start, stop, values))
        spans.sort(key=lambda span: span[0])
        edge = 0
        for start, stop, _ in spans:
            if start != edge:
                return None
            edge = stop
        return (axis, [values for _, _, values in spans]) if edge == self.shape[axis] else None

    def dense(self) -> Any:
        """The gradient as an array of its own."""
        self._fold()
        return self.buffer


_FULL = slice(None)


def _dense(g: Any) -> Any:
    return g.dense() if g.__class__ is SliceGrad else g


# --- hooks -----------------------------------------------------------------------------------
# A leaf's hooks live on the leaf itself (its `_hooks` slot, unset until the first one), so a
# hook that refers to its tensor forms a cycle the garbage collector can free. The flag spares
# backward from looking while no leaf has ever had a hook.
_any_leaf_hooks = [False]


def leaf_hooks(t: Tensor) -> dict[int, Callable[..., Any]] | None:
    """The hook table of leaf `t` (None when it has none)."""
    return getattr(t, "_hooks", None)


_hook_ids = itertools.count()


class RemovableHandle:
    """What registering a hook returns: `handle.remove()` takes the hook out again."""

    __slots__ = ("hooks", "key")

    def __init__(self, hooks: dict[int, Any], key: int) -> None:
        self.hooks, self.key = hooks, key

    def remove(self) -> None:
        """Stop calling the hook (removing twice is harmless)."""
        self.hooks.pop(self.key, None)


def add_hook(hooks: dict[int, Any], fn: Callable[..., Any]) -> RemovableHandle:
    """Add `fn` to an ordered hook table; returns the handle that removes it."""
    if not callable(fn):
        raise ArgumentTypeError(f"a hook must be callable, got {type(fn).__name__} {fn!r}")
    key = next(_hook_ids)
    hooks[key] = fn
    return RemovableHandle(hooks, key)


def register_tensor_hook(t: Tensor, fn: Callable[[Tensor], Any]) -> RemovableHandle:
    """Call fn(grad) whenever backward computes t's gradient; a Tensor it returns replaces
    the gradient (for a leaf, before it is added into .grad)."""
    if not t.requires_grad:
        raise GraphError("cannot register a hook on a tensor that does not require grad")
    if t.grad_fn is None:
        hooks = leaf_hooks(t)
        if hooks is None:
            hooks = t._hooks = {}
            _any_leaf_hooks[0] = True
    else:
        node = t.grad_fn
        if node.tensor_hooks is None:
            node.tensor_hooks = {}
        hooks = node.tensor_hooks
    return add_hook(hooks, fn)


def _run_hooks(hooks: dict[int, Any], g: Any, backend: Any, create_graph: bool) -> Any:
    """Pass a gradient through tensor hooks in the order they were registered."""
    for fn in list(hooks.values()):
        given = g if isinstance(g, Tensor) else _make(g, backend, None)
        out = fn(given)
        if out is None:
            continue
        if not isinstance(out, Tensor):
            raise DTypeError(
                f"a tensor hook must return a Tensor or None, got {type(out).__name__}"
            )
        if out.shape != given.shape:
            raise ShapeError(
                f"a tensor hook returned a gradient of shape {out.shape}; it must keep the "
                f"gradient's shape {given.shape}"
            )
        g = out if create_graph else out.data
    return g


def _check_finite(node: Function, grads: Sequence[Any]) -> None:
    """Under detect_anomaly: raise if the node produced a NaN or inf gradient."""
    for i, gx in enumerate(grads):
        if gx is None:
            continue
        data = gx.data if isinstance(gx, Tensor) else gx
        if not bool(node.xp.xp.isfinite(data).all()):
            where = "".join(node.trace[-6:]) if node.trace else "(made before detect_anomaly)\n"
            raise AnomalyError(
                f"{node.name} returned a gradient with NaN or inf values for its input {i} "
                f"(shape {tuple(data.shape)}). The forward op was made at:\n{where}"
            )


def _give_retained(node: Function, g: Any) -> None:
    for ref in node.retained:  # type: ignore[union-attr]
        t = ref()
        if t is None:
            continue
        value = g if isinstance(g, Tensor) else _make(_as_array(g, node.xp).copy(), node.xp, None)
        t.grad = value if t.grad is None else t.grad + value


def backward(
    tensors: Tensor | Sequence[Tensor],
    grad_tensors: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> None:
    """Accumulate into `.grad` of every leaf the gradient of `tensors` (weighted by
    `grad_tensors`, required for non-scalar tensors)."""
    roots = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None:
        grad_tensors = [None] * len(roots)
    elif not isinstance(grad_tensors, (list, tuple)):
        grad_tensors = [grad_tensors]
    if len(grad_tensors) != len(roots):
        raise GraphError(f"got {len(grad_tensors)} gradients for {len(roots)} tensors")
    if retain_graph is None:
        retain_graph = create_graph
    seeds = [_seed(r, g, create_graph) for r, g in zip(roots, grad_tensors)]
    _run_backward(roots, seeds, retain_graph, create_graph)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """Return the gradients of `outputs` with respect to `inputs`, leaving `.grad` untouched.

    With `create_graph=True` the returned gradients are themselves differentiable
    (grad of grad, Hessian-vector products, gradient penalties).
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outs)
    elif not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outs):
        raise GraphError(f"got {len(grad_outputs)} grad_outputs for {len(outs)} outputs")
    for i, x in enumerate(ins):
        if not isinstance(x, Tensor) or not x.requires_grad:
            raise GraphError(f"input {i} of grad() does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    seeds = [_seed(o, g, create_graph) for o, g in zip(outs, grad_outputs)]
    captured = _run_backward(outs, seeds, retain_graph, create_graph, capture=ins)
    assert captured is not None
    result: list[Tensor | None] = []
    for i, x in enumerate(ins):
        g = captured.get(x) if x.grad_fn is None else captured.get(x.grad_fn)
        if g is None:
            if not allow_unused:
                raise GraphError(
                    f"input {i} of grad() (shape {x.shape}) was not used to compute the "
                    "outputs; pass allow_unused=True to get None for it"
                )
            result.append(None)
        elif isinstance(g, Tensor):
            result.append(g)
        else:
            result.append(_make(_as_array(g, x._backend), x._backend, None))
    return tuple(result)


from .tensor import Tensor, _make  # noqa: E402  (tensor.py needs Function first)


# --- the compiled twin -------------------------------------------------------------------------
def _compiled_engine() -> Any:
    """kernels/engine/engine.cpp built and given what it calls back into, or None."""
    from .backend import native_engine

    module = native_engine.load()
    if module is None:
        return None
    try:
        module.setup(
            {
                "Tensor": Tensor, "Function": Function, "SliceGrad": SliceGrad,
                "python_apply": _apply, "grad_mode": _mode, "anomaly_mode": _anomaly,
                "anomaly_threads": _anomaly_threads,
                "sequence": _sequence, "epoch": _epoch, "forward_failed": _forward_failed,
                "array_output": _array_output, "run_hooks": _run_hooks,
                "give_retained": _give_retained, "check_versions": _check_versions,
                "freed_graph": _freed_graph, "wrong_count": _wrong_count,
                "fit": _fit, "owned": _owned,
            }
        )  # fmt: skip
    except Exception as error:  # a stale or foreign extension: the Python engine runs
        native_engine._state.update(module=None, reason=f"its setup failed: {error!r}")
        return None
    return module


_built = _compiled_engine()
_compiled = _built


def use_compiled_engine(enabled: bool) -> bool:
    """Run ops and plain backwards through the compiled engine (where it was built) or the
    Python one; returns whether the compiled one is now in use. Both give the same results:
    tests run each."""
    global _compiled
    _compiled = _built if enabled else None
    Function.apply = classmethod(_apply if _compiled is None else _compiled.apply)  # type: ignore[assignment]
    return _compiled is not None


use_compiled_engine(True)
