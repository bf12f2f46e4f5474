"""RMSprop with torch.optim.RMSprop's update rule (optionally centered, with momentum)."""

from __future__ import annotations

from typing import Any

from ..backend import Backend
from .optimizer import Optimizer, ParamsT


class RMSprop(Optimizer):
    """RMSprop: divide the gradient by a running root mean square of recent gradients.

    `s ← α·s + (1 − α)·g²`; `centered` also tracks `a ← α·a + (1 − α)·g` and uses `s − a²`;
    `avg = √(·) + eps`; the step is `lr·g/avg`, or with momentum `buf ← momentum·buf + g/avg`
    and the step `lr·buf`. `weight_decay` adds `wd·w` to `g`.
    """

    non_negative = ("lr", "alpha", "eps", "weight_decay", "momentum")

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        flat: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "centered": centered,
        }
        super().__init__(params, defaults, flat=flat)

    def _state_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        names = ("square_avg",)
        if group["momentum"] > 0:
            names += ("momentum_buffer",)
        if group["centered"]:
            names += ("grad_avg",)
        return names

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
        backend.rmsprop_step(
            param,
            grad,
            state["square_avg"],
            state.get("grad_avg"),
            state.get("momentum_buffer"),
            group["lr"],
            alpha=group["alpha"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            centered=group["centered"],
            scratch=scratch,
        )
