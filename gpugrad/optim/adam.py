"""Adam and AdamW, with torch.optim's update rules: bias-corrected moments, eps outside the
square root, optional AMSGrad; Adam's weight decay is L2 (added to the gradient), AdamW's is
decoupled (the weights shrink by lr·weight_decay before the step)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import _args
from ..backend import Backend
from ..errors import ArgumentError
from .optimizer import Optimizer, ParamsT


def check_betas(owner: str, group: dict[str, Any]) -> None:
    """Raise ArgumentError unless the group's betas are a pair of numbers in [0, 1); store
    them as a tuple. Shared by every Adam-like optimizer."""
    betas = group["betas"]
    if not isinstance(betas, Sequence) or isinstance(betas, str) or len(betas) != 2:
        raise ArgumentError(f"{owner}: betas must be a pair of numbers in [0, 1), got {betas!r}")
    for i, beta in enumerate(betas):
        _args.number(owner, f"betas[{i}]", beta, low=0, high=1, high_open=True)
    group["betas"] = tuple(betas)


class Adam(Optimizer):
    """Adam: adaptive moment estimation.

    `m ← β1·m + (1 − β1)·g`, `v ← β2·v + (1 − β2)·g²`,
    `w ← w − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps)`; `weight_decay` adds `wd·w` to
    `g` (L2); `amsgrad` uses the running maximum of `v`.
    """

    non_negative = ("lr", "eps", "weight_decay")

    decoupled = False  # AdamW: decay the weights directly instead of through the gradient

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        flat: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,  # checked and made a tuple by _check_group
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
        }
        super().__init__(params, defaults, flat=flat)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_betas(type(self).__name__, group)

    def _state_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        names = ("exp_avg", "exp_avg_sq")
        return (*names, "max_exp_avg_sq") if group["amsgrad"] else names

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
        backend.adam_step(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            state.get("max_exp_avg_sq"),
            step,
            group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            amsgrad=group["amsgrad"],
            decoupled=self.decoupled,
            scratch=scratch,
        )


class AdamW(Adam):
    """Adam with decoupled weight decay: `w ← w·(1 − lr·weight_decay)`, then the Adam step
    without decay in the gradient. The default weight_decay is 1e-2, as in torch.optim."""

    decoupled = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        flat: bool = True,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, flat=flat)
