"""DistributedDataParallel: one model per process, gradients averaged across processes.

Every rank holds the whole model and trains on its own shard of each batch. Wrapping the model
broadcasts rank 0's parameters and buffers, after checking that every rank built the same
model. After `loss.backward()` returns, every parameter's `.grad` holds the mean over ranks
of the gradients, so any optimizer works unchanged and all ranks stay bitwise identical.

How: each parameter has a tensor hook. The engine runs leaf hooks at the end of backward,
just before it adds the gradients into `.grad`. The forward notes which parameters its output
depends on; when the last of them has reported, the gradients (plus what `.grad` already held,
from `no_sync()` steps) are copied into flat buffers of at most `bucket_mb` MB, each buffer
is all-reduced once, and the means are handed back through the hooks. A parameter without a
gradient on some rank counts as zeros there; one without a gradient on any rank is left as it
is: the same decision on every rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..autograd import Function, is_grad_enabled, no_grad
from ..errors import (
    ArgumentError,
    ArgumentTypeError,
    DeviceError,
    DTypeError,
    GraphError,
    ShapeError,
)
from ..tensor import Tensor, _make
from .module import Module


@dataclass
class _Bucket:
    """Parameters (same dtype) whose gradients travel in one flat buffer."""

    indices: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    size: int = 0
    buffer: Any = None


class DistributedDataParallel(Module):
    """Wrap `module` so that backward leaves the mean gradient over all ranks in `.grad`.

    Needs `gpugrad.distributed.init_process_group()` first. Calls go to the wrapped module
    (`ddp.module`); its state_dict keys gain the prefix "module.". Buffers (BatchNorm's
    running statistics) are broadcast from rank 0 once, at construction.
    """

    def __init__(self, module: Module, bucket_mb: float = 25) -> None:
        from .. import distributed

        super().__init__()
        if not isinstance(module, Module):
            raise ArgumentTypeError(
                f"DistributedDataParallel wraps a Module, got {type(module).__name__}"
            )
        if isinstance(bucket_mb, bool) or not isinstance(bucket_mb, (int, float)):
            raise ArgumentTypeError(
                f"DistributedDataParallel: bucket_mb must be a number, got {bucket_mb!r}"
            )
        if not (math.isfinite(bucket_mb) and bucket_mb > 0):
            raise ArgumentError(
                f"DistributedDataParallel: bucket_mb must be a positive number, got {bucket_mb}"
            )
        world_size = distributed.group.current_group("DistributedDataParallel").world_size
        named = _unique_parameters(module)
        _check_same_model(module)
        _check_one_device(named)
        self.module = module
        self.bucket_mb = bucket_mb
        self._world_size = world_size
        self._names = [name for name, _ in named]
        self._params = [p for _, p in named]
        self._buckets = _make_buckets(self._params, bucket_mb)
        self._index = {id(p): i for i, p in enumerate(self._params)}
        self._expected: set[int] = set()  # parameters whose hook fires before the reduction
        self._armed = False  # a forward has set _expected and no reduction has happened since
        self._arrived: dict[int, tuple[Any, Any]] = {}  # index -> (local grad, result array)
        self._sync = True
        with no_grad():
            for tensor in (*module.parameters(), *module.buffers()):
                distributed.broadcast(tensor, src=0)
        if world_size > 1:
            for i, p in enumerate(self._params):
                p.register_hook(partial(self._on_gradient, i))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the wrapped module; note which parameters backward will reach."""
        output = self.module(*args, **kwargs)
        if self._world_size == 1 or not is_grad_enabled():
            return output
        if not self._sync:
            self._expected, self._armed = set(), False
            return output
        if self._arrived:
            missing = sorted(self._expected - set(self._arrived))
            names = ", ".join(repr(self._names[i]) for i in missing[:3])
            self._arrived.clear()
            raise GraphError(
                f"DistributedDataParallel: the last backward reached only some of the "
                f"parameters its forward used (not {names}), so no gradient was averaged; "
                "backpropagate from a loss that uses the whole output (or use no_sync())"
            )
        reached = _parameters_reached(output, self._index)
        self._expected = self._expected | reached if self._armed else reached
        self._armed = True
        return output

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside, forward and backward keep gradients local (they accumulate in `.grad`);
        the first synchronised backward after it averages the accumulated sums."""
        previous = self._sync
        self._sync = False
        try:
            yield
        finally:
            self._sync = previous

    def _on_gradient(self, i: int, grad: Tensor) -> Tensor | None:
        """Tensor hook of parameter i: collect its gradient; after the last one, reduce."""
        if i not in self._expected:
            return None
        local = grad.data
        result = local.copy()  # handed to the engine now, filled with the mean by _reduce
        self._arrived[i] = (local, result)
        if len(self._arrived) == len(self._expected):
            self._reduce()
        return _make(result, grad._backend, None)

    def _reduce(self) -> None:
        """Average every parameter's gradient (this step's plus `.grad`) across ranks."""
        from .. import distributed

        params, arrived = self._params, self._arrived
        first = params[0]
        # Which parameters have a gradient on some rank: a host array when MPI is there, so a
        # GPU step needs no device-to-host copy for it.
        on_host = distributed.group.current_group("DistributedDataParallel").mpi is not None
        flags = [int(i in arrived or p.grad is not None) for i, p in enumerate(params)]
        has_grad = Tensor(flags, dtype="int32", device="cpu" if on_host else first.device)
        distributed.all_reduce(has_grad, op="sum")
        anywhere = has_grad.numpy().tolist()
        for bucket in self._buckets:
            views = []
            for i, offset in zip(bucket.indices, bucket.offsets):
                p = params[i]
                view = bucket.buffer[offset : offset + p.size].reshape(p.shape)
                views.append(view)
                local = arrived[i][0] if i in arrived else None
                if local is not None:
                    view[...] = local
                    if p.grad is not None:
                        view += p.grad.data
                elif p.grad is not None:
                    view[...] = p.grad.data
                else:
                    view[...] = 0
            distributed.all_reduce(_make(bucket.buffer, first._backend, None), op="mean")
            for i, mean in zip(bucket.indices, views):
                if anywhere[i]:
                    self._give_mean(i, mean)
        arrived.clear()
        self._armed = False

    def _give_mean(self, i: int, mean: Any) -> None:
        """Leave `mean` as parameter i's gradient once the engine has deposited what the hooks
        returned: in an existing `.grad`, in place (optimizers may hold views of it, and the
        hook's array becomes zeros to add), else in the hook's array or a new `.grad`."""
        p = self._params[i]
        pending = self._arrived.get(i)
        if p.grad is not None:
            p.grad.data[...] = mean
            if pending is not None:
                pending[1][...] = 0
        elif pending is not None:
            pending[1][...] = mean
        else:
            p.grad = _make(mean.copy(), p._backend, None)

    def extra_repr(self) -> str:
        return f"world_size={self._world_size}, bucket_mb={self.bucket_mb}"


def _unique_parameters(module: Module) -> list[tuple[str, Tensor]]:
    """The parameters that require grad, each once (shared weights appear once)."""
    seen: set[int] = set()
    named = []
    for name, p in module.named_parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            named.append((name, p))
    return named


def _check_one_device(named: list[tuple[str, Tensor]]) -> None:
    devices = {str(p.device) for _, p in named}
    if len(devices) > 1:
        raise DeviceError(
            "DistributedDataParallel needs all parameters on one device, got "
            f"{', '.join(sorted(devices))}"
        )


def _check_same_model(module: Module) -> None:
    """Raise on every rank (never hang) unless all ranks hold the same parameters and buffers:
    names, shapes, dtypes and device types."""
    from .. import distributed

    layout = [
        (kind, name, tuple(t.shape), str(t.dtype), t.device.type)
        for kind, items in (("parameter", module.named_parameters()),
                            ("buffer", module.named_buffers()))
        for name, t in items
    ]  # fmt: skip
    layouts = distributed.all_gather_object(layout)
    reference = layouts[0]
    for rank, other in enumerate(layouts):
        if other == reference:
            continue
        if len(other) != len(reference):
            raise ShapeError(
                f"DistributedDataParallel: rank {rank} has {len(other)} parameters and buffers, "
                f"rank 0 has {len(reference)}; every rank must build the same model"
            )
        for mine, ref in zip(other, reference):
            if mine == ref:
                continue
            kind, name = mine[0], mine[1]
            what = (
                f"DistributedDataParallel: rank {rank}'s {kind} {name!r} is "
                f"{mine[2]} {mine[3]} on {mine[4]}, rank 0's {ref[1]!r} is {ref[2]} {ref[3]} on "
                f"{ref[4]}; every rank must build the same model"
            )
            if mine[3] != ref[3]:
                raise DTypeError(what)
            if mine[4] != ref[4]:
                raise DeviceError(what)
            raise ShapeError(what)


def _make_buckets(params: list[Tensor], bucket_mb: float) -> list[_Bucket]:
    """Group parameters, last first (their gradients are ready first), into buckets of at most
    bucket_mb MB of one dtype; a larger parameter gets a bucket of its own."""
    limit = bucket_mb * 2**20
    open_buckets: dict[str, _Bucket] = {}
    buckets: list[_Bucket] = []
    for i in reversed(range(len(params))):
        p = params[i]
        key = str(p.dtype)
        bucket = open_buckets.get(key)
        nbytes = p.size * p.data.itemsize
        if bucket is None or (bucket.size and (bucket.size * p.data.itemsize + nbytes > limit)):
            bucket = open_buckets[key] = _Bucket()
            buckets.append(bucket)
        bucket.indices.append(i)
        bucket.offsets.append(bucket.size)
        bucket.size += p.size
    for bucket in buckets:
        p = params[bucket.indices[0]]
        bucket.buffer = p._backend.xp.empty(bucket.size, dtype=p.dtype)
    return buckets


def _parameters_reached(output: Any, index: dict[int, int]) -> set[int]:
    """Indices (by `index`, keyed by id) of the parameters the output's graph leads to."""
    found: set[int] = set()
    stack: list[Function] = []
    for t in _tensors_in(output):
        if t.grad_fn is not None:
            stack.append(t.grad_fn)
        elif id(t) in index:
            found.add(index[id(t)])
    seen = set(stack)
    while stack:
        node = stack.pop()
        for edge in node.edges or ():
            if edge is None:
                continue
            if isinstance(edge, Tensor):
                i = index.get(id(edge))
                if i is not None:
                    found.add(i)
            elif edge not in seen:
                seen.add(edge)
                stack.append(edge)
    return found


def _tensors_in(value: Any) -> Iterator[Tensor]:
    """The Tensors in a module's output: a Tensor, or tuples, lists and dicts of them."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors_in(item)
