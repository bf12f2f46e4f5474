"""MPI through mpi4py: the communicator for cpu arrays, the launcher `mpiexec` sets up.

`import mpi4py.MPI` initialises MPI, so it happens only when a process group is made.
"""

from __future__ import annotations

import os
from typing import Any

MPI_HINT = 'pip install "gpugrad[mpi]" (mpi4py and MPICH)'

# Variables MPI launchers set in every process they start: MPICH/Hydra, Open MPI, Slurm.
_LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS")


def import_mpi() -> Any:
    """mpi4py's MPI module, or None when mpi4py is not installed."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI


def launcher_world_size() -> int:
    """How many processes an MPI launcher says it started (1 when none did)."""
    for name in _LAUNCHER_SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


class MpiCommunicator:
    """COMM_WORLD over host (NumPy) arrays: in-place, zero-copy collectives."""

    def __init__(self, mpi: Any) -> None:
        self.MPI = mpi
        self.comm = mpi.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.world_size = self.comm.Get_size()
        # The rank among the processes of this machine: they share memory.
        local = self.comm.Split_type(mpi.COMM_TYPE_SHARED)
        self.local_rank = local.Get_rank()
        self.local_size = local.Get_size()
        local.Free()
        self._ops = {"sum": mpi.SUM, "max": mpi.MAX, "min": mpi.MIN}

    def all_reduce_(self, array: Any, op: str) -> None:
        """Reduce a contiguous array across ranks in place (`op`: sum, max or min)."""
        self.comm.Allreduce(self.MPI.IN_PLACE, array, op=self._ops[op])

    def broadcast_(self, array: Any, src: int) -> None:
        """Overwrite a contiguous array with rank `src`'s."""
        self.comm.Bcast(array, root=src)

    def all_gather(self, array: Any, out: Any) -> None:
        """Write every rank's contiguous `array` into `out[rank]`."""
        self.comm.Allgather(array, out)

    def broadcast_object(self, obj: Any, src: int) -> Any:
        """Rank `src`'s picklable `obj`, on every rank (small messages only)."""
        return self.comm.bcast(obj, root=src)

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's picklable `obj`, in rank order (small messages only)."""
        return self.comm.allgather(obj)

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every process of the job (mpiexec stops them all)."""
        self.comm.Abort(code)
