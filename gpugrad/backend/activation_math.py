"""Activation primitives: forward and backward of each activation on raw arrays.

These are the NumPy twins of the fused CUDA kernels: the CuPy backend overrides them with one
kernel each, and tests compare the two. They are mixed into `Backend`, so `self.xp` is the
array module.
"""

from __future__ import annotations


class ActivationPrimitives:
    """Fused activation forward/backward, written with `self.xp` (NumPy or CuPy)."""
