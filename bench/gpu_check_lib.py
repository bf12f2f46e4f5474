"""The machinery of `bench/gpu_check`: settings, checks, timing, the table and its files.

`bench/gpu_check` is the command; its docstring says what is measured and which bars apply.
This module holds the code so that tests/test_gpu_check.py can call it directly. Every
section runs the same code on the CPU (`--smoke`, the cpu backend checked against itself)
as on a GPU, so a Python error in any of it shows up without a GPU.

CuPy is never imported here (DESIGN.md keeps `import cupy` under gpugrad/backend/): the
cuda backend's `xp` *is* the cupy module, and that is what the timing code uses. PyTorch is
imported only by the MLP section, after the kernel sections, so a problem loading it cannot
cost those.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import itertools
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

# Run from a checkout without installing (as on the lent GPU machine): put the repository
# root on the path, unless gpugrad is importable already.
ROOT = Path(__file__).resolve().parent.parent
if (ROOT / "gpugrad").is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gpugrad as gg  # noqa: E402  (needs the path set above)
from gpugrad.backend import Backend, cuda_info, get_backend  # noqa: E402
from gpugrad.backend.activation_math import ActivationPrimitives  # noqa: E402
from gpugrad.backend.fused_primitives import (  # noqa: E402
    ACTIVATION_KERNELS,
    ACTIVATION_SUFFIX,
    BIAS_ACTIVATION_KERNELS,
    SUFFIX,
)
from gpugrad.errors import BackendUnavailableError  # noqa: E402

SECTIONS = ("tests", "kernels", "bandwidth", "mlp")  # in the order they run
PASS, FAIL, ERROR, SKIP, INFO = "PASS", "FAIL", "ERROR", "SKIP", "INFO"
MLP_SIZES = (784, 512, 512, 10)  # the MLP of bench/workloads.py (MLP_SIZES there)

# The activation settings checked and timed (the others take none).
ACTIVATION_PARAMS: dict[str, Any] = {"leaky_relu": 0.01, "elu": 1.0, "softplus": (1.0, 20.0)}

# --- tolerances --------------------------------------------------------------------------------
# In units of the dtype's machine epsilon, on the relative error of `compare`. The kernels and
# the NumPy twins evaluate the same formulas, but not bit for bit: NVRTC contracts a*b+c into
# fused multiply-adds, CuPy compiles with -ftz=true (float32 subnormals flush to zero), CUDA's
# libm (expf, tanhf, erff, log1pf) is accurate to 1-2 ulp but is not glibc's, and the twin rounds
# after every NumPy operation (its erf: special_math.py, within 1 ulp). Each costs an ulp or two per
# operation. Activations with a transcendental function chain up to ~10 operations, and the
# softmax cross-entropy also sums up to 1000 exponentials in another order: 64 eps. relu and
# leaky_relu are exact, and the optimizers use only +, *, / and sqrt (correctly rounded on the
# GPU too), so they differ by contraction and order alone, a few ulps over a few steps: 16 eps.
# A real bug (a wrong constant, a dropped term, eps inside the sqrt) is off by 1e-3 or more,
# thousands of eps in float32.
TRANSCENDENTAL_EPS = 64
PLAIN_EPS = 16
# The float16 activation kernels compute in float32 and round once, so they are compared with
# the float32 twin on the same (float16-valued) inputs, rounded to float16: the device's float32
# math differs from the twin's by a few float32 ulps, which can move a result across one float16
# rounding boundary (1 float16 eps relative); 2 allows that and nothing a real bug would give.
HALF_EPS = 2
EXACT_ACTIVATIONS = frozenset({"relu", "leaky_relu"})

# --- bars ------------------------------------------------------------------------------------
COPY_FRACTION_BAR = 0.85  # fused activation backward: at least this share of copy bandwidth
SPEEDUP_BAR = 1.8  # ... and this many times faster than the unfused CuPy expression
TORCH_RATIO_BAR = 1.2  # MLP step at the bar batch: gpugrad / torch at most this
OPTIMIZER_LAUNCHES_PER_STEP = 1  # one fused optimizer launch per parameter group and step


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
    repeats: int  # timed calls per bandwidth measurement
    warmup: int
    mlp_batches: tuple[int, ...]
    mlp_bar_batch: int  # the batch whose gpugrad/torch ratio is held to TORCH_RATIO_BAR
    mlp_steps: int  # timed steps per MLP row
    mlp_warmup: int
    pytest_timeout_s: float
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
    pytest_timeout_s=240.0,
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


# === comparing with the twin =====================================================================
@dataclass
class Diff:
    """How an array from the device differs from the twin's."""

    max_rel: float  # max |got − ref| / max(|ref|, floor), where both are finite
    unwritten: int  # elements not finite where the twin's are (NaN left from the fill)
    nonfinite_mismatch: int  # elements where the twin is inf/NaN and the device is not the same


# The denominator of the relative error has a floor: where a formula subtracts terms of similar
# size (1 + erf(x) for x << 0, 1 − tanh², p − 1 in the loss gradient), its result is accurate to
# eps *relative to the terms*, not to the small result. The floors, by check:
# - activations: |g|·(1 + |x|) (g = 1 forward), the size of the terms the formulas combine;
# - softmax cross-entropy forward: 1 (logits are O(1); a confident row's loss is ~0);
# - its backward: |g| of the row (entries are (p − target)·g with p and target in [0, 1]);
# - optimizer parameters and states: the array's root mean square (gradients span 1e-4..10, so
#   some elements are far below the array's typical size).
def compare(got: np.ndarray, ref: np.ndarray, floor: Any) -> Diff:
    """Compare `got` with the reference `ref` elementwise (floor: scalar or broadcastable)."""
    got = np.asarray(got, dtype=np.float64)  # float64: |got − ref| must not overflow
    ref = np.asarray(ref, dtype=np.float64)
    finite = np.isfinite(ref)
    got_finite = np.isfinite(got)
    same_special = (got == ref) | (np.isnan(got) & np.isnan(ref))
    both = finite & got_finite
    # A floor built from an inf or NaN input (|g|·(1+|x|) at x = ±inf, NaN) means nothing: use
    # 1 there, so two finite results from such an input must still agree.
    floor = np.asarray(floor, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        floor = np.where(np.isfinite(floor), floor, 1.0)
    denom = np.maximum(np.maximum(np.abs(ref), floor), np.finfo(np.float64).tiny)
    with np.errstate(invalid="ignore"):  # NaN/inf elements are counted apart, below
        rel = np.abs(got - ref) / denom
    return Diff(
        max_rel=float(rel[both].max()) if both.any() else 0.0,
        unwritten=int(np.count_nonzero(finite & ~got_finite)),
        nonfinite_mismatch=int(np.count_nonzero(~finite & ~same_special)),
    )


def rms(array: np.ndarray) -> float:
    """Root mean square of the finite values (the optimizer arrays' floor)."""
    values = np.asarray(array, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.sqrt(np.mean(values * values))) if values.size else 0.0


def tolerance_eps(stem: str, activation: str | None = None) -> int:
    """The tolerance of a kernel family in eps (see the comment on TRANSCENDENTAL_EPS)."""
    if stem.startswith(("activation_", "bias_activation_")):
        return PLAIN_EPS if activation in EXACT_ACTIVATIONS else TRANSCENDENTAL_EPS
    if stem.startswith("softmax_cross_entropy"):
        return TRANSCENDENTAL_EPS
    return PLAIN_EPS


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


@dataclass
class KernelCheck:
    """The worst case over the cases of one kernel (e.g. `activation_forward_gelu_f32`)."""

    kernel: str
    dtype: np.dtype
    tol_eps: int
    in_place: bool = False  # optimizers update arrays in place; the others fill `into=`
    cases: list[dict[str, Any]] = field(default_factory=list)

    def add(self, case: str, diff: Diff, watch: LaunchWatch, what: str = "") -> None:
        self.cases.append(
            {
                "case": case,
                "array": what,
                "launches": watch.delta,
                **asdict(diff),
                "eps": diff.max_rel / float(np.finfo(self.dtype).eps),
            }
        )

    def row(self, section: str) -> Row:
        eps = float(np.finfo(self.dtype).eps)
        worst = max(self.cases, key=lambda c: c["max_rel"])
        bad = sum(c["unwritten"] + c["nonfinite_mismatch"] for c in self.cases)
        # One launch count per case (a case compares several arrays of one run).
        launches = list({c["case"]: c["launches"] for c in self.cases}.values())
        launched = None if None in launches else all(n >= 1 for n in launches)
        ok = worst["max_rel"] <= self.tol_eps * eps and bad == 0 and launched is not False
        where = " ".join(s for s in (worst["case"], worst["array"]) if s)
        written = "all finite" if self.in_place else "all written"
        if launched is None:
            launch_text = "launches n/a (cpu)"
        else:
            launch_text = f"{sum(launches)} launches in {len(launches)} cases"
        result = (
            f"{worst['eps']:.1f} eps (rel {worst['max_rel']:.2e}"
            + (f", worst: {where}" if where else "")
            + f"); {written if bad == 0 else f'{bad} elements NaN/inf where the twin is not'}"
            + f"; {launch_text}"
        )
        bar = f"<= {self.tol_eps} eps, {written}, fused kernel launched"
        return Row(
            section,
            self.kernel,
            result,
            bar,
            verdict(ok),
            {"tol_eps": self.tol_eps, "dtype": str(self.dtype), "cases": self.cases},
        )


# === timing =====================================================================================
class Clock:
    """Times calls on a backend: CUDA events on a GPU, time.perf_counter on the CPU."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.cuda = backend.device.type == "cuda"

    def kernel_times(self, fn: Callable[[], Any], repeats: int, warmup: int) -> list[float]:
        """Seconds of device time per call: events recorded around each call on the current
        stream measure the GPU's work alone, not Python's launch overhead."""
        for _ in range(warmup):
            fn()
        self.backend.synchronize()
        if not self.cuda:
            return self.wall_times(fn, repeats, 0)
        cuda = self.backend.xp.cuda
        start, stop = cuda.Event(), cuda.Event()
        times = []
        for _ in range(repeats):
            stream = cuda.get_current_stream()
            start.record(stream)
            fn()
            stop.record(stream)
            stop.synchronize()
            times.append(cuda.get_elapsed_time(start, stop) * 1e-3)
        return times

    def wall_times(
        self,
        fn: Callable[[], Any],
        repeats: int,
        warmup: int,
        sync: Callable[[], None] | None = None,
    ) -> list[float]:
        """Seconds per call from the host's clock, the device synchronised before and after
        each call (a training step is Python and kernels; both count)."""
        sync = sync or self.backend.synchronize
        for _ in range(warmup):
            fn()
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        return times


def summary(times: list[float]) -> dict[str, float]:
    """Median (the number reported) and spread of a list of timings."""
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "n": len(times),
    }


# === the run's context ==========================================================================
@dataclass
class Context:
    """What every section needs: settings, the backend under test and the twin's backend."""

    settings: Settings
    dev: Backend
    ref: Backend
    clock: Clock
    out_dir: Path | None

    @property
    def judge_speed(self) -> bool:
        """Speed bars mean something on a GPU only; on the CPU they are shown, not judged."""
        return not self.settings.smoke

    def to_dev(self, array: np.ndarray) -> Any:
        """A device copy (a copy on the cpu too: the twin must not share the memory)."""
        return self.dev.asarray(array, copy=True)

    def maybe_inject(self, section: str) -> None:
        if self.settings.inject_failure == section:
            raise RuntimeError(f"injected failure in section {section!r} (--inject-failure)")


# === section: device info ========================================================================
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


# === section 1: the test suite ==================================================================
@dataclass
class PytestCounts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    cuda_passed: int = 0
    source: str = "none"  # where the counts came from: junit, summary line or progress


def counts_from_junit(path: Path) -> PytestCounts | None:
    """Outcome counts from pytest's JUnit XML; a test "ran on cuda" when its parameter id
    (the part in brackets) contains "cuda", as tests/conftest.py's device fixture makes it."""
    if not path.is_file():
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return None
    counts = PytestCounts(source="junit")
    for case in root.iter("testcase"):
        tags = {child.tag for child in case}
        if "error" in tags:
            counts.errors += 1
        elif "failure" in tags:
            counts.failed += 1
        elif "skipped" in tags:
            counts.skipped += 1
        else:
            counts.passed += 1
            name = case.get("name", "")
            if "[" in name and "cuda" in name[name.index("[") :]:
                counts.cuda_passed += 1
    return counts


_SUMMARY_ITEM = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)\b")
# xfail counts as skipped and xpass as passed, as in the JUnit XML.
_SUMMARY_FIELD = {
    "passed": "passed",
    "xpassed": "passed",
    "failed": "failed",
    "skipped": "skipped",
    "xfailed": "skipped",
    "error": "errors",
    "errors": "errors",
}
_PROGRESS_LINE = re.compile(r"^([.FEsxX]+)\s*(\[\s*\d+%\])?\s*$")


def counts_from_log(text: str) -> PytestCounts:
    """Counts from pytest -q's final summary line, or, when the run was cut off before it,
    from the progress characters (. passed, F failed, E error, s skipped)."""
    for line in reversed(text.splitlines()):
        items = _SUMMARY_ITEM.findall(line)
        if items and " in " in line:
            counts = PytestCounts(source="summary line")
            for number, word in items:
                attr = _SUMMARY_FIELD[word]
                setattr(counts, attr, getattr(counts, attr) + int(number))
            return counts
    counts = PytestCounts(source="progress characters (run cut off)")
    for line in text.splitlines():
        match = _PROGRESS_LINE.match(line)
        if match:
            chars = match.group(1)
            counts.passed += chars.count(".") + chars.count("X")
            counts.failed += chars.count("F")
            counts.errors += chars.count("E")
            counts.skipped += chars.count("s") + chars.count("x")
    return counts


def run_pytest(
    out_dir: Path, timeout_s: float, cwd: Path = ROOT, target: str = "tests"
) -> dict[str, Any]:
    """Run pytest on `target` in a subprocess (its own process group, killed whole on
    timeout), with `cwd` first on PYTHONPATH; the log and JUnit XML go to `out_dir`."""
    log_path, junit = out_dir / "pytest.log", out_dir / "pytest-junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target]
    cmd.append(f"--junitxml={junit}")  # per-test outcomes, to count the cuda ones
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cwd), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            returncode, timed_out = proc.wait(timeout=timeout_s), False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group we started: pytest and its children
            returncode, timed_out = proc.wait(), True
    counts = counts_from_junit(junit) if not timed_out else None
    counts = counts or counts_from_log(log_path.read_text(errors="replace"))
    return {
        "command": " ".join(cmd),
        "returncode": returncode,
        "timed_out": timed_out,
        "seconds": time.perf_counter() - start,
        "log": str(log_path),
        **asdict(counts),
    }


def section_tests(ctx: Context, report: Report) -> None:
    """Section 1: the whole test suite, which runs every `device` test on cuda too."""
    if ctx.settings.smoke:
        report.add(Row("tests", "pytest tests", "skipped (--smoke)", status=SKIP))
        return
    out_dir = ctx.out_dir or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    r = run_pytest(out_dir, ctx.settings.pytest_timeout_s)
    ok = (
        not r["timed_out"]
        and r["returncode"] == 0
        and r["failed"] == 0
        and r["errors"] == 0
        and r["cuda_passed"] > 0
    )
    result = (
        f"{r['passed']} passed, {r['failed']} failed, {r['errors']} errors, {r['skipped']} "
        f"skipped in {r['seconds']:.0f} s; {r['cuda_passed']} cuda tests passed"
    )
    if r["timed_out"]:
        result = f"TIMED OUT after {ctx.settings.pytest_timeout_s:.0f} s (counts so far): {result}"
    if ctx.out_dir is None:
        result += f" (log: {r['log']})"
    bar = f"0 failed/errors, cuda tests ran, exit 0, within {ctx.settings.pytest_timeout_s:.0f} s"
    report.add(Row("tests", "pytest tests", result, bar, verdict(ok), r))


# === section 2: kernels against their NumPy twins ================================================
def activation_inputs(rng: np.random.Generator, n: int, dtype: Any) -> tuple[np.ndarray, ...]:
    """x and g: mostly N(0, 3²); a quarter spread over ±25 (beyond softplus' threshold of 20,
    where exp(x) is far from 1), and special values at the start."""
    x = rng.standard_normal(n) * 3
    x[: n // 4] = rng.uniform(-25, 25, n // 4)
    specials = [0.0, -0.0, 1e-20, -1e-20, 1.0, -1.0, 20.0, -20.0, 20.5, -0.75, 25.0, -25.0]
    x[: len(specials)] = specials
    g = rng.standard_normal(n)
    return x.astype(dtype), g.astype(dtype)


def activation_row(
    ctx: Context, direction: str, name: str, x: np.ndarray, g: np.ndarray, xd: Any, gd: Any
) -> Row:
    """One activation kernel (forward or backward) against the twin, into a NaN-filled array."""
    param = ACTIVATION_PARAMS.get(name)
    kernel = f"activation_{direction}_{name}_{ACTIVATION_SUFFIX[x.dtype]}"
    half = x.dtype == np.float16
    tol = HALF_EPS if half else tolerance_eps("activation_", name)
    check = KernelCheck(kernel, x.dtype, tol)
    math = np.float32 if half else x.dtype  # the f16 kernels compute in float32
    x_m, g_m = x.astype(math), g.astype(math)
    ref_out = ctx.ref.activation_forward(name, x_m, param).astype(x.dtype)
    into = ctx.dev.xp.full(x.shape, np.nan, dtype=x.dtype)  # NaN: an unwritten element shows
    if direction == "forward":
        ref, floor = ref_out, 1 + np.abs(x.astype(np.float64))
        with LaunchWatch(ctx.dev, kernel) as watch:
            ctx.dev.activation_forward(name, xd, param, into=into)
    else:
        # Both sides get the twin's forward output, so only the backward is compared.
        ref = ctx.ref.activation_backward(name, g_m, x_m, ref_out.astype(math), param)
        ref = ref.astype(x.dtype)
        floor = np.abs(g.astype(np.float64)) * (1 + np.abs(x.astype(np.float64)))
        out_d = ctx.to_dev(ref_out)
        with LaunchWatch(ctx.dev, kernel) as watch:
            ctx.dev.activation_backward(name, gd, xd, out_d, param, into=into)
    case = "" if param is None else f"param={param}"
    check.add(case, compare(ctx.dev.to_numpy(into), ref, floor), watch)
    return check.row("kernels")


def check_activations(ctx: Context, report: Report, dtype: Any) -> None:
    """activation_forward / activation_backward of every fused activation, one row each."""
    x, g = activation_inputs(np.random.default_rng(1), ctx.settings.kernel_n, dtype)
    if np.dtype(dtype) == np.float16 and launch_counts(ctx.dev) is not None:
        # Every binary16 value once (subnormals, ±0, ±inf, NaN payloads): checks the kernels'
        # own half <-> float conversions on the device, exhaustively. Only against real kernels:
        # the cpu backend's float16 twin rounds every step and overflows where they do not.
        every_half = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
        x = np.concatenate([x, every_half])
        g = np.concatenate([g, np.random.default_rng(2).standard_normal(1 << 16).astype(dtype)])
    xd, gd = ctx.to_dev(x), ctx.to_dev(g)
    for name in ACTIVATION_KERNELS:
        for direction in ("forward", "backward"):
            kernel = f"activation_{direction}_{name}_{ACTIVATION_SUFFIX[np.dtype(dtype)]}"
            # The inputs hold inf and NaN on purpose: no warnings from the twin about them.
            with guarded(report, "kernels", kernel), np.errstate(all="ignore"):
                report.add(activation_row(ctx, direction, name, x, g, xd, gd))


def poisoned_empty(backend: Backend, shape: tuple[int, ...], dtype: Any) -> None:
    """Leave a NaN-filled block of this size free in the device's memory pool, so that an
    output the primitive allocates itself (no `into=`) starts as NaN and an unwritten element
    shows. The pool is emptied first, so that block is the only free one that fits exactly;
    still best effort: the pool decides which block it hands out."""
    free_device_memory(backend)
    poison = backend.xp.full(shape, np.nan, dtype=dtype)
    del poison


def check_bias_activations(ctx: Context, report: Report, dtype: Any) -> None:
    """bias_activation_forward (activation of z + bias, bias along the last axis) of every
    activation with that fused kernel, over a wide and a ragged shape."""
    rng = np.random.default_rng(4)
    sfx = ACTIVATION_SUFFIX[np.dtype(dtype)]
    half = np.dtype(dtype) == np.float16
    math = np.float32 if half else dtype  # the f16 kernels add and compute in float32
    shapes = ((max(ctx.settings.kernel_n // 500, 1), 500), (3, 7))
    for name in BIAS_ACTIVATION_KERNELS:
        kernel = f"bias_activation_forward_{name}_{sfx}"
        with guarded(report, "kernels", kernel):
            tol = HALF_EPS if half else tolerance_eps(kernel, name)
            check = KernelCheck(kernel, np.dtype(dtype), tol)
            for shape in shapes:
                z = (rng.standard_normal(shape) * 3).astype(dtype)
                bias = rng.standard_normal(shape[1]).astype(dtype)
                pre = z.astype(math) + bias.astype(math)  # what the activation sees: the floor
                # The twin adds into z in place, so it gets a copy.
                ref = ctx.ref.bias_activation_forward(name, z.astype(math), bias.astype(math))
                ref = ref.astype(dtype)
                zd, bd = ctx.to_dev(z), ctx.to_dev(bias)
                poisoned_empty(ctx.dev, shape, dtype)
                with LaunchWatch(ctx.dev, kernel) as watch:
                    out = ctx.dev.bias_activation_forward(name, zd, bd)
                floor = 1 + np.abs(pre.astype(np.float64))
                check.add(
                    f"{shape[0]}x{shape[1]}", compare(ctx.dev.to_numpy(out), ref, floor), watch
                )
            report.add(check.row("kernels"))


def loss_inputs(rng: np.random.Generator, rows: int, classes: int, dtype: Any) -> tuple:
    """Logits (one row shifted by +500, which only a stable softmax survives), labels with
    about 10% ignore_index (-100) rows, and a per-row gradient."""
    logits = (rng.standard_normal((rows, classes)) * 3).astype(dtype)
    logits[0] += 500
    labels = rng.integers(0, classes, rows).astype(np.int64)
    labels[rng.random(rows) < 0.1] = -100
    labels[-1] = -100  # at least one ignored row in every case
    g = rng.standard_normal(rows).astype(dtype)
    return logits, labels, g


def check_losses(ctx: Context, report: Report, dtype: Any) -> None:
    """softmax_cross_entropy_forward / _backward over several shapes and label smoothings."""
    sfx, tol = SUFFIX[np.dtype(dtype)], tolerance_eps("softmax_cross_entropy")
    fwd = KernelCheck(f"softmax_cross_entropy_forward_{sfx}", np.dtype(dtype), tol)
    bwd = KernelCheck(f"softmax_cross_entropy_backward_{sfx}", np.dtype(dtype), tol)
    rng = np.random.default_rng(2)
    for (rows, classes), smoothing in itertools.product(ctx.settings.loss_shapes, (0.0, 0.1)):
        case = f"{rows}x{classes} smoothing={smoothing}"
        logits, labels, g = loss_inputs(rng, rows, classes, dtype)
        ld, yd, gd = ctx.to_dev(logits), ctx.to_dev(labels), ctx.to_dev(g)
        ref = ctx.ref.softmax_cross_entropy_forward(logits, labels, -100, smoothing)
        into = ctx.dev.xp.full((rows,), np.nan, dtype=dtype)
        with LaunchWatch(ctx.dev, fwd.kernel) as watch:
            ctx.dev.softmax_cross_entropy_forward(ld, yd, -100, smoothing, into=into)
        fwd.add(case, compare(ctx.dev.to_numpy(into), ref, 1.0), watch)
        ref = ctx.ref.softmax_cross_entropy_backward(g, logits, labels, -100, smoothing)
        into = ctx.dev.xp.full((rows, classes), np.nan, dtype=dtype)
        with LaunchWatch(ctx.dev, bwd.kernel) as watch:
            ctx.dev.softmax_cross_entropy_backward(gd, ld, yd, -100, smoothing, into=into)
        floor = np.abs(g.astype(np.float64))[:, None]
        bwd.add(case, compare(ctx.dev.to_numpy(into), ref, floor), watch)
    report.add(fwd.row("kernels"))
    report.add(bwd.row("kernels"))


# Optimizer variants: (label, options) per primitive. Learning rates are large enough that the
# update, not the starting value, dominates what the parameter comparison sees.
OPTIMIZER_CASES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "sgd_step": [
        ("plain", {"lr": 0.1}),
        ("momentum", {"lr": 0.1, "momentum": 0.9}),
        ("nesterov+wd", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}),
        ("dampening+wd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 1e-2}),
    ],
    "adam_step": [
        ("adam", {"lr": 1e-2}),
        ("amsgrad+wd", {"lr": 1e-2, "amsgrad": True, "weight_decay": 1e-2}),
        ("adamw", {"lr": 1e-2, "weight_decay": 1e-2, "decoupled": True}),
    ],
    "rmsprop_step": [
        ("plain", {"lr": 1e-2}),
        (
            "centered+momentum+wd",
            {"lr": 1e-2, "centered": True, "momentum": 0.9, "weight_decay": 1e-2},
        ),
    ],
    "adagrad_step": [
        ("plain", {"lr": 1e-2}),
        ("lr_decay+wd", {"lr": 1e-2, "lr_decay": 1e-3, "weight_decay": 1e-2}),
    ],
}


def optimizer_states(stem: str, options: dict[str, Any]) -> tuple[str, ...]:
    """The state arrays a primitive reads and writes with these options."""
    if stem == "sgd_step":
        return ("momentum_buffer",) if options.get("momentum") else ()
    if stem == "adam_step":
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if options.get("amsgrad") else ())
    if stem == "rmsprop_step":
        return (
            ("square_avg",)
            + (("grad_avg",) if options.get("centered") else ())
            + (("momentum_buffer",) if options.get("momentum") else ())
        )
    return ("state_sum",)


def optimizer_step(
    backend: Backend, stem: str, arrays: dict[str, Any], grad: Any, step: int, options: dict
) -> None:
    """One update through the primitive `stem`, with the arrays by name (absent ones None)."""
    a = arrays.get
    if stem == "sgd_step":
        backend.sgd_step(a("param"), grad, a("momentum_buffer"), first=step == 1, **options)
    elif stem == "adam_step":
        backend.adam_step(
            a("param"), grad, a("exp_avg"), a("exp_avg_sq"), a("max_exp_avg_sq"), step, **options
        )
    elif stem == "rmsprop_step":
        backend.rmsprop_step(
            a("param"), grad, a("square_avg"), a("grad_avg"), a("momentum_buffer"), **options
        )
    else:
        backend.adagrad_step(a("param"), grad, a("state_sum"), step, **options)


def optimizer_grads(rng: np.random.Generator, n: int, steps: int, dtype: Any) -> list:
    """A gradient per step: magnitudes spread over 1e-4..10 (so sqrt(v) meets eps) and 1%
    exact zeros."""
    grads = []
    for _ in range(steps):
        g = rng.standard_normal(n) * 10.0 ** rng.uniform(-4, 1, n)
        g[rng.random(n) < 0.01] = 0.0
        grads.append(g.astype(dtype))
    return grads


def check_optimizer(ctx: Context, report: Report, stem: str, dtype: Any) -> None:
    """Every variant of one optimizer primitive for a few steps on a flat buffer, the device's
    parameter and states against the twin's on host copies."""
    kernel = f"{stem}_{SUFFIX[np.dtype(dtype)]}"
    check = KernelCheck(kernel, np.dtype(dtype), tolerance_eps(stem), in_place=True)
    n, steps = ctx.settings.optim_n, ctx.settings.optim_steps
    rng = np.random.default_rng(3)
    for label, options in OPTIMIZER_CASES[stem]:
        names = ("param", *optimizer_states(stem, options))
        host = {k: np.zeros(n, dtype=dtype) for k in names}
        host["param"] = rng.standard_normal(n).astype(dtype)
        dev = {k: ctx.to_dev(v) for k, v in host.items()}
        grads = optimizer_grads(rng, n, steps, dtype)
        with LaunchWatch(ctx.dev, kernel) as watch:
            for step, grad in enumerate(grads, start=1):
                optimizer_step(ctx.dev, stem, dev, ctx.to_dev(grad), step, options)
        for step, grad in enumerate(grads, start=1):
            optimizer_step(ctx.ref, stem, host, grad, step, options)
        for k in names:
            diff = compare(ctx.dev.to_numpy(dev[k]), host[k], rms(host[k]))
            check.add(label, diff, watch, what=k)
    report.add(check.row("kernels"))


def section_kernels(ctx: Context, report: Report) -> None:
    """Section 2: every fused primitive against its NumPy twin, float32 and float64; the
    activation kernels also in float16 (against the float32 twin, rounded)."""
    for dtype in (np.float16,):  # only the activation kernels come in float16
        with guarded(report, "kernels", f"activations {np.dtype(dtype)}"):
            check_activations(ctx, report, dtype)
        with guarded(report, "kernels", f"bias activations {np.dtype(dtype)}"):
            check_bias_activations(ctx, report, dtype)
    for dtype in (np.float32, np.float64):
        with guarded(report, "kernels", f"activations {np.dtype(dtype)}"):
            check_activations(ctx, report, dtype)
        with guarded(report, "kernels", f"bias activations {np.dtype(dtype)}"):
            check_bias_activations(ctx, report, dtype)
        with guarded(report, "kernels", f"softmax_cross_entropy {np.dtype(dtype)}"):
            check_losses(ctx, report, dtype)
        for stem in OPTIMIZER_CASES:
            with guarded(report, "kernels", f"{stem}_{SUFFIX[np.dtype(dtype)]}"):
                check_optimizer(ctx, report, stem, dtype)


# === section 3: activation backward bandwidth ====================================================
def copy_bandwidth(ctx: Context, n: int) -> dict[str, Any]:
    """The device's copy bandwidth: xp.copyto of n float32, 2·bytes (read + write) / time."""
    xp = ctx.dev.xp
    src = ctx.dev.random_normal((n,), np.float32)
    dst = xp.empty_like(src)
    times = ctx.clock.kernel_times(
        lambda: xp.copyto(dst, src), ctx.settings.repeats, ctx.settings.warmup
    )
    stats = summary(times)
    return {**stats, "bytes": 2 * src.nbytes, "bytes_per_s": 2 * src.nbytes / stats["median_s"]}


def bandwidth_row(ctx: Context, name: str, copy_bw: float, g: Any, x: Any) -> Row:
    """Time one activation's fused backward against the unfused twin formula on the device."""
    dev, s = ctx.dev, ctx.settings
    param = ACTIVATION_PARAMS.get(name)
    out = dev.activation_forward(name, x, param)
    dx = dev.xp.empty_like(x)
    kernel = f"activation_backward_{name}_{SUFFIX[np.dtype(x.dtype)]}"

    def fused() -> Any:
        return dev.activation_backward(name, g, x, out, param, into=dx)

    def unfused() -> Any:
        # The parent class's formula run with the device's xp: several stock kernels.
        return ActivationPrimitives.activation_backward(dev, name, g, x, out, param)

    with LaunchWatch(dev, kernel) as watch:
        fused_t = summary(ctx.clock.kernel_times(fused, s.repeats, s.warmup))
    unfused_t = summary(ctx.clock.kernel_times(unfused, s.repeats, s.warmup))
    arrays = 1 + len(ACTIVATION_KERNELS[name]) + 1  # read g and the saved arrays, write dx
    moved = arrays * x.size * x.dtype.itemsize
    rate = moved / fused_t["median_s"]
    share = rate / copy_bw
    speedup = unfused_t["median_s"] / fused_t["median_s"]
    launched = watch.delta is None or watch.delta >= 1
    ok = share >= COPY_FRACTION_BAR and speedup >= SPEEDUP_BAR and launched
    result = (
        f"{fused_t['median_s'] * 1e3:.3f} ms, {rate / 1e9:.0f} GB/s = {share:.0%} of copy; "
        f"unfused {unfused_t['median_s'] * 1e3:.3f} ms: {speedup:.2f}x"
        + ("" if launched else "; FUSED KERNEL NOT LAUNCHED")
    )
    detail = {
        "fused": fused_t,
        "unfused": unfused_t,
        "arrays": arrays,
        "bytes": moved,
        "bytes_per_s": rate,
        "copy_fraction": share,
        "speedup": speedup,
        "launches": watch.delta,
        "param": param,
    }
    bar = f">= {COPY_FRACTION_BAR:.0%} of copy, >= {SPEEDUP_BAR}x unfused"
    status = verdict(ok) if ctx.judge_speed else INFO
    return Row("bandwidth", f"backward {name} f32", result, bar, status, detail)


def section_bandwidth(ctx: Context, report: Report) -> None:
    """Section 3: fused activation backward on a big float32 tensor, against the device's copy
    bandwidth and the unfused expression."""
    n = ctx.settings.bandwidth_n
    copy = copy_bandwidth(ctx, n)
    rate = f"{copy['median_s'] * 1e3:.3f} ms = {copy['bytes_per_s'] / 1e9:.0f} GB/s"
    report.add(Row("bandwidth", f"copy {n:,} float32", f"{rate} (read + write)", detail=copy))
    g = ctx.dev.random_normal((n,), np.float32)
    x = ctx.dev.random_normal((n,), np.float32)
    for name in ACTIVATION_KERNELS:
        with guarded(report, "bandwidth", f"backward {name} f32"):
            report.add(bandwidth_row(ctx, name, copy["bytes_per_s"], g, x))
    del g, x
    free_device_memory(ctx.dev)


# === section 4: MLP training step against PyTorch ================================================
def gpugrad_mlp_step(device: str, batch: int, optimizer: str) -> Callable[[], Any]:
    """One training step of the MLP in gpugrad: forward, cross-entropy, zero_grad, backward,
    step. Data drawn on the device."""
    from gpugrad import nn, optim
    from gpugrad.nn import functional as F

    gg.manual_seed(0)
    layers: list[Any] = []
    for fan_in, fan_out in itertools.pairwise(MLP_SIZES):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).to(device)
    if optimizer == "sgd":
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = optim.Adam(model.parameters(), lr=1e-3)
    x = gg.randn(batch, MLP_SIZES[0], device=device)
    y = gg.randint(0, MLP_SIZES[-1], (batch,), device=device)

    def step() -> Any:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step


def torch_mlp_step(torch: Any, device: str, batch: int, optimizer: str) -> Callable[[], Any]:
    """The same step in PyTorch, eager mode, default optimizer implementations."""
    torch.manual_seed(0)
    layers: list[Any] = []
    for fan_in, fan_out in itertools.pairwise(MLP_SIZES):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1]).to(device)
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, MLP_SIZES[0], device=device)
    y = torch.randint(0, MLP_SIZES[-1], (batch,), device=device)

    def step() -> Any:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step


def load_torch(ctx: Context) -> tuple[Any, str | None, str]:
    """(torch or None, the device to run it on, why it is missing)."""
    try:
        import torch
    except ImportError:
        return None, None, "skipped (no torch)"
    if ctx.dev.device.type == "cpu":
        return torch, "cpu", ""
    if not torch.cuda.is_available():
        return None, None, "skipped (no torch CUDA)"
    return torch, "cuda", ""


def mlp_row(ctx: Context, optimizer: str, batch: int, torch_info: tuple) -> Row:
    """Time gpugrad's and torch's step; the ratio is held to the bar at the bar batch."""
    s = ctx.settings
    torch, torch_device, missing = torch_info
    step = gpugrad_mlp_step(str(ctx.dev.device), batch, optimizer)
    kernel = f"{optimizer}_step_f32"
    with LaunchWatch(ctx.dev, kernel) as watch:
        ours = summary(ctx.clock.wall_times(step, s.mlp_steps, s.mlp_warmup))
    loss = float(step().item())
    detail: dict[str, Any] = {
        "gpugrad": ours,
        "loss_after": loss,
        "optimizer_kernel": kernel,
        "optimizer_launches": watch.delta,
        "steps_counted": s.mlp_steps + s.mlp_warmup,
    }
    check = f"{optimizer} batch {batch}"
    result = f"gpugrad {ours['median_s'] * 1e3:.2f} ms"
    at_bar = batch == s.mlp_bar_batch
    bar = f"gpugrad/torch <= {TORCH_RATIO_BAR}" if at_bar else "(info)"
    finite = math.isfinite(loss)
    if not finite:
        result += f"; LOSS NOT FINITE ({loss})"
    if torch is None:
        return Row(
            "mlp", check, f"{result}; torch {missing}", bar, SKIP if finite else FAIL, detail
        )
    sync = torch.cuda.synchronize if torch_device == "cuda" else (lambda: None)
    theirs_step = torch_mlp_step(torch, torch_device, batch, optimizer)
    theirs = summary(ctx.clock.wall_times(theirs_step, s.mlp_steps, s.mlp_warmup, sync=sync))
    ratio = ours["median_s"] / theirs["median_s"]
    detail.update(torch=theirs, torch_device=torch_device, ratio=ratio)
    result += f", torch {theirs['median_s'] * 1e3:.2f} ms: {ratio:.2f}x"
    if not finite:
        status = FAIL
    elif at_bar and ctx.judge_speed:
        status = verdict(ratio <= TORCH_RATIO_BAR)
    else:
        status = INFO
    return Row("mlp", check, result, bar, status, detail)


def stock_row(ctx: Context, optimizer: str, batch: int, fused: Row) -> Row:
    """The same step on stock CuPy (the backend GPUGRAD_FUSED_KERNELS=0 selects), swapped in
    for the device while it runs: what the fused kernels gain. Shown, not judged."""
    from gpugrad.backend import _backends
    from gpugrad.backend.cupy_backend import StockCupyBackend

    s, device = ctx.settings, ctx.dev.device
    _backends[device] = StockCupyBackend(device.index)
    try:
        step = gpugrad_mlp_step(str(device), batch, optimizer)
        stock = summary(ctx.clock.wall_times(step, s.mlp_steps, s.mlp_warmup))
    finally:
        _backends[device] = ctx.dev
    ours = fused.detail["gpugrad"]["median_s"]
    result = (
        f"stock CuPy {stock['median_s'] * 1e3:.2f} ms, fused {ours * 1e3:.2f} ms: "
        f"{stock['median_s'] / ours:.2f}x faster with the fused kernels"
    )
    detail = {"stock": stock, "fused_median_s": ours}
    return Row("mlp", f"{optimizer} batch {batch} without fused kernels", result, "(info)", INFO,
               detail)  # fmt: skip


def launches_row(ctx: Context, optimizer: str, rows: list[Row]) -> Row:
    """Fused optimizer launches per step over all of one optimizer's timed rows."""
    kernel = f"{optimizer}_step_f32"
    counted = [r.detail for r in rows if r.detail.get("optimizer_launches") is not None]
    check = f"{optimizer} launches/step"
    bar = f"exactly {OPTIMIZER_LAUNCHES_PER_STEP} {kernel} per step (1 param group)"
    if launch_counts(ctx.dev) is None:
        return Row("mlp", check, "n/a (cpu backend launches no kernels)", bar, SKIP)
    if not counted:
        return Row("mlp", check, "no step completed", bar, FAIL)
    launches = sum(d["optimizer_launches"] for d in counted)
    steps = sum(d["steps_counted"] for d in counted)  # warmup and timed steps
    ok = launches == OPTIMIZER_LAUNCHES_PER_STEP * steps
    result = f"{launches / steps:.2f} ({launches} in {steps} steps)"
    return Row("mlp", check, result, bar, verdict(ok), {"launches": launches, "steps": steps})


def section_mlp(ctx: Context, report: Report) -> None:
    """Section 4: one training step of the 784-512-512-10 MLP, gpugrad against PyTorch."""
    torch_info = load_torch(ctx)
    if torch_info[0] is not None:
        report.info["torch_device"] = torch_info[1]
        if torch_info[1] == "cuda":
            report.info["torch_tf32_matmul"] = bool(torch_info[0].backends.cuda.matmul.allow_tf32)
    for optimizer in ("sgd", "adam"):
        rows = []
        for batch in ctx.settings.mlp_batches:
            with guarded(report, "mlp", f"{optimizer} batch {batch}"):
                rows.append(report.add(mlp_row(ctx, optimizer, batch, torch_info)))
        with guarded(report, "mlp", f"{optimizer} launches/step"):
            report.add(launches_row(ctx, optimizer, rows))
        at_bar = [r for r in rows if r.check == f"{optimizer} batch {ctx.settings.mlp_bar_batch}"]
        if at_bar and launch_counts(ctx.dev) is not None:  # a backend with fused kernels
            check = f"{optimizer} batch {ctx.settings.mlp_bar_batch} without fused kernels"
            with guarded(report, "mlp", check):
                report.add(stock_row(ctx, optimizer, ctx.settings.mlp_bar_batch, at_bar[0]))
    free_device_memory(ctx.dev)


def free_device_memory(backend: Backend) -> None:
    """Hand the memory pool's cached blocks back, so the next section (or pytest's process)
    starts with the GPU's memory free."""
    empty = getattr(backend, "empty_cache", None)
    if empty is not None:
        empty()


# === output =====================================================================================
def _cell(text: Any) -> str:
    """A markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown(report: Report) -> str:
    """The table, then the verdict and where the time went."""
    lines = [
        f"# gpu_check ({report.settings.mode} mode, device {report.settings.device})",
        "",
        "| section | check | result | bar | status |",
        "|---|---|---|---|---|",
    ]
    for r in report.rows:
        cells = (r.section, r.check, r.result, r.bar, r.status)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append("")
    judged = [r for r in report.rows if r.status in (PASS, FAIL, ERROR)]
    if report.ok:
        lines.append(f"**PASS**: all {len(judged)} judged checks passed.")
    else:
        names = ", ".join(f"{r.section}/{r.check}" for r in report.failures)
        lines.append(f"**FAIL**: {len(report.failures)} of {len(judged)} judged checks: {names}")
    took = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    lines.append(f"Time: {took}.")
    return "\n".join(lines) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (np.dtype, Path)):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def report_json(report: Report) -> str:
    data = {
        "settings": asdict(report.settings),
        "info": report.info,
        "passed": report.ok,
        "seconds": report.seconds,
        "sections": sorted({r.section for r in report.rows}),
        "rows": [asdict(r) for r in report.rows],
    }
    return json.dumps(data, indent=2, default=_json_default)


def write_outputs(report: Report, out_dir: Path | None) -> list[Path]:
    """Write the table and JSON into out_dir (the pytest log is already there)."""
    if out_dir is None:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "gpu_check.md", out_dir / "gpu_check.json"
    md.write_text(markdown(report))
    js.write_text(report_json(report))
    return [md, js] + [
        p for p in (out_dir / "pytest.log", out_dir / "pytest-junit.xml") if p.exists()
    ]


# === the command ================================================================================
SECTION_FUNCTIONS: dict[str, Callable[[Context, Report], None]] = {
    "tests": section_tests,
    "kernels": section_kernels,
    "bandwidth": section_bandwidth,
    "mlp": section_mlp,
}


def run(
    ctx: Context, sections: list[str], after_section: Callable[[Report], Any] | None = None
) -> Report:
    """Device rows, then each section in turn; a section that raises becomes an ERROR row.
    `after_section(report)` runs after each one (main writes the files then, so a run cut off
    by a time limit or a crash still leaves the sections done so far)."""
    report = Report(ctx.settings)
    for name, fn in [("device", section_device)] + [(s, SECTION_FUNCTIONS[s]) for s in sections]:
        log(f"section {name} ...")
        start = time.perf_counter()
        try:
            ctx.maybe_inject(name)
            fn(ctx, report)
        except Exception as exc:  # reported, and the next section still runs
            report.add(error_row(name, "section", exc))
        report.seconds[name] = time.perf_counter() - start
        if after_section is not None:
            after_section(report)
    return report


def parse_args(argv: list[str] | None, doc: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/gpu_check",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for gpu_check.md, gpu_check.json, pytest.log (default: $OUT)",
    )
    parser.add_argument(
        "--only", default=None, help=f"comma-separated sections to run, of {','.join(SECTIONS)}"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="run on the cpu backend with tiny sizes, to test this script",
    )
    parser.add_argument("--skip-tests", action="store_true", help="do not run the test suite")
    parser.add_argument(
        "--pytest-timeout",
        type=float,
        default=None,
        help="seconds the test suite may take (default 240)",
    )
    parser.add_argument("--device", default=None, help="the CUDA device (default cuda)")
    # Hidden: make a section raise, to see it reported instead of crashing (tests use it).
    parser.add_argument("--inject-failure", default=None, choices=SECTIONS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def selected_sections(args: argparse.Namespace) -> list[str]:
    """The sections to run, in SECTIONS order; raises ValueError for an unknown name."""
    wanted = list(SECTIONS) if args.only is None else [s.strip() for s in args.only.split(",")]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in wanted and not (s == "tests" and args.skip_tests)]


def main(argv: list[str] | None = None, doc: str = __doc__) -> int:
    """Run the check; 0 when every judged check passed, 1 when one failed, 2 on bad usage or
    when no GPU is there to check."""
    args = parse_args(argv, doc)
    try:
        sections = selected_sections(args)
    except ValueError as exc:
        print(f"bench/gpu_check: {exc}", file=sys.stderr)
        return 2
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    settings = settings_for(
        mode,
        device=args.device,
        pytest_timeout_s=args.pytest_timeout,
        inject_failure=args.inject_failure,
    )
    out_env = os.environ.get("OUT")
    out_dir = args.out or (Path(out_env) if out_env else None)
    try:
        dev = get_backend(settings.device)
    except BackendUnavailableError as exc:
        print(
            f"bench/gpu_check: no GPU to check: {exc}\n"
            "Run `bench/gpu_check --smoke` to check this script on the CPU.",
            file=sys.stderr,
        )
        return 2
    if dev.device.type != "cuda" and not settings.smoke:
        print(
            f"bench/gpu_check: {dev.device} is no CUDA device; use --smoke on the CPU",
            file=sys.stderr,
        )
        return 2
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(settings, dev, get_backend("cpu"), Clock(dev), out_dir)
    report = run(ctx, sections, after_section=lambda r: write_outputs(r, out_dir))
    print(markdown(report), end="")
    written = write_outputs(report, out_dir)
    if written:
        print("wrote: " + ", ".join(str(p) for p in written))
    else:
        print("no files written: give --out DIR or set $OUT")
    return 0 if report.ok else 1
