"""Convolution layers: Conv1d and Conv2d, with PyTorch's weight layout and initialisation.

The weight is (out_channels, in_channels/groups, *kernel_size), so state dicts carry over from
PyTorch; the computation is `gpugrad.ops.conv` (im2col and one matrix product).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .. import _args
from ..creation import empty
from ..errors import ArgumentError, ShapeError
from ..ops.conv import conv1d, conv2d
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Conv1d", "Conv2d"]

IntOrTuple = int | Sequence[int]


class _ConvNd(Module):
    """What Conv1d and Conv2d share: parameters, their initialisation and the repr."""

    dims = 0

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: IntOrTuple | str = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        name, dims = type(self).__name__, self.dims
        self.in_channels = _args.size(name, "in_channels", in_channels)
        self.out_channels = _args.size(name, "out_channels", out_channels)
        self.kernel_size = _args.sizes(name, "kernel_size", kernel_size, dims)
        self.stride = _args.sizes(name, "stride", stride, dims)
        self.dilation = _args.sizes(name, "dilation", dilation, dims)
        self.groups = _args.size(name, "groups", groups)
        if isinstance(padding, str):
            self.padding = _args.choice(name, "padding", padding, ("valid", "same"))
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ArgumentError(
                    f"{name}: padding='same' needs stride 1, got stride {self.stride}"
                )
        else:
            self.padding = _args.sizes(name, "padding", padding, dims, minimum=0)
        if in_channels % groups or out_channels % groups:
            raise ShapeError(
                f"{name}: groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(empty(*shape, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """kaiming_uniform_(a=√5) for the weight, which is uniform in ±1/√fan_in, and the bias
        uniform in ±1/√fan_in, fan_in = in_channels/groups · kernel elements (as PyTorch)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        zero = (0,) * self.dims
        if self.padding != zero:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * self.dims:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class Conv1d(_ConvNd):
    """1-D convolution over (N, C, L) inputs: weight (out_channels, in_channels/groups, k),
    bias (out_channels,); stride, padding ('valid', 'same' or ints) and dilation as PyTorch."""

    dims = 1

    def forward(self, x: Tensor) -> Tensor:
        """The convolution of x with the weight, plus the bias."""
        return conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)  # fmt: skip


class Conv2d(_ConvNd):
    """2-D convolution over (N, C, H, W) inputs: weight (out_channels, in_channels/groups,
    kH, kW), bias (out_channels,); stride, padding ('valid', 'same', an int or a pair) and
    dilation as PyTorch."""

    dims = 2

    def forward(self, x: Tensor) -> Tensor:
        """The convolution of x with the weight, plus the bias."""
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)  # fmt: skip
