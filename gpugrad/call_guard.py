"""One guard over gpugrad's public functions: a failed call is explained by its arguments.

`install()` wraps every public function of the given modules, the public methods of Tensor and
the constructors (and forward) of the nn layers once, at import. The wrapper does nothing but
call the function; only when that call raised something other than a gpugrad error does it
look at the arguments, in this order:

1. a PyTorch axis keyword (`dim=`, `keepdim=`, `start_dim=`, `dim0=` ...) the function does not
   take -> `KeywordError` naming gpugrad's spelling (`axis=`, `keepdims=`, `start_axis=` ...);
2. arguments that do not bind to the signature (an unknown keyword, a missing or an extra
   argument) -> `ArgumentTypeError` naming the function, Python's reason and the parameters;
3. an argument annotated `Tensor` that is not one (nor None where `Tensor | None` allows it)
   -> the `DTypeError` Function.apply raises for a non-Tensor (`gg.reshape([1, 2], 2)` would
   otherwise leak an AttributeError from reading `.ndim`);
4. otherwise the original exception, unchanged.

Correct calls pay one extra frame; the signature work is done once, at install time.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .autograd import _not_a_tensor
from .errors import ArgumentTypeError, GpugradError, KeywordError
from .tensor import Tensor

_GUARDED: dict[int, Callable[..., Any]] = {}  # id(original) -> its one guard
_MARK = "__gpugrad_call_guard__"


@dataclass(frozen=True)
class _Plan:
    """What the guard needs to know about one function, worked out once."""

    label: str  # how messages name the function: "sum", "Linear", "Tensor.backward"
    signature: inspect.Signature
    axes: tuple[str, ...]  # its axis-like parameters (axis, start_axis, keepdims, ...)
    tensors: tuple[tuple[str, bool], ...]  # (parameter annotated Tensor, None allowed)
    takes_any_keyword: bool  # a **kwargs parameter


def _label(fn: Callable[..., Any]) -> str:
    name = fn.__qualname__ if "<locals>" not in fn.__qualname__ else fn.__name__
    return name.removesuffix(".__init__")


def _plan(fn: Callable[..., Any], method: bool) -> _Plan | None:
    """The plan for `fn`, or None when it takes no argument worth checking (a method whose
    only parameter is self, a function of no parameters) or has no readable signature."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    names = list(signature.parameters)
    if len(names) <= (1 if method else 0):
        return None
    axes = tuple(n for n in names if "axis" in n or n in ("axes", "keepdims"))
    tensors = tuple(
        (name, p.annotation == "Tensor | None")
        for name, p in signature.parameters.items()
        if p.annotation in ("Tensor", "Tensor | None")
    )
    any_keyword = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    return _Plan(_label(fn), signature, axes, tensors, any_keyword)


def _gpugrad_spelling(keyword: str, plan: _Plan) -> str | None:
    """gpugrad's name for PyTorch's `keyword` (dim, keepdim, start_dim, dim0), if it has one."""
    if "dim" not in keyword or not plan.axes or keyword in plan.signature.parameters:
        return None
    guess = "keepdims" if keyword == "keepdim" else keyword.replace("dim", "axis")
    if guess in plan.axes:
        return guess
    axes = [n for n in plan.axes if n != "keepdims"]
    return " / ".join(axes) if axes else None


def _explain(plan: _Plan, args: tuple[Any, ...], kwargs: dict[str, Any]) -> GpugradError | None:
    """The typed error that explains a failed call by its arguments (rules 1-3), or None."""
    for keyword in kwargs:
        better = _gpugrad_spelling(keyword, plan)
        if better is not None:
            return KeywordError(
                f"{plan.label}() takes {better}=, not PyTorch's {keyword}= "
                f"(gpugrad names axes as NumPy does: axis=, keepdims=)"
            )
    params = plan.signature.parameters
    unknown = [k for k in kwargs if k not in params]
    reason = None
    if unknown and not plan.takes_any_keyword:  # named before a missing argument, if both
        reason = f"got an unexpected keyword argument {unknown[0]!r}"
    else:
        try:
            bound = plan.signature.bind(*args, **kwargs)
        except TypeError as exc:
            reason = str(exc)
    if reason is not None:
        names = ", ".join(n for n in params if n != "self")
        return ArgumentTypeError(f"{plan.label}(): {reason}; its parameters are ({names})")
    for name, optional in plan.tensors:
        if name not in bound.arguments:
            continue  # a default
        value = bound.arguments[name]
        kind = plan.signature.parameters[name].kind
        for x in value if kind is inspect.Parameter.VAR_POSITIONAL else (value,):
            if not isinstance(x, Tensor) and not (x is None and optional):
                return _not_a_tensor(f"{plan.label}: {name}", x)
    return None


def _guard(fn: Callable[..., Any], method: bool = False) -> Callable[..., Any]:
    """`fn` behind the guard: the same wrapper wherever fn is installed, never a second one."""
    if getattr(fn, _MARK, False):
        return fn
    plan = _plan(fn, method)
    if plan is None:  # (x.exp() stays a direct call even though gg.exp(x) is guarded)
        return fn
    cached = _GUARDED.get(id(fn))
    if cached is not None:
        return cached

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GpugradError:
            raise
        except Exception:
            better = _explain(plan, args, kwargs)
            if better is None:
                raise
            raise better from None

    setattr(guarded, _MARK, True)
    _GUARDED[id(fn)] = guarded  # the closure keeps fn alive, so its id is never reused
    return guarded


def install(modules: Iterable[ModuleType], tensor: type, layers: Iterable[type]) -> None:
    """Guard the public functions of `modules`, the public methods of `tensor`, and the
    `__init__` and `forward` of each class in `layers` (once each; installing again is a
    no-op)."""
    for module in modules:
        for name, value in list(vars(module).items()):
            if not name.startswith("_") and inspect.isfunction(value):
                setattr(module, name, _guard(value))
    for name, value in list(vars(tensor).items()):
        if not name.startswith("_") and inspect.isfunction(value):
            setattr(tensor, name, _guard(value, method=True))
    for cls in layers:
        for name in ("__init__", "forward"):
            value = vars(cls).get(name)
            if inspect.isfunction(value):
                setattr(cls, name, _guard(value, method=True))
