"""gpugrad keeps freed host memory for the next step on glibc (backend/host_memory.py), unless
told not to, and never over the user's own malloc settings."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
PROBE = "from gpugrad.backend import get_backend\nprint(get_backend('cpu').malloc_tuned)\n"


def _tuned(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    clean.pop("GPUGRAD_MALLOC_TUNING", None)
    clean.update(env, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env=clean, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="malloc tuning is glibc's")
def test_malloc_is_tuned_on_glibc_by_default():
    assert _tuned() == "True"


def test_the_tuning_can_be_turned_off():
    assert _tuned(GPUGRAD_MALLOC_TUNING="0") == "False"


def test_the_users_own_malloc_settings_win():
    assert _tuned(MALLOC_TRIM_THRESHOLD_="1000000") == "False"


@pytest.mark.skipif(not GLIBC, reason="malloc tuning is glibc's")
def test_a_step_that_frees_and_reallocates_faults_no_pages_in():
    # Arrays of a few MiB allocated and freed in turn, as a training step does: with the
    # thresholds raised, the memory stays in the process and is not faulted in again.
    script = (
        "import resource, numpy as np, gpugrad\n"
        "def step():\n"
        "    a = np.ones((512, 784), np.float32); b = np.ones((512, 512), np.float32)\n"
        "    c = a @ a.T; del a; d = np.ones((256, 512), np.float32); return b, c, d\n"
        "for _ in range(5): step()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(20): step()\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    clean.pop("GPUGRAD_MALLOC_TUNING", None)
    clean["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=clean, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # One step touches ~4 MiB (1,000 pages); a handful of faults is bookkeeping.
    assert float(proc.stdout) < 50, proc.stdout
