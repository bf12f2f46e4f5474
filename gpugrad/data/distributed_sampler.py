"""DistributedSampler: each rank's shard of a dataset, the same shuffle on every rank.

Every rank draws the same permutation (keyed by seed and epoch), pads it by wrapping around to
a multiple of the world size (or drops the tail with drop_last=True), and takes every
`num_replicas`-th index from its rank on. So the shards are disjoint, cover the dataset, and
have one length: every rank runs the same number of steps, as collectives require.

```python
sampler = DistributedSampler(dataset, shuffle=True, seed=0)   # rank and world from the group
for epoch in range(epochs):
    sampler.set_epoch(epoch)       # a new shuffle each epoch, the same on every rank
    for i in batches(list(sampler)): ...
```

It duck-types the DataLoader's sampler interface (`__iter__`, `__len__`, `set_epoch`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError


def _whole(value: Any, name: str, least: int) -> int:
    """`value` as an int >= least, or a typed error naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ArgumentTypeError(f"DistributedSampler: {name} must be an int, got {value!r}")
    if value < least:
        raise ArgumentError(f"DistributedSampler: {name} must be >= {least}, got {value}")
    return int(value)


class DistributedSampler:
    """The indices of `dataset` that this rank serves (see the module docstring).

    num_replicas and rank default to the process group's world size and rank.
    `num_real_samples` counts the leading indices of this rank's shard that are not
    wrap-around padding: evaluation counts only those, so metrics reduced across ranks are
    exact.
    """

    def __init__(
        self,
        dataset: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        from .. import distributed

        if not hasattr(dataset, "__len__"):
            raise ArgumentTypeError(
                f"DistributedSampler needs a dataset with a length, got {type(dataset).__name__}"
            )
        if num_replicas is None:
            num_replicas = distributed.get_world_size()
        if rank is None:
            rank = distributed.get_rank()
        self.num_replicas = _whole(num_replicas, "num_replicas", 1)
        self.rank = _whole(rank, "rank", 0)
        if self.rank >= self.num_replicas:
            raise ArgumentError(
                f"DistributedSampler: rank={self.rank} is outside a world of "
                f"num_replicas={self.num_replicas} (ranks 0 to {self.num_replicas - 1})"
            )
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, bool):
                raise ArgumentTypeError(f"DistributedSampler: {name} must be a bool, got {flag!r}")
        self.seed = _whole(seed, "seed", 0)
        self.dataset, self.shuffle, self.drop_last = dataset, shuffle, drop_last
        self.epoch = 0

    @property
    def total_size(self) -> int:
        """How many indices all ranks serve together (padded or trimmed)."""
        n, world = len(self.dataset), self.num_replicas
        return (n // world) * world if self.drop_last else -(-n // world) * world

    @property
    def num_samples(self) -> int:
        """How many indices this rank serves: the same on every rank."""
        return self.total_size // self.num_replicas

    @property
    def num_real_samples(self) -> int:
        """How many of this rank's indices (its first ones) are not padding duplicates."""
        n = min(len(self.dataset), self.total_size)
        return len(range(self.rank, n, self.num_replicas))

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle the next iteration uses (call it on every rank)."""
        self.epoch = _whole(epoch, "epoch", 0)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(n)
        else:
            order = np.arange(n)
        total = self.total_size
        if total > n:  # pad by wrapping around (more than once when n < world)
            order = np.resize(order, total)
        shard = order[:total][self.rank :: self.num_replicas]
        return iter(shard.tolist())

    def __repr__(self) -> str:
        return (
            f"DistributedSampler(len(dataset)={len(self.dataset)}, rank={self.rank}, "
            f"num_replicas={self.num_replicas}, shuffle={self.shuffle}, seed={self.seed}, "
            f"drop_last={self.drop_last}, epoch={self.epoch})"
        )
