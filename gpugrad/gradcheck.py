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


def _tensors_out(fn: Callable[..., Any], inputs: Sequence[Any]) -> list[Tensor]:
    return [o for o in _as_tuple(fn(*inputs)) if isinstance(o, Tensor)]


def _wrt(inputs: Sequence[Any]) -> list[int]:
    """Positions of the inputs to differentiate: Tensors that require grad."""
    return [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]


def _vjp(
    outputs: Sequence[Tensor], vs: Sequence[Any], wrt: Sequence[Tensor], create_graph: bool
) -> tuple[Tensor | None, ...]:
    """vᵀ∂f/∂x for each x in `wrt` (None where no output depends on it)."""
    pairs = [(o, v) for o, v in zip(outputs, vs) if o.requires_grad]
    if not pairs:
        return (None,) * len(wrt)
    grad_outs = [_make(o._backend.asarray(v, dtype=o.dtype), o._backend, None) for o, v in pairs]
    outs = [o for o, _ in pairs]
    return grad(outs, wrt, grad_outs, True, create_graph, allow_unused=True)


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
    wrt = _wrt(inputs)
    if not wrt:
        raise GradcheckError("gradcheck: no input requires grad")
    for i in wrt:
        if inputs[i].dtype != np.float64:
            raise DTypeError(
                f"gradcheck needs float64 inputs (finite differences in {inputs[i].dtype} are "
                f"too coarse); input {i} is {inputs[i].dtype}: pass x.double()"
            )
    outputs = _tensors_out(fn, inputs)
    rng = np.random.default_rng(seed)
    vs = [rng.standard_normal(o.shape) for o in outputs]

    # Analytic: one backward pass of the projection vᵀf.
    grads = _vjp(outputs, vs, [inputs[i] for i in wrt], create_graph=False)
    analytic = [
        np.zeros(inputs[i].shape) if g is None else g.numpy().astype(np.float64)
        for i, g in zip(wrt, grads)
    ]

    # Numerical: central differences, one element at a time.
    for k, i in enumerate(wrt):
        x = inputs[i]
        numeric = np.zeros(x.shape)
        for flat in range(x.size):
            index = np.unravel_index(flat, x.shape)
            original = x.data[index].item()
            # Raw writes to the array: no version bump, since the value is restored.
            x.data[index] = original + eps
            plus = _projection(_tensors_out(fn, inputs), vs)
            x.data[index] = original - eps
            minus = _projection(_tensors_out(fn, inputs), vs)
            x.data[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        error = np.abs(analytic[k] - numeric) - (atol + rtol * np.abs(numeric))
        error = np.nan_to_num(error, nan=np.inf)  # a NaN on either side is a failure
        if error.size and error.max() > 0:
            worst = np.unravel_index(int(error.argmax()), x.shape)
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
    wrt = _wrt(inputs)
    rng = np.random.default_rng(seed + 1)
    vs = [rng.standard_normal(o.shape) for o in _tensors_out(fn, inputs)]

    def first_derivatives(*xs: Any) -> tuple[Tensor, ...]:
        grads = _vjp(_tensors_out(fn, xs), vs, [xs[i] for i in wrt], create_graph=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(first_derivatives, inputs, eps=eps, atol=atol, rtol=rtol, seed=seed)
