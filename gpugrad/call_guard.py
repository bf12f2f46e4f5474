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

    label: str  # how messages name it: "sum", "Tensor.backward"; ".forward" for a layer's
    by_instance: bool  # a layer's __init__/forward: named after type(self) ("Conv2d.forward")
    signature: inspect.Signature
    axes: tuple[str, ...]  # its axis-like parameters (axis, start_axis, keepdims, ...)
    tensors: tuple[tuple[str, bool], ...]  # (a parameter annotated Tensor, None allowed)
    takes_any_keyword: bool  # it has a **kwargs parameter


def _plan(fn: Callable[..., Any], method: bool, by_instance: bool) -> _Plan | None:
    """The plan for `fn`, or None when it takes no argument worth checking (only self, none
    at all, or only *args/**kwargs not annotated Tensor) or has no readable signature."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    params = signature.parameters
    arguments = list(params.values())[1 if method else 0 :]  # (a method's self is a Tensor)
    tensors = tuple(
        (p.name, p.annotation == "Tensor | None")
        for p in arguments
        if p.annotation in ("Tensor", "Tensor | None")
    )
    free = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    if not tensors and all(p.kind in free for p in arguments):  # (true of no arguments too)
        return None
    axes = tuple(n for n in params if "axis" in n or n in ("axes", "keepdims"))
    any_keyword = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if by_instance:
        label = "" if fn.__name__ == "__init__" else "." + fn.__name__
    else:
        label = fn.__qualname__ if "<locals>" not in fn.__qualname__ else fn.__name__
    return _Plan(label, by_instance, signature, axes, tensors, any_keyword)


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
    label = type(args[0]).__name__ + plan.label if plan.by_instance and args else plan.label
    for keyword in kwargs:
        better = _gpugrad_spelling(keyword, plan)
        if better is not None:
            return KeywordError(
                f"{label}() takes {better}=, not PyTorch's {keyword}= "
                f"(gpugrad names axes as NumPy does: axis=, keepdims=)"
            )
    params = plan.signature.parameters
    unknown = [k for k in kwargs if k not in params]
    try:
        if unknown and not plan.takes_any_keyword:  # named even when an argument is missing too
            raise TypeError(f"got an unexpected keyword argument {unknown[0]!r}")
        bound = plan.signature.bind(*args, **kwargs)
    except TypeError as exc:
        names = ", ".join(n for n in params if n != "self")
        return ArgumentTypeError(f"{label}(): {exc}; its parameters are ({names})")
    for name, optional in plan.tensors:
        if name not in bound.arguments:
            continue  # left at its default
        value = bound.arguments[name]
        many = params[name].kind is inspect.Parameter.VAR_POSITIONAL
        for x in value if many else (value,):
            if not isinstance(x, Tensor) and not (x is None and optional):
                return _not_a_tensor(f"{label}: {name}", x)
    return None


def _guard(fn: Callable[..., Any], method: bool, by_instance: bool = False) -> Callable[..., Any]:
    """`fn` behind the guard: the same wrapper wherever fn is installed, never a second one."""
    if getattr(fn, _MARK, False):
        return fn
    plan = _plan(fn, method, by_instance)
    if plan is None:  # (so x.exp() stays a direct call although gg.exp(x) is guarded)
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


def install(
    modules: Iterable[ModuleType], tensor: type | None = None, layers: Iterable[type] = ()
) -> None:
    """Guard the public functions of `modules` (those in its `__all__` where it has one),
    the public methods of `tensor`, and the `__init__` and `forward` that each class in
    `layers` has, in the class that defines it (so Conv2d's, inherited from a private base,
    is guarded once for all its subclasses). Installing again changes nothing."""
    for module in modules:
        # A module's __all__ says what it exports; its other globals are helpers it calls
        # itself (F's make_tensor), which should not pay for a guard.
        names = getattr(module, "__all__", None) or list(vars(module))
        for name in names:
            value = vars(module).get(name)
            if not name.startswith("_") and inspect.isfunction(value):
                setattr(module, name, _guard(value, method=False))
    if tensor is not None:
        for name, value in list(vars(tensor).items()):
            if not name.startswith("_") and inspect.isfunction(value):
                setattr(tensor, name, _guard(value, method=True))
    for cls in layers:
        for name in ("__init__", "forward"):
            owner = next(c for c in cls.__mro__ if name in vars(c))
            if inspect.isfunction(vars(owner)[name]):
                setattr(owner, name, _guard(vars(owner)[name], method=True, by_instance=True))
