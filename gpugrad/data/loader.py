"""DataLoader: batches of a dataset as Tensors on a target device, shuffled reproducibly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from numbers import Number
from typing import Any

import numpy as np

from ..backend import Device, get_backend
from ..backend import device as parse_device
from ..backend.base import Backend
from ..errors import ShapeError
from ..tensor import Tensor, _make, to_array
from .dataset import Subset, TensorDataset, check_seed, draw_seed


def _host_to(array: Any, backend: Backend) -> Tensor:
    """A NumPy array (or nested Python numbers) as a tensor of `backend`: one copy at most."""
    return _make(to_array(array, backend), backend, None)


def _stack_tensors(items: list[Tensor], backend: Backend) -> Tensor:
    if all(t._backend is backend for t in items):
        return _make(backend.xp.stack([t.data for t in items]), backend, None)
    # Gather on the host first, so moving to the device is one copy for the whole batch.
    return _host_to(np.stack([t.numpy() for t in items]), backend)


def default_collate(items: list[Any], device: str | Device | None = None) -> Any:
    """Stack a list of samples into a batch on `device` (default cpu).

    Tensors, NumPy arrays and numbers become one Tensor with a leading batch axis; tuples
    (named or not) and dicts are collated field by field. Python floats give float32 and
    ints int64, as in `gg.tensor`; arrays keep their dtype.
    """
    return _collate(items, get_backend(device))


def _collate(items: list[Any], backend: Backend) -> Any:
    first = items[0]
    if isinstance(first, Tensor):
        return _stack_tensors(items, backend)
    if isinstance(first, tuple):
        fields = [_collate(list(column), backend) for column in zip(*items)]
        return type(first)(*fields) if hasattr(first, "_fields") else tuple(fields)
    if isinstance(first, dict):
        return {key: _collate([item[key] for item in items], backend) for key in first}
    if isinstance(first, (np.ndarray, np.generic)):
        shapes = {np.shape(item) for item in items}
        if len(shapes) != 1:
            raise ShapeError(f"cannot stack samples of different shapes {sorted(shapes)}")
        return _host_to(np.stack(items), backend)
    if isinstance(first, (Number, list)):
        try:
            return _host_to(items, backend)
        except ValueError as err:  # ragged nested lists
            raise ShapeError(f"cannot stack samples of different lengths: {err}") from None
    raise TypeError(
        f"default collation cannot batch samples of type {type(first).__name__}; "
        "pass collate_fn to the DataLoader"
    )


def _take(data: Any, index: np.ndarray, backend: Backend) -> Tensor:
    """Rows `index` of a Tensor or NumPy array, as a tensor of `backend`.

    One fancy-index where the data lives, then (only if needed) one copy to the target.
    """
    if isinstance(data, Tensor):
        source = data._backend
        rows = data.data[source.asarray(index)]
        if source is backend:
            return _make(rows, backend, None)
        rows = source.to_numpy(rows)
    else:
        rows = data[index]
    return _host_to(rows, backend)


def _fast_source(dataset: Any) -> tuple[tuple[Any, ...] | None, Any, np.ndarray | None]:
    """For data that can be sliced a batch at a time, return (arrays, single array, index map).

    TensorDatasets give their tensors; a bare Tensor or NumPy array gives itself; a Subset of
    either maps batch indices through its own. Subclasses that change `__getitem__` (to
    transform samples, say) and anything else give (None, None, None): samples one by one.
    """
    getitem = getattr(type(dataset), "__getitem__", None)
    if isinstance(dataset, TensorDataset) and getitem is TensorDataset.__getitem__:
        return dataset.tensors, None, None
    if isinstance(dataset, (Tensor, np.ndarray)) and len(dataset.shape) > 0:
        return None, dataset, None
    if isinstance(dataset, Subset) and getitem is Subset.__getitem__:
        arrays, single, inner = _fast_source(dataset.dataset)
        if arrays is None and single is None:
            return None, None, None
        mapped = dataset.indices if inner is None else inner[dataset.indices]
        return arrays, single, mapped
    return None, None, None


class DataLoader:
    """Iterate over `dataset` in batches of `batch_size` samples, as Tensors on `device`.

    - shuffle: a new order every epoch. The order of epoch k depends only on (`seed`, k), so
      two loaders with the same seed agree epoch by epoch and `set_epoch(k)` resumes a run.
      With `seed=None` a seed is drawn from gpugrad's random state when the loader is made,
      so `gg.manual_seed(n)` makes it repeat.
    - drop_last: leave out a last, smaller batch.
    - collate_fn: turns a list of samples into a batch (its result is returned as is);
      by default samples are stacked into Tensors on `device` (see `default_collate`).

    TensorDatasets, Tensors and NumPy arrays (and Subsets of them) take a fast path: each
    tensor is indexed once per batch and copied to the device once.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        device: str | Device | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.device = parse_device(device)
        self._backend = get_backend(self.device)  # fails now if the device is unusable
        self.collate_fn = collate_fn
        if seed is not None:
            self.seed: int | None = check_seed(seed)
        else:
            self.seed = draw_seed() if self.shuffle else None
        self.epoch = 0

    def __len__(self) -> int:
        """The number of batches per epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use epoch `epoch`'s order (to resume a run)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of epoch `epoch`, in the order they are served."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        # A generator keyed by (seed, epoch): epochs differ, and each one can be replayed alone.
        return np.random.default_rng([self.seed, int(epoch)]).permutation(n)

    def __iter__(self) -> Iterator[Any]:
        """Start the next epoch: its order is fixed now, even if iteration never starts."""
        order = self.order(self.epoch)
        self.epoch += 1
        return self._batches(order)

    def _batches(self, order: np.ndarray) -> Iterator[Any]:
        arrays, single, mapping = (None, None, None)
        if self.collate_fn is None:
            arrays, single, mapping = _fast_source(self.dataset)
        if mapping is not None:
            order = mapping[order]
        n, size, backend = order.shape[0], self.batch_size, self._backend
        stop = n - n % size if self.drop_last else n
        for start in range(0, stop, size):
            index = order[start : start + size]
            if arrays is not None:
                yield tuple(_take(data, index, backend) for data in arrays)
            elif single is not None:
                yield _take(single, index, backend)
            else:
                items = [self.dataset[int(i)] for i in index]
                yield self.collate_fn(items) if self.collate_fn else _collate(items, backend)

    def __repr__(self) -> str:
        return (
            f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, "
            f"batch_size={self.batch_size}, shuffle={self.shuffle}, drop_last={self.drop_last}, "
            f"device='{self.device}')"
        )
