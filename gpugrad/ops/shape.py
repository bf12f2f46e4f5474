"""Shape ops: reshape, transpose, squeeze, broadcast, concatenate, stack, pad, flip, tile...

Their gradients only move numbers around: each backward undoes the forward's rearrangement.
Ops whose result is a view of the input share its version counter, so an in-place change
through either is seen by backward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import _args
from ..autograd import Function, share_version
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from ._support import as_tensor_like, normalize_axes, normalize_axis, tensor_among


def _shape_arg(shape: tuple[Any, ...]) -> tuple[int, ...]:
    """Accept f(2, 3) and f((2, 3)) alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _share_version(out: Tensor, x: Tensor) -> Tensor:
    """Let a view share its base's version counter, so in-place edits through either count."""
    if out.data.base is not None and x._backend.xp.may_share_memory(out.data, x.data):
        share_version(out, x)
    return out


class Reshape(Function):
    is_view = True

    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, xp, g):
        return g.reshape(self.in_shape)


class Transpose(Function):
    is_view = True

    def forward(self, x, axes):
        self.axes = axes
        return x.transpose(axes)

    def backward(self, xp, g):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return g.transpose(tuple(inverse))


class BroadcastTo(Function):
    is_view = True

    def forward(self, x, shape):
        self.in_shape = x.shape
        return self.xp.broadcast_to(x, shape)

    def backward(self, xp, g):
        from ._support import unbroadcast

        return unbroadcast(g, self.in_shape)


class Concatenate(Function):
    def forward(self, *arrays, axis):
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return self.xp.concatenate(arrays, axis=axis)

    def backward(self, xp, g):
        pieces, start = [], 0
        lead = (slice(None),) * self.axis
        for n in self.sizes:
            pieces.append(g[(*lead, slice(start, start + n))])
            start += n
        return tuple(pieces)


class Stack(Function):
    def forward(self, *arrays, axis):
        self.axis = axis
        self.count = len(arrays)
        return self.xp.stack(arrays, axis=axis)

    def backward(self, xp, g):
        lead = (slice(None),) * self.axis
        return tuple(g[(*lead, i)] for i in range(self.count))


class Pad(Function):
    """Constant padding; the gradient is the un-padded middle of the output gradient."""

    def forward(self, x, pad_width, value):
        self.middle = tuple(slice(b, b + n) for (b, _), n in zip(pad_width, x.shape))
        return self.xp.pad(x, pad_width, mode="constant", constant_values=value)

    def backward(self, xp, g):
        return g[self.middle]


class Flip(Function):
    is_view = True

    def forward(self, x, axis):
        self.axis = axis
        return self.xp.flip(x, axis)

    def backward(self, xp, g):
        return xp.flip(g, self.axis)


class Roll(Function):
    """Shift elements along axes, wrapping around; the gradient shifts back."""

    def forward(self, x, shift, axis):
        self.shift, self.axis = shift, axis
        return self.xp.roll(x, shift, axis)

    def backward(self, xp, g):
        back = tuple(-s for s in self.shift) if isinstance(self.shift, tuple) else -self.shift
        return xp.roll(g, back, self.axis)


# --- the public functions ---------------------------------------------------------------------
def reshape(x: Tensor, *shape: Any) -> Tensor:
    """The same elements in a new shape (one axis may be -1); a view when possible."""
    shape = _shape_arg(shape)
    if shape == x.shape:
        return x
    return _share_version(Reshape.apply(x, shape=shape), x)


def flatten(x: Tensor, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes start_axis..end_axis into one (all of them by default)."""
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = (
        normalize_axis(start_axis, x.ndim, x.shape),
        normalize_axis(end_axis, x.ndim, x.shape),
    )
    merged = 1
    for n in x.shape[start : end + 1]:
        merged *= n
    return reshape(x, (*x.shape[:start], merged, *x.shape[end + 1 :]))


def transpose(x: Tensor, *axes: Any) -> Tensor:
    """Reorder axes. No axes reverses them (NumPy's `.T`); two ints swap those two axes
    (PyTorch's `transpose(0, 1)`); a tuple, or three or more ints, is a full permutation."""
    n = x.ndim
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        perm = tuple(axes[0])
    elif not axes:
        perm = tuple(range(n))[::-1]
    elif len(axes) == 2:
        a, b = (normalize_axis(ax, n, x.shape) for ax in axes)
        swapped = list(range(n))
        swapped[a], swapped[b] = swapped[b], swapped[a]
        perm = tuple(swapped)
    else:
        perm = axes
    perm = tuple(normalize_axis(ax, n, x.shape) for ax in perm)
    if sorted(perm) != list(range(n)):
        raise ShapeError(f"axes {axes} are not a permutation of the {n} axes of shape {x.shape}")
    return _share_version(Transpose.apply(x, axes=perm), x)


def permute(x: Tensor, *axes: Any) -> Tensor:
    """Reorder all axes: `permute(x, 2, 0, 1)`."""
    axes = _shape_arg(axes)
    if len(axes) != x.ndim:
        raise ShapeError(f"permute needs {x.ndim} axes for shape {x.shape}, got {axes}")
    return transpose(x, tuple(axes))


def swapaxes(x: Tensor, axis1: int, axis2: int) -> Tensor:
    """Exchange two axes."""
    return transpose(x, axis1, axis2)


def squeeze(x: Tensor, axis: int | tuple[int, ...] | None = None) -> Tensor:
    """Drop size-1 axes (only `axis` when given; it must have size 1)."""
    if axis is None:
        shape = tuple(n for n in x.shape if n != 1)
    else:
        axes = set(normalize_axes(axis, x.ndim) or ())
        for a in axes:
            if x.shape[a] != 1:
                raise ShapeError(f"cannot squeeze axis {a} of shape {x.shape}: its size is not 1")
        shape = tuple(n for i, n in enumerate(x.shape) if i not in axes)
    return reshape(x, shape)


def unsqueeze(x: Tensor, axis: int) -> Tensor:
    """Insert a size-1 axis at position `axis` (negative counts from the end of the result)."""
    axis = normalize_axis(axis, x.ndim + 1, x.shape)
    return reshape(x, (*x.shape[:axis], 1, *x.shape[axis:]))


expand_dims = unsqueeze


def broadcast_to(x: Tensor, *shape: Any) -> Tensor:
    """A read-only view of x repeated along new or size-1 axes to `shape`."""
    shape = _shape_arg(shape)
    if shape == x.shape:
        return x
    return _share_version(BroadcastTo.apply(x, shape=shape), x)


def expand(x: Tensor, *sizes: Any) -> Tensor:
    """PyTorch's expand: broadcast_to where -1 keeps that axis's size."""
    sizes = _shape_arg(sizes)
    lead = len(sizes) - x.ndim
    shape = tuple(x.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(sizes))
    return broadcast_to(x, shape)


def _tensors(tensors: Sequence[Any], name: str) -> list[Tensor]:
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise DTypeError(
            f"{name} takes a list or tuple of Tensors, got {type(tensors).__name__}"
            + (" (a single Tensor: wrap it as [t])" if isinstance(tensors, Tensor) else "")
        )
    tensors = list(tensors)
    if not tensors:
        raise ShapeError(f"{name} needs at least one tensor")
    like = tensor_among(name, *tensors)
    return [as_tensor_like(t, like) for t in tensors]


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    tensors = _tensors(tensors, "concatenate")
    return Concatenate.apply(*tensors, axis=normalize_axis(axis, tensors[0].ndim, tensors[0].shape))


concat = cat = concatenate


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    tensors = _tensors(tensors, "stack")
    return Stack.apply(*tensors, axis=normalize_axis(axis, tensors[0].ndim + 1, tensors[0].shape))


def pad(x: Tensor, pad_width: Any, value: float = 0.0) -> Tensor:
    """Constant padding with NumPy's `pad_width`: an int, (before, after), or one pair per axis."""
    if isinstance(pad_width, int):
        widths = ((pad_width, pad_width),) * x.ndim
    else:
        try:
            pw = tuple(pad_width)
            if len(pw) == 2 and all(isinstance(p, int) for p in pw):
                widths = (pw,) * x.ndim
            else:
                widths = tuple(tuple(p) for p in pw)
        except TypeError:
            raise ShapeError(f"pad_width {pad_width!r} is not an int, a pair or pairs") from None
    if len(widths) != x.ndim or any(b < 0 or a < 0 for b, a in widths):
        raise ShapeError(f"pad_width {pad_width} does not fit shape {x.shape}")
    return Pad.apply(x, pad_width=widths, value=value)


def flip(x: Tensor, axis: int | tuple[int, ...] | None = None) -> Tensor:
    """Reverse the order of elements along `axis` (all axes when None); a view of x."""
    return _share_version(Flip.apply(x, axis=axis), x)


def repeat(x: Tensor, repeats: int | Sequence[int], axis: int | None = None) -> Tensor:
    """Repeat each element `repeats` times along `axis` (flattened when None), as NumPy.

    (PyTorch's Tensor.repeat, which repeats the whole tensor, is `tile`.)
    """
    from .index import take

    counts = repeats if isinstance(repeats, (list, tuple)) else [repeats]
    for r in counts if not hasattr(repeats, "shape") else ():  # arrays: checked by the backend
        if isinstance(r, bool) or not hasattr(r, "__index__") or not 0 <= r <= _args.MAX_ELEMENTS:
            raise ShapeError(f"repeat: repeats must be ints >= 0, got {repeats!r}")
    if axis is None:
        x, axis = flatten(x), 0
    axis = normalize_axis(axis, x.ndim, x.shape)
    backend = x._backend
    n = x.shape[axis]
    try:
        index = backend.repeat(backend.arange(n), repeats)
    except (ValueError, TypeError) as exc:  # an array of repeats: wrong length or dtype
        raise ShapeError(
            f"repeat: repeats {repeats!r} do not fit axis {axis} of {n}: {exc}"
        ) from None
    return take(x, index, axis)


def tile(x: Tensor, reps: int | Sequence[int]) -> Tensor:
    """Repeat the whole tensor `reps` times along each axis, as NumPy's tile."""
    if isinstance(reps, Sequence) and not isinstance(reps, str):
        reps = tuple(_args.size("tile", "reps", r, minimum=0) for r in reps)
    else:
        reps = (_args.size("tile", "reps", reps, minimum=0),)
    ndim = max(len(reps), x.ndim)
    reps = (1,) * (ndim - len(reps)) + reps
    x = reshape(x, (1,) * (ndim - x.ndim) + x.shape)
    # Give every axis a new axis in front, broadcast that one to the repeat count, then merge.
    interleaved = tuple(d for n in x.shape for d in (1, n))
    target = tuple(d for r, n in zip(reps, x.shape) for d in (r, n))
    out = broadcast_to(reshape(x, interleaved), target)
    return reshape(out, tuple(r * n for r, n in zip(reps, x.shape)))


def roll(x: Tensor, shift: int | Sequence[int], axis: int | Sequence[int] | None = None) -> Tensor:
    """Shift elements by `shift` places along `axis` (of the flattened tensor when None),
    wrapping around, as NumPy's roll and PyTorch's roll(shifts, dims)."""
    shifts = tuple(shift) if isinstance(shift, (tuple, list)) else shift
    if axis is None:
        if isinstance(shifts, tuple):
            raise ShapeError(f"roll: several shifts {shifts} need as many axes, got axis=None")
        return reshape(Roll.apply(flatten(x), shift=shifts, axis=0), x.shape)
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else axis
    if isinstance(shifts, tuple) != isinstance(axes, tuple) or (
        isinstance(shifts, tuple) and len(shifts) != len(axes)
    ):
        raise ShapeError(f"roll: shifts {shift} and axes {axis} must pair up one to one")
    for a in axes if isinstance(axes, tuple) else (axes,):
        normalize_axis(a, x.ndim, x.shape)
    return Roll.apply(x, shift=shifts, axis=axes)
