"""Learning-rate schedules with torch.optim.lr_scheduler's formulas and step semantics.

A scheduler changes each param group's `"lr"` as a step counter `last_epoch` advances:
making the scheduler takes step 0, and each `step()` moves one step on. As in PyTorch, a step
updates `group["lr"]` from its *current* value (the "chainable" form: StepLR multiplies it by
gamma at each boundary, CosineAnnealingLR scales its distance to eta_min, ...), so two
schedulers on one optimizer multiply, and a change made by hand to `group["lr"]` persists.
`step(epoch)` jumps to an explicit step with the closed form from `group["initial_lr"]`
(recorded when the first scheduler is made), as PyTorch does.

`LambdaLR` and `OneCycleLR` are closed forms in PyTorch too (the lr is a function of the
step), `ReduceLROnPlateau` steps on a metric, and `SequentialLR` / `ChainedScheduler` drive
other schedulers.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from .. import _args
from ..errors import ArgumentError, ArgumentTypeError, CheckpointError
from .optimizer import Optimizer
from .state_check import check_like


def _check_optimizer(owner: str, optimizer: Any) -> None:
    """A scheduler drives an Optimizer: anything else is refused before it is read."""
    if not isinstance(optimizer, Optimizer):
        raise ArgumentTypeError(
            f"{owner}: {type(optimizer).__name__} is not an Optimizer, got {optimizer!r:.60}"
        )


class LRScheduler:
    """Base class: subclasses define `get_lr()`, the learning rates at step `last_epoch`
    computed from the groups' current ones, and may define `_closed_form_lr()`, the same from
    `base_lrs` alone (used by `step(epoch)`)."""

    # Attributes that are not part of the saved state.
    _unsaved: tuple[str, ...] = ("optimizer", "_is_initial")

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        _check_optimizer(type(self).__name__, optimizer)
        last_epoch = _args.size(type(self).__name__, "last_epoch", last_epoch, minimum=-1)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise ArgumentError(
                        f"param_groups[{i}] has no 'initial_lr', which resuming a schedule "
                        "(last_epoch != -1) needs"
                    )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._last_lr: list[float] = []
        self._initial_step()

    def _initial_step(self) -> None:
        """The step a scheduler takes when it is made (schedules may treat it specially)."""
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The learning rate of each param group at step `last_epoch`."""
        raise TypeError(f"{type(self).__name__} does not define get_lr()")

    def _closed_form_lr(self) -> list[float]:
        """The learning rates at step `last_epoch` from `base_lrs` alone (what `step(epoch)`
        sets); schedules without a closed form use `get_lr()`."""
        return self.get_lr()

    def _current_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates the last `step()` set."""
        return list(self._last_lr)

    def step(self, epoch: int | None = None) -> None:
        """Advance one step (or jump to step `epoch`) and set the groups' learning rates."""
        if epoch is None:
            self.last_epoch += 1
            lrs = self.get_lr()
        else:
            self.last_epoch = _args.integer(type(self).__name__ + ".step", "epoch", epoch)
            lrs = self._closed_form_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = self._current_lrs()

    def state_dict(self) -> dict[str, Any]:
        """The schedule's settings and position (everything but the optimizer)."""
        return {k: v for k, v in self.__dict__.items() if k not in self._unsaved}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what `state_dict` returned. All or nothing: a dict of another kind of
        schedule, or with a value of the wrong kind, raises CheckpointError naming it."""
        self.validate_state_dict(state_dict)
        self.__dict__.update(state_dict)

    def validate_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Raise CheckpointError if `load_state_dict(state_dict)` would not fit; changes
        nothing."""
        expected = self.state_dict()
        if not isinstance(state_dict, dict) or set(state_dict) != set(expected):
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict)
            raise CheckpointError(
                f"{type(self).__name__}.load_state_dict: expected keys {sorted(expected)}, "
                f"got {got}"
            )
        for key, value in expected.items():
            check_like(f"{type(self).__name__} state {key!r}", state_dict[key], value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr})"


class StepLR(LRScheduler):
    """Multiply the learning rate by `gamma` every `step_size` steps:
    `lr = base_lr · gamma^(t // step_size)`."""

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        _args.size("StepLR", "step_size", step_size)
        _args.number("StepLR", "gamma", gamma, low=0)  # a negative one flips the lr's sign
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The current lr, times gamma when t is a positive multiple of step_size."""
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        """base_lr · gamma^(t // step_size)."""
        factor = self.gamma ** (self.last_epoch // self.step_size)
        return [base * factor for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the learning rate by `gamma` at each milestone step (a milestone listed twice
    counts twice): `lr = base_lr · gamma^(milestones passed)`."""

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: Sequence[int],
        gamma: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(milestones, (Sequence, set)) or isinstance(milestones, str):
            raise ArgumentTypeError(
                f"MultiStepLR: milestones must be a list of ints, got {milestones!r}"
            )
        self.milestones = sorted(
            _args.size("MultiStepLR", "milestones", m, minimum=0) for m in milestones
        )
        self.gamma = float(_args.number("MultiStepLR", "gamma", gamma, low=0))
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The current lr, times gamma once for each time t is listed as a milestone."""
        t = self.last_epoch
        times = bisect_right(self.milestones, t) - bisect_left(self.milestones, t)
        if times == 0:
            return self._current_lrs()
        return [lr * self.gamma**times for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        """base_lr · gamma^(number of milestones ≤ t)."""
        factor = self.gamma ** bisect_right(self.milestones, self.last_epoch)
        return [base * factor for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the learning rate by `gamma` every step: `lr = base_lr · gamma^t`."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = float(_args.number("ExponentialLR", "gamma", gamma, low=0))
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The current lr times gamma (unchanged at the step the scheduler is made)."""
        if self._is_initial:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        """base_lr · gamma^t."""
        return [base * self.gamma**self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from base_lr down to `eta_min` over `T_max` steps:
    `lr = eta_min + (base_lr − eta_min)·(1 + cos(π·t/T_max))/2`."""

    def __init__(
        self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        _args.size("CosineAnnealingLR", "T_max", T_max)
        _args.number("CosineAnnealingLR", "eta_min", eta_min, finite=True)
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The current lr's distance to eta_min, scaled by the ratio of consecutive cosine
        factors (PyTorch's recursive form, which equals the closed form when nothing else
        changes the lr)."""
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        lrs = self._current_lrs()
        if self._is_initial:
            return lrs
        if (t - 1 - T) % (2 * T) == 0:  # leaving the trough, where the ratio would be 0/0
            rise = (1 - math.cos(math.pi / T)) / 2
            return [lr + (base - eta_min) * rise for lr, base in zip(lrs, self.base_lrs)]
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [ratio * (lr - eta_min) + eta_min for lr in lrs]

    def _closed_form_lr(self) -> list[float]:
        """eta_min + (base_lr − eta_min)·(1 + cos(π·t/T_max))/2."""
        cosine = (1.0 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2.0
        return [self.eta_min + (base - self.eta_min) * cosine for base in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the learning rate linearly from `start_factor` to `end_factor` over
    `total_iters` steps, then hold it (a warm-up when start_factor < 1):
    `lr = base_lr · (start + (end − start)·min(t, total_iters)/total_iters)`."""

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        _args.number("LinearLR", "start_factor", start_factor, low=0, low_open=True, high=1)
        _args.number("LinearLR", "end_factor", end_factor, low=0, high=1)
        _args.size("LinearLR", "total_iters", total_iters)
        self.start_factor, self.end_factor = float(start_factor), float(end_factor)
        self.total_iters = int(total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The current lr times start_factor at step 0, then times the ratio of consecutive
        factors until total_iters."""
        t, start, end = self.last_epoch, self.start_factor, self.end_factor
        lrs = self._current_lrs()
        if t == 0:
            return [lr * start for lr in lrs]
        if self._is_initial or t > self.total_iters:
            return lrs
        ratio = 1.0 + (end - start) / (self.total_iters * start + (t - 1) * (end - start))
        return [lr * ratio for lr in lrs]

    def _closed_form_lr(self) -> list[float]:
        """base_lr · (start + (end − start)·min(t, total_iters)/total_iters)."""
        done = min(self.total_iters, self.last_epoch) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * done
        return [base * factor for base in self.base_lrs]


def _per_group(name: str, optimizer: Optimizer, value: Any) -> list[float]:
    """`value` for each param group: a list with one entry per group, or one for all."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ArgumentError(
                f"{name} has {len(value)} values for {len(optimizer.param_groups)} param groups"
            )
        return [float(_args.number("OneCycleLR", name, v, finite=True)) for v in value]
    return [float(_args.number("OneCycleLR", name, value, finite=True))] * len(
        optimizer.param_groups
    )


class OneCycleLR(LRScheduler):
    """The 1cycle policy: the learning rate rises from max_lr/div_factor to `max_lr` over
    the first `pct_start` of `total_steps`, then anneals to initial_lr/final_div_factor
    (`three_phase`: back down to the initial lr first, then to the minimum); momentum (or
    Adam's beta1) cycles the opposite way between `max_momentum` and `base_momentum`.
    Call `step()` after every batch; stepping past `total_steps` raises ValueError."""

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | Sequence[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | Sequence[float] = 0.85,
        max_momentum: float | Sequence[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer("OneCycleLR", optimizer)
        if total_steps is not None:
            self.total_steps = _args.size("OneCycleLR", "total_steps", total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = _args.size("OneCycleLR", "epochs", epochs) * _args.size(
                "OneCycleLR", "steps_per_epoch", steps_per_epoch
            )
        else:
            raise ArgumentError("give total_steps, or epochs and steps_per_epoch")
        _args.number("OneCycleLR", "pct_start", pct_start, low=0, high=1)
        _args.choice("OneCycleLR", "anneal_strategy", anneal_strategy, ("cos", "linear"))
        self.anneal_strategy = anneal_strategy
        up = float(pct_start * self.total_steps) - 1
        last = self.total_steps - 1
        # Each phase: (last step of the phase, group key of its start lr, of its end lr,
        # of its start momentum, of its end momentum).
        if three_phase:
            self.phases = [
                (up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (float(2 * pct_start * self.total_steps) - 2, "max_lr", "initial_lr",
                 "base_momentum", "max_momentum"),
                (last, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]  # fmt: skip
        else:
            self.phases = [
                (up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (last, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        max_lrs = _per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for group, top in zip(optimizer.param_groups, max_lrs):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = bool(cycle_momentum)
        self.use_beta1 = False
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ArgumentError(
                    f"cycle_momentum needs an optimizer with momentum or betas; "
                    f"{type(optimizer).__name__} has neither (pass cycle_momentum=False)"
                )
            self.use_beta1 = "betas" in optimizer.defaults
            highs = _per_group("max_momentum", optimizer, max_momentum)
            lows = _per_group("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for group, high, low in zip(optimizer.param_groups, highs, lows):
                    self._set_momentum(group, high)
                    group["max_momentum"], group["base_momentum"] = high, low
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group: dict[str, Any], value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *tuple(group["betas"])[1:])
        else:
            group["momentum"] = value

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        """The lr of each group at step `last_epoch` (and, with cycle_momentum, sets the
        groups' momentum or beta1 for that step)."""
        t = self.last_epoch
        if t > self.total_steps:
            raise ArgumentError(
                f"tried to step {t} times; OneCycleLR was made for total_steps={self.total_steps}"
            )
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr0, lr1, m0, m1) in enumerate(self.phases):
                if t <= end or i == len(self.phases) - 1:
                    pct = (t - start) / (end - start)
                    lrs.append(self._anneal(group[lr0], group[lr1], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[m0], group[m1], pct))
                    break
                start = end
        return lrs


def _check_inner(kind: str, schedulers: Sequence[LRScheduler], optimizer: Optimizer) -> None:
    """Raise unless every scheduler is a stepping LRScheduler that drives `optimizer`."""
    if not isinstance(schedulers, (list, tuple)):
        raise ArgumentTypeError(f"{kind} takes a list of schedulers, got {schedulers!r}")
    if len(schedulers) < 1:
        raise ArgumentError(f"{kind} needs at least one scheduler, got none")
    for i, s in enumerate(schedulers):
        if not isinstance(s, LRScheduler):
            raise ArgumentTypeError(
                f"{kind}: schedulers[{i}] is a {type(s).__name__}, not a scheduler"
            )
        if isinstance(s, ReduceLROnPlateau):
            raise ArgumentError(
                f"{kind} cannot drive ReduceLROnPlateau (schedulers[{i}]): its step needs a "
                "metric; step it yourself"
            )
        if s.optimizer is not optimizer:
            raise ArgumentError(
                f"{kind}: schedulers[{i}] ({type(s).__name__}) drives another optimizer; "
                "every scheduler must drive the same one"
            )


def _validate_inner(kind: str, schedulers: list[LRScheduler], state_dict: Any) -> None:
    """Check the inner schedulers' states saved under `state_dict["_schedulers"]`."""
    inner = state_dict.get("_schedulers") if isinstance(state_dict, dict) else None
    if not isinstance(inner, (list, tuple)) or len(inner) != len(schedulers):
        raise CheckpointError(f"{kind}.load_state_dict: the inner schedulers differ")
    for s, sd in zip(schedulers, inner):
        s.validate_state_dict(sd)


class SequentialLR(LRScheduler):
    """Run schedulers one after another: `schedulers[i]` drives the lr from milestone i−1
    on, restarting at its step 0 (e.g. a LinearLR warm-up, then CosineAnnealingLR)."""

    def __init__(
        self,
        optimizer: Optimizer,
        schedulers: Sequence[LRScheduler],
        milestones: Sequence[int],
        last_epoch: int = -1,
    ) -> None:
        _check_inner("SequentialLR", schedulers, optimizer)
        if not isinstance(milestones, (list, tuple)):
            raise ArgumentTypeError(f"SequentialLR: milestones must be a list, got {milestones!r}")
        milestones = [_args.size("SequentialLR", "milestones", m, minimum=0) for m in milestones]
        if len(milestones) != len(schedulers) - 1:
            raise ArgumentError(
                f"SequentialLR needs one milestone fewer than schedulers, got "
                f"{len(schedulers)} schedulers and {len(milestones)} milestones"
            )
        self.optimizer = optimizer
        self._schedulers = list(schedulers)
        self._milestones = [int(m) for m in milestones]
        self.last_epoch = last_epoch + 1
        # Making the inner schedulers moved the lr; start again from the initial one.
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        for s in self._schedulers:  # undo the step each took when it was made
            s.last_epoch -= 1
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def step(self, epoch: int | None = None) -> None:
        """Advance one step, handing over to the next scheduler at each milestone (which
        starts at its step 0, from the initial lr)."""
        self.last_epoch += 1
        i = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[i]
        if i > 0 and self._milestones[i - 1] == self.last_epoch:
            scheduler.step(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def get_lr(self) -> list[float]:
        """The learning rates of the scheduler in charge now."""
        return self._last_lr

    def state_dict(self) -> dict[str, Any]:
        """Position, milestones and each inner scheduler's state."""
        return {
            "last_epoch": self.last_epoch,
            "_milestones": list(self._milestones),
            "_last_lr": list(self._last_lr),
            "_schedulers": [s.state_dict() for s in self._schedulers],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (all or nothing, as the base class)."""
        self.validate_state_dict(state_dict)
        for s, sd in zip(self._schedulers, state_dict["_schedulers"]):
            s.load_state_dict(sd)
        self.last_epoch = int(state_dict["last_epoch"])
        self._milestones = [int(m) for m in state_dict["_milestones"]]
        self._last_lr = list(state_dict["_last_lr"])

    def validate_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Raise CheckpointError unless the dict and every inner scheduler's state fit."""
        _validate_inner("SequentialLR", self._schedulers, state_dict)
        ours = self.state_dict()
        for key in ("last_epoch", "_milestones", "_last_lr"):
            if key not in state_dict:
                raise CheckpointError(f"SequentialLR.load_state_dict: no {key!r}")
            check_like(f"SequentialLR state {key!r}", state_dict[key], ours[key])


class ChainedScheduler(LRScheduler):
    """Step several schedulers of one optimizer together, each scaling the lr the previous
    one left (e.g. a LinearLR warm-up with an ExponentialLR decay at the same time)."""

    def __init__(
        self, schedulers: Sequence[LRScheduler], optimizer: Optimizer | None = None
    ) -> None:
        if not isinstance(schedulers, (list, tuple)):
            raise ArgumentTypeError(
                f"ChainedScheduler takes a list of schedulers, got {schedulers!r:.60}"
            )
        if len(schedulers) < 1:
            raise ArgumentError("ChainedScheduler needs at least one scheduler, got none")
        if optimizer is None:
            optimizer = getattr(schedulers[0], "optimizer", None)
        _check_inner("ChainedScheduler", schedulers, optimizer)
        self.optimizer = optimizer
        self._schedulers = list(schedulers)
        self._last_lr = self._current_lrs()

    def step(self, epoch: int | None = None) -> None:
        """Step every scheduler once, in order."""
        if epoch is not None:
            raise ArgumentError(f"ChainedScheduler.step takes no epoch, got {epoch!r}")
        for s in self._schedulers:
            s.step()
        self._last_lr = self._current_lrs()

    def get_lr(self) -> list[float]:
        """The learning rates the last step left."""
        return self._last_lr

    def state_dict(self) -> dict[str, Any]:
        """The last learning rates and each inner scheduler's state."""
        return {
            "_last_lr": list(self._last_lr),
            "_schedulers": [s.state_dict() for s in self._schedulers],
        }

    def validate_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Raise CheckpointError unless the dict and every inner scheduler's state fit."""
        _validate_inner("ChainedScheduler", self._schedulers, state_dict)
        if "_last_lr" not in state_dict:
            raise CheckpointError("ChainedScheduler.load_state_dict: no '_last_lr'")
        check_like("ChainedScheduler state '_last_lr'", state_dict["_last_lr"], self._last_lr)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (all or nothing)."""
        self.validate_state_dict(state_dict)
        for s, sd in zip(self._schedulers, state_dict["_schedulers"]):
            s.load_state_dict(sd)
        self._last_lr = list(state_dict["_last_lr"])

    def __repr__(self) -> str:
        inner = ", ".join(type(s).__name__ for s in self._schedulers)
        return f"ChainedScheduler([{inner}], lr={self._last_lr})"


def _lr_lambdas(kind: str, optimizer: Optimizer, lr_lambda: Any) -> list[Callable[[int], float]]:
    """One function per param group: `lr_lambda` itself for all, or a list of one each."""
    _check_optimizer(kind, optimizer)
    n = len(optimizer.param_groups)
    lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
    if len(lambdas) != n:
        raise ArgumentError(f"{kind} got {len(lambdas)} lr_lambdas for {n} param groups")
    for i, fn in enumerate(lambdas):
        if not callable(fn):
            raise ArgumentTypeError(
                f"{kind}: lr_lambda {i} is a {type(fn).__name__}, not a function"
            )
    return lambdas


def _factor(kind: str, fn: Callable[[int], float], t: int) -> float:
    """`fn(t)`, which must be a real number (a str would multiply a float into a TypeError)."""
    value = fn(t)
    return _args.number(kind, f"lr_lambda({t})", value)


class LambdaLR(LRScheduler):
    """`lr = base_lr · lr_lambda(t)`, with one function for all groups or one per group.

    The functions are not part of `state_dict()` (they cannot be saved); make the scheduler
    with the same functions before loading.
    """

    _unsaved = (*LRScheduler._unsaved, "lr_lambdas")

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        self.lr_lambdas = _lr_lambdas("LambdaLR", optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """base_lr · lr_lambda(t) for each group."""
        t = self.last_epoch
        factors = [_factor("LambdaLR", fn, t) for fn in self.lr_lambdas]
        return [base * factor for factor, base in zip(factors, self.base_lrs)]


class MultiplicativeLR(LRScheduler):
    """Multiply the current lr by `lr_lambda(t)` at every step after the first (one function
    for all groups or one per group); the functions are not saved, as with LambdaLR."""

    _unsaved = (*LRScheduler._unsaved, "lr_lambdas")

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        self.lr_lambdas = _lr_lambdas("MultiplicativeLR", optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The current lr times lr_lambda(t) (unchanged at the step the scheduler is made)."""
        lrs = self._current_lrs()
        if self._is_initial:
            return lrs
        t = self.last_epoch
        factors = [_factor("MultiplicativeLR", fn, t) for fn in self.lr_lambdas]
        return [lr * factor for factor, lr in zip(factors, lrs)]


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by `factor` when a metric has stopped improving for `patience` steps.

    Call `step(metric)` once per evaluation. A metric improves on the best so far when it is
    lower (`mode="min"`) or higher (`"max"`) by more than `threshold`, relative to the best
    (`threshold_mode="rel"`) or absolute (`"abs"`). After a reduction, `cooldown` steps pass
    before bad steps count again. The lr never goes below `min_lr` (one for all groups or one
    per group), and a reduction smaller than `eps` is skipped.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | Sequence[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        owner = "ReduceLROnPlateau"
        _check_optimizer(owner, optimizer)
        _args.choice(owner, "mode", mode, ("min", "max"))
        _args.choice(owner, "threshold_mode", threshold_mode, ("rel", "abs"))
        _args.number(owner, "factor (in [0, 1) to reduce the lr)", factor, low=0, high=1,
                     high_open=True)  # fmt: skip
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            _args.size(owner, name, value, minimum=0)
        for name, value in (("threshold", threshold), ("eps", eps)):
            _args.number(owner, name, value, low=0, finite=True)
        self.optimizer = optimizer
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ArgumentError(f"got {len(min_lr)} min_lr values for {n} param groups")
            self.min_lrs = [float(_args.number(owner, "min_lr", m, low=0)) for m in min_lr]
        else:
            self.min_lrs = [float(_args.number(owner, "min_lr", min_lr, low=0))] * n
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor, self.threshold, self.eps = float(factor), float(threshold), float(eps)
        self.patience, self.cooldown = int(patience), int(cooldown)
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._last_lr = self._current_lrs()

    def is_better(self, value: float, best: float) -> bool:
        """Whether `value` improves on `best` by more than the threshold."""
        if self.mode == "min":
            return value < (best * (1.0 - self.threshold) if self.threshold_mode == "rel"
                            else best - self.threshold)  # fmt: skip
        return value > (best * (1.0 + self.threshold) if self.threshold_mode == "rel"
                        else best + self.threshold)  # fmt: skip

    def step(self, metric: Any, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record one evaluation of the metric; reduce the lr after too many without
        improvement."""
        try:
            current = float(metric)
        except (TypeError, ValueError):
            raise ArgumentTypeError(
                f"ReduceLROnPlateau.step: metric must be a number or a one-element Tensor, "
                f"got {type(metric).__name__} {metric!r}"
            ) from None
        if epoch is not None:
            _args.integer("ReduceLROnPlateau.step", "epoch", epoch)
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._current_lrs()

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            raise ArgumentError(
                f"the optimizer now has {len(groups)} param groups, ReduceLROnPlateau was "
                f"made for {len(self.min_lrs)}; set its min_lrs to one value per group"
            )
        for group, min_lr in zip(groups, self.min_lrs):
            old = float(group["lr"])
            new = max(old * self.factor, min_lr)
            if old - new > self.eps:
                group["lr"] = new

    def get_lr(self) -> list[float]:
        """The learning rates now (this schedule changes them only in `step(metric)`)."""
        return self._current_lrs()

    def __repr__(self) -> str:
        return (
            f"ReduceLROnPlateau(mode={self.mode!r}, factor={self.factor}, "
            f"patience={self.patience}, best={self.best}, lr={self._last_lr})"
        )


__all__ = [
    "ChainedScheduler",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "MultiplicativeLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
]
