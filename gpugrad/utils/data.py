"""`gpugrad.data` at PyTorch's address `torch.utils.data`: the same classes, not copies, so a
Dataset subclassed from either name works with either DataLoader."""

from ..data import *  # noqa: F403
from ..data import __all__  # noqa: F401
