"""DataLoader: batches of a dataset as Tensors on a target device, shuffled reproducibly,
optionally loaded ahead by background workers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from numbers import Number
from typing import Any

import numpy as np

from .. import _args
from ..backend import Device, get_backend
from ..backend import device as parse_device
from ..backend.base import Backend
from ..errors import ArgumentError, ArgumentTypeError, IndexOutOfRangeError, ShapeError
from ..generator import Generator, generator_rng
from ..tensor import Tensor, _make, to_array
from .dataset import Subset, TensorDataset, check_dataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler
from .workers import WorkerPool, load_ahead


def _host_to(array: Any, backend: Backend, pin: bool = False) -> Tensor:
    """A NumPy array (or nested Python numbers) as a tensor of `backend`: one copy at most
    (with `pin`, staged in page-locked memory first where the backend is a GPU)."""
    if not pin:
        return _make(to_array(array, backend), backend, None)
    staged = backend.pin(np.ascontiguousarray(array))
    data = to_array(staged, backend)
    # A copy from page-locked memory runs asynchronously: wait for it, or `staged` could be
    # freed and its memory refilled with the next batch while the copy still reads it. (With
    # workers, this wait is theirs, not the training loop's.)
    backend.synchronize()
    return _make(data, backend, None)


def _stack_tensors(items: list[Tensor], backend: Backend, pin: bool) -> Tensor:
    shapes = {t.shape for t in items}
    if len(shapes) != 1:
        raise ShapeError(f"cannot stack samples of different shapes {sorted(shapes)}")
    if all(t._backend is backend for t in items):
        return _make(backend.xp.stack([t.data for t in items]), backend, None)
    # Gather on the host first, so moving to the device is one copy for the whole batch.
    return _host_to(np.stack([t.numpy() for t in items]), backend, pin)


def default_collate(items: list[Any], device: str | Device | None = None) -> Any:
    """Stack a list of samples into a batch on `device` (default cpu).

    Tensors, NumPy arrays and numbers become one Tensor with a leading batch axis; tuples
    (named or not) and dicts are collated field by field. Python floats give float32 and
    ints int64, as in `gg.tensor`; arrays keep their dtype.
    """
    return _collate(items, get_backend(device))


def _collate(items: list[Any], backend: Backend, pin: bool = False) -> Any:
    if not items:
        raise ArgumentError("default_collate: cannot make a batch of no samples, got []")
    first = items[0]
    if isinstance(first, Tensor):
        return _stack_tensors(items, backend, pin)
    if isinstance(first, tuple):
        fields = [_collate(list(column), backend, pin) for column in zip(*items)]
        return type(first)(*fields) if hasattr(first, "_fields") else tuple(fields)
    if isinstance(first, dict):
        return {key: _collate([item[key] for item in items], backend, pin) for key in first}
    if isinstance(first, (np.ndarray, np.generic)):
        shapes = {np.shape(item) for item in items}
        if len(shapes) != 1:
            raise ShapeError(f"cannot stack samples of different shapes {sorted(shapes)}")
        return _host_to(np.stack(items), backend, pin)
    if isinstance(first, (Number, list)):
        try:
            return _host_to(items, backend)  # Python numbers: gg.tensor's dtype rules
        except ValueError as err:  # ragged nested lists
            raise ShapeError(f"cannot stack samples of different lengths: {err}") from None
    raise ArgumentTypeError(
        f"default collation cannot batch samples of type {type(first).__name__}; "
        "pass collate_fn to the DataLoader"
    )


def _take(data: Any, index: np.ndarray, backend: Backend, pin: bool) -> Tensor:
    """Rows `index` of a Tensor or NumPy array, as a tensor of `backend`.

    One fancy-index where the data lives, then (only if needed) one copy to the target.
    Indices are checked on the host first: CuPy would wrap an out-of-range one silently.
    """
    n = len(data)
    if index.size and (int(index.min()) < -n or int(index.max()) >= n):
        bad = int(index.min()) if int(index.min()) < -n else int(index.max())
        raise IndexOutOfRangeError(
            f"DataLoader: sample index {bad} is out of range for a dataset of {n} samples"
        )
    if isinstance(data, Tensor):
        source = data._backend
        rows = data.data[source.asarray(index)]
        if source is backend:
            return _make(rows, backend, None)
        rows = source.to_numpy(rows)
    else:
        rows = data[index]
    return _host_to(rows, backend, pin)


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


def _check_options(
    batch_size: Any, shuffle: bool, sampler: Any, batch_sampler: Any, drop_last: bool,
    num_workers: Any, prefetch_factor: Any, persistent_workers: bool, seed: Any,
    generator: Any,
) -> tuple[int | None, int, int]:  # fmt: skip
    """Validate the DataLoader options that depend on each other, as PyTorch does; returns
    (batch_size, num_workers, prefetch_factor)."""
    where = "DataLoader"
    _args.flag(where, "shuffle", shuffle)
    _args.flag(where, "drop_last", drop_last)
    _args.flag(where, "persistent_workers", persistent_workers)
    if batch_sampler is not None:
        if batch_size not in (1, None) or shuffle or sampler is not None or drop_last:
            raise ArgumentError(
                f"{where}: batch_sampler= decides the batches, so it excludes batch_size "
                f"(got {batch_size!r}), shuffle (got {shuffle!r}), sampler and drop_last "
                f"(got {drop_last!r})"
            )
        batch_size = None
    else:
        batch_size = _args.size(where, "batch_size", batch_size, minimum=1)
    if sampler is not None and shuffle:
        raise ArgumentError(f"{where}: sampler= decides the order, so shuffle must be False")
    if seed is not None:
        _args.seed(where, seed)
        if generator is not None:
            raise ArgumentError(f"{where}: give seed= or generator=, not both")
    generator_rng(generator, get_backend("cpu"), where)  # a cpu gg.Generator, or None
    num_workers = _args.size(where, "num_workers", num_workers, minimum=0)
    if num_workers == 0 and prefetch_factor is not None:
        raise ArgumentError(
            f"{where}: prefetch_factor={prefetch_factor!r} needs background workers "
            "(num_workers > 0)"
        )
    if num_workers == 0 and persistent_workers:
        raise ArgumentError(f"{where}: persistent_workers=True needs num_workers > 0")
    prefetch = 2 if prefetch_factor is None else prefetch_factor
    prefetch = _args.size(where, "prefetch_factor", prefetch, minimum=1)
    return batch_size, num_workers, prefetch


class DataLoader:
    """Iterate over `dataset` in batches of `batch_size` samples, as Tensors on `device`.

    - shuffle: a new order every epoch. The order of epoch k depends only on (`seed`, k), so
      two loaders with the same seed agree epoch by epoch and `set_epoch(k)` resumes a run.
      The seed is `seed`, or drawn from `generator` (a cpu `gg.Generator`), or from gpugrad's
      global random state when the loader is made, so `gg.manual_seed(n)` makes it repeat.
      (`generator` seeds only this default shuffle; give a sampler of your own its own.)
    - sampler: the indices to serve and their order (a `Sampler`, or any iterable of indices;
      excludes shuffle); batch_sampler: lists of indices, one per batch (excludes
      batch_size, shuffle, sampler and drop_last). `set_epoch` reaches either.
    - drop_last: leave out a last, smaller batch.
    - collate_fn: turns a list of samples into a batch (its result is returned as is);
      by default samples are stacked into Tensors on `device` (see `default_collate`).
    - num_workers > 0: that many background threads load batches ahead of the loop, at most
      `prefetch_factor * num_workers` (prefetch_factor defaults to 2), and hand them over in
      the same order as num_workers=0 would. An error in a worker is raised by the loop.
      The threads stop when the epoch ends or its iterator is dropped, or, with
      `persistent_workers=True`, live on for the next epochs.
    - pin_memory: host batches bound for a GPU are staged in page-locked memory, which
      copies faster, and each copy is waited for before the batch is handed over (best with
      num_workers > 0, so the workers do the waiting). Accepted, with no effect, on cpu.

    TensorDatasets, Tensors and NumPy arrays (and Subsets of them) take a fast path: each
    tensor is indexed once per batch and copied to the device once.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool = False,
        *,
        sampler: Sampler | Iterable[int] | None = None,
        batch_sampler: Iterable[list[int]] | None = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        generator: Generator | None = None,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        seed: int | None = None,
        device: str | Device | None = None,
    ) -> None:
        check_dataset("DataLoader", dataset)
        _args.flag("DataLoader", "pin_memory", pin_memory)
        if collate_fn is not None:
            _args.callable_("DataLoader", "collate_fn", collate_fn)
        batch_size, num_workers, prefetch = _check_options(
            batch_size, shuffle, sampler, batch_sampler, drop_last, num_workers,
            prefetch_factor, persistent_workers, seed, generator,
        )  # fmt: skip
        self.device = parse_device(device)
        self._backend = get_backend(self.device)  # fails now if the device is unusable
        if batch_sampler is None:
            if sampler is None:
                sampler = (
                    RandomSampler(dataset, generator=generator, seed=seed)
                    if shuffle
                    else SequentialSampler(dataset)
                )
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)  # type: ignore[arg-type]
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.seed: int | None = getattr(sampler, "seed", None)
        self.collate_fn = collate_fn
        self.num_workers = num_workers
        self.prefetch_factor = prefetch if num_workers else None
        self.persistent_workers = bool(persistent_workers)
        self.pin_memory = bool(pin_memory)
        self._pool: WorkerPool | None = None
        self.epoch = 0

    def __len__(self) -> int:
        """The number of batches per epoch."""
        return len(self.batch_sampler)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use epoch `epoch`'s order (to resume a run)."""
        self.epoch = _args.size("set_epoch", "epoch", epoch, minimum=0)

    def _index_batches(self, epoch: int) -> Iterator[Any]:
        """Start epoch `epoch` of the batch sampler: its order is fixed now."""
        if hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)
        return iter(self.batch_sampler)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of epoch `epoch`, in the order they are served."""
        batches = [np.asarray(b, dtype=np.int64) for b in self._index_batches(epoch)]
        return np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)

    def __iter__(self) -> Iterator[Any]:
        """Start the next epoch: its order is fixed now, even if iteration never starts."""
        batches = self._index_batches(self.epoch)
        self.epoch += 1
        fetch = self._fetcher()
        if self.num_workers == 0:
            return map(fetch, batches)
        if self.persistent_workers and self._pool is None:
            self._pool = WorkerPool(self.num_workers)
        depth = self.prefetch_factor * self.num_workers  # type: ignore[operator]
        return load_ahead(fetch, batches, self.num_workers, depth, self._pool)

    def _fetcher(self) -> Callable[[Any], Any]:
        """The function that turns one batch of indices into a batch (run by the workers)."""
        arrays, single, mapping = (None, None, None)
        if self.collate_fn is None:
            arrays, single, mapping = _fast_source(self.dataset)
        backend, pin = self._backend, self.pin_memory

        def fetch(indices: Any) -> Any:
            index = np.asarray(indices, dtype=np.int64)
            if mapping is not None:
                index = mapping[index]
            if arrays is not None:
                return tuple(_take(data, index, backend, pin) for data in arrays)
            if single is not None:
                return _take(single, index, backend, pin)
            items = [self.dataset[int(i)] for i in index]
            return self.collate_fn(items) if self.collate_fn else _collate(items, backend, pin)

        return fetch

    def __repr__(self) -> str:
        workers = f", num_workers={self.num_workers}" if self.num_workers else ""
        return (
            f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, "
            f"batch_size={self.batch_size}, shuffle={self.shuffle}, drop_last={self.drop_last}"
            f"{workers}, device='{self.device}')"
        )
