"""Containers: Sequential (modules applied in order), ModuleList (a registered list) and
ModuleDict (a registered dict).

They keep their modules in the Module registry under the names "0", "1", ... (or the names
of an OrderedDict given to Sequential, or the ModuleDict's keys), so parameters, `to()`, state
dicts and the repr see them like any other sub-module.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, overload

from ..errors import ArgumentError, ArgumentTypeError, IndexOutOfRangeError
from ..tensor import Tensor
from .fusion import forward_fused
from .module import Module

__all__ = ["ModuleDict", "ModuleList", "Sequential"]


def _check_module(module: Any, where: str) -> Module:
    if isinstance(module, type) and issubclass(module, Module):
        raise ArgumentTypeError(
            f"{where} takes Module instances, got the class {module.__name__}; "
            f"did you mean {module.__name__}(...)?"
        )
    if not isinstance(module, Module):
        raise ArgumentTypeError(f"{where} takes Modules, got {module!r} ({type(module).__name__})")
    return module


class _IndexedModules(Module):
    """What Sequential and ModuleList share: integer/slice access over the registry."""

    def _position(self, index: int) -> int:
        n = len(self._modules)
        if not isinstance(index, int):
            raise ArgumentTypeError(
                f"{type(self).__name__} indices must be int or slice, got {index!r}"
            )
        if not -n <= index < n:
            raise IndexOutOfRangeError(
                f"index {index} is out of range for {type(self).__name__} of {n}"
            )
        return index % n

    def _key(self, index: int) -> str:
        return list(self._modules)[self._position(index)]

    def _replace_all(self, items: Iterable[tuple[str, Module]]) -> None:
        """Re-register the modules under new names (after a removal or an insertion)."""
        for name in list(self._modules):
            delattr(self, name)
        for name, module in items:
            self.add_module(name, module)

    def _renumber(self, modules: list[Module]) -> None:
        self._replace_all((str(i), m) for i, m in enumerate(modules))

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __setitem__(self, index: int, module: Module) -> None:
        self.add_module(self._key(index), _check_module(module, type(self).__name__))

    def __delitem__(self, index: int | slice) -> None:
        keys = list(self._modules)
        doomed = set(keys[index]) if isinstance(index, slice) else {keys[self._position(index)]}
        self._renumber([m for k, m in self._modules.items() if k not in doomed])

    def __dir__(self) -> list[str]:
        # Hide the numeric names from tab completion, as they are reached by index.
        return [k for k in super().__dir__() if not k.isdigit()]


class Sequential(_IndexedModules):
    """Modules applied one after another: Sequential(a, b, c)(x) is c(b(a(x))).

    Give the modules as arguments (named "0", "1", ...) or as one OrderedDict of names to
    modules.
    """

    def __init__(self, *modules: Module | OrderedDict[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, _check_module(module, "Sequential"))
        else:
            for i, module in enumerate(modules):
                self.add_module(str(i), _check_module(module, "Sequential"))

    @overload
    def __getitem__(self, index: int) -> Module: ...
    @overload
    def __getitem__(self, index: slice) -> Sequential: ...

    def __getitem__(self, index: int | slice) -> Module | Sequential:
        if isinstance(index, slice):  # a new Sequential of the same module objects
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        return self._modules[self._key(index)]

    def append(self, module: Module) -> Sequential:
        """Add a module at the end; returns self."""
        self.add_module(str(len(self)), _check_module(module, "Sequential.append"))
        return self

    def forward(self, x: Any) -> Any:
        """Feed x through every module in order. A Linear followed by ReLU, Sigmoid or Tanh
        runs as one node where the backend fuses them (CPU and CUDA; see `nn.fusion`)."""
        if isinstance(x, Tensor) and x._backend.fuses_bias_activation:
            return forward_fused(list(self._modules.values()), x)
        for module in self._modules.values():
            x = module(x)
        return x


class ModuleList(_IndexedModules):
    """A list of modules whose parameters are registered; it has no forward of its own,
    the owner decides how to call them."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    @overload
    def __getitem__(self, index: int) -> Module: ...
    @overload
    def __getitem__(self, index: slice) -> ModuleList: ...

    def __getitem__(self, index: int | slice) -> Module | ModuleList:
        if isinstance(index, slice):
            return ModuleList(list(self._modules.values())[index])
        return self._modules[self._key(index)]

    def append(self, module: Module) -> ModuleList:
        """Add a module at the end; returns self."""
        self.add_module(str(len(self)), _check_module(module, "ModuleList.append"))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Add each module of an iterable at the end; returns self."""
        if isinstance(modules, Module) and not isinstance(modules, _IndexedModules):
            raise ArgumentTypeError(
                f"ModuleList.extend takes an iterable of Modules, got one {type(modules).__name__}"
            )
        if not isinstance(modules, Iterable):
            raise ArgumentTypeError(
                f"ModuleList.extend takes an iterable of Modules, got {modules!r} "
                f"({type(modules).__name__})"
            )
        for module in list(modules):
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert a module before position `index` (as list.insert does)."""
        modules = list(self._modules.values())
        modules.insert(index, _check_module(module, "ModuleList.insert"))
        self._renumber(modules)

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)


def check_key(owner: Module, key: Any) -> str:
    """`key` when it can name an entry of a dict-like container: a str that is not empty,
    has no "." (state-dict keys are dotted paths) and does not shadow an attribute of the
    container (such as "forward" or "training"); ArgumentError naming it otherwise."""
    kind = type(owner).__name__
    if not isinstance(key, str):
        raise ArgumentError(f"{kind} keys must be str, got {type(key).__name__} {key!r}")
    if not key or "." in key:
        raise ArgumentError(f"{kind} key {key!r} must be non-empty and contain no '.'")
    registries = (owner._parameters, owner._buffers, owner._modules)
    if hasattr(owner, key) and not any(key in r for r in registries):
        raise ArgumentError(f"{kind} key {key!r} would hide the attribute of that name")
    return key


def pairs_of(kind: str, entries: Any) -> list[tuple[Any, Any]]:
    """(key, value) pairs from a mapping, a ModuleDict / ParameterDict, or an iterable of
    pairs (as dict.update takes)."""
    if isinstance(entries, Mapping) or (
        isinstance(entries, Module) and callable(getattr(entries, "items", None))
    ):
        return list(entries.items())
    if isinstance(entries, (str, bytes)) or not isinstance(entries, Iterable):
        raise ArgumentTypeError(f"{kind}.update takes a mapping or (key, value) pairs, got "
                        f"{type(entries).__name__}")  # fmt: skip
    pairs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise ArgumentError(f"{kind}.update: entry {i} is not a (key, value) pair: {entry!r}")
        pairs.append(tuple(entry))
    return pairs


class _KeyedEntries(Module):
    """The read, delete and iterate side of a dict-like container, over the Module registry
    its entries live in (`_registry`: "_modules" or "_parameters")."""

    _registry: str

    @property
    def _entries(self) -> dict[str, Any]:
        return getattr(self, self._registry)

    def __getitem__(self, key: str) -> Any:
        return self._entries[key]

    def __delitem__(self, key: str) -> None:
        if key not in self._entries:
            raise KeyError(key)
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> list[str]:
        """The keys, in insertion order."""
        return list(self._entries)

    def values(self) -> list[Any]:
        """The entries, in insertion order."""
        return list(self._entries.values())

    def items(self) -> list[tuple[str, Any]]:
        """(key, entry) pairs, in insertion order."""
        return list(self._entries.items())

    def pop(self, key: str) -> Any:
        """Remove the entry `key` and return it."""
        value = self[key]
        del self[key]
        return value

    def clear(self) -> None:
        """Remove every entry."""
        for key in list(self._entries):
            delattr(self, key)


class ModuleDict(_KeyedEntries):
    """A dict of modules whose parameters are registered, in insertion order; it has no
    forward of its own. Supports `d[key]`, `d[key] = module`, `del d[key]`, `key in d`,
    `len`, iteration over keys, `keys/values/items`, `update`, `pop` and `clear`."""

    def __init__(
        self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None
    ) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    _registry = "_modules"

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(check_key(self, key), _check_module(module, "ModuleDict"))

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Add or replace entries from a mapping or from (key, module) pairs; every entry is
        checked before any is added."""
        pairs = pairs_of("ModuleDict", modules)
        for key, module in pairs:
            check_key(self, key)
            _check_module(module, "ModuleDict")
        for key, module in pairs:
            self.add_module(key, module)
