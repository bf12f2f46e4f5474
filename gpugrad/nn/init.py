"""Weight initialisation, in place, with PyTorch's gain and fan conventions.

Every function fills an existing tensor (usually a Parameter) without recording a graph and
returns it. Random draws come from the generator of the tensor's device, so `gg.manual_seed`
makes them repeat.

Fans follow PyTorch's layout for weights: a Linear weight is (out_features, in_features), so
axis 1 is the fan-in and axis 0 the fan-out; any axes after the first two (convolution
kernels) multiply both by the receptive-field size.
"""

from __future__ import annotations

import math
from typing import Any

from .. import _args, autograd
from ..dtypes import is_floating
from ..errors import ArgumentError, ArgumentTypeError, DTypeError, ShapeError
from ..tensor import Tensor

__all__ = [
    "calculate_gain",
    "constant_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

_UNIT_GAIN = {
    "linear", "identity", "sigmoid",
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
}  # fmt: skip


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended scale of weights feeding `nonlinearity` (PyTorch's values):
    1 for linear/conv/sigmoid, 5/3 for tanh, √2 for relu, √(2/(1+slope²)) for leaky_relu
    (slope `param`, 0.01 by default) and 3/4 for selu."""
    if nonlinearity in _UNIT_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ArgumentTypeError(f"calculate_gain: negative_slope {param!r} is not a number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ArgumentError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: axis 1 and axis 0 sizes times the receptive field."""
    if tensor.ndim < 2:
        raise ShapeError(
            f"fan in and fan out need a tensor with at least 2 dimensions, got shape {tensor.shape}"
        )
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ArgumentError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor: Tensor, values: Any) -> Tensor:
    """Write `values` into the tensor's data in place, as an untracked edit."""
    if not isinstance(tensor, Tensor):
        raise ArgumentTypeError(f"init functions fill a Tensor, got {type(tensor).__name__}")
    with autograd.no_grad():
        tensor.data[...] = values
    autograd.bump_version(tensor)
    return tensor


def _random(tensor: Tensor, kind: str) -> Any:
    if not is_floating(tensor.dtype):
        raise DTypeError(f"random init needs a floating-point tensor, this one is {tensor.dtype}")
    backend = tensor._backend
    if kind == "uniform":
        return backend.random_uniform(tensor.shape, tensor.dtype)
    return backend.random_normal(tensor.shape, tensor.dtype)


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with draws from the uniform distribution on [a, b)."""
    _args.number("uniform_", "a", a, finite=True)
    _args.number("uniform_", "b", b, low=a, finite=True)
    return _fill(tensor, _random(tensor, "uniform") * (b - a) + a)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with draws from the normal distribution N(mean, std²)."""
    _args.number("normal_", "mean", mean, finite=True)
    _args.number("normal_", "std", std, low=0, finite=True)
    return _fill(tensor, _random(tensor, "normal") * std + mean)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with the value `val`."""
    return _fill(tensor, val)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros."""
    return _fill(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones."""
    return _fill(tensor, 1)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot uniform: U(−a, a) with a = gain·√(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot normal: N(0, std²) with std = gain·√(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float | None:
    if tensor.size == 0:  # nothing to fill; PyTorch also leaves empty tensors alone
        return None
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """He uniform: U(−b, b) with b = gain·√(3 / fan), the gain of `nonlinearity` with
    negative slope `a`, fan the fan-in or fan-out as `mode` says."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """He normal: N(0, std²) with std = gain / √fan (see `kaiming_uniform_`)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std)
