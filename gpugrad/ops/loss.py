"""Loss Functions that need their own backward: the fused softmax cross-entropy, and binary
cross-entropy on probabilities (whose clamped logarithm a composition would differentiate
into 0·∞ = NaN at p = 0 or 1).

The other losses are compositions of differentiable ops, in `gpugrad.nn.functional`.
"""

from __future__ import annotations

from typing import Any

from ..autograd import Function
from ..backend.base import accumulation_dtype
from ..tensor import Tensor
from ._support import make_tensor

LOG_FLOOR = -100.0  # PyTorch's floor for log p in binary cross-entropy
BCE_EPS = 1e-12  # keeps the gradient finite where p(1−p) is 0, as PyTorch


class SoftmaxCrossEntropy(Function):
    """Per-row −log softmax(logits)[label] for logits (rows, classes); labels are a constant.
    With `total`, the same node also sums the rows, and divides by `count` (a 0-d array) when
    one is given: a mean loss is one node rather than three.

    Forward and backward are each one backend primitive (one fused kernel on GPU); backward
    recomputes the softmax from the saved logits.
    """

    count = None

    def forward(self, logits, labels, ignore_index, label_smoothing, total=False, count=None):
        self.labels = labels
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.save(logits)
        loss = self.xp.softmax_cross_entropy_forward(logits, labels, ignore_index, label_smoothing)
        if not total:
            return loss
        self.count = count
        # float16 sums and divides in float32, as PyTorch: a sum or a count past 65504 would
        # be inf in float16 (a mean loss of 0 and zero gradients from 65,505 rows on).
        wide = accumulation_dtype(loss.dtype)
        out = loss.sum(dtype=wide)
        out = out if count is None else out / count
        return out if wide == loss.dtype else out.astype(loss.dtype)

    def backward(self, xp, g, logits):
        count = self.count  # an int (every row counts) or a 0-d array (counted on the device)
        if count is not None:
            if xp is not self.xp and type(count) is not int:  # create_graph: g is a Tensor
                count = make_tensor(count, self.xp, None)
            wide = accumulation_dtype(g.dtype)  # float16 divides in float32 (see forward)
            g = g / count if wide == g.dtype else (g.astype(wide) / count).astype(g.dtype)
        # A total's gradient is one value: the primitive gives it to every row.
        return xp.softmax_cross_entropy_backward(
            g, logits, self.labels, self.ignore_index, self.label_smoothing
        )


def softmax_cross_entropy_backward(
    g: Tensor,
    logits: Tensor,
    labels: Any,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
) -> Tensor:
    """The gradient of the fused primitive, (softmax − target)·g per row, built from
    differentiable ops on Tensors (used by backward with create_graph=True)."""
    from .activation import softmax
    from .compare import where

    backend = logits._backend
    xp = backend.xp
    rows, classes = logits.shape
    valid = xp.ones(rows, dtype=bool) if ignore_index is None else labels != ignore_index
    target = xp.full((rows, classes), label_smoothing / classes, dtype=logits.dtype)
    target[xp.arange(rows), xp.where(valid, labels, 0)] += 1 - label_smoothing
    weight = where(make_tensor(valid, backend, None), g, 0).reshape(rows, 1)
    return (softmax(logits, axis=1) - make_tensor(target, backend, None)) * weight


def softmax_cross_entropy(
    logits: Tensor, labels: Any, ignore_index: int | None = -100, label_smoothing: float = 0.0
) -> Tensor:
    """Per-row losses (rows,) from logits (rows, classes) and an integer label array (rows,);
    rows labelled `ignore_index` give 0 (None: no label is ignored, nothing is masked)."""
    return SoftmaxCrossEntropy.apply(
        logits, labels=labels, ignore_index=ignore_index, label_smoothing=label_smoothing
    )


def reduced_softmax_cross_entropy(
    logits: Tensor,
    labels: Any,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    mean: bool = True,
) -> Tensor:
    """The per-row losses of `softmax_cross_entropy` summed, or averaged over the rows whose
    label is not `ignore_index` (counted on the device: no host sync; None: every row
    counts), as one node."""
    count = None
    if mean:
        xp = logits._backend.xp  # (count_nonzero: quicker than a sum, still on the device)
        if ignore_index is None:  # every row counts: a Python int, the same value in any dtype
            count = labels.size
        else:
            kept = xp.count_nonzero(labels != ignore_index)  # float16 could not hold 65,505
            count = xp.asarray(kept, dtype=accumulation_dtype(logits.dtype))
    return SoftmaxCrossEntropy.apply(
        logits,
        labels=labels,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        total=True,
        count=count,
    )


def clamped_log(xp: Any, p: Any) -> Any:
    """max(log p, −100), without ever evaluating log 0 (no warning, no −inf). NaN stays NaN:
    it fails the `p <= 0` test, so it reaches the log (maximum propagates NaN)."""
    floor = p <= 0
    return xp.where(floor, LOG_FLOOR, xp.maximum(xp.log(xp.where(floor, 1, p)), LOG_FLOOR))


class BinaryCrossEntropy(Function):
    """−(y·log p + (1−y)·log(1−p)) elementwise, each log floored at −100 as PyTorch."""

    def forward(self, p, y):
        xp = self.xp
        self.save(p, y)
        return -(y * clamped_log(xp, p) + (1 - y) * clamped_log(xp, 1 - p))

    def backward(self, xp, g, p, y):
        gp = gy = None
        if self.needs_grad(0):
            gp = g * (p - y) / xp.maximum(p * (1 - p), BCE_EPS)
        if self.needs_grad(1):
            gy = g * (clamped_log(xp, 1 - p) - clamped_log(xp, p))
        return gp, gy


def binary_cross_entropy_elementwise(p: Tensor, y: Tensor) -> Tensor:
    """The unreduced binary cross-entropy of probabilities p against targets y (same shape)."""
    return BinaryCrossEntropy.apply(p, y)
