"""Scaled dot-product attention and MultiheadAttention, with PyTorch's arguments, masks,
parameter names and results.

Without dropout, attention is one node (`_Attention`) with a closed-form backward; with
dropout, or when the weights are returned, it is composed of differentiable ops (matmul,
where, softmax, dropout). In `scaled_dot_product_attention` a boolean mask picks
the scores that take part (True = attend, as torch reads it there) and a float mask is added
to the scores; in `MultiheadAttention`, as in torch, a boolean mask marks what is left out
(True = masked). A query whose scores are all masked out attends to nothing: its output row
and its gradients are zero, which is what PyTorch's scaled_dot_product_attention gives on the
CPU (PyTorch's MultiheadAttention gives NaN rows there when it returns the weights).
"""

from __future__ import annotations

import math
from typing import Any

from ..autograd import Function
from ..creation import empty
from ..errors import ArgumentError, DeviceError, DTypeError, ShapeError
from ..ops import matmul, softmax, where
from ..ops._support import make_tensor, unbroadcast
from ..tensor import Tensor
from . import init
from .arguments import broadcast_shape, float_arg, matching, tensor_arg
from .layers import Linear, dropout, linear
from .module import Module
from .parameter import Parameter

__all__ = ["MultiheadAttention", "scaled_dot_product_attention"]


def _mask_arg(fn: str, name: str, mask: Any, like: Tensor) -> Tensor:
    """A mask Tensor on like's device, boolean or of like's float dtype."""
    tensor_arg(fn, name, mask)
    if mask.device != like.device:
        raise DeviceError(f"{fn}: {name} is on '{mask.device}' but the query on '{like.device}'")
    if mask.dtype != bool and mask.dtype != like.dtype:
        raise DTypeError(
            f"{fn}: {name} must be bool or {like.dtype} (the query's dtype), got {mask.dtype}"
        )
    return mask


def _check_dropout(fn: str, p: Any) -> float:
    if not 0.0 <= p <= 1.0:
        raise ArgumentError(f"{fn}: dropout probability must be in [0, 1], got {p}")
    return float(p)


def _weights(q: Tensor, k: Tensor, mask: Tensor | None, is_causal: bool, scale: float) -> Tensor:
    """softmax(q·kᵀ·scale, masked) as differentiable ops: rows masked out entirely are 0."""
    backend = q._backend
    xp = backend.xp
    scores = matmul(q, k.swapaxes(-1, -2)) * scale
    if is_causal:  # query i sees keys 0..i (aligned at the top left, as PyTorch)
        causal = xp.tril(xp.ones((q.shape[-2], k.shape[-2]), dtype=bool))
        scores = where(make_tensor(causal, backend, None), scores, -math.inf)
    elif mask is not None:
        scores = where(mask, scores, -math.inf) if mask.dtype == bool else scores + mask
    if mask is None:
        return softmax(scores, axis=-1)
    # A row with every score at −inf would be 0/0 in the softmax: it attends to nothing.
    dead = make_tensor(xp.all(scores.data == -math.inf, axis=-1, keepdims=True), backend, None)
    return where(dead, 0.0, softmax(where(dead, 0.0, scores), axis=-1))


class _Attention(Function):
    """softmax(q·kᵀ·scale, masked)·v as one node, for attention without dropout.

    The composition of ops keeps five (L, S) arrays per head alive and makes as many passes
    over them; here the scores are one array, masked, exponentiated and normalised in place
    into the weights p, which are kept for backward. With g = dL/dout and ds = dL/d(scores):
    dv = pᵀ·g, dp = g·vᵀ, ds = p·(dp − Σ dp·p) (the sum over each query's keys), dq =
    ds·k·scale, dk = dsᵀ·q·scale, and a float mask gets ds.

    The arrays hold the scores transposed, (S, L) per head: NumPy reduces a short last axis
    one row at a time, several times slower than the max and sum across rows (axis -2), which
    run as vectorised elementwise passes; the products take the transposes as views.
    """

    def forward(self, q, k, v, mask, is_causal, scale):
        xp = self.xp.xp
        self.is_causal, self.scale = is_causal, scale
        # q·scale, (L, E), is smaller than the (L, S) scores it would scale; written out
        # transposed in the same pass, as the backend's matmul would otherwise copy qᵀ.
        q_t = xp.swapaxes(q, -1, -2)
        q_t = xp.multiply(q_t, scale, out=xp.empty(q_t.shape, dtype=q.dtype))
        scores = self.xp.matmul(k, q_t)  # (S, L): key j, query i
        if mask is None and self.xp.softmax_columns(scores, is_causal):
            p = scores  # one compiled pass (the CPU): the steps below, in place
        else:
            p = self._softmax_columns(xp, scores, mask, is_causal)
        out = self.xp.matmul(xp.swapaxes(p, -1, -2), v)
        self.p = p  # kept for a plain backward; with create_graph it is recomputed as ops
        if mask is None:
            self.save(q, k, v)
        else:
            self.save(q, k, v, mask)
        return out

    def _softmax_columns(self, xp, scores, mask, is_causal):
        """The weights p from the transposed scores, in place: masked, then a softmax down
        each column."""
        # Hidden scores are overwritten with −inf (one masked pass), not added to: a NaN or inf
        # among them must not reach the weights (as in PyTorch, the op composition of
        # create_graph, and the compiled softmax).
        if is_causal:  # query i sees keys 0..i (aligned at the top left, as PyTorch)
            hidden = xp.tri(scores.shape[-2], scores.shape[-1], -1, dtype=bool)  # j > i
            xp.copyto(scores, scores.dtype.type(-math.inf), where=hidden)
        elif mask is not None and mask.dtype == bool:
            hidden = ~xp.swapaxes(mask, -1, -2)
            xp.copyto(scores, scores.dtype.type(-math.inf), where=hidden)
        elif mask is not None:
            scores += xp.swapaxes(mask, -1, -2)
        top = self.xp.max_along(scores, -2)
        if mask is not None:  # queries masked out entirely: exp(−inf − 0) = 0, and 0/1 below
            top[top == -math.inf] = 0
        scores -= top
        p = xp.exp(scores, out=scores)
        total = self.xp.sum_along(p, -2)
        if mask is not None:
            total[total == 0] = 1
        p /= total
        return p

    def backward(self, xp, g, q, k, v, mask=None):
        if xp is self.xp:  # on arrays: ds and p transposed, (S, L), as the forward left p
            xp = xp.xp
            mm, swap, p = self.xp.matmul, xp.swapaxes, self.p  # the backend's matmul
            ds = mm(v, swap(g, -1, -2))
            if not self.xp.softmax_columns_backward(ds, p):  # else one compiled pass
                ds -= xp.einsum("...ji,...ji->...i", ds, p)[..., None, :]  # no ds·p array
                ds *= p
        else:  # create_graph: the weights as differentiable ops of q, k (and the mask)
            mm, swap = matmul, _swapaxes
            p = _weights(q, k, mask, self.is_causal, self.scale).swapaxes(-1, -2)
            dp = mm(v, swap(g, -1, -2))
            ds = p * (dp - (dp * p).sum(axis=-2, keepdims=True))
        gq = gk = gv = gm = None
        if self.needs_grad(0):
            gq = unbroadcast(_scaled(xp, mm(swap(ds, -1, -2), k), self.scale), q.shape)
        if self.needs_grad(1):
            gk = unbroadcast(_scaled(xp, mm(ds, q), self.scale), k.shape)
        if self.needs_grad(2):
            gv = unbroadcast(mm(p, g), v.shape)
        if mask is not None and self.needs_grad(3):
            gm = unbroadcast(swap(ds, -1, -2), mask.shape)
        return gq, gk, gv, gm


def _swapaxes(t: Tensor, a: int, b: int) -> Tensor:
    return t.swapaxes(a, b)


def _scaled(xp: Any, product: Any, scale: float) -> Any:
    """product·scale: in place on an array (the product is ours), as an op on a Tensor."""
    if isinstance(product, Tensor):
        return product * scale
    return xp.multiply(product, scale, out=product)


def _attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None,
    dropout_p: float,
    is_causal: bool,
    scale: float,
    need_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """softmax(q·kᵀ·scale, masked) · v, and the attention weights (after dropout) when
    `need_weights` or dropout asks for the composition of ops (None otherwise)."""
    fused = (
        dropout_p == 0.0
        and not need_weights
        and q.dtype.name in ("float32", "float64")
        and min(q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]) > 0
    )
    if fused:
        return _Attention.apply(q, k, v, mask, is_causal=is_causal, scale=scale), None
    weights = _weights(q, k, mask, is_causal, scale)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True)
    return matmul(weights, v), weights


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """softmax(query·keyᵀ·scale + mask)·value, as torch.nn.functional's.

    query is (..., L, E), key (..., S, E), value (..., S, Ev); the leading axes broadcast;
    the result is (..., L, Ev). `attn_mask` broadcasts to (..., L, S): bool (True = attend)
    or a float mask added to the scores. `is_causal` lets query i see keys 0..i (not with
    attn_mask). `scale` defaults to 1/√E. `dropout_p` drops attention weights (always, as in
    PyTorch: pass 0 outside training).
    """
    fn = "scaled_dot_product_attention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        float_arg(fn, name, t)
        if t.ndim < 2:
            raise ShapeError(f"{fn}: {name} needs at least 2 axes (..., length, features), "
                             f"got shape {t.shape}")  # fmt: skip
    matching(fn, {"query": query, "key": key, "value": value})
    if query.shape[-1] != key.shape[-1]:
        raise ShapeError(
            f"{fn}: query {query.shape} and key {key.shape} must have the same last axis"
        )
    if key.shape[-2] != value.shape[-2]:
        raise ShapeError(
            f"{fn}: key {key.shape} and value {value.shape} must have the same length (axis -2)"
        )
    batch = broadcast_shape(
        fn, {"query": query.shape[:-2], "key": key.shape[:-2], "value": value.shape[:-2]}
    )
    dropout_p = _check_dropout(fn, dropout_p)
    if is_causal and attn_mask is not None:
        raise ArgumentError(f"{fn}: give attn_mask or is_causal=True, not both")
    if attn_mask is not None:
        _mask_arg(fn, "attn_mask", attn_mask, query)
        scores = (*batch, query.shape[-2], key.shape[-2])
        if broadcast_shape(fn, {"scores": scores, "attn_mask": attn_mask.shape}) != scores:
            raise ShapeError(
                f"{fn}: attn_mask of shape {attn_mask.shape} does not broadcast to the "
                f"attention scores' shape {scores}"
            )
    if scale is None:
        if query.shape[-1] == 0:
            raise ShapeError(f"{fn}: query {query.shape} has no features to scale by")
        scale = 1.0 / math.sqrt(query.shape[-1])
    out, _ = _attend(query, key, value, attn_mask, dropout_p, bool(is_causal), float(scale))
    return out


class MultiheadAttention(Module):
    """Multi-head attention as torch.nn.MultiheadAttention, with its parameters and names
    (`in_proj_weight` (3E, E), `in_proj_bias` (3E,), `out_proj.weight`, `out_proj.bias`), so
    a PyTorch state dict loads; queries, keys and values all have embed_dim features.

    `forward(query, key, value)` takes (L, N, E) tensors, (N, L, E) with `batch_first`, or
    unbatched (L, E), and returns `(output, weights)`: the output shaped like the query, the
    attention weights (N, L, S) averaged over heads (or (N, heads, L, S)), or None without
    `need_weights`. Masks follow PyTorch's MultiheadAttention: a boolean `attn_mask` (L, S) or
    (N·heads, L, S), or `key_padding_mask` (N, S), is True where attention is *not* allowed;
    float masks are added to the scores.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        for name, value in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ArgumentError(f"MultiheadAttention: {name} must be a positive int, "
                                    f"got {value!r}")  # fmt: skip
        if embed_dim % num_heads:
            raise ArgumentError(
                f"MultiheadAttention: embed_dim={embed_dim} is not divisible by "
                f"num_heads={num_heads}"
            )
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = _check_dropout("MultiheadAttention", dropout)
        self.batch_first = bool(batch_first)
        self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, device=device, dtype=dtype))
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, device=device, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's initialisation: xavier_uniform_ for in_proj_weight, zero biases (the
        out_proj weight keeps Linear's own)."""
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _project(self, x: Tensor, part: int) -> Tensor:
        """Part 0, 1 or 2 (query, key, value) of the input projection, split into heads:
        (N, T, E) → (N, heads, T, head_dim)."""
        e = self.embed_dim
        rows = slice(part * e, (part + 1) * e)
        bias = self.in_proj_bias[rows] if self.in_proj_bias is not None else None
        y = linear(x, self.in_proj_weight[rows], bias)
        return y.reshape(x.shape[0], x.shape[1], self.num_heads, self.head_dim).swapaxes(1, 2)

    def _additive_mask(
        self, attn_mask: Any, key_padding_mask: Any, like: Tensor, n: int, l: int, s: int
    ) -> Tensor | None:
        """The two masks as one float mask to add to the (N, heads, L, S) scores."""
        fn = "MultiheadAttention"
        xp = like._backend.xp
        parts = []
        for name, mask, shapes in (
            ("attn_mask", attn_mask, {(l, s): (1, 1, l, s), (n * self.num_heads, l, s):
                                      (n, self.num_heads, l, s)}),
            ("key_padding_mask", key_padding_mask, {(n, s): (n, 1, 1, s)}),
        ):  # fmt: skip
            if mask is None:
                continue
            _mask_arg(fn, name, mask, like)
            if mask.shape not in shapes:
                raise ShapeError(
                    f"{fn}: {name} of shape {mask.shape} does not fit: expected one of "
                    f"{list(shapes)} for batch {n}, {self.num_heads} heads, {l} queries, {s} keys"
                )
            if mask.dtype == bool:  # True = masked out: −inf added to its score
                ninf = xp.asarray(-math.inf, dtype=like.dtype)
                data = xp.where(mask.data, ninf, xp.zeros((), dtype=like.dtype))
                mask = make_tensor(data, like._backend, None)
            parts.append(mask.reshape(shapes[mask.shape]))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else parts[0] + parts[1]

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """(attention output, attention weights or None); see the class docstring.
        `is_causal` is PyTorch's hint that attn_mask is the causal mask, so attn_mask must be
        given with it."""
        fn = "MultiheadAttention"
        for name, t in (("query", query), ("key", key), ("value", value)):
            float_arg(fn, name, t)
            if t.ndim not in (2, 3) or t.ndim != query.ndim or t.shape[-1] != self.embed_dim:
                raise ShapeError(
                    f"{fn}: {name} of shape {t.shape} does not fit: query, key and value must "
                    f"all be (L, N, {self.embed_dim}), (N, L, {self.embed_dim}) with "
                    f"batch_first, or unbatched (L, {self.embed_dim})"
                )
        matching(fn, {"query": query, "key": key, "value": value, "weights": self.in_proj_weight})
        if is_causal and attn_mask is None:
            raise ArgumentError(f"{fn}: is_causal=True is a hint about attn_mask; pass the "
                                "causal attn_mask too, as PyTorch requires")  # fmt: skip
        given = (query.shape, key.shape, value.shape)
        batched = query.ndim == 3
        if not batched:
            query, key, value = (t.unsqueeze(0) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = tensor_arg(fn, "key_padding_mask", key_padding_mask)
                key_padding_mask = key_padding_mask.reshape(1, *key_padding_mask.shape)
        elif not self.batch_first:
            query, key, value = (t.swapaxes(0, 1) for t in (query, key, value))
        n, l, s = query.shape[0], query.shape[1], key.shape[1]
        if key.shape[:2] != value.shape[:2] or key.shape[0] != n:
            raise ShapeError(
                f"{fn}: query {given[0]}, key {given[1]} and value {given[2]} must share the "
                "batch size, and key and value the length"
            )
        mask = self._additive_mask(attn_mask, key_padding_mask, query, n, l, s)
        p = self.dropout if self.training else 0.0
        q, k, v = self._project(query, 0), self._project(key, 1), self._project(value, 2)
        out, weights = _attend(
            q, k, v, mask, p, False, 1.0 / math.sqrt(self.head_dim), need_weights
        )
        out = self.out_proj(out.swapaxes(1, 2).reshape(n, l, self.embed_dim))
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.swapaxes(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(axis=1)
        return out, (weights if batched else weights.squeeze(0))

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
            f"batch_first={self.batch_first}"
        )
