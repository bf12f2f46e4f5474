"""What every part of gpu_check shares: settings and the time budget, rows and the report,
the run's context, launch counting."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gpugrad.backend import Backend

from .timing import Clock

SECTIONS = ("tests", "kernels", "bandwidth", "mlp", "distributed")  # in the order they run
PASS, FAIL, ERROR, SKIP, INFO = "PASS", "FAIL", "ERROR", "SKIP", "INFO"

# The activation settings checked and timed (the others take none).
ACTIVATION_PARAMS: dict[str, Any] = {"leaky_relu": 0.01, "elu": 1.0, "softplus": (1.0, 20.0)}

# --- the time budget -----------------------------------------------------------------------------
# A lent GPU machine gives one command of at most 10 minutes out of ~15: the whole script must
# finish in 8 on an H100, so that a second run (--skip-tests) still fits. The test suite is the
# part whose length is unknown (a cold kernel cache compiles hundreds of CuPy kernels), so it is
# cut off at whatever leaves the benchmark sections their reserve; they take 1-2 minutes.
TOTAL_BUDGET_S = 480.0
BENCHMARK_RESERVE_S = 180.0


# === settings ====================================================================================
@dataclass(frozen=True)
class Settings:
    """Sizes and repeats of one run; `mode` is "full", "quick" or "smoke"."""

    mode: str
    device: str
    kernel_n: int  # elements of the activation checks
    loss_shapes: tuple[tuple[int, int], ...]  # (rows, classes) of the loss checks
    optim_n: int  # elements of the flat optimizer buffer
    optim_steps: int
    bandwidth_n: int  # elements of the bandwidth tensors
    repeats: int  # timed batches of calls per bandwidth measurement
    warmup: int
    mlp_batches: tuple[int, ...]
    mlp_bar_batch: int  # the batch whose gpugrad/torch ratio is held to TORCH_RATIO_BAR
    mlp_steps: int  # timed steps per MLP row
    mlp_warmup: int
    pytest_timeout_s: float | None  # None: what the budget leaves (Context.pytest_cap_s)
    timing_batch: int  # back-to-back calls between one pair of events (Clock.kernel_times)
    total_budget_s: float = TOTAL_BUDGET_S
    benchmark_reserve_s: float = BENCHMARK_RESERVE_S
    inject_failure: str | None = None  # a section that raises on purpose (tests use it)

    @property
    def smoke(self) -> bool:
        return self.mode == "smoke"


# Logit shapes: many rows of few classes, an ImageNet-like 1000, one class (loss 0, gradient
# 0), and a ragged small case.
_FULL = Settings(
    mode="full",
    device="cuda",
    kernel_n=1 << 20,
    loss_shapes=((4096, 10), (512, 1000), (1000, 1), (3, 7)),
    optim_n=1 << 20,
    optim_steps=3,
    bandwidth_n=1 << 26,
    repeats=20,
    warmup=3,
    mlp_batches=(256, 4096),
    mlp_bar_batch=4096,
    mlp_steps=50,
    mlp_warmup=5,
    pytest_timeout_s=None,
    timing_batch=10,
)
_QUICK = replace(
    _FULL,
    mode="quick",
    kernel_n=1 << 16,
    loss_shapes=((256, 10), (64, 1000), (100, 1), (3, 7)),
    optim_n=1 << 16,
    bandwidth_n=1 << 24,
    repeats=5,
    warmup=2,
    mlp_steps=10,
    mlp_warmup=3,
)
_SMOKE = replace(
    _FULL,
    mode="smoke",
    device="cpu",
    kernel_n=4096,
    loss_shapes=((64, 10), (8, 1000), (16, 1), (3, 7)),
    optim_n=4096,
    bandwidth_n=4096,
    repeats=3,
    warmup=1,
    timing_batch=2,
    mlp_batches=(16, 32),
    mlp_bar_batch=32,
    mlp_steps=3,
    mlp_warmup=1,
)
MODES = {"full": _FULL, "quick": _QUICK, "smoke": _SMOKE}


def settings_for(mode: str, **changes: Any) -> Settings:
    """The settings of `mode` with `changes` applied (None values are ignored)."""
    return replace(MODES[mode], **{k: v for k, v in changes.items() if v is not None})


# === results =====================================================================================
@dataclass
class Row:
    """One line of the table: a check, what was measured, the bar it is held to, the verdict."""

    section: str
    check: str
    result: str
    bar: str = ""
    status: str = INFO
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """Every row, with per-section timings and data for the JSON file."""

    settings: Settings
    rows: list[Row] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        log(f"{row.section}: {row.check}: {row.status} {row.result}")
        return row

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.status in (FAIL, ERROR)]

    @property
    def ok(self) -> bool:
        return not self.failures


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds the table alone."""
    print(f"[gpu_check] {message}", file=sys.stderr, flush=True)


def verdict(ok: bool) -> str:
    return PASS if ok else FAIL


def error_row(section: str, check: str, exc: BaseException) -> Row:
    """The row that stands for a check (or a whole section) that raised."""
    text = f"{type(exc).__name__}: {exc}"
    return Row(section, check, text, status=ERROR, detail={"traceback": traceback.format_exc()})


@contextmanager
def guarded(report: Report, section: str, check: str) -> Iterator[None]:
    """Run a block; if it raises, add an ERROR row instead, so the next check still runs."""
    try:
        yield
    except Exception as exc:  # any failure is a result to report, not a reason to stop
        report.add(error_row(section, check, exc))


# === launch counting =============================================================================
def launch_counts(backend: Backend) -> Any:
    """The backend's Counter of kernel launches, or None (the cpu backend launches none)."""
    return getattr(getattr(backend, "kernels", None), "launch_counts", None)


class LaunchWatch:
    """Counts the launches of kernel `name` inside a `with` block (`delta` None on the CPU)."""

    def __init__(self, backend: Backend, name: str) -> None:
        self.counts = launch_counts(backend)
        self.name = name
        self.delta: int | None = None

    def __enter__(self) -> LaunchWatch:
        self.before = self.counts[self.name] if self.counts is not None else 0
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.counts is not None:
            self.delta = self.counts[self.name] - self.before


# === the run's context ==========================================================================
@dataclass
class Context:
    """What every section needs: settings, the backend under test and the twin's backend."""

    settings: Settings
    dev: Backend
    ref: Backend
    clock: Clock
    out_dir: Path | None
    started: float = field(default_factory=time.perf_counter)  # when the run began

    @property
    def judge_speed(self) -> bool:
        """Speed bars mean something on a GPU only; on the CPU they are shown, not judged."""
        return not self.settings.smoke

    def to_dev(self, array: np.ndarray) -> Any:
        """A device copy (a copy on the cpu too: the twin must not share the memory)."""
        return self.dev.asarray(array, copy=True)

    def elapsed_s(self) -> float:
        """Seconds since the run began."""
        return time.perf_counter() - self.started

    def pytest_cap_s(self) -> float:
        """Seconds the test suite may take: --pytest-timeout if given, else what the budget
        leaves after the benchmarks' reserve (at least 1 s, so a spent budget still shows up
        as a timed-out row rather than a crash)."""
        s = self.settings
        if s.pytest_timeout_s is not None:
            return s.pytest_timeout_s
        return max(s.total_budget_s - s.benchmark_reserve_s - self.elapsed_s(), 1.0)

    def maybe_inject(self, section: str) -> None:
        if self.settings.inject_failure == section:
            raise RuntimeError(f"injected failure in section {section!r} (--inject-failure)")


def free_device_memory(backend: Backend) -> None:
    """Hand the memory pool's cached blocks back, so the next section (or pytest's process)
    starts with the GPU's memory free."""
    empty = getattr(backend, "empty_cache", None)
    if empty is not None:
        empty()


def budget_row(ctx: Context) -> Row:
    """The whole run's time against the budget; judged on a GPU only (smoke runs are tiny)."""
    s, took = ctx.settings, ctx.elapsed_s()
    result = f"{took:.0f} s of {s.total_budget_s:.0f} s"
    status = INFO if s.smoke else verdict(took <= s.total_budget_s)
    detail = {"seconds": took, "budget_s": s.total_budget_s}
    return Row("budget", "whole run", result, f"<= {s.total_budget_s:.0f} s", status, detail)
