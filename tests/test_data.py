"""Tests for gpugrad.data's Dataset, TensorDataset, Subset, DataLoader and train_test_split."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.data import (
    DataLoader,
    Dataset,
    Subset,
    TensorDataset,
    default_collate,
    train_test_split,
)


class Rows(Dataset):
    """A plain Dataset over NumPy arrays, so the loader must collate sample by sample."""

    def __init__(self, *arrays):
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, i):
        return tuple(a[i] for a in self.arrays)


def _data(n=10):
    X = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int64) % 4
    return X, y


def _epoch(loader):
    return [tuple(t.numpy() for t in batch) for batch in loader]


def _order(loader):
    """The sample order of one epoch of a loader over _data (X[:, 0] / 3 recovers the index)."""
    return np.concatenate([xb.numpy()[:, 0] / 3 for xb, _ in loader]).astype(np.int64)


# --- Dataset / TensorDataset / Subset ---------------------------------------------------


def test_dataset_is_abstract():
    with pytest.raises(TypeError):
        Dataset()


def test_tensor_dataset_items_are_tuples(device):
    X, y = _data()
    ds = TensorDataset(gg.tensor(X, device=device), y)
    assert len(ds) == 10
    x3, y3 = ds[3]
    assert isinstance(x3, gg.Tensor) and x3.device == device
    np.testing.assert_array_equal(x3.numpy(), X[3])
    assert y3 == y[3]


def test_tensor_dataset_checks_first_dimension():
    with pytest.raises(gg.ShapeError, match=r"\(4, 3\).*\(5,\)"):
        TensorDataset(np.zeros((4, 3)), np.zeros(5))
    with pytest.raises(gg.ShapeError, match="at least one dimension"):
        TensorDataset(np.array(1.0))
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorDataset()
    with pytest.raises(TypeError, match="list"):
        TensorDataset([1, 2, 3])


def test_subset_maps_indices():
    X, y = _data()
    sub = Subset(TensorDataset(X, y), [7, -1, 2])
    assert len(sub) == 3
    np.testing.assert_array_equal(sub[1][0], X[9])
    with pytest.raises(IndexError, match=r"\[-10, 10\)"):
        Subset(TensorDataset(X, y), [10])


# --- DataLoader: batching ----------------------------------------------------------------


@pytest.mark.parametrize(("n", "size", "drop_last", "sizes"), [
    (10, 3, False, [3, 3, 3, 1]),
    (10, 3, True, [3, 3, 3]),
    (9, 3, False, [3, 3, 3]),
    (2, 5, False, [2]),
    (2, 5, True, []),
    (0, 4, False, []),
])  # fmt: skip
def test_batch_sizes_and_len(n, size, drop_last, sizes):
    X, y = _data(n)
    loader = DataLoader(TensorDataset(X, y), batch_size=size, drop_last=drop_last)
    assert len(loader) == len(sizes)
    assert [xb.shape[0] for xb, _ in loader] == sizes


def test_batches_in_order_on_device(device):
    X, y = _data()
    loader = DataLoader(TensorDataset(X, y), batch_size=4, device=device)
    batches = list(loader)
    for xb, yb in batches:
        assert xb.device == device and yb.device == device
        assert xb.dtype == gg.float32 and yb.dtype == gg.int64
        assert not xb.requires_grad
    np.testing.assert_array_equal(np.concatenate([xb.numpy() for xb, _ in batches]), X)
    np.testing.assert_array_equal(np.concatenate([yb.numpy() for _, yb in batches]), y)


def test_tensors_on_any_device_reach_the_target(device):
    X, y = _data()
    for source, target in [(device, "cpu"), ("cpu", device), (device, device)]:
        xs = gg.tensor(X, device=source, requires_grad=True)
        ds = TensorDataset(xs, gg.tensor(y, device=source))
        for xb, yb in DataLoader(ds, batch_size=4, shuffle=True, seed=3, device=target):
            assert xb.device == target and yb.device == target
            assert not xb.requires_grad and xb.grad_fn is None
            index = xb.numpy()[:, 0].astype(np.int64) // 3
            np.testing.assert_array_equal(xb.numpy(), X[index])
            np.testing.assert_array_equal(yb.numpy(), y[index])


def test_batches_are_copies():
    X, y = _data()
    xb, _ = next(iter(DataLoader(TensorDataset(X, y), batch_size=4)))
    xb.data[:] = -1
    assert X.min() == 0


def test_array_and_tensor_datasets(device):
    X, _ = _data()
    for ds in (X, gg.tensor(X, device=device)):
        batches = list(DataLoader(ds, batch_size=4, device=device))
        assert all(isinstance(b, gg.Tensor) and b.device == device for b in batches)
        np.testing.assert_array_equal(np.concatenate([b.numpy() for b in batches]), X)


# --- DataLoader: shuffling ---------------------------------------------------------------


def test_shuffle_gives_a_new_permutation_each_epoch():
    loader = DataLoader(TensorDataset(*_data(50)), batch_size=8, shuffle=True, seed=0)
    first, second = _order(loader), _order(loader)
    assert sorted(first) == list(range(50)) and sorted(second) == list(range(50))
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, np.arange(50))
    assert loader.epoch == 2


def test_same_seed_same_order_epoch_by_epoch():
    a = DataLoader(TensorDataset(*_data(50)), batch_size=8, shuffle=True, seed=7)
    b = DataLoader(TensorDataset(*_data(50)), batch_size=8, shuffle=True, seed=7)
    c = DataLoader(TensorDataset(*_data(50)), batch_size=8, shuffle=True, seed=8)
    orders = [(_order(a), _order(b), _order(c)) for _ in range(3)]
    for oa, ob, oc in orders:
        np.testing.assert_array_equal(oa, ob)
        assert not np.array_equal(oa, oc)


def test_set_epoch_replays_an_epoch():
    loader = DataLoader(TensorDataset(*_data(50)), batch_size=8, shuffle=True, seed=1)
    orders = [_order(loader) for _ in range(3)]
    loader.set_epoch(1)
    np.testing.assert_array_equal(_order(loader), orders[1])
    np.testing.assert_array_equal(loader.order(2), orders[2])
    with pytest.raises(ValueError, match="epoch"):
        loader.set_epoch(-1)


def test_seed_none_follows_manual_seed():
    def orders():
        gg.manual_seed(123)
        loader = DataLoader(TensorDataset(*_data(50)), batch_size=8, shuffle=True)
        return _order(loader), _order(loader)

    (a1, a2), (b1, b2) = orders(), orders()
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    gg.manual_seed(124)
    assert not np.array_equal(_order(DataLoader(TensorDataset(*_data(50)), 8, shuffle=True)), a1)


def test_fast_path_matches_sample_by_sample_path(device):
    X, y = _data(23)
    fast = DataLoader(TensorDataset(X, y), batch_size=5, shuffle=True, seed=4, device=device)
    slow = DataLoader(Rows(X, y), batch_size=5, shuffle=True, seed=4, device=device)
    for _ in range(2):
        for (xf, yf), (xs, ys) in zip(fast, slow, strict=True):
            assert xs.device == device and xs.dtype == xf.dtype and ys.dtype == yf.dtype
            np.testing.assert_array_equal(xf.numpy(), xs.numpy())
            np.testing.assert_array_equal(yf.numpy(), ys.numpy())


def test_fast_path_does_not_index_samples(monkeypatch):
    def no_items(self, i):
        raise AssertionError("the TensorDataset fast path should not fetch samples one by one")

    monkeypatch.setattr(TensorDataset, "__getitem__", no_items)
    X, y = _data()
    assert len(list(DataLoader(TensorDataset(X, y), batch_size=3, shuffle=True, seed=0))) == 4
    assert len(list(DataLoader(Subset(TensorDataset(X, y), [1, 2, 3]), batch_size=2))) == 2


def test_subclass_with_its_own_getitem_is_respected():
    class Doubled(TensorDataset):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return x * 2, y

    X, y = _data()
    xb, _ = next(iter(DataLoader(Doubled(X, y), batch_size=10)))
    np.testing.assert_array_equal(xb.numpy(), X * 2)


def test_subset_of_tensor_dataset(device):
    X, y = _data()
    idx = [9, 0, 4, 4, 7]
    loader = DataLoader(Subset(TensorDataset(X, y), idx), batch_size=2, device=device)
    got = np.concatenate([yb.numpy() for _, yb in loader])
    np.testing.assert_array_equal(got, y[idx])
    nested = Subset(Subset(TensorDataset(X, y), idx), [4, 0])
    (xb, _yb), = list(DataLoader(nested, batch_size=2))  # fmt: skip
    np.testing.assert_array_equal(xb.numpy(), X[[7, 9]])


# --- DataLoader: default collation --------------------------------------------------------


def test_python_list_dataset(device):
    samples = [([0.5, 1.5], 1), ([2.5, 3.5], 0), ([4.5, 5.5], 1)]
    (xb, yb), = list(DataLoader(samples, batch_size=3, device=device))  # fmt: skip
    assert xb.shape == (3, 2) and xb.dtype == gg.float32 and xb.device == device
    assert yb.dtype == gg.int64 and yb.numpy().tolist() == [1, 0, 1]
    numbers = list(DataLoader([1.0, 2.0, 3.0], batch_size=2, device=device))
    assert [b.numpy().tolist() for b in numbers] == [[1.0, 2.0], [3.0]]


def test_collate_dicts_namedtuples_arrays_and_tensors(device):
    Pair = namedtuple("Pair", "x y")
    batch = default_collate([Pair(np.ones(2, np.float64), 3), Pair(np.zeros(2), 4)], device)
    assert isinstance(batch, Pair) and batch.x.dtype == gg.float64 and batch.y.dtype == gg.int64
    batch = default_collate([{"a": np.int32(1)}, {"a": np.int32(2)}], device)
    assert batch["a"].dtype == gg.int32 and batch["a"].device == device
    items = [gg.tensor([i, i + 1.0], device=device) for i in range(3)]
    for target in ("cpu", device):
        stacked = default_collate(items, target)
        assert stacked.device == target
        np.testing.assert_array_equal(stacked.numpy(), [[0, 1], [1, 2], [2, 3]])


def test_collate_errors():
    with pytest.raises(gg.ShapeError, match=r"\(2,\).*\(3,\)"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(gg.ShapeError, match="different lengths"):
        default_collate([[1.0, 2.0], [1.0]])
    with pytest.raises(TypeError, match="collate_fn"):
        default_collate([object(), object()])


def test_collate_fn_result_is_returned_as_is():
    seen = []

    def collate(items):
        seen.append(len(items))
        return items

    loader = DataLoader(TensorDataset(*_data()), batch_size=4, collate_fn=collate)
    batches = list(loader)
    assert seen == [4, 4, 2] and isinstance(batches[0], list) and isinstance(batches[0][0], tuple)


def test_loader_argument_errors():
    ds = TensorDataset(*_data())
    with pytest.raises(ValueError, match=">= 1"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        DataLoader(ds, batch_size=2.0)
    with pytest.raises(ValueError, match="seed"):
        DataLoader(ds, shuffle=True, seed=-1)
    with pytest.raises(gg.DeviceError, match="tpu"):
        DataLoader(ds, device="tpu")


# --- train_test_split ---------------------------------------------------------------------


def test_split_sizes_disjoint_and_seeded():
    X = np.arange(100, dtype=np.float32).reshape(50, 2)
    y = np.arange(50)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, seed=0)
    assert X_tr.shape == (40, 2) and X_te.shape == (10, 2) and y_te.shape == (10,)
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == list(range(50))
    np.testing.assert_array_equal(X_te[:, 0] / 2, y_te)  # rows stay paired with labels
    again = train_test_split(X, y, test_size=0.2, seed=0)
    np.testing.assert_array_equal(again[3], y_te)
    assert set(train_test_split(X, y, test_size=0.2, seed=1)[3]) != set(y_te)
    assert train_test_split(X, y, test_size=7, seed=0)[1].shape == (7, 2)


def test_stratified_split_keeps_class_shares():
    y = np.repeat(np.arange(3), [50, 30, 20])
    X = np.arange(100)
    _, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, seed=0, stratify=True)
    assert y_te.shape == (25,)
    counts = np.bincount(y_te, minlength=3)
    assert np.all(np.abs(counts - np.array([12.5, 7.5, 5.0])) <= 1), counts
    assert np.bincount(y_tr).sum() == 75
    np.testing.assert_array_equal(y[X_te], y_te)
    assert len(set(y_te[:10].tolist())) > 1  # classes interleaved, not grouped


def test_split_errors():
    with pytest.raises(gg.ShapeError, match=r"\(5, 2\).*\(4,\)"):
        train_test_split(np.zeros((5, 2)), np.zeros(4))
    for bad in (0.0, 1.0, 1.5, 0, 5, True, "a"):
        with pytest.raises(ValueError, match="test_size"):
            train_test_split(np.zeros((5, 2)), np.zeros(5), test_size=bad)
