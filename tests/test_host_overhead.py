"""bench/host_overhead.py: host time per MLP step on a tiny model, and its cProfile table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "host_overhead.py"


def test_host_overhead_times_and_profiles_the_gpu_check_step() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--optimizer", "adam", "--steps", "3", "--top", "5"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.startswith("MLP 8-8-8-4, batch 4, adam, cpu: host time per step\n"), out
    assert re.search(r"^gpugrad: \d+ µs \(median of 3\)$", out, re.MULTILINE), out
    assert "--- top 5 by own time (tottime), 3 steps ---" in out
    assert "--- top 5 by cumulative time, 3 steps ---" in out
    for kind in ("parameters", r"gradients, zero_grad\(\)", "optimizer state"):
        assert re.search(rf"^  {kind}: \d+ of \d+$", out, re.MULTILINE), (kind, out)
    assert "  the optimizer's step count: " in out
    # The profiled function is gpu_check's own step (gpu_check_lib/mlp.py), run 3 times.
    assert re.search(r"^\s+3\s.*mlp\.py:\d+\(step\)$", out, re.MULTILINE), out
