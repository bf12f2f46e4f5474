"""Layers for (N, C, H, W) images: BatchNorm2d and channel-wise dropout (Dropout2d).

Both reuse the 1-D versions in layers.py: BatchNorm2d normalises the image as (N, C, H·W),
which is what BatchNorm1d does for (N, C, L); dropout2d draws one dropout mask value per
(sample, channel) and broadcasts it over the pixels.
"""

from __future__ import annotations

from typing import Any

from .. import _args
from ..creation import ones
from ..errors import ShapeError
from ..tensor import Tensor
from .layers import BatchNorm1d, Dropout, batch_norm, dropout

__all__ = ["BatchNorm2d", "Dropout2d", "batch_norm2d", "dropout2d"]


def _check_image(x: Tensor, name: str, channels: int | None = None) -> None:
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        c = "C" if channels is None else channels
        raise ShapeError(f"{name} expects an (N, {c}, H, W) input, got shape {x.shape}")


def batch_norm2d(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float | Any = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """`batch_norm` for (N, C, H, W) inputs: each channel normalised over batch and pixels
    (same arguments; the running variance uses the unbiased variance over N·H·W values)."""
    _check_image(x, "batch_norm2d")
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    out = batch_norm(flat, running_mean, running_var, weight, bias, training, momentum, eps)
    return out.reshape(n, c, h, w)


class BatchNorm2d(BatchNorm1d):
    """Batch normalisation of (N, C, H, W) inputs per channel, over the batch and pixels.

    Same settings, parameters and buffers as BatchNorm1d (weight ones, bias zeros, running
    mean 0 and variance 1, `momentum`, cumulative average when momentum is None).
    """

    def forward(self, x: Tensor) -> Tensor:
        """The input normalised per channel (batch statistics when training)."""
        _check_image(x, f"BatchNorm2d({self.num_features})", self.num_features)
        n, c, h, w = x.shape
        if self.training and n * h * w <= 1:
            raise ShapeError(
                f"BatchNorm2d needs more than one value per channel when training, got input "
                f"of shape {x.shape}"
            )
        return super().forward(x.reshape(n, c, h * w)).reshape(n, c, h, w)


def dropout2d(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Channel dropout: zero whole channels of an (N, C, H, W) or (C, H, W) input with
    probability p and scale the kept ones by 1/(1−p); the input itself when not training."""
    if x.ndim not in (3, 4):
        raise ShapeError(f"dropout2d expects an (N, C, H, W) or (C, H, W) input, got {x.shape}")
    _args.number("dropout2d", "p", p, low=0, high=1)
    if not training or p == 0.0:
        return x
    # One draw per channel, from `dropout` itself so seeding and scaling match it.
    mask = dropout(ones(*x.shape[:-2], 1, 1, dtype=x.dtype, device=x.device), p, True)
    return x * mask


class Dropout2d(Dropout):
    """Zeroes whole channels with probability p while training (the kept ones scaled by
    1/(1−p)); the identity in eval mode."""

    def forward(self, x: Tensor) -> Tensor:
        """x with whole channels dropped (training), or x (eval)."""
        return dropout2d(x, self.p, self.training)
