"""Collectives on Tensors: all_reduce, broadcast, all_gather, barrier (PyTorch's names).

Each works on the tensor's raw array outside autograd. Cpu tensors go through MPI; cuda tensors
through NCCL when the group has it, else through MPI by way of pinned host memory. In a world
of one process every collective returns at once.
"""

from __future__ import annotations

import pickle
from typing import Any

from ..autograd import bump_version
from ..dtypes import is_floating
from ..errors import ArgumentError, ArgumentTypeError, DeviceError, DTypeError, ShapeError
from ..tensor import Tensor, _make
from .group import ProcessGroup, current_group

REDUCE_OPS = ("sum", "mean", "max", "min")


def _check_tensor(tensor: Any, what: str) -> None:
    if not isinstance(tensor, Tensor):
        raise ArgumentTypeError(f"{what} takes a gpugrad Tensor, got {type(tensor).__name__}")


def _check_src(src: Any, group: ProcessGroup, what: str) -> None:
    if isinstance(src, bool) or not isinstance(src, int):
        raise ArgumentTypeError(f"{what}: src must be an int rank, got {src!r}")
    if not 0 <= src < group.world_size:
        raise ArgumentError(
            f"{what}: src={src} is not a rank of this world of {group.world_size} "
            f"(ranks 0 to {group.world_size - 1})"
        )


class _HostStaged:
    """MPI for GPU arrays on an MPI that is not CUDA-aware: through pinned host memory."""

    def __init__(self, mpi: Any) -> None:
        from ..backend import cuda_comm

        self.mpi, self.cuda_comm = mpi, cuda_comm

    def all_reduce_(self, array: Any, op: str) -> None:
        host = self.cuda_comm.to_pinned_host(array)
        self.mpi.all_reduce_(host, op)
        self.cuda_comm.copy_from_host(array, host)

    def broadcast_(self, array: Any, src: int) -> None:
        host = self.cuda_comm.to_pinned_host(array)
        self.mpi.broadcast_(host, src)
        self.cuda_comm.copy_from_host(array, host)

    def all_gather(self, array: Any, out: Any) -> None:
        host_out = self.cuda_comm.to_pinned_host(out)
        self.mpi.all_gather(self.cuda_comm.to_pinned_host(array), host_out)
        self.cuda_comm.copy_from_host(out, host_out)


def _communicator(group: ProcessGroup, tensor: Tensor) -> Any:
    """The communicator that carries `tensor`'s array."""
    if tensor.device.type == "cuda":
        if group.nccl is not None:
            if tensor.device.index != group.nccl.device_index:
                raise DeviceError(
                    f"this rank's NCCL communicator is on cuda:{group.nccl.device_index}, but "
                    f"the tensor is on {tensor.device}; move it with "
                    f".to('cuda:{group.nccl.device_index}')"
                )
            return group.nccl
        return _HostStaged(group.mpi)
    if group.mpi is None:
        raise DeviceError(
            f"a {tensor.device} tensor needs MPI, and this NCCL group was started without "
            "mpiexec; move the tensor to this rank's GPU or start the job with mpiexec"
        )
    return group.mpi


def _on_contiguous(tensor: Tensor, run: Any) -> None:
    """Call run(array) on the tensor's array, through a contiguous copy when it is not."""
    array = tensor.data
    if array.flags.c_contiguous:
        run(array)
    else:
        buffer = tensor._backend.xp.ascontiguousarray(array)
        run(buffer)
        array[...] = buffer
    bump_version(tensor)


def all_reduce(tensor: Tensor, op: str = "sum") -> Tensor:
    """Combine `tensor` across ranks, in place, with op "sum", "mean", "max" or "min";
    every rank ends with the same result. Returns the tensor."""
    group = current_group("all_reduce")
    _check_tensor(tensor, "all_reduce")
    if op not in REDUCE_OPS:
        raise ArgumentError(f"all_reduce: op must be one of {REDUCE_OPS}, got {op!r}")
    if op == "mean" and not is_floating(tensor.dtype):
        raise DTypeError(
            f"all_reduce with op='mean' needs a floating-point tensor, got {tensor.dtype}; "
            "use op='sum' and divide"
        )
    if group.world_size == 1:
        return tensor
    comm = _communicator(group, tensor)
    _on_contiguous(tensor, lambda a: comm.all_reduce_(a, "sum" if op == "mean" else op))
    if op == "mean":
        tensor.data[...] /= group.world_size
    return tensor


def broadcast(tensor: Tensor, src: int = 0) -> Tensor:
    """Overwrite `tensor` on every rank, in place, with rank `src`'s. Returns the tensor."""
    group = current_group("broadcast")
    _check_tensor(tensor, "broadcast")
    _check_src(src, group, "broadcast")
    if group.world_size == 1:
        return tensor
    comm = _communicator(group, tensor)
    _on_contiguous(tensor, lambda a: comm.broadcast_(a, src))
    return tensor


def all_gather(tensor_list: Any, tensor: Tensor | None = None) -> list[Tensor]:
    """Every rank's `tensor` (same shape and dtype on each), as a list in rank order.

    Called as `all_gather(tensor)` it returns the new list; PyTorch's form
    `all_gather(tensor_list, tensor)` fills `tensor_list` in place and returns it too.
    """
    group = current_group("all_gather")
    out_list = None
    if tensor is None:
        tensor = tensor_list
    else:
        out_list = tensor_list
        if not isinstance(out_list, list) or len(out_list) != group.world_size:
            raise ArgumentError(
                "all_gather(tensor_list, tensor): tensor_list must be a list of "
                f"{group.world_size} tensors (one per rank), got {_describe(out_list)}"
            )
    _check_tensor(tensor, "all_gather")
    if group.world_size > 1:
        _check_same_everywhere(group, (tuple(tensor.shape), str(tensor.dtype)), "all_gather")
    parts = _gather(group, tensor)
    if out_list is None:
        return parts
    for i, part in enumerate(parts):
        if isinstance(out_list[i], Tensor) and out_list[i].shape == part.shape:
            out_list[i].data[...] = part.data
            bump_version(out_list[i])
        else:
            out_list[i] = part
    return out_list


def _gather(group: ProcessGroup, tensor: Tensor) -> list[Tensor]:
    """Every rank's `tensor` (the caller made sure shapes and dtypes agree)."""
    xp = tensor._backend.xp
    gathered = xp.empty((group.world_size, *tensor.shape), dtype=tensor.dtype)
    if group.world_size == 1:
        gathered[0] = tensor.data
    else:
        _communicator(group, tensor).all_gather(xp.ascontiguousarray(tensor.data), gathered)
    return [_make(gathered[i].copy(), tensor._backend, None) for i in range(group.world_size)]


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return type(value).__name__


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's picklable `obj`, as a list in rank order (for small things: shapes,
    names, flags). Needs MPI, or NCCL (the bytes travel on this rank's GPU)."""
    group = current_group("all_gather_object")
    if group.world_size == 1:
        return [obj]
    if group.mpi is not None:
        return group.mpi.all_gather_object(obj)
    # NCCL alone: pad every rank's pickle to the longest and gather the bytes on the GPU.
    device = f"cuda:{group.nccl.device_index}"
    payload = pickle.dumps(obj)
    sizes = _gather(group, Tensor([len(payload)], dtype="int64", device=device))
    longest = max(int(s.item()) for s in sizes)
    padded = bytearray(payload) + bytes(longest - len(payload))
    mine = Tensor(list(padded), dtype="uint8", device=device)
    return [
        pickle.loads(bytes(part.numpy().tolist()[: int(size.item())]))
        for part, size in zip(_gather(group, mine), sizes)
    ]


def _check_same_everywhere(group: ProcessGroup, value: Any, what: str) -> None:
    """Raise on every rank (never hang) when the ranks pass different `value`s."""
    values = all_gather_object(value)
    for rank, other in enumerate(values):
        if other != values[0]:
            raise ShapeError(
                f"{what}: rank {rank} passes a tensor of (shape, dtype) {other}, but rank 0 "
                f"passes {values[0]}; every rank must pass the same shape and dtype"
            )


def barrier() -> None:
    """Wait until every rank has reached this call."""
    group = current_group("barrier")
    if group.world_size == 1:
        return
    if group.mpi is not None:
        group.mpi.barrier()
    else:
        group.nccl.barrier()
