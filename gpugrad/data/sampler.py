"""Samplers: which dataset indices a DataLoader serves, in which order, epoch by epoch.

A sampler iterates over indices; a batch sampler over lists of indices. Each iteration is one
epoch. The random samplers are keyed by (seed, epoch): `set_epoch(k)` makes the next iteration
epoch k's order, so a resumed run replays its epochs, and anything else that can say
`set_epoch` (a distributed sampler, say) plugs into the DataLoader the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .. import _args
from ..backend import get_backend
from ..errors import ArgumentError, ArgumentTypeError
from ..generator import Generator, generator_rng
from ..sampling import check_weights, multinomial
from ..tensor import Tensor
from .dataset import check_dataset, draw_seed, index_array


class Sampler(ABC):
    """Yields dataset indices; one iteration is one epoch. Subclass it PyTorch-style (define
    `__iter__`, and `__len__` if the loader's length is wanted), or any iterable of indices
    will do as a DataLoader's `sampler=`."""

    epoch: int = 0

    @abstractmethod
    def __iter__(self) -> Iterator[int]:
        """The indices of the next epoch."""

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration serve epoch `epoch`'s order (to resume a run)."""
        self.epoch = _args.size("set_epoch", "epoch", epoch, minimum=0)


class _OrderSampler(Sampler):
    """A sampler whose epochs are computed whole by `order(epoch)`."""

    @abstractmethod
    def order(self, epoch: int) -> np.ndarray:
        """The indices of epoch `epoch`, in the order they are served (int64)."""

    @abstractmethod
    def __len__(self) -> int:
        """The number of indices per epoch."""

    def __iter__(self) -> Iterator[int]:
        """Start the next epoch: its order is fixed now, even if iteration never starts."""
        order = self.order(self.epoch)
        self.epoch += 1
        return iter(order.tolist())


class SequentialSampler(_OrderSampler):
    """0, 1, ..., len(data_source)-1, every epoch."""

    def __init__(self, data_source: Any) -> None:
        self.data_source = check_dataset("SequentialSampler", data_source, "data_source")

    def order(self, epoch: int) -> np.ndarray:
        return np.arange(len(self.data_source), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.data_source)


def _pick_seed(seed: int | None, generator: Generator | None, where: str) -> int:
    """A sampler's seed: `seed` itself, or one drawn from `generator`, or from gpugrad's global
    cpu stream (so `gg.manual_seed` makes it repeat)."""
    if seed is not None and generator is not None:
        raise ArgumentError(f"{where}: give seed= or generator=, not both")
    if seed is not None:
        return _args.seed(where, seed)
    if generator is None:
        return draw_seed()
    cpu = get_backend("cpu")
    rng = generator_rng(generator, cpu, where)
    return int(cpu.random_integers(0, 2**63 - 1, (), np.int64, rng))


class _SeededSampler(_OrderSampler):
    """A random sampler whose epoch k draws from a NumPy generator keyed by (seed, k)."""

    seed: int

    def _rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, _args.size("order", "epoch", epoch, minimum=0)])


class RandomSampler(_SeededSampler):
    """A random order of the dataset each epoch (a permutation; with `replacement`, indices
    drawn independently). `num_samples` (default len(data_source)) indices per epoch; without
    replacement, more than len(data_source) of them come from successive permutations.

    The seed comes from `seed`, else from `generator` (a cpu `gg.Generator`), else from the
    global stream, when the sampler is made; epoch k's order depends only on (seed, k).
    """

    def __init__(
        self, data_source: Any, replacement: bool = False, num_samples: int | None = None,
        generator: Generator | None = None, *, seed: int | None = None,
    ) -> None:  # fmt: skip
        if num_samples is not None:
            num_samples = _args.size("RandomSampler", "num_samples", num_samples, minimum=0)
        self.data_source = check_dataset("RandomSampler", data_source, "data_source")
        self.replacement = _args.flag("RandomSampler", "replacement", replacement)
        self._num_samples = num_samples
        self.seed = _pick_seed(seed, generator, "RandomSampler")

    @property
    def num_samples(self) -> int:
        """Indices per epoch."""
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def order(self, epoch: int) -> np.ndarray:
        n, count, rng = len(self.data_source), self.num_samples, self._rng(epoch)
        if self.replacement:
            if n == 0 and count:
                raise ArgumentError("RandomSampler cannot draw from an empty dataset")
            return rng.integers(0, n, size=count, dtype=np.int64)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        rounds = [rng.permutation(n) for _ in range(max(1, -(-count // n)))]
        return np.concatenate(rounds)[:count].astype(np.int64)

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(_SeededSampler):
    """The given indices, in a new random order each epoch."""

    def __init__(
        self, indices: Sequence[int], generator: Generator | None = None, *,
        seed: int | None = None,
    ) -> None:  # fmt: skip
        self.indices = index_array("SubsetRandomSampler", indices)
        self.seed = _pick_seed(seed, generator, "SubsetRandomSampler")

    def order(self, epoch: int) -> np.ndarray:
        return self.indices[self._rng(epoch).permutation(self.indices.size)]

    def __len__(self) -> int:
        return int(self.indices.size)


class WeightedRandomSampler(_SeededSampler):
    """`num_samples` indices per epoch, index i with chance proportional to `weights[i]`
    (drawn as `gg.multinomial` draws them; without replacement, no index twice)."""

    def __init__(
        self, weights: Sequence[float] | np.ndarray | Tensor, num_samples: int,
        replacement: bool = True, generator: Generator | None = None, *,
        seed: int | None = None,
    ) -> None:  # fmt: skip
        array = weights.numpy() if isinstance(weights, Tensor) else weights
        try:
            array = np.asarray(array, dtype=np.float64)
        except (TypeError, ValueError):
            raise ArgumentTypeError(
                f"WeightedRandomSampler weights must be a sequence of numbers, got {weights!r:.80}"
            ) from None
        self.weights = Tensor(array, dtype=np.float64)
        if self.weights.ndim != 1:
            raise ArgumentError(
                f"WeightedRandomSampler weights must be 1-D, got shape {self.weights.shape}"
            )
        self.replacement = bool(replacement)
        self.num_samples = check_weights(
            self.weights, num_samples, self.replacement, "WeightedRandomSampler"
        )
        self.seed = _pick_seed(seed, generator, "WeightedRandomSampler")

    def order(self, epoch: int) -> np.ndarray:
        g = Generator().manual_seed(int(self._rng(epoch).integers(0, 2**63 - 1)))
        return multinomial(self.weights, self.num_samples, self.replacement, generator=g).numpy()

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler:
    """Groups a sampler's indices into lists of `batch_size` (the last one shorter, or left out
    with `drop_last`). `set_epoch` reaches the sampler underneath."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        self.sampler = sampler
        self.batch_size = _args.size("BatchSampler", "batch_size", batch_size, minimum=1)
        self.drop_last = bool(drop_last)

    def set_epoch(self, epoch: int) -> None:
        """Pass `epoch` on to the sampler (when it takes one)."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        """Start the sampler's next epoch now, and batch it lazily."""
        return self._batches(iter(self.sampler))

    def _batches(self, indices: Iterator[int]) -> Iterator[list[int]]:
        batch: list[int] = []
        for index in indices:
            batch.append(int(index))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
