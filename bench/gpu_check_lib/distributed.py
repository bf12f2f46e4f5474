"""Section 5: gpugrad.distributed on the device (issue 14's GPU checks).

Runs `bench/distributed_gpu_check.py` in fresh processes: NCCL with a world of one, and two MPI
ranks exchanging CuPy arrays (NCCL on two GPUs where there are two). In `--smoke` it runs the same
checks on cpu tensors over MPI. Each PASS/FAIL line it prints becomes a row; without mpi4py the
section says so (a SKIP row) rather than failing.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from .core import ERROR, FAIL, PASS, SKIP, Context, Report, Row

SCRIPT = Path(__file__).resolve().parent.parent / "distributed_gpu_check.py"
TIMEOUT_S = 240  # the script gives each job 300 s; together they must fit the run's budget


def section_distributed(ctx: Context, report: Report) -> None:
    """Run the distributed checks and add one row per check."""
    if importlib.util.find_spec("mpi4py") is None:
        report.add(Row("distributed", "mpi4py", "not installed", "", SKIP))
        return
    cmd = [sys.executable, str(SCRIPT), *(["--smoke"] if ctx.settings.smoke else [])]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        report.add(Row("distributed", "all checks", f"timed out after {TIMEOUT_S} s", "", ERROR))
        return
    found = False
    for line in proc.stdout.splitlines():
        verdict, _, rest = line.partition(" ")
        if verdict in (PASS, FAIL):
            name, _, detail = rest.partition(": ")
            report.add(Row("distributed", name, detail, "exact sums, DDP = 1 process", verdict))
            found = True
    if not found:
        last = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        report.add(Row("distributed", "all checks", last[0], "", ERROR))
