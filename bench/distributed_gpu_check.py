"""GPU checks of gpugrad.distributed, for a machine with a GPU (run by hand; prints PASS/FAIL).

    python bench/distributed_gpu_check.py            # on a GPU machine
    python bench/distributed_gpu_check.py --smoke    # the same code on cpu tensors, no GPU needed

Checks, each in fresh processes:

1. nccl-world-1: one process, `init_process_group("nccl")` (GPU chosen by local rank, NCCL id
   made and passed, communicator of one): all_reduce / broadcast / all_gather on cuda tensors,
   and a DistributedDataParallel step equal to the plain model's.
2. mpi-cupy-2: `mpiexec -n 2`, backend "mpi" with CuPy arrays staged through pinned host memory:
   collectives give the exact sums, and 20 DDP steps equal 1 process on the doubled batch
   (rtol 1e-5) with bitwise equal ranks.
3. nccl-2: as 2 with backend "nccl", where the machine has 2 GPUs or more.

The exit status is the number of failed checks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _collectives(device: str) -> None:
    import gpugrad as gg
    import gpugrad.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    t = gg.tensor([1.0, float(rank)], device=device)
    dist.all_reduce(t)
    assert t.tolist() == [world, sum(range(world))], t
    m = gg.tensor([float(rank)], device=device)
    dist.all_reduce(m, op="max")
    assert m.item() == world - 1
    b = gg.full((3,), float(rank), device=device)
    dist.broadcast(b, src=world - 1)
    assert b.tolist() == [world - 1.0] * 3
    parts = dist.all_gather(gg.tensor([rank], device=device))
    assert [p.item() for p in parts] == list(range(world))
    dist.barrier()


def _train(device: str, batches: list, ddp: bool) -> list:
    import numpy as np

    import gpugrad as gg
    import gpugrad.distributed as dist
    import gpugrad.nn.functional as F
    from gpugrad import nn, optim
    from gpugrad.nn.parallel import DistributedDataParallel

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(256, 8)), rng.integers(0, 3, size=256)
    gg.manual_seed(dist.get_rank() if ddp else 0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)).double().to(device)
    if ddp:
        model = DistributedDataParallel(model)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for idx in batches:
        xb, yb = gg.tensor(X[idx], device=device), gg.tensor(y[idx], device=device)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.numpy() for p in model.parameters()]


def _role(backend: str, device: str) -> None:
    import numpy as np

    import gpugrad.distributed as dist

    dist.init_process_group(backend)
    if device == "cuda":
        device = f"cuda:{dist.get_local_rank()}" if backend == "nccl" else "cuda:0"
    rank, world = dist.get_rank(), dist.get_world_size()
    _collectives(device)
    order = np.random.default_rng(1).permutation(256)
    steps = [order[i : i + 32] for i in range(0, 256, 32)] * 3
    mine = _train(device, [s[rank::world] for s in steps], ddp=True)
    reference = _train(device, steps, ddp=False)  # every rank computes it, locally
    for a, b in zip(mine, reference):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-12)
    everyone = dist.all_gather_object(mine)
    assert all(all(np.array_equal(a, b) for a, b in zip(o, mine)) for o in everyone)
    if rank == 0:
        print(f"ok: backend {backend}, {world} rank(s), {device}", flush=True)
    dist.destroy_process_group()


def _launch(nproc: int, backend: str, device: str) -> tuple[bool, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--role", backend, "--device", device]
    if nproc > 1:
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        mpiexec = shutil.which("mpiexec", path=path)
        if mpiexec is None:
            return False, 'no mpiexec: pip install "gpugrad[mpi]"'
        cmd = [mpiexec, "-n", str(nproc), *cmd]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    except subprocess.TimeoutExpired:
        return False, "timed out after 300 s"
    ok = proc.returncode == 0 and "ok:" in proc.stdout
    return ok, (proc.stdout + proc.stderr).strip().splitlines()[-1] if not ok else "ok"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="cpu tensors over MPI; no GPU needed")
    p.add_argument("--role", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role:
        _role(args.role, args.device)
        return 0
    import gpugrad as gg

    if args.smoke:
        checks = [("mpi-cpu-1", 1, "mpi", "cpu"), ("mpi-cpu-2", 2, "mpi", "cpu")]
    elif not gg.cuda.is_available():
        print("no CUDA GPU here: run with --smoke for the cpu twin of these checks")
        return 1
    else:
        checks = [("nccl-world-1", 1, "nccl", "cuda"), ("mpi-cupy-2", 2, "mpi", "cuda")]
        if gg.cuda.device_count() >= 2:
            checks.append(("nccl-2", 2, "nccl", "cuda"))
    failed = 0
    for name, nproc, backend, device in checks:
        ok, detail = _launch(nproc, backend, device)
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
