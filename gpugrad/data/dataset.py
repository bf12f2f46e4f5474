"""Datasets: the indexable collections a `DataLoader` draws batches from, and a seeded split."""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _args
from ..backend import get_backend
from ..errors import ArgumentError, ArgumentTypeError, IndexOutOfRangeError, ShapeError
from ..tensor import Tensor


def make_generator(seed: int | None) -> np.random.Generator:
    """A NumPy generator for `seed`; with None, seeded from gpugrad's cpu generator, so
    `gg.manual_seed(n)` makes the draws repeat."""
    if seed is None:
        seed = draw_seed()
    return np.random.default_rng(_args.seed("seed", seed))


def draw_seed() -> int:
    """A fresh non-negative seed drawn from gpugrad's (seedable) cpu random state."""
    return int(get_backend("cpu").random_integers(0, 2**63 - 1, (), np.int64))


class Dataset(ABC):
    """A collection of samples: `len(ds)` samples, `ds[i]` the i-th one (0 <= i < len)."""

    @abstractmethod
    def __len__(self) -> int:
        """The number of samples."""

    @abstractmethod
    def __getitem__(self, index: int) -> Any:
        """The sample at `index`."""


def check_dataset(owner: str, dataset: Any, name: str = "dataset") -> Any:
    """A map-style dataset: anything with __len__ and __getitem__ (a Dataset, a Tensor, an
    array, a list). Returns it."""
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise ArgumentTypeError(
            f"{owner}: {name} must have __len__ and __getitem__, got "
            f"{type(dataset).__name__} {dataset!r}"
        )
    return dataset


def index_array(owner: str, indices: Any) -> np.ndarray:
    """Sample indices (a sequence or array of ints) as a flat int64 array: 2.5 or "ab" are
    not indices."""
    array = np.asarray(indices) if isinstance(indices, (Sequence, np.ndarray, range)) else None
    if array is None or isinstance(indices, str) or (array.size and array.dtype.kind not in "iu"):
        raise ArgumentTypeError(f"{owner}: indices must be a sequence of ints, got {indices!r}")
    return array.astype(np.int64).reshape(-1)


def _length(data: Any) -> int:
    shape = getattr(data, "shape", None)
    if shape is None or len(shape) == 0:
        raise ShapeError(
            f"TensorDataset needs tensors or arrays with at least one dimension, "
            f"got {type(data).__name__} of shape {shape}"
        )
    return int(shape[0])


class TensorDataset(Dataset):
    """Samples that are rows of equally long tensors (or NumPy arrays): `ds[i]` is the tuple
    `(t[i] for t in tensors)`.

    A `DataLoader` over a TensorDataset slices every tensor once per batch, which is far faster
    than collating sample by sample.
    """

    def __init__(self, *tensors: Tensor | np.ndarray) -> None:
        if not tensors:
            raise ArgumentError("TensorDataset needs at least one tensor, got none")
        for t in tensors:
            if not isinstance(t, Tensor) and not isinstance(t, np.ndarray):
                raise ArgumentTypeError(
                    f"TensorDataset takes gpugrad Tensors or NumPy arrays, got {type(t).__name__}"
                )
        lengths = [_length(t) for t in tensors]
        if len(set(lengths)) != 1:
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
            raise ShapeError(
                f"TensorDataset tensors must have the same first dimension, got shapes {shapes}"
            )
        self.tensors = tensors

    def __len__(self) -> int:
        return _length(self.tensors[0])

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return tuple(t[index] for t in self.tensors)


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset: Any, indices: Sequence[int] | np.ndarray) -> None:
        check_dataset("Subset", dataset)
        idx = index_array("Subset", indices)
        n = len(dataset)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexOutOfRangeError(
                f"Subset indices must lie in [{-n}, {n}) for a dataset of {n}, got "
                f"{int(idx.min() if idx.min() < -n else idx.max())}"
            )
        self.dataset = dataset
        self.indices = idx % n if n else idx  # non-negative, so loaders can compose them

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]


class ConcatDataset(Dataset):
    """The samples of several datasets one after another: first all of `datasets[0]`, then
    all of `datasets[1]`, and so on."""

    def __init__(self, datasets: Sequence[Any]) -> None:
        if not isinstance(datasets, Sequence) or isinstance(datasets, str):
            raise ArgumentTypeError(f"ConcatDataset takes a list of datasets, got {datasets!r:.60}")
        self.datasets = list(datasets)
        if not self.datasets:
            raise ArgumentError("ConcatDataset needs at least one dataset, got none")
        for i, dataset in enumerate(self.datasets):
            check_dataset("ConcatDataset", dataset, f"datasets[{i}]")
        # cumulative_sizes[k] = samples in datasets[0..k], as in PyTorch
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return int(self.cumulative_sizes[-1])

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if not -n <= index < n:
            raise IndexOutOfRangeError(
                f"index {index} is out of range for a ConcatDataset of {n} samples"
            )
        index %= n
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


def _split_sizes(n: int, test_size: float | int) -> int:
    if isinstance(test_size, (bool, np.bool_)):
        raise ArgumentError(f"test_size must be a fraction in (0, 1) or a count, got {test_size!r}")
    if isinstance(test_size, (int, np.integer)):
        n_test = int(test_size)
    elif isinstance(test_size, (float, np.floating)) and 0.0 < test_size < 1.0:
        n_test = round(float(test_size) * n)
    else:
        raise ArgumentError(f"test_size must be a fraction in (0, 1) or a count, got {test_size!r}")
    if not 0 < n_test < n:
        raise ArgumentError(
            f"test_size={test_size!r} of {n} samples leaves {n_test} for testing and "
            f"{n - n_test} for training; both need at least one"
        )
    return n_test


def _stratified_test_indices(y: np.ndarray, n_test: int, rng: np.random.Generator) -> np.ndarray:
    classes, labels = np.unique(y, return_inverse=True)
    counts = np.bincount(labels, minlength=classes.size)
    quota = counts * (n_test / y.shape[0])
    take = np.floor(quota).astype(np.int64)
    # Hand the leftover test slots to the classes with the largest fractional quota (random
    # tie-break), so the test set has exactly n_test samples in the right proportions.
    short = n_test - int(take.sum())
    if short:
        ranking = np.lexsort((rng.random(classes.size), -(quota - take)))
        take[ranking[:short]] += 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[: take[c]] for c in range(classes.size)]
    return np.concatenate(picked)


def train_test_split(
    X: Any, y: Any, test_size: float | int = 0.2, seed: int | None = 0, stratify: bool = False
) -> tuple[Any, Any, Any, Any]:
    """Split `(X, y)` into `(X_train, X_test, y_train, y_test)`, shuffled by `seed`.

    `test_size` is a fraction of the samples or a count. The same seed always gives the same
    split. With `stratify=True` each class of `y` keeps its share in both parts.
    """
    n = int(np.shape(X)[0]) if np.ndim(X) else 0
    n_y = int(np.shape(y)[0]) if np.ndim(y) else 0
    if n != n_y:
        raise ShapeError(
            f"train_test_split needs X and y with the same number of samples, "
            f"got shapes {tuple(np.shape(X))} and {tuple(np.shape(y))}"
        )
    n_test = _split_sizes(n, test_size)
    rng = make_generator(seed)
    if stratify:
        test = _stratified_test_indices(np.asarray(y), n_test, rng)
    else:
        test = rng.permutation(n)[:n_test]
    in_test = np.zeros(n, dtype=bool)
    in_test[test] = True
    # Shuffle each part so classes are interleaved, not grouped.
    test = rng.permutation(np.flatnonzero(in_test))
    train = rng.permutation(np.flatnonzero(~in_test))
    X, y = np.asarray(X), np.asarray(y)
    return X[train], X[test], y[train], y[test]
