"""Loss primitives: the fused softmax cross-entropy on raw arrays.

The NumPy twin of the fused CUDA kernel; mixed into `Backend`, so `self.xp` is the array module.
"""

from __future__ import annotations


class LossPrimitives:
    """Fused loss forward/backward, written with `self.xp` (NumPy or CuPy)."""
