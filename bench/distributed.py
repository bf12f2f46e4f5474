"""What data parallelism costs here: allreduce throughput and the MLP step on 1 and N processes.

    python bench/distributed.py                   # both tables (1 and 2 processes)
    python bench/distributed.py --nproc 1 2 4 --json /tmp/dist.json
    python bench/distributed.py --smoke           # tiny sizes: it runs (the times mean nothing)

The parent process starts `mpiexec -n N python bench/distributed.py --role ...` jobs (MPICH's
`mpiexec` from `pip install "gpugrad[mpi]"`), gives each rank cpu_count // N BLAS threads so
ranks do not fight over cores, and prints what rank 0 reports:

- allreduce: `dist.all_reduce(t, op="sum")` of a float32 tensor of 1-100 MB on N ranks (the
  largest N asked for); median time, algorithm bandwidth (bytes / time) and bus bandwidth
  (x 2(N-1)/N, the bytes each rank actually moves in a ring allreduce).
- step: one SGD step (lr 0.01) of the MLP 784-512-512-10 (float32, cross-entropy) wrapped in
  DistributedDataParallel, at a fixed global batch of 2048 split over N ranks; median time per
  step (the slowest rank's), speed-up over 1 process and scaling efficiency (speed-up / N).

Nothing is asserted. On a machine with fewer cores than ranks x BLAS threads the ranks share
cores that one process would use alone, so efficiency there says little about a cluster.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _role_allreduce(sizes_mb: list[float], repeats: int) -> dict:
    import gpugrad as gg
    import gpugrad.distributed as dist

    world = dist.get_world_size()
    rows = []
    for size in sizes_mb:
        t = gg.zeros(int(size * 2**20) // 4)
        dist.all_reduce(t)  # warm-up: connections, page faults
        times = []
        for _ in range(repeats):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(t)
            times.append(time.perf_counter() - start)
        slowest = dist.all_reduce(gg.tensor([statistics.median(times)], dtype="float64"), "max")
        seconds = slowest.item()
        algbw = size * 2**20 / seconds / 1e9
        rows.append({"mb": size, "ms": seconds * 1e3, "algbw_gbs": algbw,
                     "busbw_gbs": algbw * 2 * (world - 1) / world})  # fmt: skip
    return {"role": "allreduce", "world": world, "rows": rows}


def _role_step(global_batch: int, steps: int, widths: list[int]) -> dict:
    import gpugrad as gg
    import gpugrad.distributed as dist
    import gpugrad.nn.functional as F
    from gpugrad import nn, optim
    from gpugrad.nn.parallel import DistributedDataParallel

    world, rank = dist.get_world_size(), dist.get_rank()
    gg.manual_seed(0)
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(widths):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    model = DistributedDataParallel(nn.Sequential(*layers[:-1]))
    opt = optim.SGD(model.parameters(), lr=0.01)
    batch = global_batch // world
    gg.manual_seed(1 + rank)
    x = gg.randn(batch, widths[0])
    y = gg.randint(0, widths[-1], (batch,))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    times = []
    for _ in range(steps):
        dist.barrier()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    slowest = dist.all_reduce(gg.tensor([statistics.median(times)], dtype="float64"), "max")
    return {"role": "step", "world": world, "batch_per_rank": batch, "ms": slowest.item() * 1e3}


def _run_role(args: argparse.Namespace) -> None:
    import gpugrad.distributed as dist

    dist.init_process_group("mpi")
    if args.role == "allreduce":
        result = _role_allreduce(args.sizes_mb, args.repeats)
    else:
        result = _role_step(args.global_batch, args.steps, args.widths)
    if dist.get_rank() == 0:
        print("RESULT " + json.dumps(result), flush=True)
    dist.destroy_process_group()


def _launch(nproc: int, role_args: list[str]) -> dict:
    mpiexec = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if mpiexec is None:
        raise SystemExit('bench/distributed.py needs mpiexec: pip install "gpugrad[mpi]"')
    threads = str(max(1, (os.cpu_count() or 1) // nproc))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
           "MKL_NUM_THREADS": threads, "PYTHONPATH": str(REPO)}  # fmt: skip
    cmd = [mpiexec, "-n", str(nproc), sys.executable, __file__, *role_args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or len(lines) != 1:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(lines[0].removeprefix("RESULT "))
    result["blas_threads"] = int(threads)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2], help="process counts")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, to check that it runs")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--role", choices=["allreduce", "step"], help=argparse.SUPPRESS)
    p.add_argument("--sizes-mb", type=float, nargs="+", default=[1, 10, 25, 100])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--global-batch", type=int, default=2048)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--widths", type=int, nargs="+", default=[784, 512, 512, 10])
    args = p.parse_args()
    if args.smoke:
        args.sizes_mb, args.repeats, args.steps = [0.01, 0.1], 2, 2
        args.global_batch, args.widths = 16, [8, 16, 4]
    if args.role:
        _run_role(args)
        return
    shared = ["--repeats", str(args.repeats), "--sizes-mb", *map(str, args.sizes_mb),
              "--global-batch", str(args.global_batch), "--steps", str(args.steps),
              "--widths", *map(str, args.widths)]  # fmt: skip
    allreduce = _launch(max(args.nproc), ["--role", "allreduce", *shared])
    steps = [_launch(n, ["--role", "step", *shared]) for n in args.nproc]

    print(f"allreduce, float32, {allreduce['world']} ranks ({allreduce['blas_threads']} BLAS "
          f"threads each), median of {args.repeats}")  # fmt: skip
    print(f"{'MB':>8} {'ms':>9} {'algbw GB/s':>11} {'busbw GB/s':>11}")
    for row in allreduce["rows"]:
        print(f"{row['mb']:>8g} {row['ms']:>9.3f} {row['algbw_gbs']:>11.3f} "
              f"{row['busbw_gbs']:>11.3f}")  # fmt: skip
    widths = "-".join(map(str, args.widths))
    print(f"\nMLP {widths} SGD step, global batch {args.global_batch}, median of {args.steps}")
    print(f"{'procs':>5} {'batch/rank':>10} {'BLAS thr':>8} {'ms/step':>9} {'speed-up':>9} "
          f"{'efficiency':>10}")  # fmt: skip
    base = next((s["ms"] for s in steps if s["world"] == 1), None)
    for s in steps:
        speedup = base / s["ms"] if base else float("nan")
        print(f"{s['world']:>5} {s['batch_per_rank']:>10} {s['blas_threads']:>8} "
              f"{s['ms']:>9.2f} {speedup:>9.2f} {speedup / s['world']:>10.2f}")  # fmt: skip
    print(f"\n{os.cpu_count()} logical CPUs on this machine.")
    if args.json:
        args.json.write_text(json.dumps({"allreduce": allreduce, "step": steps}, indent=2))


if __name__ == "__main__":
    main()
