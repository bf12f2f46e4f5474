"""Adamax (Adam with the infinity norm) with torch.optim.Adamax's update rule and defaults."""

from __future__ import annotations

from typing import Any

from ..backend import Backend
from .optimizer import Optimizer, ParamsT, check_betas


class Adamax(Optimizer):
    """Adamax: Adam with the infinity norm in place of the second moment.

    `m ← β1·m + (1 − β1)·g`, `u ← max(β2·u, |g| + eps)`, `w ← w − lr/(1 − β1^t) · m/u`;
    `weight_decay` adds `wd·w` to `g`.
    """

    non_negative = ("lr", "eps", "weight_decay")

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        flat: bool = True,
    ) -> None:
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults, flat=flat)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_betas(type(self).__name__, group)

    def _state_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_inf")

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
        beta1, beta2 = group["betas"]
        backend.adamax_step(
            param,
            grad,
            state["exp_avg"],
            state["exp_inf"],
            step,
            group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            scratch=scratch,
        )
