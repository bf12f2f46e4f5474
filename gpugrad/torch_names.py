"""One place that answers PyTorch's axis keywords (`dim=`, `keepdim=`) with gpugrad's names.

gpugrad names axes as NumPy does (`axis=`, `keepdims=`). A program ported from PyTorch that
still says `x.sum(dim=1)` would otherwise get Python's bare "unexpected keyword argument".
`install()` wraps every public function, Tensor method and nn layer constructor that takes an
axis, so that such a call raises a `KeywordError` naming the spelling to use. The wrapper only
looks at the keywords after the call has already failed, so correct calls pay one extra frame.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from .errors import KeywordError

_WRAPPED: dict[int, Callable[..., Any]] = {}


def _params(fn: Callable[..., Any]) -> tuple[list[str], list[str]] | None:
    """(all parameter names, the axis-like ones) of `fn`; None when it takes no axis (or has
    no signature Python can read)."""
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None
    axes = [n for n in names if "axis" in n or n in ("axes", "keepdims")]
    return (names, axes) if axes else None


def _suggestion(keyword: str, accepted: list[str]) -> str | None:
    """gpugrad's spelling of a PyTorch keyword such as dim, keepdim, start_dim, dim0."""
    if "dim" not in keyword:
        return None
    guess = "keepdims" if keyword == "keepdim" else keyword.replace("dim", "axis")
    if guess in accepted:
        return guess
    axes = [n for n in accepted if n != "keepdims"]
    return " / ".join(axes) if axes else None


def _wrap(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
    found = _params(fn)
    if found is None:
        return fn
    names, accepted = found
    cached = _WRAPPED.get(id(fn))
    if cached is not None:
        return cached

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TypeError:
            for keyword in kwargs:
                better = _suggestion(keyword, accepted)
                if better is not None and keyword not in names:
                    raise KeywordError(
                        f"{label}() takes {better}=, not PyTorch's {keyword}= "
                        f"(gpugrad names axes as NumPy does: axis=, keepdims=)"
                    ) from None
            raise

    wrapper.__wrapped_for_torch_names__ = True  # type: ignore[attr-defined]
    _WRAPPED[id(fn)] = wrapper
    _WRAPPED[id(wrapper)] = wrapper
    return wrapper


def _wrap_namespace(module: ModuleType) -> None:
    for name, value in list(vars(module).items()):
        if not name.startswith("_") and inspect.isfunction(value):
            setattr(module, name, _wrap(value, name))


def _wrap_class_methods(cls: type) -> None:
    for name, value in list(vars(cls).items()):
        if not inspect.isfunction(value):
            continue
        if name == "__init__":
            setattr(cls, name, _wrap(value, cls.__name__))
        elif not name.startswith("_"):
            setattr(cls, name, _wrap(value, f"{cls.__name__}.{name}"))


def install(modules: Iterable[ModuleType], classes: Iterable[type]) -> None:
    """Wrap the public functions of each module and the methods of each class."""
    for module in modules:
        _wrap_namespace(module)
    for cls in classes:
        _wrap_class_methods(cls)
