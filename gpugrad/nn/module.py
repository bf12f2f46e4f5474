"""Module: the base of every layer. It registers the Parameters, buffers and sub-Modules
assigned to it, and from that registry knows how to list, move, save and load them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from .. import _args, autograd
from ..autograd import Function, RemovableHandle, add_hook
from ..backend import Device
from ..dtypes import SUPPORTED, is_floating, to_dtype
from ..errors import (
    ArgumentError,
    ArgumentTypeError,
    CheckpointError,
    DTypeError,
    GpugradError,
    GraphError,
)
from ..ops import astype, to_device
from ..tensor import Tensor, _is_device_name
from .parameter import Parameter


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict` did not match: keys the model has but the dict lacks, and
    keys the dict has but the model does not."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of layers and models: subclasses set attributes in `__init__` and define
    `forward`; calling the module calls `forward`.

    Parameters, sub-modules and buffers (non-learned state such as running statistics) are
    kept in ordered registries and, for fast access, as plain attributes too.
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # --- registration ------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        registries = self.__dict__.get("_parameters")
        if registries is None:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() was called; "
                "call super().__init__() first in your module's __init__"
            )
        if isinstance(value, Parameter):
            target = self._parameters
        elif isinstance(value, Module):
            target = self._modules
        elif isinstance(value, Tensor) and name in self.__dict__.get("_buffer_names", ()):
            target = self._buffers
        else:
            target = None
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not target:
                registry.pop(name, None)
        if target is not None:
            target[name] = value  # an existing name keeps its place in the order
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register a Parameter under `name` (as assigning it does)."""
        _check_name("register_parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise ArgumentTypeError(
                f"register_parameter: {name!r} must be a Parameter or None, "
                f"got {type(param).__name__}"
            )
        setattr(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        """Register state that is saved and moved with the module but not learned."""
        names = self.__dict__.setdefault("_buffer_names", set())
        names.add(name)
        setattr(self, name, tensor)
        if tensor is None:
            self._buffers[name] = None

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a sub-module under `name` (as assigning it does)."""
        _check_name("add_module", name)
        if module is not None and not isinstance(module, Module):
            raise ArgumentTypeError(
                f"add_module: {name!r} must be a Module or None, got {type(module).__name__}"
            )
        setattr(self, name, module)

    # --- calling -------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; every subclass defines it."""
        raise ArgumentTypeError(
            f"{type(self).__name__} does not define forward(), so it cannot be called"
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        hooks = self.__dict__.get("_hooks")
        try:
            if hooks is None or not (hooks["pre"] or hooks["forward"] or hooks["backward"]):
                return self.forward(*args, **kwargs)  # no hooks (or all removed): one lookup
            return _call_with_hooks(self, hooks, args, kwargs)
        except GpugradError:
            raise
        except (AttributeError, TypeError) as exc:
            # A list or a number where one of our layers reads a Tensor's .ndim: say so, typed
            # (looked at only now that the call failed; a user's module may take anything).
            ours = type(self).__module__.startswith("gpugrad.")
            if ours and args and not isinstance(args[0], Tensor):
                raise DTypeError(
                    f"{type(self).__name__} expects a Tensor input, got {type(args[0]).__name__} "
                    f"{args[0]!r:.60}; make it a tensor first with gg.tensor(...)"
                ) from exc
            raise

    # --- hooks ---------------------------------------------------------------------------
    def _hook_table(self, kind: str) -> dict[int, Callable[..., Any]]:
        hooks = self.__dict__.setdefault("_hooks", {"pre": {}, "forward": {}, "backward": {}})
        return hooks[kind]

    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call hook(module, args) before forward; a tuple it returns replaces the args."""
        return add_hook(self._hook_table("pre"), hook)

    def register_forward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call hook(module, args, output) after forward; a value it returns replaces the
        output. Returns a handle whose remove() unregisters the hook."""
        return add_hook(self._hook_table("forward"), hook)

    def register_full_backward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call hook(module, grad_input, grad_output) when backward reaches this module's
        input; a tuple it returns replaces grad_input. Modules with one tensor input and one
        tensor output (layers, activations) are supported; others raise when called."""
        return add_hook(self._hook_table("backward"), hook)

    # --- walking the tree ----------------------------------------------------------------
    def named_modules(
        self, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """This module and every module below it, with dotted names; a module reachable by
        two paths once, unless `remove_duplicate` is False."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in seen:
                    continue
                seen.add(id(module))
            yield name, module
            children = [
                (f"{name}.{child_name}" if name else child_name, child)
                for child_name, child in module._modules.items()
                if child is not None
            ]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        """This module and every module below it."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct sub-modules with their names."""
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self) -> Iterator[Module]:
        """The direct sub-modules."""
        for _, module in self.named_children():
            yield module

    def _named(self, kind: str, prefix: str, recurse: bool) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for module_name, module in modules:
            for name, value in getattr(module, kind).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_name}.{name}" if module_name else name), value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """Every Parameter with its dotted name; a parameter shared by two modules once."""
        yield from self._named("_parameters", prefix, recurse)  # type: ignore[misc]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every Parameter of this module and (with `recurse`) of its sub-modules."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """Every buffer with its dotted name."""
        yield from self._named("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every buffer of this module and (with `recurse`) of its sub-modules."""
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call fn on every sub-module (children first) and on this module; returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # --- modes and gradients -------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Switch training behaviour (dropout, batch statistics) on or off; returns self."""
        _args.flag(type(self).__name__ + ".train", "mode", mode)
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Switch to evaluation behaviour; same as train(False)."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter (to None, or to zeros in place)."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad = param.grad.detach()
                param.grad.data[...] = 0

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Turn gradient tracking of every parameter on or off (freezing); returns self."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    # --- moving and casting --------------------------------------------------------------
    def to(self, *args: Any, dtype: Any = None, device: Any = None) -> Module:
        """Move parameters and buffers to a device and/or cast floating ones to a dtype,
        in place (the same Parameter objects, so optimizers keep working); returns self."""
        for arg in args:
            if isinstance(arg, Device) or (isinstance(arg, str) and _is_device_name(arg)):
                device = arg
            else:
                dtype = arg
        dtype = to_dtype(dtype)

        def convert(t: Tensor) -> Tensor:
            with autograd.no_grad():
                out = to_device(t, device) if device is not None else t
                if dtype is not None and is_floating(t.dtype):
                    out = astype(out, dtype)
            return out

        for module in self.modules():
            for param in module._parameters.values():
                if param is None:
                    continue
                moved = convert(param)
                param._data, param._backend = moved._data, moved._backend
                if param.grad is not None:
                    param.grad = convert(param.grad)
            for name, buf in module._buffers.items():
                if buf is not None:
                    object.__setattr__(module, name, convert(buf))
                    module._buffers[name] = getattr(module, name)
        return self

    def cpu(self) -> Module:
        """Move to the cpu; returns self."""
        return self.to("cpu")

    def cuda(self, index: int | None = None) -> Module:
        """Move to a CUDA device; returns self."""
        return self.to("cuda" if index is None else f"cuda:{index}")

    def float(self) -> Module:
        """Cast floating parameters and buffers to float32; returns self."""
        return self.to(dtype="float32")

    def double(self) -> Module:
        """Cast floating parameters and buffers to float64; returns self."""
        return self.to(dtype="float64")

    # --- saving and loading --------------------------------------------------------------
    def state_dict(self, prefix: str = "") -> OrderedDict[str, Tensor]:
        """Every parameter and buffer by dotted name, as detached tensors sharing the data."""
        return OrderedDict((name, value.detach()) for name, value in self._state_items(prefix))

    def _state_items(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """Module by module, its parameters then its buffers, as PyTorch orders a state dict.
        A tensor shared by two modules appears under both names, so that a state dict
        saved by PyTorch with tied weights loads strictly, and the other way round."""
        for module_name, module in self.named_modules(prefix, remove_duplicate=False):
            for registry in (module._parameters, module._buffers):
                for name, value in registry.items():
                    if value is not None:
                        yield (f"{module_name}.{name}" if module_name else name), value

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values from `state_dict` into this module's parameters and buffers, in place.

        All or nothing: every entry is checked first (see `validate_state_dict`), so a
        dict that does not fit raises CheckpointError and leaves the module unchanged.
        Without `strict`, missing and unexpected keys are returned instead of raised.
        """
        values, result = self._checked_state(state_dict, strict)
        with autograd.no_grad():
            for target, value in values:
                target.data[...] = value
        for target, _ in values:
            autograd.bump_version(target)
        return result

    def validate_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> None:
        """Raise CheckpointError if `load_state_dict(state_dict, strict)` would fail: not a
        dict, missing or unexpected keys (with `strict`), or a value that is not an array of
        the parameter's shape (the message names the key and both shapes) or of a dtype
        gpugrad has. Changes nothing."""
        self._checked_state(state_dict, strict)

    def _checked_state(
        self, state_dict: Any, strict: bool
    ) -> tuple[list[tuple[Tensor, Any]], IncompatibleKeys]:
        """Each target tensor with the array to copy into it (on its device, in its dtype)."""
        name = type(self).__name__
        if not isinstance(state_dict, dict):
            raise CheckpointError(
                f"{name}.load_state_dict needs a dict of tensors by name, "
                f"got {type(state_dict).__name__}"
            )
        own = dict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise CheckpointError(
                f"state_dict does not match {name}: "
                f"missing keys {missing}, unexpected keys {unexpected}"
            )
        values = []
        for key, target in own.items():
            if key in state_dict:
                values.append((target, _value_for(key, state_dict[key], target)))
        return values, IncompatibleKeys(missing, unexpected)

    # --- printing ------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The layer's settings, shown inside its repr (e.g. 'in_features=2, ...')."""
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, module in self._modules.items():
            body = repr(module).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


# --- calling through hooks -------------------------------------------------------------------
class _BackwardRecord:
    """What one call of a module with backward hooks learns during backward."""

    def __init__(self, module: Module, hooks: dict[int, Any], input_wants_grad: bool) -> None:
        self.module, self.hooks, self.grad_output = module, hooks, None
        # False when no input wants a gradient: the hooks then run from the output's side.
        self.waiting_for_input = input_wants_grad

    def fire(self, grad_input: Any) -> Any:
        """Run the hooks with (grad_input,), (grad_output,); return the grad_input to use."""
        for hook in list(self.hooks.values()):
            replaced = hook(self.module, (grad_input,), (self.grad_output,))
            if replaced is not None:
                grad_input = replaced[0]
        return grad_input


class _HookOutput(Function):
    """Identity on the module's output; its backward notes grad_output."""

    def forward(self, x, record):
        self.record = record
        return x

    def backward(self, xp, g):
        self.record.grad_output = g if isinstance(g, Tensor) else _tensor(g, self.xp)
        if self.record.waiting_for_input is False:  # no input wants a gradient
            self.record.fire(None)
        return g


class _HookInput(Function):
    """Identity on the module's input; its backward runs the hooks on grad_input."""

    def forward(self, x, record):
        self.record = record
        return x

    def backward(self, xp, g):
        given = g if isinstance(g, Tensor) else _tensor(g, self.xp)
        out = self.record.fire(given)
        if out is None:
            return None
        return out if isinstance(g, Tensor) else out.data


def _value_for(key: str, value: Any, target: Tensor) -> Any:
    """`value` as an array ready to copy into `target`, or CheckpointError naming `key`."""
    if not isinstance(value, Tensor):
        try:
            value = Tensor(value)
        except (GpugradError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"state_dict[{key!r}], a {type(value).__name__}, cannot be loaded into "
                f"the model's {key}: {exc}"
            ) from None
    if value.shape != target.shape:
        raise CheckpointError(
            f"state_dict[{key!r}] has shape {value.shape}, "
            f"but the model's {key} has shape {target.shape}"
        )
    if value.dtype not in SUPPORTED or (is_floating(value.dtype) and not is_floating(target.dtype)):
        raise CheckpointError(
            f"state_dict[{key!r}] has dtype {value.dtype}, which cannot be loaded into "
            f"the model's {key} of dtype {target.dtype}"
        )
    with autograd.no_grad():
        moved = to_device(value, target.device)
    return moved.data.astype(target.dtype, copy=False)


def _tensor(array: Any, backend: Any) -> Tensor:
    from ..tensor import _make

    return _make(array, backend, None)


def _call_with_hooks(module: Module, hooks: dict[str, dict[int, Any]], args: tuple, kwargs: dict):
    for hook in list(hooks["pre"].values()):
        replaced = hook(module, args)
        if replaced is not None:
            args = replaced if isinstance(replaced, tuple) else (replaced,)
    record = None
    if hooks["backward"] and autograd.is_grad_enabled():
        if len(args) != 1 or kwargs or not isinstance(args[0], Tensor):
            raise GraphError(
                f"{type(module).__name__}: full backward hooks need a module called with one "
                f"tensor argument, got {len(args)} positional and {len(kwargs)} keyword ones"
            )
        record = _BackwardRecord(module, hooks["backward"], args[0].requires_grad)
        if args[0].requires_grad:
            args = (_HookInput.apply(args[0], record=record),)
    output = module.forward(*args, **kwargs)
    for hook in list(hooks["forward"].values()):
        replaced = hook(module, args, output)
        if replaced is not None:
            output = replaced
    if record is not None:
        if not isinstance(output, Tensor):
            raise GraphError(
                f"{type(module).__name__}: full backward hooks need one tensor output, "
                f"got {type(output).__name__}"
            )
        if output.requires_grad:
            output = _HookOutput.apply(output, record=record)
    return output


def _check_name(owner: str, name: Any) -> None:
    """A sub-module or parameter name: a non-empty str without '.' (which would make its
    state_dict key ambiguous)."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"{owner}: name must be a str, got {type(name).__name__}")
    if not name or "." in name:
        raise ArgumentError(f"{owner}: name must be non-empty and have no '.', got {name!r}")
