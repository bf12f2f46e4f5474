"""gpugrad.distributed, DistributedDataParallel and DistributedSampler.

Multi-process behaviour runs in real MPI jobs (`mpiexec -n 2` and `-n 4` on this machine's
cores, oversubscribed), each a scenario of tests/distributed_worker.py with a timeout; the
one-process reference is computed here with the same code. Without mpi4py or mpiexec those
tests skip; the rest runs in this process, in a world of one.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.distributed as dist
from gpugrad import nn
from gpugrad.data import DistributedSampler
from gpugrad.distributed import group as group_module
from gpugrad.distributed import rendezvous
from gpugrad.errors import (
    ArgumentError,
    ArgumentTypeError,
    BackendUnavailableError,
    DistributedError,
    DTypeError,
)
from gpugrad.nn.parallel import DistributedDataParallel, _make_buckets

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
MPIEXEC = shutil.which(
    "mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
)
LAUNCH_VARIABLES = (*rendezvous.ENV_VARIABLES, "LOCAL_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE",
                    "SLURM_NTASKS")  # fmt: skip

needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
    reason='needs mpi4py and mpiexec: pip install "gpugrad[mpi]"',
)


def run_job(
    ranks: int, *args: str, script: Path = WORKER, timeout: float = 30
) -> subprocess.CompletedProcess:
    """Run `script` (the worker) under `mpiexec -n ranks`; a job that hangs fails the test."""
    # One BLAS thread a rank: ranks that each start a thread per core crawl on a small machine.
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip
    for name in LAUNCH_VARIABLES:
        env.pop(name, None)
    cmd = [MPIEXEC, "-n", str(ranks), sys.executable, str(script), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


# --- two processes train like one: equivalence, and the bugs it catches -----------------------

VARIANTS = ("none", "small_buckets", "no_broadcast", "sum", "uneven")


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    proc = run_job(2, "equivalence", str(out), *VARIANTS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def one_process_reference() -> dict[str, dict[str, np.ndarray]]:
    """1 process x batch 64: the two ranks' batches of each step, together."""
    sys.path.insert(0, str(WORKER.parent))
    import distributed_worker as worker

    both = [np.concatenate(b) for b in zip(worker.shard_batches(0), worker.shard_batches(1))]
    return {name: worker.train(worker.make_model(seed=0), name, both) for name in ("sgd", "adam")}


def _load(out: Path, variant: str, opt: str, rank: int) -> dict[str, np.ndarray]:
    with np.load(out / f"{variant}_{opt}_rank{rank}.npz") as f:
        return dict(f)


@needs_mpi
@pytest.mark.parametrize("variant", ["none", "small_buckets"])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_two_processes_match_one_process_on_the_doubled_batch(
    two_rank_results, one_process_reference, opt, variant
) -> None:
    reference = one_process_reference[opt]
    ranks = [_load(two_rank_results, variant, opt, r) for r in (0, 1)]
    assert set(ranks[0]) == set(reference)
    for name, value in reference.items():
        np.testing.assert_allclose(ranks[0][name], value, rtol=1e-5, atol=0, err_msg=name)
        assert np.array_equal(ranks[0][name], ranks[1][name]), f"ranks differ in {name}"


@needs_mpi
@pytest.mark.parametrize("variant", ["no_broadcast", "sum", "uneven"])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_planted_bugs_break_the_equivalence(
    two_rank_results, one_process_reference, opt, variant
) -> None:
    # The same comparison as above must fail for each bug (Adam barely notices a sum: it is
    # blind to the gradient's scale but for eps, which still moves it beyond rtol 1e-5).
    reference = one_process_reference[opt]
    rank0 = _load(two_rank_results, variant, opt, 0)
    close = all(np.allclose(rank0[n], v, rtol=1e-5, atol=0) for n, v in reference.items())
    assert not close, f"the {variant!r} bug went unnoticed with {opt}"


# --- four ranks on two cores: collectives, even steps, no_sync, unused parameters -------------


@needs_mpi
def test_four_ranks_features() -> None:
    proc = run_job(4, "features")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for r in range(4):  # the ranks' lines may interleave: look for each
        assert f"rank {r} ok" in proc.stdout, proc.stdout


@needs_mpi
def test_an_exception_on_one_rank_ends_the_job() -> None:
    # Rank 0 waits in a barrier for rank 1, which raised: the job must end (non-zero), not
    # hang until the timeout.
    proc = run_job(2, "crash", timeout=20)
    assert proc.returncode != 0
    assert "boom on rank 1" in proc.stderr
    assert "rank 1 raised an uncaught exception" in proc.stderr


@needs_mpi
def test_the_docs_training_script_on_two_ranks(tmp_path: Path) -> None:
    text = (REPO / "docs" / "distributed.md").read_text(encoding="utf-8")
    script = tmp_path / "train_ddp.py"
    script.write_text(re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1))
    proc = run_job(2, script=script, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].endswith("on 2 process(es)"), proc.stdout
    assert float(lines[0].split()[2]) >= 0.97, lines[0]


@needs_mpi
def test_the_gpu_check_runs_its_cpu_twin() -> None:
    # bench/distributed_gpu_check.py --smoke: the GPU checks' code on cpu tensors, 1 and 2 ranks.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = REPO / "bench" / "distributed_gpu_check.py"
    proc = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True,
                          text=True, timeout=60, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASS") == 2, proc.stdout


# --- a world of one process (no MPI) -----------------------------------------------------------


@pytest.fixture
def solo(monkeypatch: pytest.MonkeyPatch):
    """A process group of one, as without mpi4py."""
    monkeypatch.setattr(group_module, "import_mpi", lambda: None)
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    dist.init_process_group()
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_world_of_one_collectives_do_nothing(solo) -> None:
    assert dist.is_initialized() and dist.get_backend() == "none"
    assert (dist.get_rank(), dist.get_world_size(), dist.get_local_rank()) == (0, 1, 0)
    t = gg.tensor([1.0, 2.0])
    for op in dist.REDUCE_OPS:
        assert dist.all_reduce(t, op=op) is t and t.tolist() == [1.0, 2.0]
    assert dist.broadcast(t) is t and t.tolist() == [1.0, 2.0]
    assert [p.tolist() for p in dist.all_gather(t)] == [[1.0, 2.0]]
    filled = [gg.zeros(2)]
    assert dist.all_gather(filled, t) is filled and filled[0].tolist() == [1.0, 2.0]
    assert dist.all_gather_object("x") == ["x"]
    dist.barrier()
    dist.destroy_process_group()
    assert not dist.is_initialized() and dist.get_world_size() == 1


def test_ddp_in_a_world_of_one_trains_like_the_plain_model(solo) -> None:
    gg.manual_seed(0)
    plain = nn.Linear(3, 2)
    gg.manual_seed(0)
    ddp = DistributedDataParallel(nn.Linear(3, 2))
    x = gg.randn(4, 3)
    for model in (plain, ddp):
        model(x).sum().backward()
    assert np.array_equal(ddp.module.weight.grad.numpy(), plain.weight.grad.numpy())
    assert list(ddp.state_dict()) == ["module.weight", "module.bias"]
    with ddp.no_sync():
        ddp(x).sum().backward()
    assert np.array_equal(ddp.module.weight.grad.numpy(), 2 * plain.weight.grad.numpy())


def test_collectives_need_a_process_group() -> None:
    assert not dist.is_initialized()
    for call in (lambda: dist.all_reduce(gg.zeros(1)), dist.barrier,
                 lambda: DistributedDataParallel(nn.Linear(1, 1))):  # fmt: skip
        with pytest.raises(DistributedError, match="init_process_group"):
            call()


@pytest.mark.parametrize(
    ("call", "error", "names"),
    [
        (lambda: dist.all_reduce(gg.zeros(1), op="avg"), ArgumentError, "'avg'"),
        (lambda: dist.all_reduce(gg.zeros(1, dtype="int64"), op="mean"), DTypeError, "int64"),
        (lambda: dist.all_reduce([1.0]), ArgumentTypeError, "list"),
        (lambda: dist.broadcast(gg.zeros(1), src=1), ArgumentError, "src=1"),
        (lambda: dist.broadcast(gg.zeros(1), src=-1), ArgumentError, "src=-1"),
        (lambda: dist.broadcast(gg.zeros(1), src="0"), ArgumentTypeError, "'0'"),
        (lambda: dist.all_gather([], gg.zeros(1)), ArgumentError, "a list of 0"),
        (lambda: dist.init_process_group(), DistributedError, "already"),
        (lambda: DistributedDataParallel(nn.Linear(1, 1), bucket_mb=0), ArgumentError, "0"),
        (lambda: DistributedDataParallel(nn.Linear(1, 1), bucket_mb="25"), ArgumentTypeError,
         "'25'"),
        (lambda: DistributedDataParallel(nn.Linear(1, 1), bucket_mb=float("nan")),
         ArgumentError, "nan"),
        (lambda: DistributedDataParallel(lambda x: x), ArgumentTypeError, "function"),
    ],
)  # fmt: skip
def test_misuse_errors(solo, call, error, names) -> None:
    with pytest.raises(error) as info:
        call()
    assert names in str(info.value)


@pytest.mark.parametrize(
    ("backend", "environment", "names"),
    [
        ("mpi", {}, 'gpugrad[mpi]'),
        ("auto", {"PMI_SIZE": "2"}, 'gpugrad[mpi]'),  # mpiexec started 2, mpi4py is missing
        ("mpi", {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1", "RANK": "0",
                 "WORLD_SIZE": "1"}, "mpiexec"),
    ],
)  # fmt: skip
def test_mpi_missing_raises_what_to_install(monkeypatch, backend, environment, names) -> None:
    monkeypatch.setattr(group_module, "import_mpi", lambda: None)
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(BackendUnavailableError, match=names.replace("[", r"\[")):
        dist.init_process_group(backend)
    assert not dist.is_initialized()


def test_unknown_backend() -> None:
    with pytest.raises(ArgumentError, match="'gloo'"):
        dist.init_process_group("gloo")


# --- NCCL without a GPU -------------------------------------------------------------------------


@pytest.mark.skipif(gg.cuda.is_available(), reason="a GPU is here: NCCL may work")
def test_nccl_without_a_gpu_raises_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(group_module, "import_mpi", lambda: None)
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(BackendUnavailableError) as info:
        dist.init_process_group("nccl")
    assert "pip install" in str(info.value) or "GPU" in str(info.value)
    assert not dist.is_initialized()


def test_a_missing_nccl_library_names_the_wheel_to_install() -> None:
    from gpugrad.backend import cuda_comm

    try:
        cuda_comm.unique_id()
    except BackendUnavailableError as exc:
        assert "pip install" in str(exc), exc
    else:
        pytest.skip("CuPy has NCCL here: the unique id was made")


def _nccl_id_or_stand_in() -> list[int]:
    """A real NCCL unique id where CuPy has NCCL (no GPU needed), else 128 bytes like one."""
    try:
        from gpugrad.backend import cuda_comm

        return cuda_comm.unique_id()
    except (ImportError, BackendUnavailableError):
        return list(np.random.default_rng(0).integers(-128, 128, size=128).tolist())


def test_rendezvous_hands_rank_0s_id_to_every_rank() -> None:
    token = _nccl_id_or_stand_in()
    world, port = 4, _free_port()
    got: dict[int, object] = {}

    def rank_main(rank: int) -> None:
        mine = token if rank == 0 else None
        got[rank] = rendezvous.exchange(mine, rank, world, "127.0.0.1", port, timeout=20)

    threads = [threading.Thread(target=rank_main, args=(r,)) for r in reversed(range(world))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert got == {r: token for r in range(world)}


def test_rendezvous_times_out_with_a_clear_error() -> None:
    with pytest.raises(DistributedError, match="could not reach rank 0"):
        rendezvous.exchange(None, 1, 2, "127.0.0.1", _free_port(), timeout=0.3)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("environment", "names"),
    [
        ({"MASTER_ADDR": "h", "RANK": "0"}, "MASTER_PORT"),
        ({"MASTER_ADDR": "h", "MASTER_PORT": "x", "RANK": "0", "WORLD_SIZE": "2"}, "'x'"),
        ({"MASTER_ADDR": "h", "MASTER_PORT": "1", "RANK": "2", "WORLD_SIZE": "2"}, "RANK=2"),
    ],
)
def test_rendezvous_environment_errors(monkeypatch, environment, names) -> None:
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DistributedError, match=names):
        rendezvous.env_world()


# --- buckets ------------------------------------------------------------------------------------


def test_buckets_respect_the_size_and_put_the_last_parameters_first() -> None:
    params = [gg.zeros(100), gg.zeros(100), gg.zeros(300), gg.zeros(50, dtype="float64")]
    buckets = _make_buckets(params, bucket_mb=800 / 2**20)  # 800 bytes: 200 float32s
    assert [b.indices for b in buckets] == [[3], [2], [1, 0]]
    assert [b.size for b in buckets] == [50, 300, 200]
    assert [str(b.buffer.dtype) for b in buckets] == ["float64", "float32", "float32"]


# --- DistributedSampler ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 5, 7, 64, 101])
@pytest.mark.parametrize("world", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_shards_are_equal_and_cover_the_dataset(n, world, drop_last) -> None:
    shards = [
        list(DistributedSampler(range(n), num_replicas=world, rank=r, drop_last=drop_last))
        for r in range(world)
    ]
    lengths = {len(s) for s in shards}
    assert len(lengths) == 1
    assert lengths == {len(DistributedSampler(range(n), world, 0, drop_last=drop_last))}
    covered = set().union(*shards)
    if drop_last:
        assert len(covered) == sum(len(s) for s in shards) == (n // world) * world
    else:
        assert covered == set(range(n))
        # The leading num_real_samples of each shard are every index exactly once.
        real = [s[: DistributedSampler(range(n), world, r).num_real_samples]
                for r, s in enumerate(shards)]  # fmt: skip
        assert sorted(i for part in real for i in part) == list(range(n))


def test_sampler_same_permutation_on_every_rank_new_each_epoch() -> None:
    samplers = [DistributedSampler(range(20), num_replicas=2, rank=r, seed=5) for r in (0, 1)]
    first = [list(s) for s in samplers]
    assert sorted(first[0] + first[1]) == list(range(20))
    assert first[0] != list(range(0, 20, 2))  # shuffled
    assert [list(s) for s in samplers] == first  # same epoch: same order
    for s in samplers:
        s.set_epoch(1)
    second = [list(s) for s in samplers]
    assert second != first and sorted(second[0] + second[1]) == list(range(20))
    unshuffled = DistributedSampler(range(5), num_replicas=2, rank=1, shuffle=False)
    assert list(unshuffled) == [1, 3, 0]  # wrapped around: index 0 pads the last shard


def test_sampler_defaults_to_the_process_group(solo) -> None:
    sampler = DistributedSampler(range(3))
    assert (sampler.rank, sampler.num_replicas, len(sampler)) == (0, 1, 3)


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"num_replicas": 0}, ArgumentError, "num_replicas must be >= 1, got 0"),
        ({"num_replicas": 2, "rank": 2}, ArgumentError, "rank=2"),
        ({"num_replicas": 2, "rank": -1}, ArgumentError, "-1"),
        ({"num_replicas": 2.0}, ArgumentTypeError, "2.0"),
        ({"rank": "0"}, ArgumentTypeError, "'0'"),
        ({"seed": -3}, ArgumentError, "-3"),
        ({"shuffle": "yes"}, ArgumentTypeError, "'yes'"),
        ({"drop_last": 1}, ArgumentTypeError, "drop_last"),
    ],
)
def test_sampler_argument_errors(kwargs, error, names) -> None:
    kwargs = {"num_replicas": 1, "rank": 0, **kwargs}
    with pytest.raises(error) as info:
        DistributedSampler(range(4), **kwargs)
    assert names in str(info.value)


def test_sampler_errors_on_a_dataset_without_length_and_a_bad_epoch() -> None:
    with pytest.raises(ArgumentTypeError, match="generator"):
        DistributedSampler((i for i in range(3)), num_replicas=1, rank=0)
    with pytest.raises(ArgumentError, match="epoch must be >= 0, got -1"):
        DistributedSampler(range(3), num_replicas=1, rank=0).set_epoch(-1)


# --- GPU arrays on MPI: staged through host memory ----------------------------------------------


def test_gpu_arrays_on_mpi_go_through_host_memory_and_back(monkeypatch) -> None:
    # Without a GPU, NumPy arrays stand in for CuPy ones: what matters is the order (to the
    # host, the MPI collective on the host copy, back into the same device array).
    from gpugrad.backend import cuda_comm
    from gpugrad.distributed.collectives import _HostStaged

    moves: list[str] = []
    monkeypatch.setattr(cuda_comm, "to_pinned_host", lambda a: moves.append("to host") or a.copy())
    monkeypatch.setattr(
        cuda_comm, "copy_from_host", lambda a, h: moves.append("back") or a.__setitem__(..., h)
    )

    class TwoRankMpi:  # what an MPI of two ranks holding the same array would do
        def all_reduce_(self, array, op):
            moves.append(f"all_reduce {op}")
            array *= 2

        def broadcast_(self, array, src):
            moves.append(f"broadcast {src}")

        def all_gather(self, array, out):
            moves.append("all_gather")
            out[...] = array

    staged = _HostStaged(TwoRankMpi())
    device_array = np.arange(3.0)
    staged.all_reduce_(device_array, "sum")
    assert device_array.tolist() == [0.0, 2.0, 4.0]
    assert moves == ["to host", "all_reduce sum", "back"]
    moves.clear()
    staged.broadcast_(device_array, 1)
    assert moves == ["to host", "broadcast 1", "back"]
    out = np.zeros((2, 3))
    moves.clear()
    staged.all_gather(device_array, out)
    assert out.tolist() == [[0.0, 2.0, 4.0]] * 2 and moves[-1] == "back"
