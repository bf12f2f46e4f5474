"""The Trainer's part in a data-parallel job (a process group of more than one rank).

When `gpugrad.distributed.init_process_group()` has made a group of several processes, the
Trainer wraps the model in `DistributedDataParallel`, serves each rank its shard of every
loader through a `DistributedSampler`, and sums its per-epoch counts over the ranks once per
epoch, so every rank sees the same, exact metrics (padding duplicates are not counted) and
early stopping decides alike everywhere. Rank 0 alone prints, plots and writes checkpoints.

A loader's `batch_size` stays the *global* batch: each rank takes ceil(batch_size / world)
samples a step, in the order one process would have served them (the sampler's permutation
is the one-process loader's), so N processes train like one.
"""

from __future__ import annotations

from typing import Any

from .errors import ArgumentError, GpugradError


def parallel_run(model: Any) -> ParallelRun | None:
    """A ParallelRun for `model` when a process group of several ranks is initialised, else
    None (one process: the Trainer runs as it always has)."""
    from . import distributed

    if not distributed.is_initialized() or distributed.get_world_size() == 1:
        return None
    return ParallelRun(model)


class ParallelRun:
    """This rank's place in the job, the wrapped model, and the loaders' shards."""

    def __init__(self, model: Any) -> None:
        from . import distributed
        from .nn.parallel import DistributedDataParallel

        self.rank = distributed.get_rank()
        self.world_size = distributed.get_world_size()
        # Wrapping broadcasts rank 0's weights and checks every rank built the same model.
        self.ddp = model if isinstance(model, DistributedDataParallel) else (
            DistributedDataParallel(model)
        )  # fmt: skip
        self._shards: dict[int, tuple[Any, Any]] = {}  # id(loader) -> (loader, its shard)

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that prints, plots and writes checkpoints."""
        return self.rank == 0

    def shard(self, loader: Any, what: str) -> Any:
        """The loader that serves this rank's share of `loader`'s samples (made once per
        loader). A loader that already has a DistributedSampler is used as it is."""
        known = self._shards.get(id(loader))
        if known is not None and known[0] is loader:
            return known[1]
        sharded = self._make_shard(loader, what)
        self._shards[id(loader)] = (loader, sharded)
        return sharded

    def _make_shard(self, loader: Any, what: str) -> Any:
        from . import distributed
        from .data import DataLoader, DistributedSampler
        from .data.sampler import RandomSampler, SequentialSampler

        sampler = getattr(loader, "sampler", None)
        if isinstance(loader, DataLoader) and isinstance(sampler, DistributedSampler):
            return loader
        plain_shuffle = (
            type(sampler) is RandomSampler and not sampler.replacement
            and sampler._num_samples is None
        )  # fmt: skip
        if not isinstance(loader, DataLoader) or not (
            plain_shuffle or type(sampler) is SequentialSampler
        ):
            kind = type(loader).__name__ if not isinstance(loader, DataLoader) else (
                f"DataLoader with sampler {type(sampler).__name__}"
            )  # fmt: skip
            raise ArgumentError(
                f"{what} is a {kind}, which the Trainer cannot split across the "
                f"{self.world_size} processes of this job; give it a DataLoader with "
                "shuffle=True/False, or one with sampler=DistributedSampler(dataset)"
            )
        # Every rank must draw the same permutation: rank 0's seed decides.
        seed = distributed.all_gather_object(sampler.seed if plain_shuffle else 0)[0]
        shard_sampler = DistributedSampler(loader.dataset, shuffle=plain_shuffle, seed=seed)
        return DataLoader(
            loader.dataset,
            batch_size=-(-loader.batch_size // self.world_size),
            sampler=shard_sampler,
            drop_last=loader.drop_last,
            collate_fn=loader.collate_fn,
            num_workers=loader.num_workers,
            pin_memory=loader.pin_memory,
            prefetch_factor=loader.prefetch_factor,
            persistent_workers=loader.persistent_workers,
            device=loader.device,
        )

    def check_same_length(self, loader: Any, what: str) -> None:
        """Raise on every rank (never hang) unless every rank's `loader` has as many batches:
        each training step is a collective."""
        from . import distributed

        lengths = distributed.all_gather_object(len(loader))
        if len(set(lengths)) > 1:
            raise ArgumentError(
                f"{what} serves {lengths} batches on ranks 0 to {self.world_size - 1}; every "
                "rank must run the same number of steps (use a DistributedSampler)"
            )

    def sum_over_ranks(self, values: list[float], device: Any) -> list[float]:
        """Each value summed over all ranks: one all_reduce (on the model's device, which
        every backend carries), one read back."""
        from . import distributed
        from .tensor import Tensor

        total = distributed.all_reduce(Tensor(values, dtype="float64", device=device))
        return [float(v) for v in total.numpy().tolist()]

    def agree(self, error: GpugradError | None) -> None:
        """Raise on every rank the first error any rank had (or nothing), so that a failure
        on one rank (say, rank 0's checkpoint write) never leaves the others waiting."""
        from . import distributed

        errors = distributed.all_gather_object(None if error is None else (type(error), str(error)))
        for rank, found in enumerate(errors):
            if found is None:
                continue
            if rank == self.rank and error is not None:
                raise error
            kind, message = found
            raise kind(f"rank {rank}: {message}")


def real_samples(loader: Any) -> int | None:
    """How many of the samples `loader` serves this rank come first and are not padding
    (a DistributedSampler wraps around to give every rank as many); None: all are real."""
    from .data import DistributedSampler

    sampler = getattr(loader, "sampler", None)
    if not isinstance(sampler, DistributedSampler):
        return None
    return sampler.num_real_samples
