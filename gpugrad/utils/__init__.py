"""PyTorch's `torch.utils` path, so `gg.utils.data.DataLoader` finds gpugrad's data package.

A program ported by renaming `torch` to `gg` says `gg.utils.data.DataLoader` and
`from gpugrad.utils.data import Dataset`; both are `gpugrad.data` under its PyTorch address.
"""

from . import data

__all__ = ["data"]
