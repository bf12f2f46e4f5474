"""Checks of the CUDA kernels in kernels/ that need no GPU (see ../shared/CUDA-CHECKS.md).

1. nvcc compiles every kernels/*.cu for sm_80 and sm_90, warnings as errors, and ptxas flags any
   spill or local-memory use (a control kernel that uses local memory must fail to compile).
2. The header math (kernels/activations.cuh) built with g++ into a ctypes library agrees with the
   NumPy twins (activation_forward / activation_backward of the cpu backend) to a few ulps over
   random and special inputs; deliberately wrong formulas must be caught by the same comparison.
3. The real kernel bodies run on the host through a launch shim under ASan/UBSan over many sizes
   and grid/block shapes: every output element written, nothing out of bounds (with controls).

4. The optimizer update math (kernels/optim.cuh) agrees with sgd_step / adam_step of the cpu
   backend over several steps (a variant with eps inside the sqrt must be caught); the optimizer
   kernels (kernels/optim.cu) also run through the launch shim of part 3.

What only a GPU shows (device rounding, -ftz, races, loading, speed) is bench/gpu_check's job.
Each part skips, saying why, when its compiler is not on PATH.
"""

from __future__ import annotations

import ctypes
import math
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from gpugrad.backend import get_backend
from gpugrad.backend.activation_math import FORWARD

REPO = Path(__file__).resolve().parent.parent
KERNELS = REPO / "kernels"
HOST = Path(__file__).resolve().parent / "kernels_host"
CU_FILES = sorted(KERNELS.glob("*.cu"))
ARCHS = ("sm_80", "sm_90")
NVCC_FLAGS = [
    "-std=c++17",
    "-cubin",
    "-Werror",
    "all-warnings",  # also turns the ptxas warnings below into errors (see the control)
    "-Xptxas",
    "-warn-spills,-warn-lmem-usage",
]
# Same math flags as CUDA-CHECKS.md measured; no FMA contraction, so host results are plain IEEE.
GXX_FLAGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", f"-I{KERNELS}"]

# Elementwise activations with kernels, and the params they are checked with (softmax and
# log_softmax are reductions: their kernels are not written yet).
PARAMS = {
    "relu": [None],
    "leaky_relu": [0.01, 0.2],
    "elu": [1.0, 0.5],
    "gelu": [None],
    "gelu_tanh": [None],
    "silu": [None],
    "sigmoid": [None],
    "tanh": [None],
    "softplus": [(1.0, 20.0), (2.0, 5.0), (0.5, 20.0)],
}
ELEMENTWISE = tuple(PARAMS)
CASES = [(name, p) for name in ELEMENTWISE for p in PARAMS[name]]
# |err| <= ULPS·eps·(|ref| + |g|·(1+|x|)): a plain rtol fails where the derivative crosses zero
# (GELU near x = -0.75) and where 1 - t² cancels; the |g|·(1+|x|) term allows for both. The
# forward is checked with g = 1: it multiplies x by a factor with the same cancellation (1 + erf).
# Measured worst case here: under 3.
ULPS = 8


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not on PATH, so this offline kernel check cannot run")
    return path


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)


# --- 1. nvcc ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nvcc_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Compile every (file, arch) pair and the control, in parallel (one nvcc per core)."""
    nvcc = _require("nvcc")
    out = tmp_path_factory.mktemp("nvcc")
    jobs = {(src.name, arch): (src, arch) for src in CU_FILES for arch in ARCHS}
    jobs[("control_lmem.cu", "sm_90")] = (HOST / "control_lmem.cu", "sm_90")

    def compile_one(key):
        src, arch = jobs[key]
        cubin = out / f"{src.stem}.{arch}.cubin"
        return _run([nvcc, f"-arch={arch}", *NVCC_FLAGS, "-o", str(cubin), str(src)])

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(zip(jobs, pool.map(compile_one, jobs)))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("source", CU_FILES, ids=lambda p: p.name)
def test_nvcc_compiles_without_warnings(nvcc_results: dict, source: Path, arch: str) -> None:
    proc = nvcc_results[(source.name, arch)]
    assert proc.returncode == 0, f"nvcc {source.name} for {arch}:\n{proc.stdout}{proc.stderr}"


def test_nvcc_control_with_local_memory_fails(nvcc_results: dict) -> None:
    proc = nvcc_results[("control_lmem.cu", "sm_90")]
    assert proc.returncode != 0, "a kernel using local memory compiled: the ptxas flags are off"
    assert "Local memory used" in proc.stderr


# --- 2. header math against the NumPy twins --------------------------------------------------
@pytest.fixture(scope="module")
def host_lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    gxx = _require("g++")
    lib = tmp_path_factory.mktemp("host") / "libactivations_host.so"
    src = HOST / "activations_host.cpp"
    proc = _run([gxx, "-O2", "-shared", "-fPIC", *GXX_FLAGS, "-o", str(lib), str(src)])
    assert proc.returncode == 0, f"g++ failed:\n{proc.stderr}"
    return ctypes.CDLL(str(lib))


def _host_call(lib: ctypes.CDLL, kind: str, name: str, arrays: list, param) -> np.ndarray:
    """Run the host build of `name`'s forward or backward over `arrays` (all the same dtype)."""
    dtype = arrays[0].dtype
    ctype = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    fn = getattr(lib, f"gg_{kind}_{'f32' if dtype == np.float32 else 'f64'}")
    fn.argtypes = [ctypes.c_char_p, ctypes.c_longlong] + [ctypes.c_void_p] * (len(arrays) + 1)
    fn.argtypes += [ctype, ctype]
    p0, p1 = param if isinstance(param, tuple) else (param or 0.0, 0.0)
    arrays = [np.ascontiguousarray(a) for a in arrays]
    result = np.empty_like(arrays[0])
    ptrs = [a.ctypes.data for a in arrays] + [result.ctypes.data]
    assert fn(name.encode(), arrays[0].size, *ptrs, p0, p1) == 0, f"unknown activation {name}"
    return result


def _points(dtype) -> tuple[np.ndarray, np.ndarray]:
    """~100k inputs x and incoming gradients g: the usual range, wide uniform, magnitudes from 1e-8
    to 1e4, and every pairing of special x with special g."""
    rng = np.random.default_rng(20261126)
    n = 33_000
    magnitude = 10.0 ** rng.uniform(-8, 4, n) * rng.choice([-1.0, 1.0], n)
    x = np.concatenate([rng.standard_normal(n) * 3, rng.uniform(-40, 40, n), magnitude])
    g = rng.standard_normal(x.size)
    special_x = [0.0, -0.0, np.inf, -np.inf, np.nan, 30, -30, 1e4, -1e4, 20, -0.75, 1e-30]
    special_g = [1.0, -2.5, 0.0, -0.0, np.inf, -np.inf, np.nan]
    sx, sg = np.meshgrid(special_x, special_g)
    x = np.concatenate([x, sx.ravel()]).astype(dtype)
    g = np.concatenate([g, sg.ravel()]).astype(dtype)
    return x, g


def _bad(got: np.ndarray, ref: np.ndarray, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Mask of elements where `got` is not within the eps-scaled bound of `ref`. Where x, g or
    ref is not finite the two must be identical (the same inf, or both NaN)."""
    eps = np.finfo(ref.dtype).eps
    with np.errstate(all="ignore"):
        tol = ULPS * eps * (np.abs(ref) + np.abs(g) * (1 + np.abs(x)))
        close = np.abs(got - ref) <= tol  # False for NaN: a NaN where ref is finite is bad
    exact = ~(np.isfinite(ref) & np.isfinite(x) & np.isfinite(g))
    same = (got == ref) | (np.isnan(got) & np.isnan(ref))
    return np.where(exact, ~same, ~close)


def _describe(bad, got, ref, x, g) -> str:
    idx = np.flatnonzero(bad)[:5]
    rows = [f"x={x[i]!r} g={g[i]!r} ref={ref[i]!r} got={got[i]!r}" for i in idx]
    return f"{bad.sum()} of {bad.size} outside the bound, e.g.\n" + "\n".join(rows)


def _twin_and_host(lib, name, param, dtype, host_fwd=None, host_bwd=None):
    """(x, g, ones, twin forward, host forward, twin backward, host backward)."""
    cpu = get_backend("cpu")
    x, g = _points(dtype)
    with np.errstate(all="ignore"):  # the twins meet inf/NaN inputs on purpose
        out = cpu.activation_forward(name, x, param)
        dx = cpu.activation_backward(name, g, x, out, param)
    got_out = _host_call(lib, "forward", host_fwd or name, [x], param)
    got_dx = _host_call(lib, "backward", host_bwd or name, [g, x, out], param)
    return x, g, np.ones_like(x), out, got_out, dx, got_dx


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize(("name", "param"), CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_header_math_matches_numpy_twin(host_lib, name, param, dtype) -> None:
    x, g, ones, out, got_out, dx, got_dx = _twin_and_host(host_lib, name, param, dtype)
    assert got_out.dtype == dtype and got_dx.dtype == dtype
    bad = _bad(got_out, out, x, ones)
    assert not bad.any(), f"{name} forward: " + _describe(bad, got_out, out, x, ones)
    bad = _bad(got_dx, dx, x, g)
    assert not bad.any(), f"{name} backward: " + _describe(bad, got_dx, dx, x, g)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_comparison_catches_wrong_formulas(host_lib, dtype) -> None:
    # sigmoid' written as s(1+s), and gelu_tanh with cubic 0.0447 instead of 0.044715.
    x, g, ones, out, got_out, dx, got_dx = _twin_and_host(
        host_lib, "gelu_tanh", None, dtype, host_fwd="wrong_gelu_tanh"
    )
    assert _bad(got_out, out, x, ones).sum() > 1000
    x, g, ones, out, got_out, dx, got_dx = _twin_and_host(
        host_lib, "sigmoid", None, dtype, host_bwd="wrong_sigmoid"
    )
    assert _bad(got_dx, dx, x, g).sum() > 1000


# --- 3. the real kernel bodies through the launch shim, under ASan/UBSan ---------------------
def _kernel_names(*files: str) -> set[str]:
    """Every kernel that the given kernels/*.cu files (default: all) define, for both dtypes."""
    names = set()
    for src in [KERNELS / f for f in files] or CU_FILES:
        text = src.read_text(encoding="utf-8")
        stems = re.findall(r'extern "C" __global__ void (\w+)_##S\(', text)
        names |= {f"{stem}_{suffix}" for stem in stems for suffix in ("f32", "f64")}
    return names


@pytest.fixture(scope="module")
def launch_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gxx = _require("g++")
    exe = tmp_path_factory.mktemp("shim") / "launch_check"
    # -O0 builds in a third of the time of -O1 and runs about as fast for these sizes.
    sanitize = ["-O0", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    cmd = [gxx, *sanitize, *GXX_FLAGS, f"-I{HOST}", "-o", str(exe), str(HOST / "launch_check.cpp")]
    proc = _run(cmd)
    assert proc.returncode == 0, f"g++ failed:\n{proc.stderr}"
    return exe


def _run_shim(exe: Path, *args: str) -> subprocess.CompletedProcess:
    # Leak checking is off: it is not what this checks, and it fails under some sandboxes' ptrace.
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0", UBSAN_OPTIONS="print_stacktrace=1")
    return _run([str(exe), *args], env=env)


def test_kernels_have_twins() -> None:
    names = _kernel_names("activations.cu")
    assert names, "no kernels found in kernels/activations.cu"
    expected = {
        f"activation_{kind}_{act}_{suffix}"
        for kind in ("forward", "backward")
        for act in ELEMENTWISE
        for suffix in ("f32", "f64")
    }
    assert names == expected
    assert set(ELEMENTWISE) <= set(FORWARD)
    optim = {f"{k}_step_{suffix}" for k in ("sgd", "adam") for suffix in ("f32", "f64")}
    assert _kernel_names("optim.cu") == optim
    assert all(hasattr(get_backend("cpu"), f"{k}_step") for k in ("sgd", "adam"))


def test_kernel_bodies_cover_every_element_in_bounds(launch_check: Path) -> None:
    proc = _run_shim(launch_check)
    assert proc.returncode == 0, f"launch shim check failed:\n{proc.stdout}\n{proc.stderr}"
    checked = set(re.findall(r"^kernel (\w+)$", proc.stdout, re.MULTILINE))
    assert checked == _kernel_names(), "launch_check.cpp must run every kernel of the .cu files"
    assert re.search(r"checked \d+ elements in \d+ launches, 0 mismatches", proc.stdout)


def test_launch_shim_control_out_of_bounds_is_reported(launch_check: Path) -> None:
    proc = _run_shim(launch_check, "control-oob")
    assert proc.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in proc.stderr


def test_launch_shim_control_unwritten_element_is_reported(launch_check: Path) -> None:
    proc = _run_shim(launch_check, "control-unwritten")
    assert proc.returncode == 1
    assert "MISMATCH control_unwritten" in proc.stdout


# --- 4. optimizer update math (kernels/optim.cuh) against the NumPy twins --------------------
SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.05, weight_decay=0.01),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, dampening=0.1),
    dict(lr=0.01, momentum=0.8, nesterov=True),
    dict(lr=0.03, momentum=0.9, dampening=0.25, weight_decay=1e-3, nesterov=True),
]
ADAM_CASES = [
    dict(lr=1e-3),
    dict(lr=1e-2, beta1=0.8, beta2=0.99, eps=1e-6),
    dict(lr=1e-3, weight_decay=0.01),  # Adam: L2 in the gradient
    dict(lr=1e-3, weight_decay=0.1, decoupled=True),  # AdamW
]
OPTIM_STEPS = 4


@pytest.fixture(scope="module")
def optim_lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    gxx = _require("g++")
    lib = tmp_path_factory.mktemp("optim") / "liboptim_host.so"
    src = HOST / "optim_host.cpp"
    proc = _run([gxx, "-O2", "-shared", "-fPIC", *GXX_FLAGS, "-o", str(lib), str(src)])
    assert proc.returncode == 0, f"g++ failed:\n{proc.stderr}"
    return ctypes.CDLL(str(lib))


def _optim_fn(lib: ctypes.CDLL, name: str, dtype, arrays: int, doubles: int, tail: list):
    fn = getattr(lib, f"gg_{name}_{'f32' if dtype == np.float32 else 'f64'}")
    fn.argtypes = [ctypes.c_longlong] + [ctypes.c_void_p] * arrays + [ctypes.c_double] * doubles
    fn.argtypes += tail
    fn.restype = None
    return fn


def _optim_grads(dtype, n: int, steps: int) -> list[np.ndarray]:
    """Gradients for each step: magnitudes 1e-8..1e2 (so sqrt(v) meets eps), exact zeros, and in
    the last few elements inf and NaN (the twins must agree on where the state goes non-finite)."""
    rng = np.random.default_rng(20261126)
    grads = []
    for _ in range(steps):
        g = 10.0 ** rng.uniform(-8, 2, n) * rng.choice([-1.0, 1.0], n)
        g[: n // 50] = 0.0
        g[-3:] = [np.inf, -np.inf, np.nan]
        grads.append(g.astype(dtype))
    return grads


def _optim_bad(got: np.ndarray, ref: np.ndarray, before: np.ndarray, g: np.ndarray) -> np.ndarray:
    """`_bad` for one updated array: the scale is the value before and after the step plus the
    gradient (what the update is made of); non-finite values must be identical."""
    eps = np.finfo(ref.dtype).eps
    with np.errstate(all="ignore"):
        tol = ULPS * eps * (np.abs(ref) + np.abs(before) + np.abs(g))
        close = np.abs(got - ref) <= tol
    exact = ~(np.isfinite(ref) & np.isfinite(before) & np.isfinite(g))
    same = (got == ref) | (np.isnan(got) & np.isnan(ref))
    return np.where(exact, ~same, ~close)


def _run_optim(lib, kind: str, case: dict, dtype, host_name: str | None = None) -> dict:
    """OPTIM_STEPS updates by the twin and by the host header, each step from the same inputs
    (the host's state is reset to the twin's before each step, so errors cannot compound).
    Returns {array name: number of elements outside the bound, summed over the steps}."""
    cpu = get_backend("cpu")
    n = 20_000
    rng = np.random.default_rng(7)
    p = rng.standard_normal(n).astype(dtype)
    state = {"param": p}
    if kind == "sgd":
        state["momentum_buffer"] = np.zeros(n, dtype)
    else:
        state["exp_avg"] = np.zeros(n, dtype)
        state["exp_avg_sq"] = np.zeros(n, dtype)
    bad = dict.fromkeys(state, 0)
    for step, g in enumerate(_optim_grads(dtype, n, OPTIM_STEPS), start=1):
        twin = {k: v.copy() for k, v in state.items()}
        host = {k: v.copy() for k, v in state.items()}
        with np.errstate(all="ignore"):
            if kind == "sgd":
                cpu.sgd_step(twin["param"], g, twin["momentum_buffer"], first=step == 1, **case)
                fn = _optim_fn(lib, host_name or "sgd", dtype, 3, 4, [ctypes.c_int] * 2)
                c = {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, **case}
                fn(
                    n,
                    host["param"].ctypes.data,
                    g.ctypes.data,
                    host["momentum_buffer"].ctypes.data,
                    c["lr"],
                    c["momentum"],
                    c["dampening"],
                    c["weight_decay"],
                    int(c.get("nesterov", False)),
                    int(step == 1),
                )
            else:
                cpu.adam_step(
                    twin["param"], g, twin["exp_avg"], twin["exp_avg_sq"], None, step, **case
                )
                c = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, **case}
                step_size = c["lr"] / (1.0 - c["beta1"] ** step)
                correction2_sqrt = math.sqrt(1.0 - c["beta2"] ** step)
                fn = _optim_fn(
                    lib, host_name or "adam", dtype, 4, 5, [ctypes.c_int] + [ctypes.c_double] * 2
                )
                fn(
                    n,
                    host["param"].ctypes.data,
                    g.ctypes.data,
                    host["exp_avg"].ctypes.data,
                    host["exp_avg_sq"].ctypes.data,
                    c["lr"],
                    c["beta1"],
                    c["beta2"],
                    c["eps"],
                    c["weight_decay"],
                    int(c.get("decoupled", False)),
                    step_size,
                    correction2_sqrt,
                )
        for k in state:
            mask = _optim_bad(host[k], twin[k], state[k], g)
            if mask.any() and host_name is None:
                print(
                    f"{kind} {case} step {step} {k}: "
                    + _describe(mask, host[k], twin[k], state[k], g)
                )
            bad[k] += int(mask.sum())
        state = twin
    return bad


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", SGD_CASES, ids=[str(c) for c in SGD_CASES])
def test_sgd_header_matches_numpy_twin(optim_lib, case, dtype) -> None:
    bad = _run_optim(optim_lib, "sgd", case, dtype)
    assert not any(bad.values()), f"elements outside the bound: {bad} (see stdout)"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", ADAM_CASES, ids=[str(c) for c in ADAM_CASES])
def test_adam_header_matches_numpy_twin(optim_lib, case, dtype) -> None:
    bad = _run_optim(optim_lib, "adam", case, dtype)
    assert not any(bad.values()), f"elements outside the bound: {bad} (see stdout)"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_optim_comparison_catches_eps_inside_sqrt(optim_lib, dtype) -> None:
    bad = _run_optim(optim_lib, "adam", ADAM_CASES[0], dtype, host_name="adam_wrong")
    assert bad["param"] > 1000
