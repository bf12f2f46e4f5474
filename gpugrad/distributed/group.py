"""The process group: which process this is (rank), how many there are (world size), and the
communicators that connect them (MPI for host arrays, NCCL for GPU arrays).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

from ..backend import cuda_device_count, cuda_is_available
from ..errors import ArgumentError, BackendUnavailableError, DistributedError
from . import rendezvous
from .mpi import MPI_HINT, MpiCommunicator, import_mpi, launcher_world_size

# Seconds a crashing rank waits, its report written, before aborting the job (see below).
ABORT_GRACE_S = 0.2

BACKENDS = ("auto", "mpi", "nccl")


@dataclass
class ProcessGroup:
    """This process's place in the job and its communicators (either may be None)."""

    backend: str  # "mpi", "nccl", or "none" for a world of one process
    rank: int
    world_size: int
    local_rank: int
    mpi: MpiCommunicator | None = None
    nccl: Any = None  # a backend.cuda_comm.NcclCommunicator


_group: list[ProcessGroup | None] = [None]
_previous_excepthook: list[Any] = [None]


def current_group(what: str) -> ProcessGroup:
    """The initialised group, or a DistributedError saying `what` needs one."""
    group = _group[0]
    if group is None:
        raise DistributedError(
            f"{what} needs a process group: call gpugrad.distributed.init_process_group() first"
        )
    return group


def init_process_group(backend: str = "auto") -> None:
    """Join the job's process group (collective: every rank calls it).

    - "mpi": mpi4py's COMM_WORLD, for processes started by `mpiexec -n N`. GPU tensors are
      staged through pinned host memory (the pip MPI builds are not CUDA-aware).
    - "nccl": NCCL between GPUs; each rank first selects its GPU by local rank. The unique id
      travels by MPI broadcast, or, started without MPI, by a TCP rendezvous read from
      MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE (and LOCAL_RANK). Cpu tensors still use MPI.
    - "auto": NCCL when there is more than one rank and each has a GPU of its own, else MPI;
      with no mpi4py and no launcher, or a single process, the world is this one process and
      collectives do nothing.
    """
    if _group[0] is not None:
        raise DistributedError(
            "init_process_group() was already called in this process (backend "
            f"{_group[0].backend!r}); call destroy_process_group() first"
        )
    if backend not in BACKENDS:
        raise ArgumentError(f"backend must be one of {BACKENDS}, got {backend!r}")
    launched = launcher_world_size()  # > 1 under mpiexec
    env = rendezvous.env_world() if launched == 1 else None  # a launch without MPI
    mpi_module = import_mpi() if env is None else None
    if env is None and mpi_module is None and (backend == "mpi" or launched > 1):
        raise BackendUnavailableError(
            f"backend {backend!r} in a job of {launched} process(es) needs mpi4py, which is "
            f"not installed; install it with {MPI_HINT}"
        )
    if backend == "mpi" and env is not None:
        raise BackendUnavailableError(
            "backend 'mpi' needs processes started by mpiexec; this one was started with "
            "MASTER_ADDR/RANK/WORLD_SIZE (use backend='nccl' for a launch without MPI)"
        )
    mpi = MpiCommunicator(mpi_module) if mpi_module is not None else None
    if mpi is not None:
        rank, world_size, local_rank = mpi.rank, mpi.world_size, mpi.local_rank
    elif env is not None:
        rank, world_size, local_rank = env["rank"], env["world_size"], env["local_rank"]
    else:
        rank, world_size, local_rank = 0, 1, 0
    if backend == "auto":
        if world_size > 1 and _gpu_for_every_rank(mpi, env):
            backend = "nccl"
        elif mpi is not None:
            backend = "mpi"
        elif world_size == 1:
            backend = "none"
        else:
            raise BackendUnavailableError(
                f"a job of {world_size} processes started without mpiexec, on a machine "
                "without a GPU, has no communicator: start it with mpiexec (needs "
                f"{MPI_HINT}) or run on GPUs (NCCL)"
            )
    nccl = _make_nccl(mpi, env, rank, world_size, local_rank) if backend == "nccl" else None
    _install(ProcessGroup(backend, rank, world_size, local_rank, mpi, nccl))


def _gpu_for_every_rank(mpi: MpiCommunicator | None, env: dict[str, Any] | None) -> bool:
    """Whether every rank of the job has a GPU of its own (NCCL needs one GPU per rank);
    decided alike on all ranks."""
    if mpi is None:  # started without MPI, one process per GPU by design
        return env is not None and cuda_is_available()
    mine = cuda_is_available() and cuda_device_count() >= mpi.local_size
    return all(mpi.all_gather_object(mine))


def _make_nccl(
    mpi: MpiCommunicator | None, env: dict[str, Any] | None, rank: int, world: int, local: int
) -> Any:
    """Select this rank's GPU, pass rank 0's NCCL id to every rank, make the communicator."""
    from ..backend import cuda_comm

    problem = None
    try:
        device_index = cuda_comm.check_gpus(local)
    except BackendUnavailableError as exc:
        problem = exc
    if mpi is not None and world > 1:
        # Agree first: a rank without a GPU must not leave the others waiting for the id.
        problems = mpi.all_gather_object(None if problem is None else str(problem))
        failed = [(r, p) for r, p in enumerate(problems) if p is not None]
        if failed:
            r, p = failed[0]
            raise BackendUnavailableError(f"rank {r}: {p}")
    elif problem is not None:
        raise problem
    cuda_comm.use_device(device_index)
    nccl_id = cuda_comm.unique_id() if rank == 0 else None
    if mpi is not None:
        nccl_id = mpi.broadcast_object(nccl_id, 0)
    elif env is not None:
        nccl_id = rendezvous.exchange(nccl_id, rank, world, env["addr"], env["port"])
    return cuda_comm.NcclCommunicator(world, nccl_id, rank, device_index)


def _install(group: ProcessGroup) -> None:
    _group[0] = group
    if group.world_size > 1:
        # An uncaught exception on one rank must end the whole job, not leave the other
        # ranks waiting forever in a collective (as `python -m mpi4py` does it).
        _previous_excepthook[0] = sys.excepthook
        sys.excepthook = _abort_on_uncaught


def _abort_on_uncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    group = _group[0]
    rank = "?" if group is None else group.rank
    # One write, then a moment before aborting: the launcher forwards each rank's output
    # through a pipe, and an abort can tear that down before it has read a second write.
    report = "".join(traceback.format_exception(kind, value, tb))
    sys.stderr.write(f"gpugrad.distributed: rank {rank} raised an uncaught exception:\n{report}")
    sys.stderr.flush()
    time.sleep(ABORT_GRACE_S)
    if group is not None:
        if group.nccl is not None:
            group.nccl.abort()
        if group.mpi is not None:
            group.mpi.abort(1)
    os._exit(1)  # without MPI: end now, without exit handlers that might wait for peers


def destroy_process_group() -> None:
    """Leave the process group: free the communicators (a later init makes new ones)."""
    group = current_group("destroy_process_group()")
    if group.nccl is not None:
        group.nccl.close()
    if _previous_excepthook[0] is not None:
        sys.excepthook = _previous_excepthook[0]
        _previous_excepthook[0] = None
    _group[0] = None


def is_initialized() -> bool:
    """Whether init_process_group() was called (and not yet destroyed)."""
    return _group[0] is not None


def get_rank() -> int:
    """This process's rank, 0 to world size - 1 (0 outside a process group)."""
    group = _group[0]
    return 0 if group is None else group.rank


def get_world_size() -> int:
    """How many processes the job has (1 outside a process group)."""
    group = _group[0]
    return 1 if group is None else group.world_size


def get_local_rank() -> int:
    """This process's rank among those on its machine: the GPU it uses (0 outside a group)."""
    group = _group[0]
    return 0 if group is None else group.local_rank


def get_backend() -> str:
    """The group's backend: "mpi", "nccl", or "none" for a world of one process."""
    return current_group("get_backend()").backend
