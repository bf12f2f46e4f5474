"""Core layers: Linear, Identity, Flatten, Dropout, LayerNorm, BatchNorm1d, Embedding.

Most layers are compositions of differentiable ops, so their gradients and second derivatives
come from the ops. Two have a dedicated Function where it clearly pays: `linear` (one node
with BLAS-shaped products instead of transpose + matmul + broadcast add, and a weight gradient
that is contiguous at once) and `embedding` (the gradient of a padding row must be zero while
its value is still read). Their backward formulas use ops on Tensors with `create_graph`, so
second derivatives work there too.

Linear's weight has PyTorch's layout, (out_features, in_features), and the forward computes
x @ weightᵀ + bias, so state dicts and init conventions carry over from PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .. import _args, autograd
from ..autograd import Function
from ..creation import empty, ones, tensor, zeros
from ..dtypes import float16
from ..errors import DeviceError, DTypeError, IndexOutOfRangeError, ShapeError
from ..generator import Generator, generator_rng
from ..ops._support import check_index_range
from ..tensor import Tensor, _make
from . import init
from .module import Module
from .parameter import Parameter

__all__ = [
    "BatchNorm1d",
    "Dropout",
    "Embedding",
    "Flatten",
    "Identity",
    "LayerNorm",
    "Linear",
    "batch_norm",
    "dropout",
    "embedding",
    "layer_norm",
    "linear",
]


# --- functional forms -----------------------------------------------------------------------
class _Linear(Function):
    """x @ wᵀ + b over the last axis of x; gradients g @ w, gᵀx and Σg over the batch."""

    def forward(self, x, w, b):
        self.save(x, w)
        if x.ndim == 2:  # a batch of rows (the common case): no reshapes either side
            out = x @ w.T
        else:
            out = (x.reshape(-1, x.shape[-1]) @ w.T).reshape(*x.shape[:-1], w.shape[0])
        if b is not None:  # out is a fresh array, so adding in place is safe and saves a copy
            self.xp.add_rows(out, b)
        return out

    def backward(self, xp, g, x, w):
        rows = x.ndim == 2  # a batch of rows (the common case): nothing to reshape
        g2 = g if rows else g.reshape(-1, w.shape[0])
        gx = gw = None
        if self.needs_grad(0):
            gx = g2 @ w if rows else (g2 @ w).reshape(x.shape)
        if self.needs_grad(1):
            gw = g2.T @ (x if rows else x.reshape(-1, w.shape[1]))
        return gx, gw, (bias_grad(self, xp, g2) if self.needs_grad(2) else None)


def bias_grad(node: Function, xp: Any, g: Any) -> Any:
    """Σ over the rows of a linear layer's (rows, out) gradient g: on arrays a product with
    ones (BLAS gemv, ~2.5x NumPy's sum for 1024 x 512), with create_graph a Tensor sum."""
    return node.xp.sum_along(g, 0).reshape(-1) if xp is node.xp else g.sum(axis=0)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weightᵀ + bias, with weight of shape (out_features, in_features) as in PyTorch."""
    check_linear(x, weight, bias)
    return _Linear.apply(x, weight, bias)


def check_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    """Raise a ShapeError or DTypeError naming the shapes when x, weight and bias don't fit."""
    # (The arrays' shapes, not the Tensor properties: this runs on every Linear call.)
    x_shape, w_shape = x._data.shape, weight._data.shape
    if len(w_shape) != 2 or not x_shape or x_shape[-1] != w_shape[1]:
        raise ShapeError(
            f"linear: input of shape {x.shape} does not fit weight of shape {weight.shape} "
            f"(the input's last axis must equal in_features={weight.shape[-1]})"
        )
    if bias is not None and bias._data.shape != (w_shape[0],):
        raise ShapeError(f"linear: bias of shape {bias.shape} for weight of shape {weight.shape}")
    if x.dtype != weight.dtype:
        raise DTypeError(
            f"linear: input is {x.dtype} but the weight is {weight.dtype}; cast one of them "
            "(x.to(weight.dtype), or model.float() / model.double())"
        )


def dropout(
    x: Tensor, p: float = 0.5, training: bool = True, generator: Generator | None = None
) -> Tensor:
    """Inverted dropout: zero each element with probability p and scale the rest by 1/(1−p),
    so the expected value is unchanged; the input itself when not training or p is 0.

    The mask comes from `generator` (a `gg.Generator` of x's device) or else the global
    generator of x's device, so `gg.manual_seed` makes it repeat.
    """
    _args.number("dropout", "p", p, low=0, high=1)
    if not training or p == 0.0:
        return x
    backend = x._backend
    if p == 1.0:
        mask = backend.zeros(x.shape, dtype=x.dtype)
    else:
        rng = generator_rng(generator, backend, "dropout")
        keep = backend.random_uniform(x.shape, x.dtype, rng) >= p
        mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return x * _make(mask, backend, None)


def layer_norm(
    x: Tensor,
    normalized_shape: Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise over the last len(normalized_shape) axes to zero mean and unit (biased)
    variance, then scale by weight and shift by bias when given.

    A float16 input is normalised in float32 and the result cast back (as PyTorch does):
    the squares of values around 1e3 and beyond overflow float16's range of 65504."""
    shape = _normalized_shape("layer_norm", normalized_shape)
    _args.number("layer_norm", "eps", eps, low=0)
    if x.shape[x.ndim - len(shape) :] != shape or x.ndim < len(shape):
        raise ShapeError(
            f"layer_norm: input of shape {x.shape} does not end in normalized_shape {shape}"
        )
    if _fits_fused_layer_norm(x, shape, weight, bias):
        return _LayerNorm.apply(x, weight, bias, shape=shape, eps=float(eps))
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    half = x.dtype == float16
    wide = x.astype("float32") if half else x
    centered = wide - wide.mean(axis=axes, keepdims=True)
    variance = (centered * centered).mean(axis=axes, keepdims=True)
    out = centered * (variance + eps) ** -0.5
    if half:
        out = out.astype(float16)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


class _LayerNorm(Function):
    """Rows of x (its trailing `shape`) to zero mean and unit variance, times w plus b: one
    node whose backward is the closed form, instead of the nine nodes of the composition.

    With x̂ the normalised row and r = 1/√(var + eps): dL/dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))
    for ĝ = g·w; dL/dw = Σ g·x̂ and dL/db = Σ g over the rows.
    """

    def forward(self, x, w, b, shape, eps):
        self.shape, self.eps = shape, eps
        backend, xp = self.xp, self.xp.xp
        size = math.prod(shape)
        rows = x.reshape(-1, size)
        if w is None:
            self.save(x)
        else:
            self.save(x, w)
        flat_w = None if w is None else w.reshape(-1)
        flat_b = None if b is None else b.reshape(-1)
        fast = backend.layer_norm(rows, flat_w, flat_b, eps)
        if fast is not None:
            out, self.normalised, self.inv_std = fast
            return out.reshape(x.shape)
        normalised = rows - backend.sum_along(rows, 1) / size
        # Σ of squares per row without a squared array (einsum's sum of products).
        variance = xp.einsum("ij,ij->i", normalised, normalised).reshape(-1, 1) / size
        inv_std = (variance + eps) ** -0.5
        normalised *= inv_std
        # Kept for a plain backward; with create_graph they are recomputed as ops of x.
        self.normalised, self.inv_std = normalised, inv_std
        out = normalised * flat_w if w is not None else normalised.copy()
        if b is not None:
            out += flat_b
        return out.reshape(x.shape)

    def backward(self, xp, g, x, w=None):
        size = math.prod(self.shape)
        g = g.reshape(-1, size)
        if xp is self.xp:  # on arrays: each step into one work array, row sums by BLAS
            return self._backward_arrays(xp, g, x, w, size)
        # create_graph: the statistics as differentiable ops of x
        rows = x.reshape(-1, size)
        centered = rows - rows.mean(axis=1, keepdims=True)
        inv_std = ((centered * centered).mean(axis=1, keepdims=True) + self.eps) ** -0.5
        normalised = centered * inv_std
        gx = gw = gb = None
        if self.needs_grad(0):
            scaled = g if w is None else g * w.reshape(1, size)
            gx = scaled - scaled.mean(axis=1, keepdims=True)
            gx = gx - normalised * (scaled * normalised).mean(axis=1, keepdims=True)
            gx = (gx * inv_std).reshape(x.shape)
        if w is not None and self.needs_grad(1):
            gw = (g * normalised).sum(axis=0).reshape(self.shape)
        if self.needs_grad(2):
            gb = g.sum(axis=0).reshape(self.shape)
        return gx, gw, gb

    def _backward_arrays(self, backend, g, x, w, size):
        """The backward above on arrays: dL/dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = g·w.

        The row sums with w are products with w (Σ ĝ = g·w, Σ ĝ·x̂ = (g·x̂)·w), so ĝ is
        made once, for dL/dx itself, and g·x̂ serves dL/dw and then as a work array."""
        xp = backend.xp
        normalised, inv_std = self.normalised, self.inv_std
        wanted = (self.needs_grad(0), w is not None and self.needs_grad(1), self.needs_grad(2))
        flat_w = None if w is None else w.reshape(-1)
        fast = backend.layer_norm_backward(g, normalised, inv_std, flat_w, wanted)
        if fast is not None:
            gx, gw, gb = fast
            return (
                None if gx is None else gx.reshape(x.shape),
                None if gw is None else gw.reshape(self.shape),
                None if gb is None else gb.reshape(self.shape),
            )
        gx = gw = None
        need_x, need_w = wanted[:2]
        if need_x or need_w:
            work = g * normalised
            if need_w:
                gw = backend.sum_along(work, 0).reshape(self.shape)
            if need_x:
                if w is None:
                    dot, mean = backend.sum_along(work, 1), backend.sum_along(g, 1)
                else:
                    w = w.reshape(-1)
                    dot, mean = xp.matmul(work, w)[:, None], xp.matmul(g, w)[:, None]
                xp.multiply(normalised, dot / size, out=work)
                if w is None:
                    xp.subtract(g, work, out=work)
                else:
                    xp.subtract(g * w, work, out=work)
                work -= mean / size
                work *= inv_std
                gx = work.reshape(x.shape)
        gb = backend.sum_along(g, 0).reshape(self.shape) if self.needs_grad(2) else None
        return gx, gw, gb


def _fits_fused_layer_norm(
    x: Tensor, shape: tuple[int, ...], weight: Tensor | None, bias: Tensor | None
) -> bool:
    """Whether `_LayerNorm` computes this layer_norm: float32/float64 input, and weight and
    bias (when given) of exactly the normalised shape and the input's dtype and device.
    Anything else (float16, broadcasting weights) takes the composition of ops."""
    if x.dtype.name not in ("float32", "float64"):
        return False
    for t in (weight, bias):
        if t is not None and (
            not isinstance(t, Tensor)
            or t.shape != shape
            or t.dtype != x.dtype
            or t._backend is not x._backend
        ):
            return False
    return True


def _normalized_shape(owner: str, normalized_shape: int | Sequence[int]) -> tuple[int, ...]:
    """normalized_shape as a tuple of sizes >= 1 (an int means one trailing axis)."""
    if isinstance(normalized_shape, Sequence) and not isinstance(normalized_shape, str):
        return tuple(_args.size(owner, "normalized_shape", n) for n in normalized_shape)
    return (_args.size(owner, "normalized_shape", normalized_shape),)


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float | Any = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel (axis 1) of an (N, C) or (N, C, L) input.

    Training normalises by the batch's mean and biased variance and, when running stats are
    given, moves them towards the batch's mean and *unbiased* variance by `momentum` (in
    place; `momentum` may be an array, as for the cumulative average). Otherwise the running
    statistics are used.

    A float16 input is normalised in float32 and the result cast back, as in `layer_norm`
    (the running statistics keep their own dtype).
    """
    if x.ndim not in (2, 3):
        raise ShapeError(f"batch_norm expects an (N, C) or (N, C, L) input, got shape {x.shape}")
    if x.dtype == float16:
        wide = [None if t is None else t.astype("float32") for t in (x, weight, bias)]
        out = batch_norm(wide[0], running_mean, running_var, wide[1], wide[2], training,
                         momentum, eps)  # fmt: skip
        return out.astype(float16)
    channels = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):  # fmt: skip
        if t is not None and t.shape != (channels,):
            raise ShapeError(
                f"batch_norm: input of shape {x.shape} has {channels} channels, "
                f"but {name} has shape {t.shape}"
            )
    axes = (0,) if x.ndim == 2 else (0, 2)
    per_channel = (1, channels) if x.ndim == 2 else (1, channels, 1)
    scale = weight.reshape(per_channel) if weight is not None else None
    shift = bias.reshape(per_channel) if bias is not None else None

    if not training and running_mean is not None and running_var is not None:
        # y = (x − μ)/σ·w + b folded into one scale and one shift per channel.
        inv_std = (running_var.reshape(per_channel) + eps) ** -0.5
        scale = inv_std if scale is None else scale * inv_std
        offset = -running_mean.reshape(per_channel) * scale
        return x * scale + (offset if shift is None else offset + shift)

    count = x.size // channels
    if count <= 1:
        raise ShapeError(
            f"batch_norm needs more than one value per channel when training, got input of "
            f"shape {x.shape}"
        )
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    variance = (centered * centered).mean(axis=axes, keepdims=True)
    out = centered * (variance + eps) ** -0.5
    if scale is not None:
        out = out * scale
    if shift is not None:
        out = out + shift
    if running_mean is not None and running_var is not None:
        _update_running(running_mean, mean.data.reshape(channels), momentum)
        _update_running(running_var, variance.data.reshape(channels) * (count / (count - 1)),
                        momentum)  # fmt: skip
    return out


def _update_running(stat: Tensor, batch_value: Any, momentum: Any) -> None:
    """stat ← (1 − momentum)·stat + momentum·batch_value, in place on the device."""
    data = stat.data
    data *= 1 - momentum
    data += momentum * batch_value.astype(data.dtype, copy=False)
    autograd.bump_version(stat)


class _Embedding(Function):
    """weight[indices]; the gradient adds the rows of g into the rows they came from."""

    def forward(self, weight, indices, padding_idx):
        self.shape = weight.shape
        self.indices = indices
        # Padding positions read their row but send it no gradient.
        self.keep = None if padding_idx is None else (indices != padding_idx)[..., None]
        return weight[indices]

    def backward(self, xp, g):
        g = g if self.keep is None else xp.where(self.keep, g, 0)
        if xp is self.xp and _sum_by_sorting(xp.xp, self.indices.size, self.shape[0]):
            return _rows_summed_by_index(xp.xp, self.shape, self.indices, g)
        return xp.scatter_to(self.shape, self.indices, g, True)


def _sum_by_sorting(array_module: Any, count: int, rows: int) -> bool:
    """Whether `_rows_summed_by_index` pays: the array library has `add.reduceat` (NumPy;
    CuPy has not, and keeps its scatter_add) and the indices hit each row twice or more on
    average (a transformer's token and position tables); for sparse hits into a large table
    the per-segment cost of reduceat makes np.add.at the faster one."""
    return hasattr(array_module.add, "reduceat") and count >= 2 * rows


def _rows_summed_by_index(array_module: Any, shape: tuple[int, ...], indices: Any, g: Any) -> Any:
    """Zeros of `shape` with each row i holding the sum of the rows of g picked by i: sort the
    indices (stably), then one `add.reduceat` over the runs of equal indices. The same sums
    as np.add.at (rounding may differ in the last bit: the order of the additions does)."""
    xp = array_module
    flat = indices.reshape(-1)
    out = xp.zeros(shape, dtype=g.dtype)
    if flat.size == 0:
        return out
    order = xp.argsort(flat, kind="stable")
    ordered = flat[order]
    starts_run = xp.empty(flat.size, dtype=bool)
    starts_run[0] = True
    xp.not_equal(ordered[1:], ordered[:-1], out=starts_run[1:])
    starts = xp.flatnonzero(starts_run)
    rows = g.reshape(flat.size, -1)[order]
    out.reshape(shape[0], -1)[ordered[starts]] = xp.add.reduceat(rows, starts, axis=0)
    return out


def embedding(indices: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of `weight` picked by integer `indices`: output shape indices.shape + (dim,).
    Rows at `padding_idx` get no gradient."""
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must be 2-D (num, dim), got shape {weight.shape}")
    backend = weight._backend
    if isinstance(indices, Tensor):
        if indices._backend is not backend:
            raise DeviceError(
                f"embedding: indices are on '{indices.device}' but the weight is on "
                f"'{weight.device}'"
            )
        indices = indices.data
    else:
        indices = backend.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise DTypeError(f"embedding indices must be integers, got {indices.dtype}")
    # Checked on every device (one reduction; on a GPU a host read): CuPy would wrap a bad
    # index around and return another row without a word.
    check_index_range(indices, weight.shape[0], "embedding", 0, weight.shape)
    return _Embedding.apply(weight, indices=indices, padding_idx=padding_idx)


# --- modules --------------------------------------------------------------------------------
class Identity(Module):
    """Returns its input unchanged (a placeholder where a layer is optional)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        """The input itself."""
        return x


class Linear(Module):
    """y = x @ weightᵀ + bias. `weight` is (out_features, in_features), `bias` (out_features,);
    both start uniform in ±1/√in_features, as PyTorch's Linear does."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in_features = _args.size("Linear", "in_features", in_features)
        self.out_features = _args.size("Linear", "out_features", out_features)
        self.weight = Parameter(empty(out_features, in_features, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw fresh weights: kaiming_uniform_(a=√5) for the weight (a bound of
        1/√fan_in), bias uniform in ±1/√fan_in."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        """x @ weightᵀ + bias over the last axis of x."""
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Flatten(Module):
    """Merges axes start_axis..end_axis into one; by default all but the batch axis."""

    def __init__(self, start_axis: int = 1, end_axis: int = -1) -> None:
        super().__init__()
        self.start_axis = start_axis
        self.end_axis = end_axis

    def forward(self, x: Tensor) -> Tensor:
        """The input with the chosen axes merged."""
        return x.flatten(self.start_axis, self.end_axis)

    def extra_repr(self) -> str:
        return f"start_axis={self.start_axis}, end_axis={self.end_axis}"


class Dropout(Module):
    """Inverted dropout while training (zero with probability p, scale the rest by
    1/(1−p)); the identity in eval mode."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = _args.number(type(self).__name__, "p", p, low=0, high=1)

    def forward(self, x: Tensor) -> Tensor:
        """x with a fresh random mask applied (training), or x (eval)."""
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LayerNorm(Module):
    """Normalises over the trailing `normalized_shape` axes, with a learned elementwise
    scale (ones) and shift (zeros) when `elementwise_affine`."""

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _normalized_shape("LayerNorm", normalized_shape)
        self.eps = _args.number("LayerNorm", "eps", eps, low=0)
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(ones(self.normalized_shape, device=device, dtype=dtype))
            if bias:
                self.bias = Parameter(zeros(self.normalized_shape, device=device, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        """The input normalised over its trailing axes, then scaled and shifted."""
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class BatchNorm1d(Module):
    """Batch normalisation of (N, C) or (N, C, L) inputs over the batch (and length) axes.

    Training uses the batch's statistics and updates the running mean and (unbiased) running
    variance by `momentum` (a cumulative average when momentum is None); eval uses the running
    statistics. Without `track_running_stats` the batch statistics are always used.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features = _args.size(name, "num_features", num_features)
        self.eps = _args.number(name, "eps", eps, low=0)
        if momentum is not None:  # None means a cumulative average
            _args.number(name, "momentum", momentum, low=0, high=1)
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(ones(num_features, device=device, dtype=dtype))
            self.bias = Parameter(zeros(num_features, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, device=device, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked", tensor(0, dtype="int64", device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean back to 0, running variance to 1, batch count to 0."""
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            self.num_batches_tracked.data[...] = 0
            autograd.bump_version(self.num_batches_tracked)

    def reset_parameters(self) -> None:
        """Running statistics reset; scale back to ones and shift to zeros."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        """The input normalised per channel (batch statistics when training)."""
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            raise ShapeError(
                f"BatchNorm1d({self.num_features}) expects an (N, {self.num_features}) or "
                f"(N, {self.num_features}, L) input, got shape {x.shape}"
            )
        use_batch = self.training or not self.track_running_stats
        track = self.training and self.track_running_stats
        momentum: Any = self.momentum
        if track and momentum is None:
            # Cumulative moving average: batch n gets weight 1/n. Kept as a device array
            # so that no step waits on a host sync.
            momentum = 1.0 / (self.num_batches_tracked.data + 1)
        out = batch_norm(
            x,
            self.running_mean if (track or not use_batch) else None,
            self.running_var if (track or not use_batch) else None,
            self.weight,
            self.bias,
            training=use_batch,
            momentum=momentum,
            eps=self.eps,
        )
        if track:
            self.num_batches_tracked.data += 1
            autograd.bump_version(self.num_batches_tracked)
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class Embedding(Module):
    """A lookup table of `num_embeddings` vectors of size `embedding_dim`, drawn from
    N(0, 1); the row at `padding_idx` starts at zero and gets no gradient."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        _args.size("Embedding", "num_embeddings", num_embeddings)
        _args.size("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            _args.integer("Embedding", "padding_idx", padding_idx)
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise IndexOutOfRangeError(
                    f"padding_idx {padding_idx} is out of range for {num_embeddings} embeddings"
                )
            padding_idx %= num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.weight = Parameter(empty(num_embeddings, embedding_dim, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fresh N(0, 1) rows, with the padding row zero."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0
            autograd.bump_version(self.weight)

    def forward(self, indices: Any) -> Tensor:
        """The rows of the table at `indices` (an integer Tensor or array)."""
        return embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
