"""Adagrad with torch.optim.Adagrad's update rule (lr_decay, initial_accumulator_value)."""

from __future__ import annotations

from typing import Any

from ..backend import Backend
from .optimizer import Optimizer, ParamsT


class Adagrad(Optimizer):
    """Adagrad: per-element learning rates from the sum of squared gradients.

    `sum ← sum + g²`, `w ← w − lr/(1 + (t − 1)·lr_decay) · g / (√sum + eps)`; the sum
    starts at `initial_accumulator_value`; `weight_decay` adds `wd·w` to `g`.
    """

    non_negative = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        flat: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "eps": eps,
        }
        super().__init__(params, defaults, flat=flat)

    def _state_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("sum",)

    def _state_fill(self, group: dict[str, Any], name: str) -> float:
        return float(group["initial_accumulator_value"])

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
        backend.adagrad_step(
            param,
            grad,
            state["sum"],
            step,
            group["lr"],
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            scratch=scratch,
        )
