"""The functional API (`import gpugrad.nn.functional as F`): activations and losses.

Activations are the ops of `gpugrad.ops.activation`. Losses take `reduction="mean" | "sum" |
"none"` and check their inputs: a target whose shape does not fit raises ShapeError naming
both shapes, float class labels raise DTypeError, labels out of range raise
IndexOutOfRangeError. Cross-entropy runs on the fused, stable softmax-cross-entropy
primitive; the other losses are compositions of differentiable ops (so their second
derivatives come for free), except binary cross-entropy, which has its own backward.
"""

from __future__ import annotations

import math
from typing import Any

from .. import _args
from ..dtypes import is_floating
from ..errors import (
    ArgumentError,
    ArgumentTypeError,
    DeviceError,
    DTypeError,
    IndexOutOfRangeError,
    ShapeError,
)
from ..ops import abs, exp, log, one_hot, relu, where
from ..ops._support import (
    as_tensor_like,
    first_outside,
    make_tensor,
    outside_range,
)
from ..ops.activation import (
    elu,
    gelu,
    leaky_relu,
    log_softmax,
    sigmoid,
    silu,
    softmax,
    softplus,
    tanh,
)  # fmt: skip
from ..ops.conv import conv1d, conv2d
from ..ops.index import getitem, pick_along_axis
from ..ops.loss import (
    binary_cross_entropy_elementwise,
    reduced_softmax_cross_entropy,
    softmax_cross_entropy,
)
from ..ops.pool import adaptive_avg_pool2d, avg_pool1d, avg_pool2d, max_pool1d, max_pool2d
from ..tensor import Tensor
from .attention import scaled_dot_product_attention
from .layers import batch_norm, dropout, embedding, layer_norm, linear
from .layers2d import batch_norm2d, dropout2d
from .padding import pad
from .similarity import cosine_similarity, normalize

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "batch_norm",
    "batch_norm2d",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "conv1d",
    "conv2d",
    "cross_entropy",
    "dropout",
    "dropout2d",
    "elu",
    "embedding",
    "gelu",
    "hinge_embedding_loss",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool1d",
    "max_pool2d",
    "mse_loss",
    "multi_margin_loss",
    "nll_loss",
    "relu",
    "sigmoid",
    "silu",
    "smooth_l1_loss",
    "softmax",
    "softplus",
    "tanh",
]  # fmt: skip
__all__ += ["cosine_similarity", "normalize", "one_hot", "pad", "scaled_dot_product_attention"]

REDUCTIONS = ("mean", "sum", "none")


# --- checks shared by the losses --------------------------------------------------------------
def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_reduction(name: str, reduction: str, allowed: tuple[str, ...] = REDUCTIONS) -> None:
    _args.choice(name, "reduction", reduction, allowed)


def _float_input(name: str, x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise ArgumentTypeError(f"{name}: input must be a Tensor, got {type(x).__name__}")
    if not is_floating(x.dtype):
        raise DTypeError(f"{name}: input must be a floating-point tensor, got {x.dtype}")
    return x


def _target(name: str, input: Tensor, target: Any) -> Tensor:
    """The target as a Tensor on the input's device (never moved silently)."""
    target = as_tensor_like(target, input)
    if target._backend is not input._backend:  # (one backend object per device)
        raise DeviceError(
            f"{name}: input is on '{input.device}' but target is on '{target.device}'; "
            "move one with .to(device)"
        )
    return target


def _pair(
    name: str, input: Any, target: Any, reduction: str, *, same_dtype: bool = False
) -> tuple[Tensor, Tensor]:
    """Check a loss whose target has the input's shape; both become Tensors on one device.

    An integer or bool target takes the input's dtype (the loss of a float32 input stays
    float32, as PyTorch's promotion gives, rather than NumPy's float64); with `same_dtype`
    any target of another dtype raises DTypeError instead."""
    _check_reduction(name, reduction)
    input = _float_input(name, input)
    target = _target(name, input, target)
    if target.shape != input.shape:
        raise ShapeError(
            f"{name}: input has shape {input.shape} but target has shape {target.shape}; "
            "they must be the same (no broadcasting)"
        )
    if same_dtype and target.dtype != input.dtype:
        raise DTypeError(
            f"{name}: target is {target.dtype} but input is {input.dtype}; the target must be "
            f"floating point of the input's dtype: convert it with "
            f"target.astype({input.dtype.name!r})"
        )
    if not is_floating(target.dtype):
        target = target.astype(input.dtype)
    return input, target


def _class_labels(name: str, input: Tensor, target: Any) -> Tensor:
    """Integer labels of the input's shape without its class axis (axis 1, or 0 unbatched)."""
    target = _target(name, input, target)
    if target.dtype.kind not in "iu":
        raise DTypeError(
            f"{name}: class labels must be integers, got {target.dtype} target of shape "
            f"{target.shape} for input of shape {input.shape}; convert with "
            "target.astype('int64')"
        )
    class_axis = 0 if input.ndim == 1 else 1
    expected = input.shape[:class_axis] + input.shape[class_axis + 1 :]
    if target.shape != expected:
        raise ShapeError(
            f"{name}: input of shape {input.shape} needs integer labels of shape {expected}, "
            f"got target of shape {target.shape}"
        )
    return target


def _check_label_range(
    backend: Any, name: str, labels: Any, classes: int, ignore_index: int | None
) -> bool:
    """IndexOutOfRangeError for a label outside [0, classes) (ignore_index excepted), on
    every device: CuPy would wrap it (or the fused kernel read past the row) into a loss
    that looks fine. Returns whether some label may equal ignore_index: False lets a loss
    skip its masking. The labels' least and greatest value settle the common case (one host
    read on a GPU); only labels outside [0, classes) take the full check."""
    if not labels.size:
        return False
    least, most = backend.value_bounds(labels)
    if least >= 0 and most < classes:
        return ignore_index is not None and least <= ignore_index <= most
    if bool(outside_range(labels, 0, classes, ignore_index)):
        raise IndexOutOfRangeError(
            f"{name}: labels must lie in [0, {classes}) (or equal ignore_index={ignore_index}); "
            f"got label {first_outside(labels, 0, classes, ignore_index)}"
        )
    return True


def _class_input(name: str, input: Any) -> Tensor:
    input = _float_input(name, input)
    if input.ndim == 0:
        raise ShapeError(f"{name}: input needs a class axis, got a 0-d tensor")
    return input


def _mean_over_valid(total: Tensor, labels: Any, ignore_index: int) -> Tensor:
    """total / (number of labels that are not ignore_index), counted on the device."""
    backend = total._backend
    count = backend.xp.asarray((labels != ignore_index).sum(), dtype=total.dtype)
    return total / make_tensor(count, backend, None)


# --- losses --------------------------------------------------------------------------------
def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Squared error (input − target)², reduced."""
    input, target = _pair("mse_loss", input, target, reduction)
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Absolute error |input − target|, reduced."""
    input, target = _pair("l1_loss", input, target, reduction)
    return _reduce(abs(input - target), reduction)


def huber_loss(input: Tensor, target: Any, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """½d² where |d| < delta, delta·(|d| − ½delta) beyond (d = input − target), reduced."""
    input, target = _pair("huber_loss", input, target, reduction)
    _args.number("huber_loss", "delta", delta, low=0, low_open=True)
    diff = input - target
    size = abs(diff)
    return _reduce(where(size < delta, diff * diff * 0.5, (size - 0.5 * delta) * delta), reduction)


def smooth_l1_loss(
    input: Tensor, target: Any, reduction: str = "mean", beta: float = 1.0
) -> Tensor:
    """½d²/beta where |d| < beta, |d| − ½beta beyond; plain L1 when beta is 0."""
    input, target = _pair("smooth_l1_loss", input, target, reduction)
    _args.number("smooth_l1_loss", "beta", beta, low=0)
    diff = input - target
    size = abs(diff)
    if beta == 0:  # the quadratic branch would divide by zero
        return _reduce(size, reduction)
    return _reduce(where(size < beta, diff * diff * (0.5 / beta), size - 0.5 * beta), reduction)


def _weighted(loss: Tensor, weight: Any) -> Tensor:
    return loss if weight is None else loss * as_tensor_like(weight, loss)


def _binary_pair(name: str, input: Any, target: Any, reduction: str) -> tuple[Tensor, Tensor]:
    """`_pair` for the binary cross-entropies, whose target must be floating point of the
    input's dtype (PyTorch refuses other targets; promoting would change the loss's dtype).
    Python numbers and lists are constants, made in the input's dtype."""
    if isinstance(input, Tensor) and isinstance(target, (list, tuple, float, int)):
        target = Tensor(target, dtype=input.dtype, device=input.device)
    return _pair(name, input, target, reduction, same_dtype=True)


def _check_probabilities(name: str, input: Tensor, target: Tensor) -> None:
    """Raise ArgumentError unless every element of input and target lies in [0, 1]. NaN
    fails no comparison, so it passes (and the loss is NaN). One reduction, one read back."""
    p, y = input.data, target.data
    outside_p = (p < 0) | (p > 1)
    outside = outside_p | (y < 0) | (y > 1)
    if not outside.size or not bool(outside.any()):
        return
    which, values, bad = (
        ("input", p, outside_p) if bool(outside_p.any()) else ("target", y, outside)
    )
    hint = "; for logits use binary_cross_entropy_with_logits" if which == "input" else ""
    raise ArgumentError(
        f"{name}: all elements of {which} should be between 0 and 1 (probabilities), got "
        f"{values[bad].ravel()[0].item()!r} in the {which} of shape {values.shape}{hint}"
    )


def _check_margin_p(name: str, p: Any) -> None:
    """multi_margin_loss's exponent: 1 or 2."""
    if isinstance(p, bool) or p not in (1, 2):
        raise ArgumentError(f"{name}: p must be 1 or 2, got {p!r}")


def binary_cross_entropy(
    input: Tensor, target: Any, weight: Any = None, reduction: str = "mean"
) -> Tensor:
    """−(y·log p + (1−y)·log(1−p)) for probabilities p = input, each log floored at −100
    (as PyTorch), optionally times `weight`; reduced.

    Input and target must lie in [0, 1] (ArgumentError otherwise, as PyTorch refuses them);
    a NaN input passes the check and gives a NaN loss. On a GPU the check costs one
    reduction read back to the host."""
    input, target = _binary_pair("binary_cross_entropy", input, target, reduction)
    _check_probabilities("binary_cross_entropy", input, target)
    loss = binary_cross_entropy_elementwise(input, target)
    return _reduce(_weighted(loss, weight), reduction)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """Binary cross-entropy of σ(input) against target, computed from the logits without
    overflow; `pos_weight` (broadcast along the last axis) weighs the positive term."""
    input, target = _binary_pair("binary_cross_entropy_with_logits", input, target, reduction)
    # −log σ(x) = softplus(−x) and −log(1 − σ(x)) = x + softplus(−x); no threshold, so exact.
    log_sigmoid_neg = softplus(-input, threshold=math.inf)
    if pos_weight is None:
        loss = (1 - target) * input + log_sigmoid_neg
    else:
        pos_weight = as_tensor_like(pos_weight, input)
        loss = (1 - target) * input + (target * (pos_weight - 1) + 1) * log_sigmoid_neg
    return _reduce(_weighted(loss, weight), reduction)


def cross_entropy(
    input: Tensor,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy of logits `input` (N, C) or (N, C, d1, ...) or (C,) against integer class
    labels (N,) / (N, d1, ...) / () or class probabilities of the input's shape.

    Labels go through the fused, stable softmax-cross-entropy primitive; rows labelled
    `ignore_index` add nothing, and "mean" divides by the number of the others (as PyTorch).
    `label_smoothing` ε mixes the target with the uniform distribution: (1−ε)·y + ε/C.
    `weight` (C,) rescales each class's term; "mean" then divides by the summed weights of
    the labels (for labels; by the row count for probabilities), as PyTorch.
    """
    _check_reduction("cross_entropy", reduction)
    input = _class_input("cross_entropy", input)
    _args.number("cross_entropy", "label_smoothing", label_smoothing, low=0, high=1)
    _args.integer("cross_entropy", "ignore_index", ignore_index)
    class_axis = 0 if input.ndim == 1 else 1
    classes = input.shape[class_axis]
    target = _target("cross_entropy", input, target)
    weight = _class_weight("cross_entropy", weight, input, classes)
    if is_floating(target.dtype) and target.shape == input.shape:
        return _soft_cross_entropy(input, target, class_axis, reduction, label_smoothing, weight)
    labels = _class_labels("cross_entropy", input, target)
    may_ignore = _check_label_range(
        input._backend, "cross_entropy", labels.data, classes, ignore_index
    )
    if weight is not None:
        log_probs = log_softmax(input, axis=class_axis)
        picked = nll_loss(log_probs, labels, weight, ignore_index, "none")
        if label_smoothing:
            shape = [1] * input.ndim
            shape[class_axis] = classes
            spread = -(log_probs * weight.reshape(shape)).sum(axis=class_axis) / classes
            valid = make_tensor(labels.data != ignore_index, input._backend, None)
            picked = picked * (1 - label_smoothing) + where(valid, spread, 0) * label_smoothing
        return _reduce_weighted(picked, labels, weight, ignore_index, reduction)
    if class_axis == 0:
        rows = input.reshape(1, classes)
    elif input.ndim == 2:
        rows = input
    else:  # classes last, then one row per (sample, position)
        rows = input.permute(0, *range(2, input.ndim), 1).reshape(-1, classes)
    flat = labels.data.reshape(-1)
    ignored = ignore_index if may_ignore else None  # None: no row to mask
    if reduction == "none":
        loss = softmax_cross_entropy(rows, flat, ignored, label_smoothing)
        return loss.reshape(labels.shape)
    return reduced_softmax_cross_entropy(
        rows, flat, ignored, label_smoothing, mean=reduction == "mean"
    )


def _soft_cross_entropy(
    input: Tensor,
    target: Tensor,
    class_axis: int,
    reduction: str,
    label_smoothing: float,
    weight: Tensor | None = None,
) -> Tensor:
    """−Σ_c w_c·y_c·log softmax(x)_c over the class axis, for class-probability targets."""
    classes = input.shape[class_axis]
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / classes
    terms = target * log_softmax(input, axis=class_axis)
    if weight is not None:
        shape = [1] * input.ndim
        shape[class_axis] = classes
        terms = terms * weight.reshape(shape)
    return _reduce(-terms.sum(axis=class_axis), reduction)


def _class_weight(name: str, weight: Any, input: Tensor, classes: int) -> Tensor | None:
    """The per-class weight as a (C,) tensor on input's device, or None."""
    if weight is None:
        return None
    weight = as_tensor_like(weight, input)
    if weight.shape != (classes,):
        raise ShapeError(f"{name}: weight must have shape ({classes},), got {weight.shape}")
    return weight


def _reduce_weighted(
    loss: Tensor, labels: Tensor, weight: Tensor, ignore_index: int, reduction: str
) -> Tensor:
    """Reduce a class-weighted loss: "mean" divides by the weights of the counted labels."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    xp = labels._backend.xp
    valid = labels.data != ignore_index
    label_weights = getitem(weight, xp.where(valid, labels.data, 0), check=False)
    total = where(make_tensor(valid, labels._backend, None), label_weights, 0).sum()
    return loss.sum() / total


def nll_loss(
    input: Tensor,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood −w[target]·input[n, target[n]] of log-probabilities `input`
    (N, C), (N, C, d1, ...) or (C,); "mean" averages over the labels that are not
    ignore_index (weighted by their class weights when `weight` is given)."""
    _check_reduction("nll_loss", reduction)
    _args.integer("nll_loss", "ignore_index", ignore_index)
    input = _class_input("nll_loss", input)
    labels = _class_labels("nll_loss", input, target)
    class_axis = 0 if input.ndim == 1 else 1
    _check_label_range(
        input._backend, "nll_loss", labels.data, input.shape[class_axis], ignore_index
    )
    weight = _class_weight("nll_loss", weight, input, input.shape[class_axis])
    xp = input._backend.xp
    valid = labels.data != ignore_index
    safe = xp.where(valid, labels.data, 0)
    picked = pick_along_axis(input, xp.expand_dims(safe, class_axis), class_axis).squeeze(
        class_axis
    )
    if weight is not None:
        picked = picked * getitem(weight, safe, check=False)  # labels checked above
    loss = where(make_tensor(valid, input._backend, None), -picked, 0)
    if weight is not None:
        return _reduce_weighted(loss, labels, weight, ignore_index, reduction)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return _mean_over_valid(loss.sum(), labels.data, ignore_index)


def kl_div(input: Tensor, target: Any, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """Kullback-Leibler divergence Σ y·(log y − input) with `input` log-probabilities and
    target probabilities y (log-probabilities with log_target). "batchmean" divides the sum
    by the batch size (the true KL divergence per sample); "mean" by the element count."""
    _check_reduction("kl_div", reduction, (*REDUCTIONS, "batchmean"))
    _args.flag("kl_div", "log_target", log_target)
    input, target = _pair("kl_div", input, target, "none")
    if log_target:
        loss = exp(target) * (target - input)
    else:  # y·log y is 0 where y is 0
        positive = target > 0
        y_log_y = where(positive, target * log(where(positive, target, 1)), 0)
        loss = y_log_y - target * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


def hinge_embedding_loss(
    input: Tensor, target: Any, margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """input where target is 1, max(0, margin − input) where target is −1; reduced."""
    input, target = _pair("hinge_embedding_loss", input, target, reduction)
    _args.number("hinge_embedding_loss", "margin", margin)
    margin_part = where(target != 1, relu(margin - input), 0)
    input_part = where(target != -1, input, 0)
    return _reduce(margin_part + input_part, reduction)


def multi_margin_loss(
    input: Tensor, target: Any, p: int = 1, margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """Multi-class hinge loss Σ_{j≠y} max(0, margin − x_y + x_j)^p / C per sample, for
    scores (N, C) or (C,) and integer labels (N,) or (); p is 1 or 2."""
    _check_reduction("multi_margin_loss", reduction)
    _check_margin_p("multi_margin_loss", p)
    _args.number("multi_margin_loss", "margin", margin)
    input = _class_input("multi_margin_loss", input)
    if input.ndim > 2:
        raise ShapeError(f"multi_margin_loss: input must be (N, C) or (C,), got {input.shape}")
    labels = _class_labels("multi_margin_loss", input, target)
    classes = input.shape[-1]
    _check_label_range(input._backend, "multi_margin_loss", labels.data, classes, None)
    xp = input._backend.xp
    index = xp.expand_dims(labels.data, -1)
    own = pick_along_axis(input, index, -1)  # x_y, kept as a size-1 axis to broadcast
    others = make_tensor(xp.arange(classes) != index, input._backend, None)
    hinge = relu(input - own + margin)
    if p == 2:
        hinge = hinge * hinge
    loss = where(others, hinge, 0).sum(axis=-1) / classes
    return _reduce(loss, reduction)
