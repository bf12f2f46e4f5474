"""`gg.backends`: the availability flags PyTorch programs test before choosing a device.

gpugrad computes on NumPy (cpu) or CuPy (cuda) only, so Apple's Metal backend is never there:
`gg.backends.mps.is_available()` is False everywhere, and a program that checks it falls back to
the cpu or cuda branch it has.
"""

from __future__ import annotations

from types import SimpleNamespace


def _false() -> bool:
    """Never available in gpugrad."""
    return False


mps = SimpleNamespace(is_available=_false, is_built=_false)
