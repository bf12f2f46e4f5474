"""Pooling modules: each holds its window settings and calls the pooling function of ops.pool."""

from __future__ import annotations

from collections.abc import Sequence

from .. import _args
from ..ops.pool import (
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    max_pool1d,
    max_pool2d,
)  # fmt: skip
from ..tensor import Tensor
from .module import Module

__all__ = ["AdaptiveAvgPool2d", "AvgPool1d", "AvgPool2d", "MaxPool1d", "MaxPool2d"]

IntPair = int | Sequence[int]


class _Pool(Module):
    """Shared settings: kernel_size, stride (kernel_size when None, as PyTorch), padding;
    checked when the module is made, kept as given."""

    dims = 2

    def __init__(
        self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
    ) -> None:
        super().__init__()
        name = type(self).__name__
        _args.sizes(name, "kernel_size", kernel_size, self.dims)
        if stride is not None:
            _args.sizes(name, "stride", stride, self.dims)
        _args.sizes(name, "padding", padding, self.dims, minimum=0)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool):
    """The maximum of each window of an (N, C, H, W) input (padding counts as -inf)."""

    def forward(self, x: Tensor) -> Tensor:
        """Max pooling with this module's window."""
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)


class MaxPool1d(_Pool):
    """The maximum of each window along the last axis of an (N, C, L) input."""

    dims = 1

    def forward(self, x: Tensor) -> Tensor:
        """Max pooling with this module's window."""
        return max_pool1d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool):
    """The mean of each window of an (N, C, H, W) input; zero padding counts in the mean
    unless `count_include_pad` is False."""

    def __init__(
        self,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        """Average pooling with this module's window."""
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad)

    def extra_repr(self) -> str:
        extra = "" if self.count_include_pad else ", count_include_pad=False"
        return super().extra_repr() + extra


class AvgPool1d(AvgPool2d):
    """The mean of each window along the last axis of an (N, C, L) input."""

    dims = 1

    def forward(self, x: Tensor) -> Tensor:
        """Average pooling with this module's window."""
        return avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad)


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (an int or a pair; None keeps that input size),
    whatever the input's height and width."""

    def __init__(self, output_size: int | Sequence[int | None]) -> None:
        super().__init__()
        sizes = output_size if isinstance(output_size, Sequence) else (output_size,)
        for size in sizes:
            if size is not None:
                _args.size("AdaptiveAvgPool2d", "output_size", size)
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        """The input averaged down (or up) to `output_size`."""
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
