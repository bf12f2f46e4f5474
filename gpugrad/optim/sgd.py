"""SGD: stochastic gradient descent with optional momentum, dampening, Nesterov momentum and
L2 weight decay, with torch.optim.SGD's update rule."""

from __future__ import annotations

from typing import Any

from ..backend import Backend
from ..errors import ArgumentError
from .optimizer import Optimizer, ParamsT


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum).

    The plain step is exactly `w ← w − lr·grad`. With `weight_decay`, `d = grad + wd·w`;
    with `momentum`, `buf = momentum·buf + (1 − dampening)·d` (on the first step the buffer
    is the gradient itself) and the step uses `buf`, or `d + momentum·buf` with `nesterov`.
    """

    non_negative = ("lr", "momentum", "weight_decay")

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        flat: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
        }
        super().__init__(params, defaults, flat=flat)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ArgumentError(
                "SGD: Nesterov momentum needs momentum > 0 and dampening = 0, got "
                f"momentum={group['momentum']!r}, dampening={group['dampening']!r}"
            )

    def _state_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

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
        backend.sgd_step(
            param,
            grad,
            state.get("momentum_buffer"),
            group["lr"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            nesterov=group["nesterov"],
            weight_decay=group["weight_decay"],
            first=step == 1,
            scratch=scratch,
        )
