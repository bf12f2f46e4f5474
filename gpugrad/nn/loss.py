"""Loss modules: each holds its settings (reduction, margins, ...) and calls the matching
function of F as `loss(input, target)`. Settings are keyword-only, so an argument can never
land in the wrong place."""

from __future__ import annotations

from typing import Any

from .. import _args
from ..tensor import Tensor
from . import functional as F
from .module import Module

__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "HingeEmbeddingLoss", "HuberLoss",
    "KLDivLoss", "L1Loss", "MSELoss", "MultiMarginLoss", "NLLLoss", "SmoothL1Loss",
]  # fmt: skip


class _Loss(Module):
    """Shared: the reduction, checked when the module is made."""

    reductions: tuple[str, ...] = F.REDUCTIONS

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__()
        F._check_reduction(type(self).__name__, reduction, self.reductions)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Mean squared error (see F.mse_loss)."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error (see F.l1_loss)."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.l1_loss(input, target, reduction=self.reduction)


class HuberLoss(_Loss):
    """Quadratic below `delta`, linear beyond (see F.huber_loss)."""

    def __init__(self, *, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = _args.number("HuberLoss", "delta", delta, low=0, low_open=True)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, delta={self.delta}"


class SmoothL1Loss(_Loss):
    """Quadratic below `beta` (scaled by 1/beta), linear beyond (see F.smooth_l1_loss)."""

    def __init__(self, *, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.beta = _args.number("SmoothL1Loss", "beta", beta, low=0)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, beta={self.beta}"


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities (see F.binary_cross_entropy); `weight`, a
    buffer, scales each element's loss."""

    def __init__(self, *, weight: Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.register_buffer("weight", weight)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy from logits (see F.binary_cross_entropy_with_logits);
    `weight` and `pos_weight` are buffers, so they move with `.to(device)`."""

    def __init__(
        self,
        *,
        weight: Tensor | None = None,
        reduction: str = "mean",
        pos_weight: Tensor | None = None,
    ) -> None:
        super().__init__(reduction=reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )


class CrossEntropyLoss(_Loss):
    """Cross-entropy from logits against class labels or probabilities (see
    F.cross_entropy), with class `weight` (a buffer), `ignore_index` and `label_smoothing`."""

    def __init__(
        self,
        weight: Tensor | None = None,
        *,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(reduction=reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = _args.integer("CrossEntropyLoss", "ignore_index", ignore_index)
        self.label_smoothing = _args.number(
            "CrossEntropyLoss", "label_smoothing", label_smoothing, low=0, high=1
        )

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.cross_entropy(
            input,
            target,
            self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, ignore_index={self.ignore_index}, "
            f"label_smoothing={self.label_smoothing}"
        )


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (see F.nll_loss)."""

    def __init__(
        self, weight: Tensor | None = None, *, ignore_index: int = -100, reduction: str = "mean"
    ) -> None:
        super().__init__(reduction=reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = _args.integer("NLLLoss", "ignore_index", ignore_index)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.nll_loss(
            input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, ignore_index={self.ignore_index}"


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence of log-probabilities from a target (see F.kl_div);
    reduction may also be "batchmean"."""

    reductions = (*F.REDUCTIONS, "batchmean")

    def __init__(self, *, reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__(reduction=reduction)
        self.log_target = _args.flag("KLDivLoss", "log_target", log_target)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, log_target={self.log_target}"


class HingeEmbeddingLoss(_Loss):
    """x for target 1, max(0, margin − x) for target −1 (see F.hinge_embedding_loss)."""

    def __init__(self, *, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.margin = _args.number("HingeEmbeddingLoss", "margin", margin)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.hinge_embedding_loss(input, target, margin=self.margin, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, margin={self.margin}"


class MultiMarginLoss(_Loss):
    """Multi-class hinge loss (see F.multi_margin_loss)."""

    def __init__(self, *, p: int = 1, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        F._check_margin_p("MultiMarginLoss", p)
        self.p = p
        self.margin = _args.number("MultiMarginLoss", "margin", margin)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.multi_margin_loss(
            input, target, p=self.p, margin=self.margin, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}, margin={self.margin}"
