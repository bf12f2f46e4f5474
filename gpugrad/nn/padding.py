"""F.pad: PyTorch's padding with its argument order (pairs from the last axis backwards)
and modes constant, reflect and replicate.

Constant padding is the `pad` op (negative amounts crop, as in PyTorch). Reflect and
replicate padding pick elements of the input with an index array along each padded axis,
so they are differentiable through indexing (gradients of repeated elements add up).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ArgumentError, ShapeError
from ..ops import getitem, take
from ..ops import pad as pad_constant
from ..tensor import Tensor
from .arguments import tensor_arg

PAD_MODES = ("constant", "reflect", "replicate")


def _widths(x: Tensor, pad: Sequence[int], mode: str) -> list[tuple[int, int]]:
    """(before, after) for every axis of x, from PyTorch's flat last-axis-first `pad`."""
    if mode not in PAD_MODES:
        raise ArgumentError(f"pad: mode must be one of {PAD_MODES}, got {mode!r}")
    if not isinstance(pad, Sequence) or isinstance(pad, str):
        raise ArgumentError(f"pad: pad must be a sequence of ints, got {pad!r}")
    pad = tuple(pad)
    if not all(isinstance(p, int) and not isinstance(p, bool) for p in pad):
        raise ArgumentError(f"pad: the pad amounts must be ints, got {pad}")
    if len(pad) % 2 or len(pad) > 2 * x.ndim:
        raise ShapeError(
            f"pad: needs an even number of amounts, two per padded axis (at most {2 * x.ndim} "
            f"for an input of shape {x.shape}), got {len(pad)}: {pad}"
        )
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    for axis, (before, after) in enumerate(widths):
        n = x.shape[axis]
        if mode == "constant":
            if n + min(before, 0) + min(after, 0) < 0:
                raise ShapeError(f"pad: {pad} crops axis {axis} of size {n} below zero")
            continue
        if before < 0 or after < 0:
            raise ShapeError(f"pad: {mode} padding takes no negative amounts, got {pad}")
        if (before or after) and (n == 0 or (mode == "reflect" and max(before, after) >= n)):
            need = "be shorter than" if mode == "reflect" else "have at least one element for"
            raise ShapeError(
                f"pad: {mode} padding of ({before}, {after}) on axis {axis} of size {n}: "
                f"the axis must {need} the padding"
            )
    return widths


def _source_index(n: int, before: int, after: int, mode: str) -> list[int]:
    """For each position of the padded axis, the input position it copies."""
    positions = range(-before, n + after)
    if mode == "replicate":
        return [min(max(i, 0), n - 1) for i in positions]
    period = 2 * (n - 1)  # reflect: mirror at both ends, the edge element not repeated
    return [n - 1 - abs((i % period) - (n - 1)) if period else 0 for i in positions]


def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad x as torch.nn.functional.pad does: `pad` lists (before, after) amounts starting
    from the last axis, e.g. (1, 2) pads the last axis, (1, 1, 2, 2) the last two.
    `mode` is "constant" (with `value`; negative amounts crop), "reflect" (mirror without
    repeating the edge; each amount must be smaller than its axis) or "replicate" (repeat
    the edge)."""
    tensor_arg("pad", "input", x)
    widths = _widths(x, pad, mode)
    if mode == "constant":
        crop = tuple(slice(-min(b, 0), n + min(a, 0)) for (b, a), n in zip(widths, x.shape))
        if any(b < 0 or a < 0 for b, a in widths):
            x = getitem(x, crop)
        return pad_constant(x, [(max(b, 0), max(a, 0)) for b, a in widths], value=value)
    for axis, (before, after) in enumerate(widths):
        if before or after:
            index = _source_index(x.shape[axis], before, after, mode)
            x = take(x, x._backend.asarray(index, dtype="int64"), axis)
    return x
