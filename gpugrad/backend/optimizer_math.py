"""Optimizer primitives: fused parameter updates on raw (flat) arrays.

The NumPy twins of the fused CUDA kernels; mixed into `Backend`, so `self.xp` is the array module.
"""

from __future__ import annotations


class OptimizerPrimitives:
    """Fused optimizer updates, written with `self.xp` (NumPy or CuPy)."""
