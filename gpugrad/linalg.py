"""gg.linalg: linear-algebra functions under PyTorch's (and NumPy's) module name."""

from __future__ import annotations

from .ops.norm import vector_norm

__all__ = ["vector_norm"]
