"""CuPy's side of `gpugrad.distributed`: NCCL communicators (`cupy.cuda.nccl`) for GPU arrays,
and moving GPU arrays through pinned host memory for an MPI that is not CUDA-aware.

Nothing here is imported until a process group needs a GPU, so gpugrad runs without CuPy.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError
from . import INSTALL_HINT, cuda_device_count

NCCL_HINT = (
    'pip install "gpugrad[cuda12]" or "gpugrad[cuda13]": they pull NCCL '
    "(nvidia-nccl-cu12 / nvidia-nccl-cu13) with CuPy"
)


def _nccl() -> Any:
    """CuPy's NCCL module, or a BackendUnavailableError saying what is missing."""
    try:
        with warnings.catch_warnings():  # CuPy warns when libnccl is missing; we raise instead
            warnings.simplefilter("ignore")
            from cupy.cuda import nccl
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the NCCL backend needs CuPy, which cannot be imported ({exc}); install it with "
            f"{INSTALL_HINT}"
        ) from exc
    if not getattr(nccl, "available", True) or not hasattr(nccl, "get_unique_id"):
        raise BackendUnavailableError(
            f"CuPy cannot load the NCCL library (libnccl.so.2); install it with {NCCL_HINT}"
        )
    return nccl


def unique_id() -> list[int]:
    """A fresh NCCL unique id (rank 0 makes it, every rank needs it), as a list of ints.

    Needs the NCCL library but no GPU."""
    return list(_nccl().get_unique_id())


def check_gpus(local_rank: int) -> int:
    """The GPU this rank uses (its local rank, modulo the GPUs on the machine); raises a
    BackendUnavailableError when NCCL or a GPU is missing."""
    _nccl()
    count = cuda_device_count()
    if count == 0:
        raise BackendUnavailableError(
            "the NCCL backend needs a CUDA GPU, and CuPy found none (no GPU or no NVIDIA "
            "driver); use init_process_group('mpi') for cpu tensors"
        )
    return local_rank % count


def use_device(index: int) -> None:
    """Make GPU `index` this process's current CUDA device (before any communicator)."""
    import cupy

    cupy.cuda.Device(index).use()


_NCCL_TYPES = {
    "float16": "NCCL_FLOAT16",
    "float32": "NCCL_FLOAT32",
    "float64": "NCCL_FLOAT64",
    "int8": "NCCL_INT8",
    "uint8": "NCCL_UINT8",
    "int32": "NCCL_INT32",
    "int64": "NCCL_INT64",
}
_NCCL_OPS = {"sum": "NCCL_SUM", "max": "NCCL_MAX", "min": "NCCL_MIN"}


class NcclCommunicator:
    """One rank's NCCL communicator over contiguous CuPy arrays, on the current stream."""

    def __init__(self, world_size: int, nccl_id: list[int], rank: int, device_index: int) -> None:
        import cupy

        nccl = _nccl()
        self._nccl = nccl
        self.device_index = device_index
        use_device(device_index)
        try:
            self._comm = nccl.NcclCommunicator(world_size, tuple(nccl_id), rank)
        except (nccl.NcclError, cupy.cuda.runtime.CUDARuntimeError) as exc:
            raise BackendUnavailableError(
                f"NCCL could not make a communicator for rank {rank} of {world_size} on "
                f"cuda:{device_index}: {exc}"
            ) from exc

    def _type(self, array: Any) -> int:
        name = _NCCL_TYPES.get(str(array.dtype))
        if name is None:
            raise BackendUnavailableError(f"NCCL cannot carry {array.dtype} arrays")
        return getattr(self._nccl, name)

    @staticmethod
    def _stream() -> int:
        import cupy

        return cupy.cuda.get_current_stream().ptr

    def all_reduce_(self, array: Any, op: str) -> None:
        """Reduce `array` across ranks in place (`op`: sum, max or min)."""
        ptr = array.data.ptr
        op_code = getattr(self._nccl, _NCCL_OPS[op])
        self._comm.allReduce(ptr, ptr, array.size, self._type(array), op_code, self._stream())

    def broadcast_(self, array: Any, src: int) -> None:
        """Overwrite `array` with rank `src`'s."""
        self._comm.bcast(array.data.ptr, array.size, self._type(array), src, self._stream())

    def all_gather(self, array: Any, out: Any) -> None:
        """Write every rank's `array` into `out[rank]`."""
        self._comm.allGather(
            array.data.ptr, out.data.ptr, array.size, self._type(array), self._stream()
        )

    def barrier(self) -> None:
        """Wait until every rank gets here (a one-element allreduce, then a stream sync)."""
        import cupy

        token = cupy.zeros(1, dtype=cupy.int32)
        self.all_reduce_(token, "sum")
        cupy.cuda.get_current_stream().synchronize()

    def abort(self) -> None:
        """Abort the communicator, so ranks blocked in a collective return."""
        self._comm.abort()

    def close(self) -> None:
        """Free the communicator."""
        self._comm.destroy()


def to_pinned_host(array: Any) -> np.ndarray:
    """A copy of a CuPy array in pinned host memory, after the stream's queued work is done."""
    import cupy

    cupy.cuda.get_current_stream().synchronize()
    memory = cupy.cuda.alloc_pinned_memory(array.nbytes)
    host = np.frombuffer(memory, array.dtype, array.size).reshape(array.shape)
    array.get(out=host)
    return host


def copy_from_host(array: Any, host: np.ndarray) -> None:
    """Write a host array into the CuPy array `array` (same shape and dtype)."""
    array.set(host)
