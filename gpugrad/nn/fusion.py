"""Linear + activation in one node, so the bias add and the activation are one GPU kernel.

`Sequential` hands its modules to `forward_fused` when the input lives on a backend that fuses
(the CuPy backend, and the NumPy one). A `Linear` with a bias followed directly by ReLU, Sigmoid
or Tanh then runs as `linear_activation`: the product x @ wᵀ, then one kernel that adds the bias
and applies the activation, one pass over the (batch, features) array. Unfused, the in-place
bias add and the activation are a kernel and a full read and write of the array each. On the
CPU the NumPy twin adds the bias and applies relu or tanh in place on the product: no second
array, and one graph node a layer instead of two, so both devices build the same graph.

Only exact module types are fused, and only when neither module has hooks or a forward of its
own set on the instance, so a subclass, a replaced forward or a hook always sees its own call.
Stock CuPy (GPUGRAD_FUSED_KERNELS=0) does not fuse.

ReLU followed by max pooling whose windows tile the input (a CNN's conv, ReLU, 2x2 pool) runs
in the other order, pool then ReLU, so the ReLU and its backward touch a quarter of the
elements. The results are the same, values and gradients: ReLU is non-decreasing, so
max(relu(x)) = relu(max(x)); where the window's maximum is positive both orders send g to its
first maximum, and elsewhere both give g·0 everywhere in the window (0, or NaN for a
non-finite g: the tiled pooling's backward multiplies by its mask as ReLU's does; the general
one selects, so overlapping or padded windows keep the written order). On LeNet-5 (CPU) that
saves the full-size ReLU forward and backward of both conv layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..autograd import Function
from ..ops.pool import max_pooling_tiles
from ..tensor import Tensor
from . import activation as act
from .layers import Linear, bias_grad, check_linear
from .module import Module
from .pooling import MaxPool1d, MaxPool2d

# Exact activation module types that fuse, and the activation each computes: those whose
# backward reads only their output, so the fused node keeps no pre-activation array (an
# activation that reads its input would need x·wᵀ + b kept as well, which saves little).
FUSABLE: dict[type, str] = {act.ReLU: "relu", act.Sigmoid: "sigmoid", act.Tanh: "tanh"}

# Exact max pooling module types that a ReLU before them may run after (module docstring).
MAX_POOLS = (MaxPool1d, MaxPool2d)


class LinearActivation(Function):
    """activation(x @ wᵀ + b): one product and one fused bias-activation pass forward; the
    activation's fused backward, then Linear's three products, backward."""

    def forward(self, x, w, b, kind):
        self.kind = kind
        if x.ndim == 2:  # a batch of rows (the common case): no reshapes either side
            out = self.xp.bias_activation_forward(kind, x @ w.T, b)  # (a fresh array to use)
        else:
            z = x.reshape(-1, x.shape[-1]) @ w.T
            out = self.xp.bias_activation_forward(kind, z, b).reshape(*x.shape[:-1], w.shape[0])
        # The output is saved as the very array returned, so that changing it in place after
        # the forward is noticed.
        self.save(x, w, out)
        return out

    def backward(self, xp, g, x, w, out):
        rows = x.ndim == 2  # a batch of rows (the common case): nothing to reshape
        if not rows:
            features = w.shape[0]
            g, out = g.reshape(-1, features), out.reshape(-1, features)
        gz = xp.activation_backward(self.kind, g, None, out)
        gx = gw = None
        if self.needs_grad(0):
            gx = gz @ w if rows else (gz @ w).reshape(x.shape)
        if self.needs_grad(1):
            gw = gz.T @ (x if rows else x.reshape(-1, w.shape[1]))
        return gx, gw, (bias_grad(self, xp, gz) if self.needs_grad(2) else None)


def linear_activation(x: Tensor, weight: Tensor, bias: Tensor, kind: str) -> Tensor:
    """activation `kind` ("relu", "sigmoid" or "tanh") of x @ weightᵀ + bias, as one graph
    node (see the module docstring)."""
    if kind not in FUSABLE.values():
        raise ValueError(f"linear_activation: kind must be one of {sorted(FUSABLE.values())}")
    check_linear(x, weight, bias)
    return LinearActivation.apply(x, weight, bias, kind=kind)


def _called_as_is(module: Module) -> bool:
    """True when calling `module` is just its class's forward: no hooks, and no forward set on
    the instance itself."""
    hooks = module.__dict__.get("_hooks")
    if hooks is not None and (hooks["pre"] or hooks["forward"] or hooks["backward"]):
        return False
    return "forward" not in module.__dict__


def _pool_tiles(pool: MaxPool1d | MaxPool2d, x: Any) -> bool:
    """Whether `pool` on x (ReLU keeps the shape) takes the tiled path: only its backward
    gives exactly ReLU-then-pool's gradients in the other order (see the module docstring)."""
    dims = 1 if type(pool) is MaxPool1d else 2
    return max_pooling_tiles(x, pool.kernel_size, pool.stride, pool.padding, dims)


def forward_fused(modules: Sequence[Module], x: Any) -> Any:
    """Run `modules` in order on x, each Linear-with-bias + activation pair as one node, and
    each ReLU + max pooling pair as pooling then ReLU (the same results)."""
    i, count = 0, len(modules)
    while i < count:
        module = modules[i]
        kind_of_module = type(module)
        after = modules[i + 1] if i + 1 < count else None
        if kind_of_module is Linear:
            kind = FUSABLE.get(type(after))
            bias = module.bias
            if (
                kind is not None
                and bias is not None
                and _called_as_is(module)
                and _called_as_is(after)
            ):
                x = linear_activation(x, module.weight, bias, kind)
                i += 2
                continue
        elif (
            kind_of_module is act.ReLU
            and type(after) in MAX_POOLS
            and _called_as_is(module)
            and _called_as_is(after)
            and _pool_tiles(after, x)
        ):
            x = module(after(x))  # the same results, a quarter of the ReLU (module docstring)
            i += 2
            continue
        x = module(x)
        i += 1
    return x
