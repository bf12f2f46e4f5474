"""Optimizer: the base of every optimizer. Param groups, per-parameter state, zero_grad,
state_dict/load_state_dict, and the flat buffers that let one fused primitive update a
whole group at once.

The flat path (the default). Within a param group, the parameters that share a device and a
dtype form a *bank*: their values are copied into one flat buffer and each parameter's
`.data` becomes a view into it; each state array (momentum, exp_avg, ...) is a flat buffer
too, with per-parameter views in `optimizer.state[p]`. A step then calls the backend
primitive once per bank, with the gradients handed over as a list of pieces (or as one flat
buffer when `.grad` already is a view of the bank's gradient buffer, which
`zero_grad(set_to_none=False)` arranges). If a parameter's `.data` is no longer the view the
bank gave it (the user assigned new data, or `Module.to` moved or cast the model after the
optimizer was made), the group is packed again from the parameters' current data, and its
state is moved along, instead of updating stale memory.

A parameter whose array does not own its memory stays out of the banks: it shares that memory
with something else (the NumPy array given to `from_numpy`, a DLPack producer, a tensor it is
a view of), and moving it into a bank would cut that link, so the other owner would stop
seeing the updates. Such parameters (and frozen ones) are updated one by one, in place, with
the same arithmetic.

The per-parameter path (`flat=False`) calls the same primitive once per parameter on the
parameter's own arrays. Both paths do the same arithmetic element by element, so they give
identical results; tests hold them to that.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter, is_
from typing import Any

from .. import _args
from ..autograd import _mode as _grad_mode
from ..autograd import bump_version, bump_versions, enable_grad
from ..backend import Backend
from ..dtypes import is_floating
from ..errors import (
    ArgumentError,
    ArgumentTypeError,
    CheckpointError,
    DeviceError,
    DTypeError,
    ShapeError,
)
from ..tensor import Tensor, _make
from .state_check import check_like

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


class _Bank:
    """The parameters of one group that share a backend and dtype, packed into flat buffers."""

    __slots__ = (
        "backend",
        "data",
        "grad_flat",
        "grad_views",
        "names",
        "params",
        "scratch",
        "state",
        "views",
    )

    def __init__(self, backend: Backend, params: list[Tensor], names: tuple[str, ...]) -> None:
        self.backend = backend
        self.params = params
        self.names = names
        self.state: dict[str, Any] = {}
        self.scratch: list[Any] = []  # work arrays the primitive allocates once and reuses
        self.grad_flat: Any = None  # made by zero_grad(set_to_none=False)
        self.grad_views: list[Any] | None = None
        xp = backend.xp
        dtype = params[0].data.dtype
        total = sum(p.data.size for p in params)
        self.data = xp.empty(total, dtype=dtype)
        self.views = self.split(self.data)

    def split(self, flat: Any) -> list[Any]:
        """Views of `flat`, one per parameter, shaped like it."""
        views, start = [], 0
        for p in self.params:
            stop = start + p.data.size
            views.append(flat[start:stop].reshape(p.data.shape))
            start = stop
        return views

    def intact(self) -> bool:
        """True while every parameter's data still is the view this bank gave it."""
        # A list, not a generator: all() over a few items is quicker so (every step asks).
        return all([p._data is v for p, v in zip(self.params, self.views)])


# The view of a bank's buffer each packed parameter was given (by any optimizer, alive or
# not): while a parameter still holds it, a later optimizer may move it into its own bank.
# Keyed by id (a Tensor's == is elementwise), each entry dropped when its parameter dies.
_BANK_VIEWS: dict[int, tuple[weakref.ref[Tensor], Any]] = {}


def _bankable(p: Tensor) -> bool:
    """True when a bank may take p's memory over: p's array owns its memory, or is the view
    a bank gave it. Any other array shares its memory with an owner outside the optimizers,
    which must keep seeing the updates."""
    if p.data.base is None:
        return True
    entry = _BANK_VIEWS.get(id(p))
    return entry is not None and entry[0]() is p and entry[1] is p.data


def _remember_view(p: Tensor, view: Any) -> None:
    """Note that a bank gave `p` the array `view`."""
    key = id(p)
    _BANK_VIEWS[key] = (weakref.ref(p, lambda _: _BANK_VIEWS.pop(key, None)), view)


def check_betas(owner: str, group: dict[str, Any]) -> None:
    """Adam-style `betas`: two numbers in [0, 1), stored back as a tuple."""
    betas = group["betas"]
    if not isinstance(betas, Sequence) or isinstance(betas, str) or len(betas) != 2:
        raise ArgumentError(f"{owner}: betas must be a pair of numbers in [0, 1), got {betas!r}")
    for i, beta in enumerate(betas):
        _args.number(owner, f"betas[{i}]", beta, low=0, high=1, high_open=True)
    group["betas"] = tuple(betas)


class Optimizer:
    """Base class of the optimizers.

    `params` is an iterable of Tensors, or of dicts each holding `"params"` and per-group
    options (anything not given comes from the optimizer's defaults). Subclasses name their
    state arrays (`_state_names`) and make one update (`_update`) through a backend primitive.
    `flat=False` selects the per-parameter reference path.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any], flat: bool = True) -> None:
        if isinstance(params, Tensor) or not isinstance(params, Iterable):
            raise ArgumentTypeError(
                f"{type(self).__name__}: params should be an iterable of Tensors or dicts, got "
                f"{'a single Tensor' if isinstance(params, Tensor) else repr(params)}; "
                "pass [tensor] or model.parameters()"
            )
        self.defaults = dict(defaults)
        self.flat = bool(flat)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        self._home: dict[Tensor, tuple[Backend, Any]] = {}  # where each state array lives
        self._banks: list[list[_Bank]] = []
        # The params each group was packed from, and whether each required grad then.
        self._packed: list[tuple[list[Tensor], list[Any]]] = []
        # Per group, the parameters kept out of its banks (frozen, or sharing memory).
        self._loose: list[list[Tensor]] = []
        groups = list(params)
        if not groups:
            raise ArgumentError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # --- what subclasses define --------------------------------------------------------------
    def _state_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The state arrays a parameter of `group` needs (besides its step count)."""
        return ()

    def _state_fill(self, group: dict[str, Any], name: str) -> float:
        """The initial value of state array `name`."""
        return 0.0

    # Hyperparameters that must not be negative; subclasses list theirs.
    non_negative: tuple[str, ...] = ("lr",)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ArgumentError (ArgumentTypeError) for a hyperparameter out of range (not a
        number); subclasses add their own checks."""
        for key in self.non_negative:
            _args.number(type(self).__name__, key, group[key], low=0)

    def _update(
        self,
        backend: Backend,
        group: dict[str, Any],
        param: Any,
        grad: Any,
        state: dict[str, Any],
        step: int,
        scratch: list[Any] | None,
    ) -> None:
        """Update `param` (a parameter's array or a bank's flat buffer) in place."""
        raise TypeError(f"{type(self).__name__} does not define _update()")

    # --- param groups ------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (the defaults fill the rest)."""
        if not isinstance(param_group, dict) or "params" not in param_group:
            got = (
                f"a dict with keys {sorted(map(str, param_group))}"
                if isinstance(param_group, dict)
                else type(param_group).__name__
            )
            raise ArgumentTypeError(
                f"{type(self).__name__}: a param group must be a dict with a 'params' entry, "
                f"got {got}"
            )
        group = dict(param_group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen: set[int] = set()
        name = type(self).__name__
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise ArgumentTypeError(
                    f"{name} can only optimize Tensors, got {p!r} ({type(p).__name__}) at "
                    f"position {i} of the parameter list"
                )
            if p.grad_fn is not None:
                raise ArgumentError(
                    f"{name}: can't optimize a non-leaf Tensor (position {i}, shape {p.shape}, "
                    f"made by {type(p.grad_fn).__name__}); use .detach() to get a leaf"
                )
            if not is_floating(p.dtype):
                raise DTypeError(f"can only optimize floating-point tensors, got {p.dtype}")
            if id(p) in seen:
                raise ArgumentError(
                    f"{name}: a parameter group lists the same parameter (shape {p.shape}) twice"
                )
            seen.add(id(p))
        for other in self.param_groups:
            if any(id(q) in seen for q in other["params"]):
                raise ArgumentError(
                    f"{name}: some parameters appear in more than one parameter group"
                )
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        self.param_groups.append(group)
        names = self._state_names(group)
        for p in params:
            self.state[p] = {"step": 0}
            self._home[p] = (p._backend, p.dtype)
            if not self.flat:
                self._complete_state(group, p, names)
        self._banks.append([])
        self._packed.append(([], []))
        self._loose.append([])
        if self.flat:
            self._pack(len(self.param_groups) - 1)

    # --- state bookkeeping -------------------------------------------------------------------
    def _complete_state(self, group: dict[str, Any], p: Tensor, names: tuple[str, ...]) -> None:
        """Give p's state exactly `names` as arrays on p's backend and dtype, moving existing
        arrays there (p may have been moved or cast) and creating missing ones."""
        state = self.state[p]
        backend, dtype = p._backend, p.data.dtype
        old_backend = self._home[p][0]
        for name in [k for k in state if k != "step" and k not in names]:
            del state[name]  # an option that needed it was switched off
        for name in names:
            value = state.get(name)
            if value is None:
                state[name] = backend.xp.full(p.shape, self._state_fill(group, name), dtype=dtype)
                continue
            if value.shape != p.shape:
                raise ShapeError(
                    f"optimizer state {name!r} has shape {value.shape} but its parameter now "
                    f"has shape {p.shape}; make a new optimizer after reshaping parameters"
                )
            if old_backend is not backend:
                value = backend.asarray(old_backend.to_numpy(value), dtype=dtype)
            elif value.dtype != dtype:
                value = value.astype(dtype)
            state[name] = value
        self._home[p] = (backend, dtype)

    def _pack(self, index: int) -> list[_Bank]:
        """(Re)build the banks of group `index` from its parameters' current data and state."""
        group = self.param_groups[index]
        names = self._state_names(group)
        buckets: dict[tuple[int, Any], list[Tensor]] = {}
        loose = []
        for p in group["params"]:
            self.state.setdefault(p, {"step": 0})
            self._home.setdefault(p, (p._backend, p.dtype))
            self._complete_state(group, p, names)
            # Frozen parameters stay out, so they never hold a bank back.
            if p.requires_grad and _bankable(p):
                buckets.setdefault((id(p._backend), p.data.dtype), []).append(p)
            else:
                loose.append(p)
        banks = []
        for params in buckets.values():
            bank = _Bank(params[0]._backend, params, names)
            for p, view in zip(params, bank.views):
                view[...] = p.data
            for name in names:
                flat = bank.backend.xp.empty_like(bank.data)
                for p, view in zip(params, bank.split(flat)):
                    view[...] = self.state[p][name]
                    self.state[p][name] = view
                bank.state[name] = flat
            for p, view in zip(params, bank.views):
                p.data = view  # same values; from now on the bank's memory
                _remember_view(p, view)
            banks.append(bank)
        self._banks[index] = banks
        self._loose[index] = loose
        params = list(group["params"])
        self._packed[index] = (params, list(map(_requires_grad, params)))
        return banks

    def _banks_of(self, index: int) -> list[_Bank]:
        """Group `index`'s banks, packed again if a parameter's data was replaced, the params
        list was edited, or an option changed which state arrays are needed."""
        group = self.param_groups[index]
        banks = self._banks[index]
        names = self._state_names(group)
        if not self._packing_fits(index, group["params"]):
            return self._pack(index)
        for bank in banks:
            if bank.names != names or not bank.intact():
                return self._pack(index)
        return banks

    def _packing_fits(self, index: int, params: list[Tensor]) -> bool:
        """Whether group `index`'s params are still the ones it was packed from, each with the
        same requires_grad (C loops: this runs every step)."""
        packed, trainables = self._packed[index]
        return (
            len(params) == len(packed)
            and all(map(is_, packed, params))
            and list(map(_requires_grad, params)) == trainables
        )

    # --- stepping ----------------------------------------------------------------------------
    @staticmethod
    def _grad_of(p: Tensor, backend: Backend) -> Any:
        """p's gradient array, checked to fit p."""
        g = p._grad
        if g._backend is not backend:
            raise DeviceError(
                f"a parameter on '{p.device}' has its gradient on '{g.device}'; "
                "move both to the same device"
            )
        data, own = g._data, p._data
        if data.shape != own.shape:
            raise ShapeError(f"a parameter of shape {p.shape} has a gradient of shape {data.shape}")
        if data.dtype != own.dtype:
            raise DTypeError(f"a parameter of dtype {p.dtype} has a gradient of dtype {data.dtype}")
        return data

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns `closure()` when given (the
        closure re-evaluates the model and returns the loss, with gradients enabled)."""
        loss = None
        if closure is not None:
            _args.callable_(f"{type(self).__name__}.step", "closure", closure)
            with enable_grad():
                loss = closure()
        # What `with no_grad():` does, written out: its manager object and two calls cost
        # ~1.5 µs of a small model's ~23 µs step when the caches are cold.
        enabled = _grad_mode.enabled
        _grad_mode.enabled = False
        try:
            for index, group in enumerate(self.param_groups):
                if self.flat:
                    self._step_flat(index, group)
                else:
                    self._step_each(group, group["params"])
        finally:
            _grad_mode.enabled = enabled
        return loss

    def _step_flat(self, index: int, group: dict[str, Any]) -> None:
        """One fused update per bank of group `index` (the general path when needed)."""
        ready = self._ready_banks(index, group)
        if ready is None:  # something to sort out first: the general path does it
            self._step_flat_general(index, group)
            return
        for bank, grad, states, step in ready:
            self._update(bank.backend, group, bank.data, grad, bank.state, step, bank.scratch)
            for state in states:
                state["step"] = step
            bump_versions(bank.params)

    def _ready_banks(
        self, index: int, group: dict[str, Any]
    ) -> list[tuple[_Bank, Any, list[dict[str, Any]], int]] | None:
        """(bank, gradient, its parameters' states, new step count) for each bank of group
        `index` in the common case: the packing still fits, no parameter kept out of the
        banks has a gradient, and every banked parameter has a fitting gradient and the
        bank's step count. Else None, having changed nothing, for `_step_flat_general` to
        repack, step one by one or raise. Faster than the general path's checks, which it
        mirrors: one pass per bank, and C loops over the params list."""
        if not self._packing_fits(index, group["params"]):
            return None
        for p in self._loose[index]:
            if p.grad is not None:
                return None
        names = self._state_names(group)
        ready = []
        for bank in self._banks[index]:
            entry = self._bank_ready(bank) if bank.names == names else None
            if entry is None:
                return None
            ready.append((bank, *entry))
        return ready

    def _bank_ready(self, bank: _Bank) -> tuple[Any, list[dict[str, Any]], int] | None:
        """(gradient, states, new step count) for one fused update of `bank`, or None when
        a parameter's data is not its view, or its gradient is missing or does not fit, or
        the step counts differ."""
        state, backend = self.state, bank.backend
        try:
            step = state[bank.params[0]]["step"]
            states, grads = [], []
            for p, view in zip(bank.params, bank.views):
                g = p._grad
                if g is None or p._data is not view or g._backend is not backend:
                    return None
                data = g._data
                if data.shape != view.shape or data.dtype != view.dtype:
                    return None
                own = state[p]
                if own["step"] != step:
                    return None
                states.append(own)
                grads.append(data)
        except KeyError:  # state edited by hand: the general path raises where it would
            return None
        views = bank.grad_views
        if views is not None and all(map(is_, grads, views)):
            return bank.grad_flat, states, step + 1  # backward accumulated into the buffer
        return grads, states, step + 1

    def _step_flat_general(self, index: int, group: dict[str, Any]) -> None:
        """The flat step for every case: repacks when needed, steps the parameters kept out
        of the banks and those of a bank whose parameters do not all step, and raises for a
        gradient that does not fit."""
        state = self.state
        banks = self._banks_of(index)
        # Parameters kept out of the banks are updated one by one: those sharing memory, and
        # a frozen one that was given a gradient anyway (as PyTorch would).
        loose = [p for p in self._loose[index] if p.grad is not None]
        if loose:
            self._step_each(group, loose)
        for bank in banks:
            params = bank.params
            step = state[params[0]]["step"]
            for p in params:  # (a loop, not all(...): this runs every step)
                if p._grad is None or state[p]["step"] != step:
                    fused = False
                    break
            else:
                fused = True
            if not fused:  # some parameters skip this step: update the others one by one
                self._step_each(group, params)
                continue
            backend = bank.backend
            grads = [self._grad_of(p, backend) for p in params]
            views = bank.grad_views
            if views is not None and all([g is v for g, v in zip(grads, views)]):
                grad: Any = bank.grad_flat  # backward accumulated into the bank's buffer
            else:
                grad = grads
            step += 1
            self._update(backend, group, bank.data, grad, bank.state, step, bank.scratch)
            for p in params:
                state[p]["step"] = step
                bump_version(p)

    def _step_each(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """The per-parameter path: one primitive call per parameter that has a gradient."""
        names = self._state_names(group)
        for p in params:
            if p.grad is None:
                continue
            state = self.state[p]
            backend = p._backend
            if self._home[p] != (backend, p._data.dtype) or not all(map(state.__contains__, names)):
                self._complete_state(group, p, names)  # p was moved, or an option changed
            grad = self._grad_of(p, backend)
            step = state["step"] + 1
            self._update(backend, group, p._data, grad, state, step, None)
            state["step"] = step
            bump_version(p)

    # --- gradients ---------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients: to None (the default), or to zeros in place. On the flat path
        zeros are written as views of one gradient buffer per bank, so the next step reads
        the gradients backward accumulates there without gathering them."""
        if set_to_none:
            for group in self.param_groups:
                for p in group["params"]:
                    p.grad = None
            return
        if not self.flat:
            for group in self.param_groups:
                _zero_each(group["params"])
            return
        for index in range(len(self.param_groups)):
            banks = self._banks_of(index)
            _zero_each(self._loose[index])  # the parameters kept out of the banks
            for bank in banks:
                if bank.grad_flat is None:
                    bank.grad_flat = bank.backend.xp.zeros_like(bank.data)
                    bank.grad_views = bank.split(bank.grad_flat)
                else:
                    bank.grad_flat.fill(0)
                for p, view in zip(bank.params, bank.grad_views):  # type: ignore[arg-type]
                    g = p.grad
                    if g is not None and (g.data is not view or g.requires_grad):
                        p.grad = _make(view, bank.backend, None)

    # --- saving and loading ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state as plain data: `{"state": {index: {"step": int, name:
        Tensor}}, "param_groups": [{option: value, "params": [index, ...]}]}`, parameters
        numbered in group order as in torch.optim. State tensors are copies."""
        groups, packed_state = [], {}
        index = 0
        for group in self.param_groups:
            entry = {k: v for k, v in group.items() if k != "params"}
            entry["params"] = list(range(index, index + len(group["params"])))
            for p in group["params"]:
                state = self.state.get(p)
                if state and state["step"] > 0:  # as torch: only parameters that have stepped
                    backend = self._home[p][0]
                    packed_state[index] = {
                        name: (value if name == "step" else _make(value.copy(), backend, None))
                        for name, value in state.items()
                    }
                index += 1
            groups.append(entry)
        return {"state": packed_state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load what `state_dict` returned (of an optimizer of the same kind over the same
        parameters): options and state; training then continues as if never interrupted.
        All or nothing: a dict that does not fit raises CheckpointError naming what does not
        fit, and leaves the optimizer unchanged."""
        new_groups, new_state = self._checked_state(state_dict)
        for ours, group in zip(self.param_groups, new_groups):
            ours.update(group)
        for ours in self.param_groups:
            for p in ours["params"]:
                self.state[p] = new_state.get(p, {"step": 0})
                self._home[p] = (p._backend, p.data.dtype)
                if not self.flat:
                    self._complete_state(ours, p, self._state_names(ours))
        if self.flat:
            for index in range(len(self.param_groups)):
                self._pack(index)

    def validate_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Raise CheckpointError if `load_state_dict(state_dict)` would fail; changes nothing."""
        self._checked_state(state_dict)

    def _checked_state(
        self, state_dict: Any
    ) -> tuple[list[dict[str, Any]], dict[Tensor, dict[str, Any]]]:
        """The param groups and per-parameter state that loading `state_dict` would set."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise CheckpointError(
                f"{name}.load_state_dict needs a dict with 'state' and "
                f"'param_groups' (what Optimizer.state_dict() returns), got {got}"
            )
        saved_groups = state_dict["param_groups"]
        if isinstance(saved_groups, dict):  # tolerate groups stored by position as a dict
            if not all(_is_index(k) for k in saved_groups):
                raise CheckpointError(f"{name}: param_groups has keys {sorted(saved_groups)}")
            saved_groups = [saved_groups[k] for k in sorted(saved_groups, key=int)]
        if not isinstance(saved_groups, (list, tuple)):
            raise CheckpointError(
                f"{name}: param_groups is a {type(saved_groups).__name__}, not a list"
            )
        if len(saved_groups) != len(self.param_groups):
            raise CheckpointError(
                f"{name}: the state dict has {len(saved_groups)} param "
                f"groups, this optimizer {len(self.param_groups)}"
            )
        new_groups, by_index = [], {}
        for i, (ours, saved) in enumerate(zip(self.param_groups, saved_groups)):
            group = self._checked_group(i, ours, saved)
            new_groups.append(group)
            for saved_id, p in zip(saved["params"], ours["params"]):
                by_index[int(saved_id)] = (p, group)
        saved_state = state_dict["state"]
        if not isinstance(saved_state, dict):
            raise CheckpointError(f"{name}: state is a {type(saved_state).__name__}, not a dict")
        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, saved in saved_state.items():
            if not _is_index(key) or int(key) not in by_index:
                raise CheckpointError(
                    f"{name}: the state dict has state for parameter {key!r}, "
                    "which no param group lists"
                )
            p, group = by_index[int(key)]
            new_state[p] = self._checked_param_state(key, p, group, saved)
        return new_groups, new_state

    def _checked_group(self, i: int, ours: dict[str, Any], saved: Any) -> dict[str, Any]:
        name = type(self).__name__
        if not isinstance(saved, dict):
            raise CheckpointError(f"{name}: param group {i} is a {type(saved).__name__}")
        ids = saved.get("params")
        if not isinstance(ids, (list, tuple)) or not all(_is_index(k) for k in ids):
            raise CheckpointError(
                f"{name}: param group {i} lists params {ids!r}, not parameter numbers"
            )
        if len(ids) != len(ours["params"]):
            raise CheckpointError(
                f"{name}: param group {i} holds {len(ours['params'])} "
                f"parameters, the state dict's {len(ids)}"
            )
        missing = [k for k in self.defaults if k not in saved]
        if missing:
            raise CheckpointError(
                f"{name}: param group {i} of the state dict lacks "
                f"{missing}; was it saved by another optimizer?"
            )
        group = dict(ours)
        for key, value in saved.items():
            if key == "params":
                continue
            check_like(f"{name}: param group {i} option {key!r}", value, ours.get(key))
            group[key] = tuple(value) if isinstance(ours.get(key), tuple) else value
        try:
            self._check_group(group)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{name}: param group {i} of the state dict: {exc}") from None
        return group

    def _checked_param_state(
        self, key: Any, p: Tensor, group: dict[str, Any], saved: Any
    ) -> dict[str, Any]:
        name = type(self).__name__
        expected = {"step", *self._state_names(group)}
        if not isinstance(saved, dict) or set(saved) != expected:
            got = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
            raise CheckpointError(
                f"{name}: state of parameter {key} has {got}, expected {sorted(expected)}"
            )
        step = saved["step"]
        if not _is_index(step) or isinstance(step, str):
            raise CheckpointError(
                f"{name}: state of parameter {key} has step {step!r}, not a count"
            )
        entry: dict[str, Any] = {"step": int(step)}
        for k in sorted(expected - {"step"}):
            value = saved[k]
            kind = getattr(getattr(value, "dtype", None), "kind", None)
            if kind != "f":
                raise CheckpointError(
                    f"{name}: state {k!r} of parameter {key} is {type(value).__name__} "
                    f"of dtype {getattr(value, 'dtype', None)}, not a floating-point array"
                )
            if tuple(value.shape) != p.shape:
                raise CheckpointError(
                    f"{name}: state {k!r} of parameter {key} has shape "
                    f"{tuple(value.shape)}, the parameter {p.shape}"
                )
            entry[k] = Tensor(value, dtype=p.dtype, device=p.device).data
        return entry

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        return "\n".join([*lines, ")"])


_requires_grad = attrgetter("requires_grad")


def _is_index(key: Any) -> bool:
    """A parameter number as a state dict stores it: an int, or its decimal string."""
    if isinstance(key, bool):
        return False
    if isinstance(key, int):
        return key >= 0
    return isinstance(key, str) and key.isdigit()


def _zero_each(params: list[Tensor]) -> None:
    """Zero each parameter's gradient in place (detached first if it carries a graph)."""
    for p in params:
        if p.grad is not None:
            if p.grad.requires_grad:
                p.grad = p.grad.detach()
            p.grad.data[...] = 0
