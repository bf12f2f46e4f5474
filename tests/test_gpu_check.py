"""bench/gpu_check without a GPU: the smoke run, failure reporting, and the pieces it judges by.

The script's real job (the fused kernels on a GPU) needs a GPU; what can be checked here is that
every section's code runs (`--smoke` runs them on the cpu backend), that a section that raises
becomes a row of the table instead of a crash, and that the comparison, launch counting and
pytest bookkeeping catch what they are meant to catch: planted bugs in a cpu backend that poses
as a GPU one, and a small pytest suite with known outcomes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.backend import NumpyBackend, get_backend
from gpugrad.backend.device import Device
from gpugrad.backend.fused_primitives import ACTIVATION_KERNELS, kernel_names

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "gpu_check"
SECTIONS = ("device", "tests", "kernels", "bandwidth", "mlp", "distributed", "budget")
PARTS = ("core", "timing", "device", "suite", "compare", "kernels", "bandwidth", "mlp",
         "distributed", "report", "command")  # fmt: skip


@pytest.fixture(scope="module")
def lib():
    """The bench/gpu_check_lib package (bench/ is not on the path), its parts imported."""
    package = SCRIPT.parent / "gpu_check_lib"
    spec = importlib.util.spec_from_file_location(
        "gpu_check_lib", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    for part in PARTS:
        importlib.import_module(f"gpu_check_lib.{part}")
    return module


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env.pop("OUT", None)  # files go where --out says
    return env


def _rows(report_json: dict, section: str) -> list[dict]:
    return [r for r in report_json["rows"] if r["section"] == section]


# --- the command ---------------------------------------------------------------------------------
def test_script_is_an_executable_python3_script() -> None:
    assert os.access(SCRIPT, os.X_OK), f"{SCRIPT} is not executable (chmod +x)"
    assert SCRIPT.read_text().startswith("#!/usr/bin/env python3\n")


def test_smoke_run_writes_the_table_and_json(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path)],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = (tmp_path / "gpu_check.md").read_text()
    assert table in proc.stdout  # printed and written alike
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["passed"] is True
    for section in SECTIONS:
        assert f"| {section} |" in table
        assert section in data["sections"]
    assert "**PASS**" in table
    assert f"wrote: {tmp_path / 'gpu_check.md'}" in proc.stdout
    # Every kernel the cuda backend can launch has its row, and every row passed.
    kernel_rows = {r["check"]: r["status"] for r in _rows(data, "kernels")}
    missing = sorted(kernel_names() - set(kernel_rows))
    assert not missing, (
        f"kernels the cuda backend launches that gpu_check does not check: {missing}"
    )
    assert set(kernel_rows) == kernel_names()
    assert set(kernel_rows.values()) == {"PASS"}
    bandwidth = [r["check"] for r in _rows(data, "bandwidth")]
    assert [f"backward {name} f32" for name in ACTIVATION_KERNELS] == bandwidth[1:]
    mlp = [r["check"] for r in _rows(data, "mlp")]
    assert mlp == [
        "sgd batch 16", "sgd batch 32", "sgd launches/step",
        "adam batch 16", "adam batch 32", "adam launches/step",
    ]  # fmt: skip
    assert _rows(data, "tests")[0]["status"] == "SKIP"


def test_a_section_that_raises_is_a_row_and_the_others_still_run(lib, tmp_path: Path) -> None:
    argv = ["--smoke", "--only", "kernels,bandwidth", "--inject-failure", "kernels"]
    assert lib.command.main([*argv, "--out", str(tmp_path)]) == 1
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| kernels | section | RuntimeError: injected failure in section 'kernels'" in table
    assert "| bandwidth | backward gelu f32 |" in table
    assert "**FAIL**: 1 of" in table
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["passed"] is False
    error = _rows(data, "kernels")[0]
    assert error["status"] == "ERROR" and "Traceback" in error["detail"]["traceback"]


def test_results_are_handed_over_after_every_section(lib) -> None:
    # main writes the files at each hand-over: a run cut off later keeps what was done.
    ctx = _context(lib, get_backend("cpu"))
    seen = []
    lib.command.run(
        ctx, ["tests"], after_section=lambda r: seen.append([row.section for row in r.rows])
    )
    assert seen == [["device"] * 3, ["device"] * 3 + ["tests"],
                    ["device"] * 3 + ["tests", "budget"]]  # fmt: skip


def test_unknown_section_is_a_usage_error(lib, capsys) -> None:
    assert lib.command.main(["--smoke", "--only", "kernels,speed"]) == 2
    assert "unknown section(s) ['speed']" in capsys.readouterr().err


def test_skip_tests_leaves_the_other_sections(lib) -> None:
    args = lib.command.parse_args(["--skip-tests"], doc="")
    assert lib.command.selected_sections(args) == ["kernels", "bandwidth", "mlp", "distributed"]
    args = lib.command.parse_args(["--only", "tests,mlp", "--skip-tests"], doc="")
    assert lib.command.selected_sections(args) == ["mlp"]


def test_full_check_on_the_cpu_is_a_usage_error(lib, capsys) -> None:
    assert lib.command.main(["--device", "cpu", "--only", "kernels"]) == 2
    assert "cpu is no CUDA device" in capsys.readouterr().err


@pytest.mark.skipif(gg.cuda.is_available(), reason="a GPU is here: the full check would run")
def test_without_a_gpu_the_full_check_says_so(lib, capsys) -> None:
    assert lib.command.main(["--only", "kernels"]) == 2
    err = capsys.readouterr().err
    assert "no GPU to check" in err and "--smoke" in err


# --- catching planted bugs -----------------------------------------------------------------------
class PosingBackend(NumpyBackend):
    """The cpu backend posing as a GPU one: it counts launches as CupyKernels does, and has the
    bugs named in `bugs` planted in its primitives."""

    def __init__(self, bugs: set[str]) -> None:
        super().__init__()
        self.kernels = SimpleNamespace(launch_counts=Counter())
        self.bugs = bugs

    def _launched(self, name: str) -> None:
        if name not in self.bugs:  # a bug named after a kernel: "fell back, never launched"
            self.kernels.launch_counts[name] += 1

    def activation_forward(self, name, x, param=None, *, into=None):
        out = super().activation_forward(name, x, param, into=into)
        self._launched(f"activation_forward_{name}_f32")
        if "tanh leaves holes" in self.bugs and name == "tanh" and into is not None:
            into[::7] = np.nan  # as a kernel whose grid misses every 7th element
        if "sigmoid off" in self.bugs and name == "sigmoid":
            out *= np.float32(1 + 1e-4)  # a constant wrong in the 4th digit
        return out

    def adam_step(self, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, **kw):
        if "adam eps" in self.bugs:
            kw["eps"] = 1e-6  # instead of 1e-8
        super().adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, **kw)
        self._launched("adam_step_f32")


def _context(lib, dev):
    settings = lib.core.settings_for("smoke")
    return lib.core.Context(settings, dev, get_backend("cpu"), lib.timing.Clock(dev), None)


def test_kernel_checks_catch_holes_wrong_values_and_missing_launches(lib) -> None:
    bugs = {"tanh leaves holes", "sigmoid off", "activation_forward_gelu_f32"}
    ctx = _context(lib, PosingBackend(bugs))
    report = lib.core.Report(ctx.settings)
    lib.kernels.check_activations(ctx, report, np.float32)
    rows = {r.check: r for r in report.rows}
    tanh = rows["activation_forward_tanh_f32"]
    assert tanh.status == "FAIL" and "NaN/inf where the twin is not" in tanh.result
    sigmoid = rows["activation_forward_sigmoid_f32"]
    assert sigmoid.status == "FAIL" and sigmoid.detail["cases"][0]["eps"] > 64
    gelu = rows["activation_forward_gelu_f32"]
    assert gelu.status == "FAIL" and "0 launches in 1 cases" in gelu.result
    relu = rows["activation_forward_relu_f32"]
    assert relu.status == "PASS" and "1 launches in 1 cases" in relu.result, relu.result
    # The backward primitives are the twins themselves here, and launch nothing.
    assert rows["activation_backward_tanh_f32"].status == "FAIL"
    assert "0 launches" in rows["activation_backward_tanh_f32"].result


def test_kernel_section_passes_against_the_real_kernels_built_for_the_host(lib, host_kernels):
    """The kernel section as a GPU run would do it, but with the kernels of kernels/*.cu built
    for the host (tests/host_kernels.py) as the device: every row must pass with launches
    counted, the float16 rows over every binary16 value included. So the tolerances, floors and
    NaN poisoning are known to let correct kernels through."""
    from host_kernels import HostFusedBackend

    dev = HostFusedBackend(host_kernels)
    ctx = _context(lib, dev)
    report = lib.core.Report(ctx.settings)
    lib.kernels.section_kernels(ctx, report)
    rows = {r.check: r for r in report.rows}
    assert set(rows) == kernel_names()
    failed = {name: row.result for name, row in rows.items() if row.status != "PASS"}
    assert not failed, failed
    for name, row in rows.items():
        assert " launches in " in row.result and "0 launches" not in row.result, (name, row.result)
    half = dev.kernels.launch_counts
    assert half["activation_forward_gelu_f16"] >= 1 and half["bias_activation_forward_relu_f16"]


def test_stock_row_times_the_step_without_fused_kernels_and_restores_the_backend(
    lib, monkeypatch
) -> None:
    """stock_row swaps the backend without fused kernels in for the device while it times the
    step (on a GPU, StockCupyBackend; here a plain cpu backend stands in) and puts the device's
    own backend back afterwards."""
    pytest.importorskip("cupy")  # the module it patches imports CuPy (an optional extra)
    from gpugrad.backend import cupy_backend

    dev = PosingBackend(set())
    monkeypatch.setitem(gg.backend._backends, Device("cpu"), dev)
    made = []

    def stand_in(index):
        made.append(index)
        return NumpyBackend()

    monkeypatch.setattr(cupy_backend, "StockCupyBackend", stand_in)
    ctx = _context(lib, dev)
    fused = lib.core.Row("mlp", "sgd batch 16", "", "", "INFO", {"gpugrad": {"median_s": 0.01}})
    row = lib.mlp.stock_row(ctx, "sgd", 16, fused)
    assert made == [None] and gg.backend._backends[Device("cpu")] is dev
    assert row.check == "sgd batch 16 without fused kernels" and row.status == "INFO"
    assert "stock CuPy" in row.result and row.detail["stock"]["median_s"] > 0


def test_optimizer_check_catches_a_wrong_eps(lib) -> None:
    ctx = _context(lib, PosingBackend({"adam eps"}))
    report = lib.core.Report(ctx.settings)
    lib.kernels.check_optimizer(ctx, report, "adam_step", np.float32)
    (row,) = report.rows
    assert row.status == "FAIL", row.result
    ctx = _context(lib, PosingBackend(set()))
    report = lib.core.Report(ctx.settings)
    lib.kernels.check_optimizer(ctx, report, "adam_step", np.float32)
    (row,) = report.rows
    assert row.status == "PASS", row.result
    steps = ctx.settings.optim_steps
    cases = len(lib.kernels.OPTIMIZER_CASES["adam_step"])
    assert f"{steps * cases} launches in {cases} cases" in row.result


# --- the GPU-only branches, with stand-ins ------------------------------------------------------
EVENTS: list = []  # what happened, in order: ("record", stream) and ("call",)


class StandInEvent:
    """Records host time where cupy.cuda.Event records device time."""

    def record(self, stream=None) -> None:
        EVENTS.append(("record", stream))
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass


def _stand_in_cuda_backend():
    """Just enough of a cuda backend for the clock and the device rows: xp.cuda as in CuPy."""
    cuda = SimpleNamespace(
        Event=StandInEvent,
        get_current_stream=lambda: "the current stream",
        get_elapsed_time=lambda start, stop: (stop.t - start.t) * 1e3,  # milliseconds
    )
    return SimpleNamespace(device=Device("cuda", 0), xp=SimpleNamespace(cuda=cuda),
                           synchronize=lambda: None)  # fmt: skip


def test_cuda_clock_times_a_batch_of_calls_between_one_pair_of_events(lib) -> None:
    clock = lib.timing.Clock(_stand_in_cuda_backend())
    assert clock.cuda
    EVENTS.clear()

    def call() -> None:
        EVENTS.append(("call",))
        time.sleep(0.01)

    times = clock.kernel_times(call, repeats=3, warmup=1, batch=4)
    assert len(times) == 3 and all(0.009 < t < 0.1 for t in times), times  # per call
    # One warmup call; then per repeat an untimed lead call, the start event, 4 calls, stop.
    event = ("record", "the current stream")
    one_repeat = [("call",), event, *[("call",)] * 4, event]
    expected = [("call",), *one_repeat * 3]
    assert expected == EVENTS


def test_cpu_clock_divides_each_batch_by_its_calls(lib) -> None:
    clock = lib.timing.Clock(get_backend("cpu"))
    calls = []
    times = clock.kernel_times(lambda: calls.append(time.sleep(0.005)), 2, 1, batch=3)
    assert len(calls) == 1 + 2 * 3
    assert len(times) == 2 and all(0.004 < t < 0.05 for t in times), times


def test_device_rows_name_the_gpu(lib, monkeypatch) -> None:
    gpu = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_gib": 79.19,
           "compute_capability": "9.0"}  # fmt: skip
    monkeypatch.setattr(lib.device, "cuda_info", lambda: {"runtime": 13000, "driver": 13010,
                                                   "gpus": [gpu]})  # fmt: skip
    dev = _stand_in_cuda_backend()
    ctx = lib.core.Context(
        lib.core.settings_for("full"), dev, get_backend("cpu"), lib.timing.Clock(dev), None
    )
    report = lib.core.Report(ctx.settings)
    lib.device.section_device(ctx, report)
    assert report.rows[0].result == (
        "NVIDIA H100 80GB HBM3, compute capability 9.0, 79.2 GiB; driver CUDA 13.1, runtime 13.0"
    )
    assert report.info["compute_capability"] == "9.0"


def test_optimizer_launches_per_step(lib) -> None:
    ctx = _context(lib, PosingBackend(set()))
    one = [
        lib.core.Row(
            "mlp", "sgd batch 16", "", detail={"optimizer_launches": 4, "steps_counted": 4}
        )
    ]
    assert lib.mlp.launches_row(ctx, "sgd", one).status == "PASS"
    two = [
        lib.core.Row(
            "mlp", "sgd batch 16", "", detail={"optimizer_launches": 8, "steps_counted": 4}
        )
    ]
    row = lib.mlp.launches_row(ctx, "sgd", two)
    assert row.status == "FAIL" and row.result.startswith("2.00")
    assert lib.mlp.launches_row(ctx, "sgd", []).status == "FAIL"  # no step completed


def test_speed_bars_are_judged_outside_smoke_mode(lib) -> None:
    ctx = _context(lib, get_backend("cpu"))
    ctx.settings = replace(ctx.settings, mode="quick")
    report = lib.core.Report(ctx.settings)
    lib.bandwidth.section_bandwidth(ctx, report)
    statuses = {r.check: r.status for r in report.rows}
    assert statuses.pop("copy 4,096 float32") == "INFO"
    assert len(statuses) == len(ACTIVATION_KERNELS)
    assert set(statuses.values()) <= {"PASS", "FAIL"}  # judged (smoke mode shows INFO)


@pytest.mark.parametrize(
    ("changes", "status"),
    [({}, "PASS"), ({"cuda_passed": 0}, "FAIL"), ({"failed": 2, "returncode": 1}, "FAIL"),
     ({"timed_out": True, "returncode": -9}, "FAIL")],
)  # fmt: skip
def test_tests_row_verdict(lib, monkeypatch, tmp_path: Path, changes, status) -> None:
    result = {"passed": 900, "failed": 0, "errors": 0, "skipped": 12, "cuda_passed": 400,
              "returncode": 0, "timed_out": False, "seconds": 200.0, **changes}  # fmt: skip
    seen = {}

    def fake_run_pytest(out_dir, timeout_s):
        seen.update(out_dir=out_dir, timeout_s=timeout_s)
        return dict(result)

    monkeypatch.setattr(lib.suite, "run_pytest", fake_run_pytest)
    ctx = _context(lib, get_backend("cpu"))
    ctx.settings, ctx.out_dir = replace(ctx.settings, mode="full"), tmp_path
    report = lib.core.Report(ctx.settings)
    lib.suite.section_tests(ctx, report)
    (row,) = report.rows
    assert row.status == status, row.result
    assert seen["out_dir"] == tmp_path
    assert ("TIMED OUT" in row.result) == bool(changes.get("timed_out"))
    assert row.detail["left_out"] == list(lib.suite.OFFLINE_ONLY_TESTS)


def test_pytest_cap_leaves_the_benchmarks_their_reserve(lib) -> None:
    s = lib.core.settings_for("full")
    assert s.total_budget_s <= 8 * 60 and s.benchmark_reserve_s >= 3 * 60
    ctx = lib.core.Context(s, None, None, None, None, started=time.perf_counter() - 20.0)
    cap = ctx.pytest_cap_s()  # 20 s already spent (imports, the device rows)
    assert (
        s.total_budget_s - s.benchmark_reserve_s - 21
        < cap
        <= s.total_budget_s - s.benchmark_reserve_s - 20
    )
    late = lib.core.Context(s, None, None, None, None, started=time.perf_counter() - 1e4)
    assert late.pytest_cap_s() == 1.0  # budget spent: a timed-out row, not a crash
    given = lib.core.Context(replace(s, pytest_timeout_s=42.0), None, None, None, None)
    assert given.pytest_cap_s() == 42.0  # --pytest-timeout wins


@pytest.mark.parametrize(
    ("mode", "seconds", "status"),
    [("full", 100, "PASS"), ("full", 500, "FAIL"), ("smoke", 500, "INFO")],
)
def test_budget_row(lib, mode, seconds, status) -> None:
    s = lib.core.settings_for(mode)
    ctx = lib.core.Context(s, None, None, None, None, started=time.perf_counter() - seconds)
    row = lib.core.budget_row(ctx)
    assert row.status == status and row.result.startswith(f"{seconds} s of 480 s"), row.result


class StubClock:
    """Hands out the given per-call times: the fused kernel's first, then the unfused one's."""

    def __init__(self, *seconds: float) -> None:
        self.seconds = list(seconds)

    def kernel_times(self, fn, repeats, warmup, batch):
        return [self.seconds.pop(0)] * repeats


@pytest.mark.parametrize(
    ("name", "copy_share", "speedup", "status"),
    [
        ("relu", 0.9, 1.1, "PASS"),  # its unfused expression is ~1 pass: speedup not judged
        ("sigmoid", 0.9, 1.0, "PASS"),
        ("relu", 0.5, 3.0, "FAIL"),  # copy bandwidth is judged for every activation
        ("gelu", 0.9, 1.1, "FAIL"),  # several unfused passes: speedup judged
        ("gelu", 0.9, 2.5, "PASS"),
        ("leaky_relu", 0.8, 2.5, "FAIL"),
    ],
)
def test_bandwidth_bars_per_activation(lib, name, copy_share, speedup, status) -> None:
    ctx = _context(lib, get_backend("cpu"))
    ctx.settings = replace(ctx.settings, mode="quick")  # judged, as on a GPU
    fused_s = 1e-3
    ctx.clock = StubClock(fused_s, fused_s * speedup)
    x = g = np.ones(1000, dtype=np.float32)
    moved = (2 + len(ACTIVATION_KERNELS[name])) * x.nbytes  # g, the saved arrays, dx
    row = lib.bandwidth.bandwidth_row(ctx, name, moved / fused_s / copy_share, g, x)
    assert row.status == status, row.result
    assert f"{copy_share:.0%} of copy" in row.result and f"{speedup:.2f}x" in row.result
    assert ("1.8x unfused" in row.bar) == (name in lib.bandwidth.SPEEDUP_JUDGED)


def test_every_activation_has_its_bandwidth_bars(lib) -> None:
    judged, copy_only = lib.bandwidth.SPEEDUP_JUDGED, lib.bandwidth.COPY_ONLY
    assert not judged & copy_only
    assert judged | copy_only == set(ACTIVATION_KERNELS)


# --- the comparison ------------------------------------------------------------------------------
def test_compare_measures_in_eps_and_counts_unwritten(lib) -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(1000).astype(np.float32)
    off = np.nextafter(np.nextafter(ref, np.inf), np.inf)  # 2 ulps up
    eps = float(np.finfo(np.float32).eps)
    diff = lib.compare.compare(off, ref, 0.0)
    assert 0.9 <= diff.max_rel / eps <= 2.0  # 2 ulps: between 1 and 2 eps relative
    assert diff.unwritten == 0 and diff.nonfinite_mismatch == 0
    holes = ref.copy()
    holes[[3, 500]] = np.nan
    assert lib.compare.compare(holes, ref, 0.0).unwritten == 2
    special = np.array([np.inf, np.nan, 1.0])
    assert lib.compare.compare(special, special, 0.0).nonfinite_mismatch == 0
    assert lib.compare.compare(np.array([1.0, 0.0, 1.0]), special, 0.0).nonfinite_mismatch == 2


def test_compare_floor_measures_small_values_against_the_floor(lib) -> None:
    ref, got = np.array([1e-6, 2.0]), np.array([1.1e-6, 2.0])
    assert lib.compare.compare(got, ref, 0.0).max_rel == pytest.approx(0.1)
    assert lib.compare.compare(got, ref, 1.0).max_rel == pytest.approx(1e-7)


# --- the test-suite section ----------------------------------------------------------------------
SUITE = """
import time
import pytest

@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_ok(device):
    pass

def test_cuda_in_the_name_only():  # not run on cuda: not counted as a cuda test
    pass

def test_fails():
    assert False

@pytest.mark.skip(reason="planted")
def test_skipped():
    pass

@pytest.fixture
def broken():
    raise RuntimeError("planted")

def test_errors(broken):
    pass
"""


def test_pytest_run_counts_outcomes_and_cuda_tests(lib, tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_planted.py").write_text(SUITE)
    r = lib.suite.run_pytest(tmp_path, 120, cwd=suite, target=".")
    assert (r["source"], r["timed_out"], r["returncode"]) == ("junit", False, 1)
    counts = {k: r[k] for k in ("passed", "failed", "skipped", "errors", "cuda_passed")}
    assert counts == {"passed": 3, "failed": 1, "skipped": 1, "errors": 1, "cuda_passed": 1}
    assert (tmp_path / "pytest.log").read_text().strip()


def test_pytest_run_is_interrupted_at_the_time_limit(lib, tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_slow.py").write_text(
        "import time\n\ndef test_fast():\n    pass\n\ndef test_slow():\n    time.sleep(60)\n"
    )
    r = lib.suite.run_pytest(tmp_path, 4, cwd=suite, target=".")
    assert r["timed_out"] and r["seconds"] < 30
    assert (r["passed"], r["failed"]) == (1, 0)
    # Interrupted like Ctrl-C: pytest says where it was.
    log = (tmp_path / "pytest.log").read_text()
    assert "KeyboardInterrupt" in log and "test_slow.py" in log, log


def test_pytest_run_that_ignores_the_interrupt_is_killed(lib, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(lib.suite, "INTERRUPT_GRACE_S", 1.0)
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_stuck.py").write_text(
        "import signal, time\n\ndef test_fast():\n    pass\n\n"
        "def test_stuck():\n    signal.signal(signal.SIGINT, signal.SIG_IGN)\n    time.sleep(60)\n"
    )
    r = lib.suite.run_pytest(tmp_path, 4, cwd=suite, target=".")
    assert r["timed_out"] and r["seconds"] < 30
    # No JUnit file from a killed run: the counts come from pytest's progress characters.
    assert r["source"].startswith("progress") and (r["passed"], r["failed"]) == (1, 0)


def test_pytest_run_leaves_out_the_offline_only_files(lib, tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_kept.py").write_text("def test_kept():\n    pass\n")
    for name in lib.suite.OFFLINE_ONLY_TESTS:  # each would fail if it ran
        (suite / name).write_text("def test_offline_only():\n    assert False\n")
    r = lib.suite.run_pytest(tmp_path, 120, cwd=suite, target=".")
    assert (r["returncode"], r["passed"], r["failed"]) == (0, 1, 0), r


def test_offline_only_files_exist(lib) -> None:
    """A renamed file would silently run on the GPU machine again."""
    names = lib.suite.OFFLINE_ONLY_TESTS
    missing = [n for n in names if not (REPO / "tests" / n).is_file()]
    assert not missing


def test_summary_line_is_parsed(lib) -> None:
    counts = lib.suite.counts_from_log(
        "..F\n1 failed, 5 passed, 2 skipped, 1 error, 1 xfailed in 3.2s\n"
    )
    assert (counts.passed, counts.failed, counts.skipped, counts.errors) == (5, 1, 3, 1)
    cut = lib.suite.counts_from_log("..s.F. [ 50%]\n.E\n")
    assert (cut.passed, cut.failed, cut.skipped, cut.errors) == (5, 1, 1, 1)
