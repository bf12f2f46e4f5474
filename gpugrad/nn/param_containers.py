"""ParameterList and ParameterDict: parameters kept in a list or a dict, registered so that
`parameters()`, `to()` and state dicts see them (under "name.0", "name.key", as PyTorch)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import ArgumentTypeError, IndexOutOfRangeError
from ..tensor import Tensor
from .containers import _KeyedEntries, check_key, pairs_of
from .module import Module
from .parameter import Parameter

__all__ = ["ParameterDict", "ParameterList"]


def as_parameter(kind: str, value: Any) -> Parameter:
    """`value` as a Parameter: itself, or a Tensor wrapped (sharing its data), as PyTorch's
    containers do; ArgumentTypeError (a TypeError) for anything else."""
    if isinstance(value, Parameter):
        return value
    if isinstance(value, Tensor):
        return Parameter(value)
    raise ArgumentTypeError(f"{kind} holds Parameters or Tensors, got {type(value).__name__}")


class ParameterList(Module):
    """A list of parameters, registered under "0", "1", ... Supports indexing (ints, and
    slices, which give a new ParameterList of the same parameters), assignment, `len`,
    iteration, `append` and `extend`."""

    def __init__(self, values: Iterable[Any] | None = None) -> None:
        super().__init__()
        if values is not None:
            self.extend(values)

    def _position(self, index: Any) -> str:
        n = len(self._parameters)
        if not isinstance(index, int) or isinstance(index, bool):
            raise ArgumentTypeError(f"ParameterList indices must be int, got {index!r}")
        if not -n <= index < n:
            raise IndexOutOfRangeError(f"index {index} is out of range for ParameterList of {n}")
        return str(index % n)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):  # a new ParameterList of the same Parameter objects
            return ParameterList(list(self._parameters.values())[index])
        return self._parameters[self._position(index)]

    def __setitem__(self, index: int, value: Any) -> None:
        setattr(self, self._position(index), as_parameter("ParameterList", value))

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(list(self._parameters.values()))

    def append(self, value: Any) -> ParameterList:
        """Add a parameter at the end; returns self."""
        setattr(self, str(len(self)), as_parameter("ParameterList", value))
        return self

    def extend(self, values: Iterable[Any]) -> ParameterList:
        """Add each parameter of an iterable at the end (all checked first); returns self."""
        if isinstance(values, Tensor) or not isinstance(values, Iterable):
            got = "one Tensor" if isinstance(values, Tensor) else type(values).__name__
            raise ArgumentTypeError(f"ParameterList.extend takes an iterable of Tensors, got {got}")
        for value in [as_parameter("ParameterList", v) for v in values]:
            self.append(value)
        return self

    def extra_repr(self) -> str:
        return "\n".join(
            f"({i}): Parameter of shape {tuple(p.shape)} ({p.dtype} on {p.device})"
            for i, p in enumerate(self)
        )


class ParameterDict(_KeyedEntries):
    """A dict of parameters, registered under their keys, in insertion order (a plain dict's
    keys are sorted first, as PyTorch does). Supports
    `d[key]`, `d[key] = tensor`, `del d[key]`, `key in d`, `len`, iteration over keys,
    `keys/values/items`, `update`, `pop` and `clear`."""

    def __init__(
        self, parameters: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None
    ) -> None:
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    _registry = "_parameters"

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, check_key(self, key), as_parameter("ParameterDict", value))

    def update(self, parameters: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Add or replace entries from a mapping or (key, tensor) pairs; every entry is
        checked before any is added. As in PyTorch, the keys of a plain (unordered) dict are
        added in sorted order; an OrderedDict, a ParameterDict or pairs keep theirs."""
        pairs = [
            (check_key(self, key), as_parameter("ParameterDict", value))
            for key, value in pairs_of("ParameterDict", parameters)
        ]
        if isinstance(parameters, Mapping) and not isinstance(parameters, OrderedDict):
            pairs.sort(key=lambda pair: pair[0])
        for key, value in pairs:
            setattr(self, key, value)

    def extra_repr(self) -> str:
        return "\n".join(
            f"({k}): Parameter of shape {tuple(p.shape)} ({p.dtype} on {p.device})"
            for k, p in self.items()
        )
