"""NAdam (Adam with Nesterov momentum) with torch.optim.NAdam's update rule and defaults."""

from __future__ import annotations

from typing import Any

from ..backend import Backend
from .optimizer import Optimizer, ParamsT, check_betas


class NAdam(Optimizer):
    """NAdam: Adam with Nesterov momentum, whose momentum warms up as
    `μ_t = β1·(1 − 0.5·0.96^(t·momentum_decay))`.

    The product of the μ's, which torch.optim.NAdam keeps per parameter as `mu_product`, is a
    function of the step count alone, so it is not part of the state here.
    """

    non_negative = ("lr", "eps", "weight_decay", "momentum_decay")

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        *,
        flat: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum_decay": momentum_decay,
        }
        super().__init__(params, defaults, flat=flat)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_betas(type(self).__name__, group)

    def _state_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

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
        backend.nadam_step(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            step,
            group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum_decay=group["momentum_decay"],
            scratch=scratch,
        )
