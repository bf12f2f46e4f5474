"""The rows at the top of the table: the GPU, the software versions, the date."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

import gpugrad as gg
from gpugrad.backend import cuda_info

from . import ROOT
from .core import Context, Report, Row


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cuda_version(number: int | None) -> str | None:
    """CUDA's integer versions (12080) as "12.8"."""
    return None if number is None else f"{number // 1000}.{number % 1000 // 10}"


def _git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return rev + ("+changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git checkout)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(ctx: Context) -> dict[str, Any]:
    """GPU, versions and date: what the numbers depend on."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cupy": _version("cupy-cuda13x") or _version("cupy-cuda12x") or _version("cupy"),
        "torch": _version("torch"),
        "gpugrad": gg.__version__,
        "git": _git_revision(),
        "cpu": _cpu_model(),
        "mode": ctx.settings.mode,
        "device": str(ctx.dev.device),
    }
    if ctx.dev.device.type == "cuda":
        cuda = cuda_info()
        gpu = cuda["gpus"][ctx.dev.device.index or 0]
        info.update(
            gpu=gpu["name"],
            compute_capability=gpu["compute_capability"],
            memory_gib=round(gpu["memory_gib"], 1),
            driver=_cuda_version(cuda.get("driver")),
            runtime=_cuda_version(cuda.get("runtime")),
        )
    return info


def section_device(ctx: Context, report: Report) -> None:
    """Rows at the top of the table: the GPU, the software, the date."""
    info = device_info(ctx)
    report.info.update(info)
    if "gpu" in info:
        gpu = f"{info['gpu']}, compute capability {info['compute_capability']}, "
        gpu += f"{info['memory_gib']} GiB; driver CUDA {info['driver']}, runtime {info['runtime']}"
    else:
        gpu = f"none: {info['device']} ({info['cpu']}), {ctx.settings.mode} mode"
    report.add(Row("device", "gpu", gpu))
    versions = (
        f"gpugrad {info['gpugrad']} ({info['git']}), python {info['python']}, "
        f"numpy {info['numpy']}, cupy {info['cupy']}, torch {info['torch']}"
    )
    report.add(Row("device", "software", versions))
    report.add(Row("device", "date", f"{info['date']} on {info['host']}"))
