"""Data: datasets, a batching DataLoader, the bundled digits, synthetic sets and an MNIST reader.

```python
from gpugrad.data import DataLoader, TensorDataset, load_digits, train_test_split
X, y = load_digits()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=0)
loader = DataLoader(TensorDataset(X_train, y_train), batch_size=64, shuffle=True, seed=0)
for xb, yb in loader: ...
```
"""

from ..errors import DataFormatError
from .dataset import ConcatDataset, Dataset, Subset, TensorDataset, train_test_split
from .digits import load_digits
from .distributed_sampler import DistributedSampler
from .loader import DataLoader, default_collate
from .mnist import load_mnist, read_idx
from .sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from .split import random_split
from .synthetic import make_moons, make_regression, make_spirals

__all__ = [
    "BatchSampler",
    "ConcatDataset",
    "DataFormatError",
    "DataLoader",
    "Dataset",
    "DistributedSampler",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "WeightedRandomSampler",
    "default_collate",
    "load_digits",
    "load_mnist",
    "make_moons",
    "make_regression",
    "make_spirals",
    "random_split",
    "read_idx",
    "train_test_split",
]
