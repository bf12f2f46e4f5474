"""The `gpugrad` command as one of several processes (under `mpiexec -n N`): joining the
process group, agreeing on setup errors so that no rank waits for one that stopped, and
ending the whole job when one rank must stop."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from .cli_args import UsageError
from .errors import BackendUnavailableError

T = TypeVar("T")


def join_job() -> tuple[int, int, int]:
    """Join the process group when an MPI launcher (or MASTER_ADDR/RANK/WORLD_SIZE) started
    this process as one of several; returns (rank, world size, local rank)."""
    from . import distributed as dist
    from .distributed.mpi import launcher_world_size
    from .distributed.rendezvous import env_world

    if not dist.is_initialized() and (launcher_world_size() > 1 or env_world() is not None):
        try:
            dist.init_process_group()
        except BackendUnavailableError as exc:
            raise UsageError(str(exc)) from None
    return dist.get_rank(), dist.get_world_size(), dist.get_local_rank()


def cuda_device_for(local_rank: int) -> str:
    """The GPU of a rank given `--device cuda`: that of its local rank, one GPU per process
    (with fewer GPUs than processes, they share them, and MPI carries the gradients)."""
    from .backend import cuda_device_count

    return f"cuda:{local_rank % max(1, cuda_device_count())}"


def in_job() -> bool:
    """Whether this process is one of several in an initialised process group."""
    from . import distributed as dist

    return dist.is_initialized() and dist.get_world_size() > 1


def on_all_ranks(step: Callable[[], T]) -> T:
    """Run a setup step. In a job of several processes, a UsageError on any rank is raised on
    every rank (rank 0 prints it), so that no rank goes on to wait for one that stopped."""
    from . import distributed as dist

    error = None
    try:
        result = step()
    except UsageError as exc:
        if not in_job():
            raise
        error = str(exc)
    if in_job():
        errors = dist.all_gather_object(error)
        for rank, message in enumerate(errors):
            if message is not None:
                raise UsageError(message if rank == 0 else f"rank {rank}: {message}")
    return result


def silent(*args: Any, **kwargs: Any) -> None:
    """print's stand-in on the ranks other than 0."""


def end_job(code: int) -> int:
    """Exit status `code` for this process; in a job of several processes, where the others
    may be waiting for this one in a collective, end them all with it (MPI abort)."""
    if in_job():
        from .distributed.group import current_group

        sys.stdout.flush()
        sys.stderr.flush()
        group = current_group("end_job")
        if group.nccl is not None:
            group.nccl.abort()
        if group.mpi is not None:
            group.mpi.abort(code)
        os._exit(code)  # a group without MPI: leave now, without waiting for the others
    return code


def is_main_process() -> bool:
    """Whether this process prints errors: rank 0, or the only process."""
    from . import distributed as dist

    return dist.get_rank() == 0
