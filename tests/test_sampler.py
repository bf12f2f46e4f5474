"""Samplers, DataLoader(sampler=/batch_sampler=/generator=), random_split and ConcatDataset."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    RandomSampler,
    Sampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    random_split,
)
from gpugrad.errors import IndexOutOfRangeError


def _dataset(n: int = 20) -> TensorDataset:
    return TensorDataset(np.arange(n, dtype=np.float32).reshape(n, 1), np.arange(n))


def _served(loader: DataLoader) -> list[int]:
    return [int(i) for _, y in loader for i in y.numpy()]


# --- samplers -----------------------------------------------------------------------------


def test_sequential_sampler():
    s = SequentialSampler(range(5))
    assert list(s) == [0, 1, 2, 3, 4] and len(s) == 5


def test_random_sampler_is_a_new_permutation_each_epoch_and_replays():
    s = RandomSampler(range(30), seed=1)
    first, second = list(s), list(s)
    assert sorted(first) == list(range(30)) and first != second
    s.set_epoch(0)
    assert list(s) == first and s.epoch == 1
    assert list(RandomSampler(range(30), seed=1)) == first


def test_random_sampler_seed_from_generator_or_global_stream():
    a = RandomSampler(range(30), generator=gg.Generator().manual_seed(5))
    b = RandomSampler(range(30), generator=gg.Generator().manual_seed(5))
    assert list(a) == list(b)
    gg.manual_seed(3)
    c = list(RandomSampler(range(30)))
    gg.manual_seed(3)
    assert list(RandomSampler(range(30))) == c


def test_random_sampler_replacement_and_num_samples():
    s = RandomSampler(range(4), replacement=True, num_samples=200, seed=0)
    drawn = list(s)
    assert len(drawn) == len(s) == 200 and set(drawn) == {0, 1, 2, 3}
    long = list(RandomSampler(range(4), num_samples=10, seed=0))
    assert (
        len(long) == 10 and sorted(long[:4]) == [0, 1, 2, 3] and sorted(long[4:8]) == [0, 1, 2, 3]
    )
    assert len(list(RandomSampler(range(10), num_samples=3, seed=0))) == 3


def test_subset_random_sampler_serves_only_its_indices():
    s = SubsetRandomSampler([3, 7, 9, 11], seed=2)
    orders = [list(s) for _ in range(4)]
    assert all(sorted(o) == [3, 7, 9, 11] for o in orders)
    assert len({tuple(o) for o in orders}) > 1


def test_weighted_random_sampler():
    weights = [0.0, 1.0, 3.0]
    s = WeightedRandomSampler(weights, 4000, seed=0)
    counts = np.bincount(list(s), minlength=3)
    assert counts[0] == 0 and 2600 < counts[2] < 3400
    once = list(WeightedRandomSampler(gg.tensor([1.0, 1.0, 0.0, 1.0]), 3, replacement=False))
    assert sorted(once) == [0, 1, 3]
    again = WeightedRandomSampler(weights, 50, seed=4)
    assert list(again) != list(again)  # a new draw each epoch (a repeat: p < 1e-10)
    again.set_epoch(0)
    assert list(again) == list(WeightedRandomSampler(weights, 50, seed=4))


def test_batch_sampler():
    assert list(BatchSampler(range(7), 3, drop_last=False)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(BatchSampler(range(7), 3, drop_last=True)) == [[0, 1, 2], [3, 4, 5]]
    assert len(BatchSampler(range(7), 3, False)) == 3 and len(BatchSampler(range(7), 3, True)) == 2


def test_batch_sampler_passes_the_epoch_on():
    inner = RandomSampler(range(10), seed=0)
    batches = BatchSampler(inner, 4, False)
    first = list(batches)
    batches.set_epoch(0)
    assert list(batches) == first


# --- DataLoader with samplers ---------------------------------------------------------------


def test_loader_with_a_sampler_serves_its_order():
    loader = DataLoader(_dataset(), batch_size=4, sampler=SubsetRandomSampler([1, 5, 9], seed=0))
    assert sorted(_served(loader)) == [1, 5, 9]
    assert len(loader) == 1


def test_loader_with_any_iterable_as_sampler():
    loader = DataLoader(_dataset(), batch_size=2, sampler=[4, 3, 2])
    assert _served(loader) == [4, 3, 2] and len(loader) == 2


def test_loader_with_a_batch_sampler():
    loader = DataLoader(_dataset(), batch_sampler=[[0, 1, 2], [7], [5, 6]])
    assert [y.numpy().tolist() for _, y in loader] == [[0, 1, 2], [7], [5, 6]]
    assert len(loader) == 3 and loader.batch_size is None


class EpochRecorder(Sampler):
    """A PyTorch-style sampler that serves its epoch number first, to see what the loader
    tells it."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.epochs.append(epoch)

    def __iter__(self):
        return iter([self.epoch, 10])

    def __len__(self) -> int:
        return 2


def test_loader_tells_its_sampler_each_epoch_and_set_epoch_reaches_it():
    sampler = EpochRecorder()
    loader = DataLoader(_dataset(), batch_size=2, sampler=sampler)
    assert _served(loader) == [0, 10] and _served(loader) == [1, 10]
    loader.set_epoch(7)
    assert _served(loader) == [7, 10]
    assert sampler.epochs == [0, 1, 7]


def test_loader_generator_makes_shuffling_repeat():
    def order(seed):
        loader = DataLoader(_dataset(), 5, shuffle=True, generator=gg.Generator().manual_seed(seed))
        return _served(loader), _served(loader)

    assert order(1) == order(1) and order(1) != order(2)
    first, second = order(1)
    assert sorted(first) == list(range(20)) and first != second


def test_trainer_style_resume_replays_the_epoch():
    loader = DataLoader(_dataset(), 5, shuffle=True, seed=9)
    epochs = [_served(loader) for _ in range(3)]
    resumed = DataLoader(_dataset(), 5, shuffle=True, seed=9)
    resumed.set_epoch(2)
    assert _served(resumed) == epochs[2]


# --- loader argument errors -----------------------------------------------------------------

DS = _dataset()
CUDA_GENERATOR = object.__new__(gg.Generator)
CUDA_GENERATOR.device, CUDA_GENERATOR._rng = gg.device("cuda:1"), None

LOADER_ERRORS = [
    (dict(batch_size=0), gg.ArgumentError, "batch_size must be an int >= 1, got 0"),
    (dict(batch_size=2.5), gg.ArgumentTypeError, r"batch_size.*2\.5"),
    (dict(batch_size=-4), gg.ArgumentError, "-4"),
    (dict(batch_size=None), gg.ArgumentTypeError, "None"),
    (dict(sampler=[0, 1], shuffle=True), gg.ArgumentError, "shuffle"),
    (dict(batch_sampler=[[0]], batch_size=4), gg.ArgumentError, "got 4"),
    (dict(batch_sampler=[[0]], shuffle=True), gg.ArgumentError, "shuffle"),
    (dict(batch_sampler=[[0]], sampler=[0]), gg.ArgumentError, "sampler"),
    (dict(batch_sampler=[[0]], drop_last=True), gg.ArgumentError, "drop_last"),
    (dict(num_workers=-1), gg.ArgumentError, "num_workers.*-1"),
    (dict(num_workers=1.5), gg.ArgumentTypeError, r"num_workers.*1\.5"),
    (dict(prefetch_factor=2), gg.ArgumentError, "prefetch_factor=2"),
    (dict(num_workers=2, prefetch_factor=0), gg.ArgumentError, "prefetch_factor.*0"),
    (dict(persistent_workers=True), gg.ArgumentError, "persistent_workers"),
    (dict(shuffle=True, seed=-1), gg.ArgumentError, "-1"),
    (dict(seed=1.5), gg.ArgumentTypeError, r"1\.5"),
    (dict(shuffle=True, seed=1, generator=gg.Generator()), gg.ArgumentError, "not both"),
    (dict(generator="g"), gg.ArgumentTypeError, "str"),
    (dict(generator=CUDA_GENERATOR), gg.DeviceError, "cuda:1"),
    (dict(device="tpu"), gg.DeviceError, "tpu"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), LOADER_ERRORS)
def test_loader_argument_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        DataLoader(DS, **kwargs)


SAMPLER_ERRORS = [
    (lambda: RandomSampler(range(3), num_samples=-1), gg.ArgumentError, "-1"),
    (lambda: RandomSampler(range(3), seed=2, generator=gg.Generator()), gg.ArgumentError, "both"),
    (lambda: RandomSampler(range(3), generator=CUDA_GENERATOR), gg.DeviceError, "cuda:1"),
    (lambda: list(RandomSampler([], replacement=True, num_samples=2)), gg.ArgumentError, "empty"),
    (lambda: WeightedRandomSampler([1.0, -1.0], 2), gg.ArgumentError, "-1.0"),
    (lambda: WeightedRandomSampler([0.0, 0.0], 2), gg.ArgumentError, "all zeros"),
    (lambda: WeightedRandomSampler([[1.0]], 1), gg.ArgumentError, r"\(1, 1\)"),
    (lambda: WeightedRandomSampler(["a"], 1), gg.ArgumentTypeError, "'a'"),
    (lambda: WeightedRandomSampler([1.0, 1.0], 3, replacement=False), gg.ArgumentError, "3"),
    (lambda: WeightedRandomSampler([1.0], 0), gg.ArgumentError, "num_samples"),
    (lambda: BatchSampler(range(3), 0, False), gg.ArgumentError, "batch_size.*0"),
    (lambda: SequentialSampler(range(3)).set_epoch(-2), gg.ArgumentError, "-2"),
]


@pytest.mark.parametrize(("call", "error", "message"), SAMPLER_ERRORS)
def test_sampler_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- random_split ---------------------------------------------------------------------------


def test_random_split_counts_are_disjoint_and_cover_the_dataset():
    parts = random_split(_dataset(20), [5, 0, 15])
    assert [len(p) for p in parts] == [5, 0, 15] and all(isinstance(p, Subset) for p in parts)
    indices = np.concatenate([p.indices for p in parts])
    assert sorted(indices.tolist()) == list(range(20))


@pytest.mark.parametrize(
    ("n", "fractions", "sizes"),
    [
        (10, [0.5, 0.5], [5, 5]),
        (10, [0.25, 0.25, 0.5], [3, 2, 5]),  # floors 2, 2, 5; the 1 left over goes to part 0
        (11, [0.3, 0.3, 0.4], [4, 3, 4]),  # floors 3, 3, 4; the 1 left over goes to part 0
        (7, [1 / 3, 1 / 3, 1 / 3], [3, 2, 2]),
        (5, [1.0, 0.0], [5, 0]),
    ],
)
def test_random_split_fractions_follow_pytorch_rounding(n, fractions, sizes):
    assert [len(p) for p in random_split(list(range(n)), fractions)] == sizes


def test_random_split_fractions_match_torch():
    torch = pytest.importorskip("torch")
    for n, fractions in [(17, [0.1, 0.2, 0.7]), (9, [0.5, 0.25, 0.25]), (103, [0.33, 0.33, 0.34])]:
        theirs = [len(p) for p in torch.utils.data.random_split(range(n), fractions)]
        assert [len(p) for p in random_split(list(range(n)), fractions)] == theirs


def test_random_split_is_seeded_by_generator_or_global_stream():
    def split(**kw):
        return [p.indices.tolist() for p in random_split(list(range(30)), [10, 20], **kw)]

    g = gg.Generator
    assert split(generator=g().manual_seed(1)) == split(generator=g().manual_seed(1))
    assert split(generator=g().manual_seed(1)) != split(generator=g().manual_seed(2))
    gg.manual_seed(4)
    a = split()
    gg.manual_seed(4)
    assert split() == a


SPLIT_ERRORS = [
    ([5, 5], gg.ArgumentError, "sum to 10, but the dataset has 12"),
    ([13, -1], gg.ArgumentError, "-1"),
    ([0.5, 0.6], gg.ArgumentError, "not 1"),
    ([1.5, -0.5], gg.ArgumentError, "1.5"),
    ([6, 6.5], gg.ArgumentError, "6.5"),
    ([6, "6"], gg.ArgumentTypeError, "'6'"),
    ([], gg.ArgumentTypeError, r"\[\]"),
    (12, gg.ArgumentTypeError, "12"),
]


@pytest.mark.parametrize(("lengths", "error", "message"), SPLIT_ERRORS)
def test_random_split_errors(lengths, error, message):
    with pytest.raises(error, match=message):
        random_split(list(range(12)), lengths)


# --- ConcatDataset --------------------------------------------------------------------------


def test_concat_dataset():
    ds = ConcatDataset([[1, 2], [], [3, 4, 5]])
    assert len(ds) == 5 and [ds[i] for i in range(5)] == [1, 2, 3, 4, 5]
    assert ds[-1] == 5 and ds[-5] == 1
    assert ds.cumulative_sizes == [2, 2, 5]
    with pytest.raises(IndexOutOfRangeError, match="6"):
        ds[6]
    with pytest.raises(IndexError, match="-6"):
        ds[-6]


def test_concat_dataset_loads_in_a_dataloader():
    ds = ConcatDataset([_dataset(3), _dataset(4)])
    ys = [int(i) for _, y in DataLoader(ds, batch_size=3) for i in y.numpy()]
    assert ys == [0, 1, 2, 0, 1, 2, 3]


def test_concat_dataset_errors():
    with pytest.raises(gg.ArgumentError, match="none"):
        ConcatDataset([])
    with pytest.raises(gg.ArgumentTypeError, match=r"datasets\[1\].*int"):
        ConcatDataset([[1], 5])
