"""gradcheck: compare autograd's gradients with central finite differences, in float64.

The analytic side is one vector-Jacobian product vᵀJ for a random v (one backward pass).
The numerical side nudges each input element by ±eps and measures how vᵀf moves:
(vᵀf(x+eps) − vᵀf(x−eps)) / 2eps. Any error in J shows up for a random v.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .autograd import grad
from .errors import DTypeError, GradcheckError
from .tensor import Tensor, _make


def _as_tuple(x: Any) -> tuple[Any, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _projection(outputs: Sequence[Tensor], vs: Sequence[Any]) -> float:
    total = 0.0
    for out, v in zip(outputs, vs):
        total += float((out.numpy().astype(np.float64) * v).sum())
    return total


def gradcheck(
    fn: Callable[..., Any],
    inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check fn's gradients w.r.t. every input that requires grad; True, or GradcheckError
    naming the worst element (input, index, analytic, numerical)."""
    inputs = _as_tuple(inputs)
    wrt = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not wrt:
        raise GradcheckError("gradcheck: no input requires grad")
    for i in wrt:
        if inputs[i].dtype != np.float64:
            raise DTypeError(
                f"gradcheck needs float64 inputs (finite differences in {inputs[i].dtype} are "
                f"too coarse); input {i} is {inputs[i].dtype}: pass x.double()"
            )
    outputs = [o for o in _as_tuple(fn(*inputs)) if isinstance(o, Tensor)]
    rng = np.random.default_rng(seed)
    vs = [rng.standard_normal(o.shape) for o in outputs]

    # Analytic: one backward pass of the projection vᵀf.
    analytic = [np.zeros(inputs[i].shape) for i in wrt]
    differentiable = [(o, v) for o, v in zip(outputs, vs) if o.requires_grad]
    if differentiable:
        outs = [o for o, _ in differentiable]
        grad_outs = [
            _make(o._backend.asarray(v, dtype=o.dtype), o._backend, None) for o, v in differentiable
        ]
        grads = grad(
            outs, [inputs[i] for i in wrt], grad_outs, retain_graph=True, allow_unused=True
        )
        for k, g in enumerate(grads):
            if g is not None:
                analytic[k] = g.numpy().astype(np.float64)

    # Numerical: central differences, one element at a time.
    for k, i in enumerate(wrt):
        x = inputs[i]
        numeric = np.zeros(x.shape)
        for flat in range(x.size):
            index = np.unravel_index(flat, x.shape)
            original = x.data[index].item()
            # Raw writes to the array: no version bump, since the value is restored.
            x.data[index] = original + eps
            plus = _projection(_as_tuple(fn(*inputs)), vs)
            x.data[index] = original - eps
            minus = _projection(_as_tuple(fn(*inputs)), vs)
            x.data[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        error = np.abs(analytic[k] - numeric) - (atol + rtol * np.abs(numeric))
        if error.size and (error.max() > 0 or not np.isfinite(analytic[k]).all()):
            worst = np.unravel_index(int(np.nan_to_num(error, nan=np.inf).argmax()), x.shape)
            raise GradcheckError(
                f"gradcheck: gradient of input {i} (shape {x.shape}) is wrong at index "
                f"{tuple(int(j) for j in worst)}: analytic {analytic[k][worst]:.8g}, "
                f"numerical {numeric[worst]:.8g} (atol={atol}, rtol={rtol})"
            )
    return True


def gradgradcheck(
    fn: Callable[..., Any],
    inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check second derivatives: gradcheck of the function x ↦ vᵀ∂f/∂x, which autograd
    computes with create_graph=True."""
    inputs = _as_tuple(inputs)
    wrt = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    outputs = [o for o in _as_tuple(fn(*inputs)) if isinstance(o, Tensor)]
    rng = np.random.default_rng(seed + 1)
    vs = [rng.standard_normal(o.shape) for o in outputs]

    def first_derivatives(*xs: Any) -> tuple[Tensor, ...]:
        outs = [o for o in _as_tuple(fn(*xs)) if isinstance(o, Tensor)]
        pairs = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
        if not pairs:
            return ()
        grad_outs = [
            _make(o._backend.asarray(v, dtype=o.dtype), o._backend, None) for o, v in pairs
        ]
        gs = grad(
            [o for o, _ in pairs],
            [xs[i] for i in wrt],
            grad_outs,
            create_graph=True,
            allow_unused=True,
        )
        return tuple(g for g in gs if g is not None)

    return gradcheck(first_derivatives, inputs, eps=eps, atol=atol, rtol=rtol, seed=seed)
