"""Gradient clipping: `clip_grad_norm_` and `clip_grad_value_`, in place on `.grad`.

Both work on the device: the norm and the scale factor stay arrays there, so clipping on a
GPU never waits for the host (unless `error_if_nonfinite` asks to look at the norm).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .. import _args
from ..autograd import bump_version
from ..errors import NonFiniteNormError
from ..tensor import Tensor, _make


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad for p in params if p.grad is not None]


def _norm_of(g: Any, xp: Any, p: float) -> Any:
    """The p-norm of one gradient array, as a 0-d array on its device."""
    flat = g.reshape(-1)
    if p == math.inf:
        return xp.max(xp.abs(flat)) if flat.size else xp.zeros((), dtype=g.dtype)
    if p == 2.0:
        return xp.sqrt(xp.dot(flat, flat))  # BLAS dot: no temporary g²
    if p == 1.0:
        return xp.sum(xp.abs(flat))
    return xp.sum(xp.abs(flat) ** p) ** (1.0 / p)


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """Scale the gradients in place so that their total norm (the `norm_type`-norm of all
    gradients taken together; `"inf"` for the largest magnitude) is at most `max_norm`.

    As in PyTorch, the scale is `min(1, max_norm / (total + 1e-6))`. Returns the total norm
    before clipping, as a 0-d Tensor on the gradients' device. Parameters without a gradient
    are skipped.
    """
    _args.number("clip_grad_norm_", "max_norm", max_norm, low=0)
    if norm_type not in ("inf", "-inf"):  # the spellings float() reads as infinities
        _args.number("clip_grad_norm_", "norm_type", norm_type)
    p = float(norm_type)
    grads = _grads(parameters)
    if not grads:
        return Tensor(0.0)
    first = grads[0]._backend
    by_backend: dict[int, list[Tensor]] = {}
    for g in grads:
        by_backend.setdefault(id(g._backend), []).append(g)
    per_device = []
    for group in by_backend.values():
        backend = group[0]._backend
        xp = backend.xp
        norms = xp.stack([_norm_of(g.data, xp, p) for g in group])
        per_device.append((backend, _norm_of(norms, xp, p)))
    if len(per_device) == 1:
        total = per_device[0][1]
    else:  # gradients on several devices: combine the per-device norms on the first one
        parts = [first.asarray(b.to_numpy(n), dtype=grads[0].dtype) for b, n in per_device]
        total = _norm_of(first.xp.stack(parts), first.xp, p)
    total = first.xp.asarray(total)  # NumPy reductions give scalars, Tensors hold arrays
    if error_if_nonfinite and not math.isfinite(float(total)):
        raise NonFiniteNormError(
            f"the total {norm_type}-norm of the gradients is {float(total)}; "
            "pass error_if_nonfinite=False to clip anyway"
        )
    for group in by_backend.values():
        backend = group[0]._backend
        xp = backend.xp
        local = total if backend is first else backend.asarray(first.to_numpy(total))
        scale = xp.minimum(max_norm / (local + 1e-6), 1.0).astype(group[0].dtype)
        if backend.device.type == "cpu" and scale >= 1.0:
            continue  # reading a host scalar is free; multiplying by 1 would change nothing
        for g in group:
            g.data *= scale.astype(g.dtype, copy=False)
            bump_version(g)
    return _make(total, first, None)


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element to [-clip_value, clip_value], in place."""
    v = float(_args.number("clip_grad_value_", "clip_value", clip_value, low=0))
    for g in _grads(parameters):
        g._backend.xp.clip(g.data, -v, v, out=g.data)
        bump_version(g)
