"""The program tests/test_distributed.py runs under `mpiexec -n N`: one job per scenario.

    python distributed_worker.py equivalence OUT VARIANT...   # writes OUT/VARIANT_OPT_rankR.npz
    python distributed_worker.py features                     # asserts; prints "rank R ok"
    python distributed_worker.py crash                        # rank 1 raises, rank 0 waits

`train` is imported by the test too, to compute the one-process reference in the same way.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

import gpugrad as gg
import gpugrad.distributed as dist
import gpugrad.nn.functional as F
from gpugrad import nn, optim
from gpugrad.data import DistributedSampler
from gpugrad.nn.parallel import DistributedDataParallel

N_SAMPLES, N_FEATURES, N_CLASSES = 640, 8, 3
BATCH_PER_RANK, WORLD, STEPS = 32, 2, 20
OPTIMIZERS = {
    "sgd": lambda params: optim.SGD(params, lr=0.1, momentum=0.9),
    "adam": lambda params: optim.Adam(params, lr=0.01),
}


def dataset() -> tuple[np.ndarray, np.ndarray]:
    """A fixed classification set, the same in every process."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(N_SAMPLES, N_FEATURES))  # float64: differences show sharply
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5).astype(np.int64)
    return X, y


def make_model(seed: int) -> nn.Module:
    gg.manual_seed(seed)
    return nn.Sequential(nn.Linear(N_FEATURES, 16), nn.Tanh(), nn.Linear(16, N_CLASSES)).double()


def shard_batches(rank: int, world: int = WORLD) -> list[np.ndarray]:
    """Rank `rank`'s index batches for STEPS steps: its DistributedSampler shard, epoch by
    epoch, cut into batches of BATCH_PER_RANK."""
    sampler = DistributedSampler(range(N_SAMPLES), num_replicas=world, rank=rank, seed=3)
    batches: list[np.ndarray] = []
    epoch = 0
    while len(batches) < STEPS:
        sampler.set_epoch(epoch)
        order = np.array(list(sampler))
        batches += [order[i : i + BATCH_PER_RANK] for i in range(0, len(order), BATCH_PER_RANK)]
        epoch += 1
    return batches[:STEPS]


def train(model: nn.Module, opt_name: str, batches: list[np.ndarray]) -> dict[str, np.ndarray]:
    """STEPS optimizer steps of `model` on the given index batches; the final parameters."""
    X, y = dataset()
    opt = OPTIMIZERS[opt_name](model.parameters())
    for idx in batches:
        loss = F.cross_entropy(model(gg.tensor(X[idx])), gg.tensor(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {n.removeprefix("module."): p.numpy().copy() for n, p in model.named_parameters()}


@contextmanager
def bug(variant: str):
    """Plant one of the bugs the equivalence test must catch (or none)."""
    saved = dist.broadcast, dist.all_reduce
    if variant == "no_broadcast":
        dist.broadcast = lambda tensor, src=0: tensor
    elif variant == "sum":
        dist.all_reduce = lambda tensor, op="sum": saved[1](tensor, "sum")
    try:
        yield
    finally:
        dist.broadcast, dist.all_reduce = saved


def run_equivalence(out: Path, variants: list[str]) -> None:
    rank = dist.get_rank()
    for variant in variants:
        for opt_name in OPTIMIZERS:
            batches = shard_batches(rank)
            if variant == "uneven":  # rank 0 takes 40 of each 64, rank 1 the other 24
                both = [np.concatenate(b) for b in zip(shard_batches(0), shard_batches(1))]
                batches = [b[:40] if rank == 0 else b[40:] for b in both]
            with bug(variant):
                # Each rank starts from its own random init: the broadcast must fix that.
                bucket_mb = (
                    1e-4 if variant == "small_buckets" else 25
                )  # 13 float64s: a bucket a parameter
                model = DistributedDataParallel(make_model(seed=rank), bucket_mb=bucket_mb)
                params = train(model, opt_name, batches)
            np.savez(out / f"{variant}_{opt_name}_rank{rank}.npz", **params)


def check_collectives(rank: int, world: int) -> None:
    t = gg.tensor([1.0, float(rank)])
    dist.all_reduce(t)
    assert t.tolist() == [world, sum(range(world))], t
    for op, expected in (("mean", (world - 1) / 2), ("max", world - 1), ("min", 0)):
        t = gg.tensor([float(rank)], dtype="float64")
        dist.all_reduce(t, op=op)
        assert t.item() == expected, (op, t)
    b = gg.full((2, 3), float(rank))
    dist.broadcast(b, src=world - 1)
    assert (b.numpy() == world - 1).all()
    parts = dist.all_gather(gg.tensor([rank, 10 * rank]))
    assert [p.tolist() for p in parts] == [[r, 10 * r] for r in range(world)]
    assert dist.all_gather_object({"rank": rank}) == [{"rank": r} for r in range(world)]
    column = gg.arange(12.0).reshape(3, 4)[:, 1]  # not contiguous
    dist.all_reduce(column)
    assert column.tolist() == [world * 1.0, world * 5.0, world * 9.0]
    try:  # shapes that differ between ranks raise on every rank, never hang
        dist.all_gather(gg.zeros(rank + 1))
    except gg.errors.ShapeError as exc:
        assert "rank 1" in str(exc) and "(2,)" in str(exc), exc
    else:
        raise AssertionError("all_gather of different shapes did not raise")
    dist.barrier()


def check_even_steps(rank: int, world: int) -> None:
    """An odd dataset length: every rank runs the same number of steps, the shards cover the
    dataset, and evaluation that skips the padding counts every sample exactly once."""
    n, batch = 101, 8
    sampler = DistributedSampler(range(n), seed=1)
    order = list(sampler)
    steps = len(range(0, len(order), batch))
    assert dist.all_gather_object(steps) == [steps] * world
    union = set().union(*dist.all_gather_object(order))
    assert union == set(range(n)), sorted(set(range(n)) - union)
    real = order[: sampler.num_real_samples]
    totals = gg.tensor([float(sum(real)), float(len(real))], dtype="float64")
    dist.all_reduce(totals)
    assert totals.tolist() == [sum(range(n)), n], totals


def check_no_sync(rank: int, world: int) -> None:
    """Two micro-batches under no_sync and one synchronised: .grad is the mean over ranks of
    each rank's summed gradients."""
    X, y = dataset()
    ddp = DistributedDataParallel(make_model(seed=0))
    plain = make_model(seed=0)
    chunks = [np.arange(8) + 8 * (3 * rank + k) for k in range(3)]
    for k, idx in enumerate(chunks):
        xb, yb = gg.tensor(X[idx]), gg.tensor(y[idx])
        F.cross_entropy(plain(xb), yb).backward()
        if k < 2:
            with ddp.no_sync():
                F.cross_entropy(ddp(xb), yb).backward()
        else:
            F.cross_entropy(ddp(xb), yb).backward()
    for p_ddp, p_plain in zip(ddp.module.parameters(), plain.parameters()):
        expected = dist.all_reduce(p_plain.grad, op="mean").numpy()
        np.testing.assert_allclose(p_ddp.grad.numpy(), expected, rtol=1e-5, atol=1e-7)


class TwoHeads(nn.Module):
    """A head used only on rank 0, and one used nowhere."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.rank0_head = nn.Linear(4, 1)
        self.unused_head = nn.Linear(4, 1)

    def forward(self, x: gg.Tensor) -> gg.Tensor:
        h = self.body(x).sum(axis=1, keepdims=True)
        return h + self.rank0_head(x) if dist.get_rank() == 0 else h


def check_unused_parameters(rank: int, world: int) -> None:
    gg.manual_seed(0)
    model = DistributedDataParallel(TwoHeads())
    x = gg.full((2, 4), float(rank + 1))
    model(x).sum().backward()
    grads = {name: p.grad for name, p in model.module.named_parameters()}
    assert grads["unused_head.weight"] is None and grads["unused_head.bias"] is None
    head = grads["rank0_head.weight"].numpy()
    # Rank 0's gradient (x summed over the batch: 2 * 1.0 per column) over the world.
    np.testing.assert_allclose(head, np.full((1, 4), 2.0 / world))
    everyone = dist.all_gather_object({n: g.numpy() for n, g in grads.items() if g is not None})
    for other in everyone:
        for name, value in other.items():
            assert np.array_equal(value, everyone[0][name]), name


class TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(2, 1), nn.Linear(2, 1)

    def forward(self, x: gg.Tensor) -> tuple[gg.Tensor, gg.Tensor]:
        return self.a(x), self.b(x)


def check_partly_used_output(rank: int, world: int) -> None:
    """A loss from part of the output leaves gradients unaveraged: the next forward says so
    (on every rank alike) instead of training on."""
    model = DistributedDataParallel(TwoOutputs())
    x = gg.ones(3, 2)
    model(x)[0].sum().backward()
    try:
        model(x)
    except gg.errors.GraphError as exc:
        message = str(exc)
    else:
        message = "no error"
    assert "'b.weight'" in message, message
    out_a, out_b = model(x)  # the error disarmed the check: a full step works again
    (out_a + out_b).sum().backward()
    assert model.module.b.weight.grad is not None


def check_model_mismatch(rank: int, world: int) -> None:
    """Ranks that build different models all raise, naming the rank and the parameter."""
    gg.manual_seed(0)
    hidden = 5 if rank == 1 else 4
    try:
        DistributedDataParallel(nn.Sequential(nn.Linear(3, hidden), nn.Linear(hidden, 1)))
    except gg.errors.ShapeError as exc:
        message = str(exc)
    else:
        message = "no error"
    assert dist.all_gather_object("rank 1" in message and "'0.weight'" in message) == [True] * world


def check_nccl_refused(world: int) -> None:
    """Without a GPU (or NCCL), init_process_group("nccl") raises on every rank, never hangs."""
    try:
        dist.init_process_group("nccl")
    except gg.errors.BackendUnavailableError as exc:
        assert "pip install" in str(exc) or "GPU" in str(exc), exc
    else:
        raise AssertionError("init_process_group('nccl') worked without a GPU")


def run_features() -> None:
    if not gg.cuda.is_available():
        check_nccl_refused(0)
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    check_collectives(rank, world)
    check_even_steps(rank, world)
    check_no_sync(rank, world)
    check_unused_parameters(rank, world)
    check_partly_used_output(rank, world)
    check_model_mismatch(rank, world)
    print(f"rank {rank} ok", flush=True)


def run_crash() -> None:
    dist.init_process_group("mpi")
    if dist.get_rank() == 1:
        raise RuntimeError("boom on rank 1")
    dist.barrier()  # the other ranks wait here for rank 1, which never comes


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "equivalence":
        dist.init_process_group()  # "auto": MPI here, without a GPU for every rank
        assert dist.get_backend() == ("nccl" if gg.cuda.device_count() >= 2 else "mpi")
        run_equivalence(Path(sys.argv[2]), sys.argv[3:])
    elif command == "features":
        run_features()
    elif command == "crash":
        run_crash()
    else:
        raise SystemExit(f"unknown command {command!r}")
