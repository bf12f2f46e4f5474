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


class LossPrimitives:
    """Fused loss forward/backward, written with `self.xp` (NumPy or CuPy)."""

    def softmax_cross_entropy_forward(
        self,
        logits: Any,
        labels: Any,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        *,
        into: Any = None,
    ) -> Any:
        """Per-row loss −log softmax(logits)[label] for logits (rows, classes) and integer
        labels (rows,); 0 for rows labelled `ignore_index`. With label smoothing ε the
        target is (1−ε)·one_hot + ε/classes."""
        xp = self.xp
        shifted = logits - self.max_along(logits, 1)
        log_norm = xp.log(self.sum_along(xp.exp(shifted), 1)[:, 0])  # log Σ exp, shifted
        valid = labels != ignore_index
        safe = xp.where(valid, labels, 0)
        picked = shifted[xp.arange(logits.shape[0]), safe]
        # −log p_y = log_norm − shifted_y; the smoothing part is the mean of −log p over classes.
        loss = log_norm - picked
        if label_smoothing:
            spread = log_norm - shifted.mean(axis=1)
            loss = loss * (1 - label_smoothing) + spread * label_smoothing
        return written_into(xp.where(valid, loss, 0), into)

    def softmax_cross_entropy_backward(
        self,
        g: Any,
        logits: Any,
        labels: Any,
        ignore_index: int = -100,
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
        valid = labels != ignore_index
        grad[xp.arange(rows), xp.where(valid, labels, 0)] -= 1 - label_smoothing
        scale = xp.where(valid, g, 0)[:, None]
        if scale.dtype != grad.dtype:  # a wider g promotes the result, as grad * g would
            return written_into(grad * scale, into)
        out = grad if into is None else into
        return xp.multiply(grad, scale, out=out)
