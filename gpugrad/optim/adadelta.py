"""Adadelta with torch.optim.Adadelta's update rule and defaults."""

from __future__ import annotations

from typing import Any

from .. import _args
from ..backend import Backend
from .optimizer import Optimizer, ParamsT


class Adadelta(Optimizer):
    """Adadelta: step sizes from running averages of squared gradients and squared updates.

    `s ← ρ·s + (1 − ρ)·g²`, `d = √(a + eps)/√(s + eps) · g`, `a ← ρ·a + (1 − ρ)·d²`,
    `w ← w − lr·d`; `weight_decay` adds `wd·w` to `g`.
    """

    non_negative = ("lr", "eps", "weight_decay")

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        flat: bool = True,
    ) -> None:
        defaults = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults, flat=flat)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        _args.number("Adadelta", "rho", group["rho"], low=0, high=1)

    def _state_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("square_avg", "acc_delta")

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
        backend.adadelta_step(
            param,
            grad,
            state["square_avg"],
            state["acc_delta"],
            group["lr"],
            rho=group["rho"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            scratch=scratch,
        )
