"""Background loading for DataLoader(num_workers > 0): worker threads fetch batches ahead of
the training loop and hand them over in order.

Threads rather than processes: a batch is gathered by NumPy fancy indexing, copies and (on
cuda) host-to-device transfers, all of which release the GIL, so threads overlap that work
with the training step. Threads also share the dataset, the target device and gpugrad's state
with the loop as they are, with nothing pickled or re-created, and behave alike on every
platform. (A dataset whose __getitem__ is mostly pure-Python work gains less: the GIL runs
that one thread at a time.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

THREAD_NAME = "gpugrad-loader"


class WorkerPool:
    """`num_workers` threads that run a loader's fetches (started as work arrives)."""

    def __init__(self, num_workers: int) -> None:
        self.num_workers = num_workers
        self._executor = ThreadPoolExecutor(num_workers, thread_name_prefix=THREAD_NAME)

    def ordered(
        self, fetch: Callable[[Any], Any], tasks: Iterable[Any], depth: int
    ) -> Iterator[Any]:
        """`fetch(task)` for each task, in the tasks' order, with up to `depth` fetches
        queued or running ahead of the one being consumed.

        A fetch that raises re-raises its exception here, unchanged, when its turn comes.
        When the iterator stops early (exhausted, an error, or dropped by the caller) the
        queued fetches are cancelled and the running ones waited for, so no fetch outlives it.
        """
        pending: deque[Future] = deque()
        try:
            for task in tasks:  # the tasks are drawn here, in the caller's thread
                pending.append(self._executor.submit(fetch, task))
                if len(pending) >= depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
            wait(pending)

    def shutdown(self) -> None:
        """Stop the threads (after the fetches in progress)."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def load_ahead(
    fetch: Callable[[Any], Any], tasks: Iterable[Any], num_workers: int, depth: int,
    pool: WorkerPool | None = None,
) -> Iterator[Any]:  # fmt: skip
    """`fetch(task)` for each task, in order, loaded ahead by worker threads: those of `pool`
    (kept for the next epoch), or a pool of `num_workers` made for this pass and shut down
    when it ends."""
    own = pool is None
    workers = WorkerPool(num_workers) if pool is None else pool
    try:
        yield from workers.ordered(fetch, tasks, depth)
    finally:
        if own:
            workers.shutdown()
