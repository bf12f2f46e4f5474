"""DataLoader(num_workers > 0): same batches as num_workers=0, really in the background,
bounded prefetch, errors surfacing, clean shutdown; pin_memory."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.data import DataLoader, Dataset, TensorDataset
from gpugrad.data.workers import THREAD_NAME


def _loader_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)}


class Rows(Dataset):
    """Samples one at a time (the slow path), as (features, label)."""

    def __init__(self, n: int) -> None:
        self.x = np.arange(2 * n, dtype=np.float32).reshape(n, 2)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        return self.x[index], int(index)


def _tensor_rows(n: int) -> TensorDataset:
    """The same samples as Rows(n), as a TensorDataset (the fast path)."""
    return TensorDataset(Rows(n).x, np.arange(n))


def _batches(loader: DataLoader) -> list[tuple[np.ndarray, ...]]:
    return [tuple(part.numpy() for part in batch) for batch in loader]


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("make", [lambda n: Rows(n), _tensor_rows])
def test_workers_give_the_same_batches_in_the_same_order(device, workers, make):
    options = dict(batch_size=4, shuffle=True, seed=5, drop_last=False, device=device)
    plain = DataLoader(make(23), **options)
    ahead = DataLoader(make(23), num_workers=workers, prefetch_factor=2, **options)
    for _ in range(3):  # each epoch its own shuffle, the same in both
        a, b = _batches(plain), _batches(ahead)
        assert len(a) == len(b) == 6
        for x, y in zip(a, b, strict=True):
            for u, v in zip(x, y, strict=True):
                np.testing.assert_array_equal(u, v)
    assert plain.epoch == ahead.epoch == 3


def test_persistent_workers_give_the_same_batches_and_survive_epochs():
    before = _loader_threads()
    plain = DataLoader(Rows(17), batch_size=3, shuffle=True, seed=1)
    ahead = DataLoader(
        Rows(17), batch_size=3, shuffle=True, seed=1, num_workers=2, persistent_workers=True
    )
    for _ in range(3):
        for x, y in zip(_batches(plain), _batches(ahead), strict=True):
            np.testing.assert_array_equal(x[1], y[1])
        assert 1 <= len(_loader_threads() - before) <= 2  # one pool, kept between epochs
    del ahead
    gc.collect()
    for t in _loader_threads() - before:
        t.join(timeout=30)  # the dropped pool's threads exit once they see it is gone
    assert not _loader_threads() - before


class Meeting(Dataset):
    """Fetching sample 0 and sample 1 waits until both are being fetched at once: only
    possible when batches really load in parallel in the background."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=30)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        if index < 2:
            self.barrier.wait()
        return float(index)


def test_workers_really_load_in_parallel():
    loader = DataLoader(Meeting(), batch_size=1, num_workers=2)
    assert [b.item() for b in loader] == [0.0, 1.0, 2.0, 3.0]


def test_without_workers_the_meeting_never_happens():
    # The control for the test above: one thread alone breaks the barrier.
    dataset = Meeting()
    dataset.barrier = threading.Barrier(2, timeout=0.01)
    with pytest.raises(threading.BrokenBarrierError):
        list(DataLoader(dataset, batch_size=1))


class Counting(Dataset):
    """Records how many samples have been fetched so far."""

    def __init__(self, n: int) -> None:
        self.n, self.started = n, 0
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        with self.lock:
            self.started += 1
        return float(index)


@pytest.mark.parametrize(("workers", "prefetch"), [(1, 1), (2, 2), (3, 1)])
def test_prefetch_never_runs_further_ahead_than_its_depth(workers, prefetch):
    dataset = Counting(40)
    loader = DataLoader(dataset, batch_size=1, num_workers=workers, prefetch_factor=prefetch)
    depth = workers * prefetch
    consumed = 0
    for _ in loader:
        consumed += 1
        # Batches are handed to workers only from the consuming thread, depth at most ahead.
        assert dataset.started <= consumed + depth - 1
    assert consumed == dataset.started == 40


class Broken(Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int):
        if index == 6:
            raise KeyError(f"sample {index} is missing")
        return float(index)


@pytest.mark.parametrize("persistent", [False, True])
def test_a_worker_error_reaches_the_loop_with_its_type(persistent):
    before = _loader_threads()  # a persistent pool of an earlier test may still be exiting
    loader = DataLoader(Broken(), batch_size=2, num_workers=2, persistent_workers=persistent)
    seen = []
    with pytest.raises(KeyError, match="sample 6 is missing"):
        for batch in loader:
            seen.append(batch.numpy().tolist())
    assert seen == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]  # every batch before it, in order
    if not persistent:
        assert not _loader_threads() - before


def test_no_thread_is_left_after_an_epoch_or_an_abandoned_iterator():
    before = _loader_threads()  # a persistent pool of an earlier test may still be exiting
    loader = DataLoader(Rows(30), batch_size=2, shuffle=True, num_workers=3)
    list(loader)
    assert not _loader_threads() - before
    for _ in loader:
        break  # the iterator is dropped mid-epoch
    assert not _loader_threads() - before
    iterator = iter(loader)
    next(iterator)
    assert _loader_threads() - before
    del iterator
    assert not _loader_threads() - before


def test_workers_with_collate_fn_and_drop_last():
    def collate(items):
        return [label for _, label in items]

    options = dict(batch_size=4, shuffle=True, seed=2, drop_last=True, collate_fn=collate)
    plain = list(DataLoader(Rows(10), **options))
    ahead = list(DataLoader(Rows(10), num_workers=2, **options))
    assert plain == ahead and len(ahead) == 2


def test_pin_memory_on_cpu_is_accepted_and_changes_nothing(device):
    options = dict(batch_size=5, shuffle=True, seed=0, device=device)
    for make in (Rows, _tensor_rows):
        plain = _batches(DataLoader(make(12), **options))
        pinned = _batches(DataLoader(make(12), pin_memory=True, num_workers=2, **options))
        for x, y in zip(plain, pinned, strict=True):
            for u, v in zip(x, y, strict=True):
                np.testing.assert_array_equal(u, v)


def test_numpy_backend_pin_returns_the_array_itself():
    array = np.arange(6.0)
    assert gg.backend.get_backend("cpu").pin(array) is array


@pytest.mark.gpu
def test_cuda_pin_stages_a_copy():
    array = np.arange(6.0)
    pinned = gg.backend.get_backend("cuda").pin(array)
    assert pinned is not array and pinned.dtype == array.dtype
    np.testing.assert_array_equal(pinned, array)
