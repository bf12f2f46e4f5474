"""Loss primitives: the fused softmax cross-entropy on raw arrays.

The NumPy twin of the fused CUDA kernel; mixed into `Backend`, so `self.xp` is the array module.

Both directions read only the logits and the labels, so backward needs nothing from forward
but its inputs: it recomputes the softmax rather than keeping a (rows, classes) array alive.
Every row is shifted by its largest logit before exponentiating, so logits of ±1e4 (or any
finite size) give finite losses and gradients.
"""

from __future__ import annotations

from typing import Any

from .activation_math import written_into


def _valid_rows(xp: Any, labels: Any, ignore_index: int | None) -> tuple[Any, Any]:
    """(rows whose label is not ignore_index, the labels with those rows' set to 0 so they
    index safely); (None, labels) when ignore_index is None: no row is ignored."""
    if ignore_index is None:
        return None, labels
    valid = labels != ignore_index
    return valid, xp.where(valid, labels, 0)


class LossPrimitives:
    """Fused loss forward/backward, written with `self.xp` (NumPy or CuPy)."""

    def softmax_cross_entropy_forward(
        self,
        logits: Any,
        labels: Any,
        ignore_index: int | None = -100,
        label_smoothing: float = 0.0,
        *,
        into: Any = None,
    ) -> Any:
        """Per-row loss −log softmax(logits)[label] for logits (rows, classes) and integer
        labels (rows,); 0 for rows labelled `ignore_index` (None: the caller knows no label
        is). With label smoothing ε the target is (1−ε)·one_hot + ε/classes."""
        xp = self.xp
        shifted = logits - self.max_along(logits, 1)
        log_norm = xp.log(self.sum_along(xp.exp(shifted), 1)[:, 0])  # log Σ exp, shifted
        valid, safe = _valid_rows(xp, labels, ignore_index)
        picked = shifted[xp.arange(logits.shape[0]), safe]
        # −log p_y = log_norm − shifted_y; the smoothing part is the mean of −log p over classes.
        loss = log_norm - picked
        if label_smoothing:
            spread = log_norm - shifted.mean(axis=1)
            loss = loss * (1 - label_smoothing) + spread * label_smoothing
        return written_into(loss if valid is None else xp.where(valid, loss, 0), into)

    def softmax_cross_entropy_backward(
        self,
        g: Any,
        logits: Any,
        labels: Any,
        ignore_index: int | None = -100,
        label_smoothing: float = 0.0,
        *,
        into: Any = None,
    ) -> Any:
        """Gradient w.r.t. the logits given g = dL/d(per-row loss): (softmax − target)·g
        row by row, zero on ignored rows. Both write into `into` when given."""
        xp = self.xp
        rows, classes = logits.shape
        # One (rows, classes) array, edited in place: the shift, exp, normalisation and the
        # target are the same operations as forming each as a new array, one pass fewer each.
        grad = logits - self.max_along(logits, 1)
        xp.exp(grad, out=grad)
        xp.divide(grad, self.sum_along(grad, 1), out=grad)
        if label_smoothing:
            grad -= label_smoothing / classes
        valid, safe = _valid_rows(xp, labels, ignore_index)
        grad[xp.arange(rows), safe] -= 1 - label_smoothing
        if valid is not None:
            scale = xp.where(valid, g, 0)[:, None]
        else:  # one value per row, or one for all (a total's gradient): broadcasting does it
            scale = g[:, None] if getattr(g, "ndim", 0) else xp.asarray(g)
        if scale.dtype != grad.dtype:  # a wider g promotes the result, as grad * g would
            return written_into(grad * scale, into)
        out = grad if into is None else into
        return xp.multiply(grad, scale, out=out)
