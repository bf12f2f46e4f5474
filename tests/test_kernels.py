"""Checks of the CUDA kernels in kernels/ that need no GPU (see ../shared/CUDA-CHECKS.md).

1. The activation math (kernels/activations.cuh) built with g++ into a ctypes library agrees with
   the NumPy twins (activation_forward / activation_backward of the cpu backend) to a few ulps
   over random and special inputs; deliberately wrong formulas must be caught by the same
   comparison. The header's binary16 conversions are bit-identical to NumPy's astype (every
   half, every float32 next to a rounding boundary, random bit patterns; wrong roundings must be
   caught), and the half (f16) math is the float32 math rounded once, bit for bit, within one
   binary16 ulp of the float64 twin (plus the float32 math's own bound where it cancels).
2. The optimizer update math (kernels/optim.cuh: SGD, Adam/AdamW with and without amsgrad,
   RMSprop, Adagrad) agrees with the twins over several steps (a variant with eps inside the sqrt
   must be caught).
3. The softmax cross-entropy row math (kernels/losses.cuh) agrees with
   softmax_cross_entropy_forward / _backward to an eps-scaled bound over random shapes and
   scales, and exactly where the twin gives inf or NaN; wrong variants must be caught.
4. The real kernel bodies (every kernels/*.cu) run on the host through a launch shim under
   ASan/UBSan over many sizes and grid/block shapes: every output element written, bit for bit
   the header function's value, nothing out of bounds (with controls).
5. nvcc compiles every kernels/*.cu for sm_80 and sm_90, warnings as errors, and ptxas flags any
   spill or local-memory use (a control kernel that uses local memory must fail to compile).

Every compile starts in the background when the first check needs one (`builds`), so the
compilers and the sanitized shim run while the NumPy comparisons run here.
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
import threading
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
# Host libraries (tests/kernels_host/<name>_host.cpp) built for ctypes.
HOST_LIBS = ("activations", "optim", "losses")
# Groups of launch_check.cpp, run side by side (one process each).
SHIM_GROUPS = ("activations", "activations-f16", "optim", "losses")

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


# --- every build, in the background ----------------------------------------------------------
def _build_host_lib(gxx: str, out: Path, name: str) -> subprocess.CompletedProcess:
    lib = out / f"lib{name}_host.so"
    src = HOST / f"{name}_host.cpp"
    return _run([gxx, "-O2", "-shared", "-fPIC", *GXX_FLAGS, "-o", str(lib), str(src)])


def _shim_env() -> dict[str, str]:
    # Leak checking is off: it is not what this checks, and it fails under some sandboxes' ptrace.
    return dict(os.environ, ASAN_OPTIONS="detect_leaks=0", UBSAN_OPTIONS="print_stacktrace=1")


def _build_and_run_shim(gxx: str, out: Path, stop: threading.Event) -> dict:
    """Build launch_check.cpp with the sanitizers, then run its groups side by side (unless
    `stop` is set by then: the module is done without them).
    Returns {"build": CompletedProcess, "exe": path, group: CompletedProcess...}."""
    exe = out / "launch_check"
    # -O0 builds in under half the time of -O1, and the whole (build + run) is shorter.
    sanitize = ["-O0", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    cmd = [gxx, *sanitize, *GXX_FLAGS, f"-I{HOST}", "-o", str(exe), str(HOST / "launch_check.cpp")]
    results = {"build": _run(cmd), "exe": exe}
    if results["build"].returncode != 0 or stop.is_set():
        return results
    procs = {
        group: subprocess.Popen(
            [str(exe), group],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_shim_env(),
        )
        for group in SHIM_GROUPS
    }
    for group, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        results[group] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return results


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory):
    """Start every compile of this module at once, one worker per core: the host libraries
    first (the first checks need them), then the sanitized launch shim (longest: build, then
    run), then nvcc for each (file, arch) and the control. Yields {key: Future}; keys missing
    for a compiler that is not on PATH."""
    out = tmp_path_factory.mktemp("builds")
    gxx, nvcc = shutil.which("g++"), shutil.which("nvcc")
    futures: dict = {}
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        if gxx:
            for name in HOST_LIBS:
                futures[name] = pool.submit(_build_host_lib, gxx, out, name)
            futures["shim"] = pool.submit(_build_and_run_shim, gxx, out, stop)
        if nvcc:
            jobs = {(src.name, arch): (src, arch) for src in CU_FILES for arch in ARCHS}
            jobs[("control_lmem.cu", "sm_90")] = (HOST / "control_lmem.cu", "sm_90")
            for key, (src, arch) in jobs.items():
                cubin = out / f"{src.stem}.{arch}.cubin"
                cmd = [nvcc, f"-arch={arch}", *NVCC_FLAGS, "-o", str(cubin), str(src)]
                futures[key] = pool.submit(_run, cmd)
        yield futures
        # A check run alone need not wait for the other checks' builds.
        stop.set()
        for future in futures.values():
            future.cancel()


def _host_lib(builds: dict, name: str) -> ctypes.CDLL:
    _require("g++")
    proc = builds[name].result()
    assert proc.returncode == 0, f"g++ failed:\n{proc.stderr}"
    return ctypes.CDLL(proc.args[proc.args.index("-o") + 1])


# --- 1. activation math against the NumPy twins ---------------------------------------------
@pytest.fixture(scope="module")
def host_lib(builds: dict) -> ctypes.CDLL:
    return _host_lib(builds, "activations")


# The host functions' suffix and scalar type per array dtype (float16 computes in float).
HOST_TYPES = {
    np.dtype(np.float64): ("f64", ctypes.c_double),
    np.dtype(np.float32): ("f32", ctypes.c_float),
    np.dtype(np.float16): ("f16", ctypes.c_float),
}


def _host_call(lib: ctypes.CDLL, kind: str, name: str, arrays: list, param) -> np.ndarray:
    """Run the host build of `name`'s forward or backward over `arrays` (all the same dtype)."""
    dtype = arrays[0].dtype
    suffix, ctype = HOST_TYPES[dtype]
    fn = getattr(lib, f"gg_{kind}_{suffix}")
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


# --- 1b. binary16 conversions and the half (f16) math --------------------------------------
def _to_half(lib: ctypes.CDLL, f: np.ndarray, variant: int = 0) -> np.ndarray:
    """gg::float_to_half over a float32 array (variant 1, 2: the wrong roundings); uint16 bits."""
    f = np.ascontiguousarray(f, dtype=np.float32)
    h = np.empty(f.shape, np.uint16)
    fn = lib.gg_float_to_half
    fn.argtypes = [ctypes.c_longlong, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    fn.restype = None
    fn(f.size, f.ctypes.data, h.ctypes.data, variant)
    return h


def _to_float(lib: ctypes.CDLL, h: np.ndarray) -> np.ndarray:
    """gg::half_to_float over a uint16 array of binary16 bits."""
    h = np.ascontiguousarray(h, dtype=np.uint16)
    f = np.empty(h.shape, np.float32)
    fn = lib.gg_half_to_float
    fn.argtypes = [ctypes.c_longlong, ctypes.c_void_p, ctypes.c_void_p]
    fn.restype = None
    fn(h.size, h.ctypes.data, f.ctypes.data)
    return f


ALL_HALVES = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def _numpy_half(f: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # beyond 65504 is inf, on purpose
        return np.asarray(f, np.float32).astype(np.float16).view(np.uint16)


def _half_mismatches(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Mask of binary16 bit patterns that differ; two NaNs (any payload) count as equal."""
    got_nan = np.isnan(got.view(np.float16))
    want_nan = np.isnan(want.view(np.float16))
    return np.where(want_nan, ~got_nan, got != want)


def _boundary_floats() -> np.ndarray:
    """Every float32 within 3 ulps of a binary16 value or of the midpoint between neighbours
    (the ties), both signs: every place where rounding to binary16 can go wrong, including the
    overflow threshold 65520, the tie 2^-25 with zero, and the float32 subnormals."""
    lo = ALL_HALVES[:0x7C00].view(np.float16).astype(np.float64)  # +0 .. 65504
    hi = np.append(lo[1:], 65536.0)  # the next value up; 65536 stands for inf
    points = np.concatenate([lo, (lo + hi) / 2]).astype(np.float32)  # all exact in float32
    bits = points.view(np.uint32).astype(np.int64)[:, None] + np.arange(-3, 4)
    bits = bits[(bits >= 0) & (bits < 0x7F800000)].astype(np.uint32)
    bits = np.concatenate([bits, np.arange(64, dtype=np.uint32), [0x7F800000, 0x7FC00000]])
    return np.concatenate([bits, bits | np.uint32(0x80000000)]).view(np.float32)


def test_half_to_float_matches_numpy_for_every_half(host_lib) -> None:
    got = _to_float(host_lib, ALL_HALVES)
    want = ALL_HALVES.view(np.float16).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got.view(np.uint32)[~nan], want.view(np.uint32)[~nan])
    # Every half survives the round trip through float; NaN stays NaN, sign kept.
    back = _to_half(host_lib, got)
    assert not _half_mismatches(back, ALL_HALVES).any()
    assert np.array_equal(back >> 15, ALL_HALVES >> 15)


def test_float_to_half_matches_numpy_rounding(host_lib) -> None:
    boundary = _boundary_floats()
    rng = np.random.default_rng(16)
    random = rng.integers(0, 1 << 32, 2_000_000, dtype=np.uint64).astype(np.uint32)
    for floats in (boundary, random.view(np.float32)):
        bad = _half_mismatches(_to_half(host_lib, floats), _numpy_half(floats))
        assert not bad.any(), f"{bad.sum()} differ from NumPy, e.g. {floats[bad][:5]!r}"
    # Overflow, underflow and ties (to even), spelled out: value -> binary16 bits.
    cases = {
        65504.0: 0x7BFF,
        65519.99: 0x7BFF,  # float32 65519.9921875, just below the midpoint to 2^16
        65520.0: 0x7C00,  # the midpoint: ties to "even" 2^16, which is inf
        1e9: 0x7C00,
        -65520.0: 0xFC00,
        2.0**-25: 0x0000,  # half the smallest subnormal: ties to 0
        -(2.0**-25): 0x8000,
        2.0**-24 * 1.5: 0x0002,  # subnormal ties: 1.5 -> 2, 2.5 -> 2
        2.0**-24 * 2.5: 0x0002,
        2.0**-14 - 2.0**-25: 0x0400,  # largest subnormal and smallest normal: up to the normal
        1.0 + 2.0**-11: 0x3C00,  # normal ties: down to even, then up to even
        1.0 + 3 * 2.0**-11: 0x3C02,
    }
    got = _to_half(host_lib, np.array(list(cases), np.float32))
    assert [hex(v) for v in got] == [hex(v) for v in cases.values()]


def test_half_conversion_checks_catch_wrong_rounding(host_lib) -> None:
    """Truncation, and ties rounded away from zero instead of to even, must both be caught by the
    boundary set (random bit patterns alone almost never land on a tie)."""
    boundary = _boundary_floats()
    want = _numpy_half(boundary)
    assert _half_mismatches(_to_half(host_lib, boundary, variant=1), want).sum() > 10_000
    assert _half_mismatches(_to_half(host_lib, boundary, variant=2), want).sum() > 10_000


def _half_key(h: np.ndarray) -> np.ndarray:
    """binary16 bits as integers in value order (-0 and +0 both 0; +inf one step past 65504), so
    the difference of two keys is the distance in binary16 ulps."""
    b = h.view(np.uint16).astype(np.int32)
    return np.where(b & 0x8000, -(b & 0x7FFF), b)


def _f16_points() -> tuple[np.ndarray, np.ndarray]:
    """x: every binary16 value (all 65536 bit patterns); g: random normal binary16 values, with
    every 64th one special (0, -0, ±inf, NaN, ±60000, a subnormal)."""
    rng = np.random.default_rng(1616)
    x = ALL_HALVES.view(np.float16)
    g = rng.standard_normal(x.size).astype(np.float16)
    special = np.array([0, -0.0, np.inf, -np.inf, np.nan, 6e4, -6e4, 3e-6], np.float16)
    g[::64] = np.resize(special, g[::64].size)
    return x, g


def _f16_run(lib, name: str, param, x16: np.ndarray, g16: np.ndarray, fwd=None, bwd=None):
    """The host f16 forward and backward of `name` (the backward on the f16 forward's output, as
    autograd saves it), the float32 header math on the same inputs rounded once, and the float64
    and float32 twins on the same inputs."""
    cpu = get_backend("cpu")
    out16 = _host_call(lib, "forward", fwd or name, [x16], param)
    dx16 = _host_call(lib, "backward", bwd or name, [g16, x16, out16], param)
    x32, g32, out32 = (a.astype(np.float32) for a in (x16, g16, out16))
    x64, g64, out64 = (a.astype(np.float64) for a in (x16, g16, out16))
    with np.errstate(all="ignore"):  # inf/NaN inputs and float16 overflow on purpose
        return {
            "out": out16,
            "dx": dx16,
            "out32": _host_call(lib, "forward", name, [x32], param).astype(np.float16),
            "dx32": _host_call(lib, "backward", name, [g32, x32, out32], param).astype(np.float16),
            "ref": cpu.activation_forward(name, x64, param),
            "dref": cpu.activation_backward(name, g64, x64, out64, param),
            "ref32": cpu.activation_forward(name, x32, param).astype(np.float16),
            "dref32": cpu.activation_backward(name, g32, x32, out32, param).astype(np.float16),
        }


def _f16_vs_float64(got, ref, ref32, x, g):
    """(ulps, bad): the distance in binary16 ulps between `got` and the float64 twin's result
    rounded to binary16, and the mask of elements beyond the bound. Bound: 1 ulp (what one
    rounding of a float32 result a few float32 ulps from the exact value can cost next to a tie),
    or, where the float32 math itself cancels, the float32 header's own bound
    ULPS·eps32·(|ref| + |g|·(1+|x|)) on top of half an ulp. A NaN must be matched by a NaN.
    Where x or g is inf or NaN the float64 twin is not the reference (e.g. inf·f'(x) where f'
    underflows in float32 but not in float64): there `got` must equal `ref32`, the float32
    twin's result rounded to binary16, exactly (ulps reported as 0)."""
    with np.errstate(all="ignore"):
        ref16 = ref.astype(np.float16)
        ulps = np.abs(_half_key(got) - _half_key(ref16))
        spacing = np.where(np.abs(ref16) < 2.0**-14, 2.0**-24, np.abs(np.spacing(ref16)))
        x64, g64, got64 = (a.astype(np.float64) for a in (x, g, got))
        tol32 = ULPS * np.finfo(np.float32).eps * (np.abs(ref) + np.abs(g64) * (1 + np.abs(x64)))
        within = np.abs(got64 - ref) <= tol32 + spacing.astype(np.float64) / 2
    nan_ref, nan_got = np.isnan(ref16), np.isnan(got)
    ok = np.where(nan_ref | nan_got, nan_ref & nan_got, (ulps <= 1) | within)
    special = ~(np.isfinite(x) & np.isfinite(g))
    ok = np.where(special, ~_half_mismatches(got.view(np.uint16), ref32.view(np.uint16)), ok)
    return np.where(nan_ref | nan_got | special, 0, ulps), ~ok


@pytest.mark.parametrize(("name", "param"), CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_f16_math_is_float32_math_rounded_once(host_lib, name, param) -> None:
    x, g = _f16_points()
    r = _f16_run(host_lib, name, param, x, g)
    for got, want in ((r["out"], r["out32"]), (r["dx"], r["dx32"])):
        bad = _half_mismatches(got.view(np.uint16), want.view(np.uint16))
        assert not bad.any(), f"{name}: {bad.sum()} differ from float32 rounded once"
    ones = np.ones_like(x)
    ulps, bad = _f16_vs_float64(r["out"], r["ref"], r["ref32"], x, ones)
    assert not bad.any(), f"{name} forward: " + _describe(bad, r["out"], r["ref"], x, ones)
    dulps, dbad = _f16_vs_float64(r["dx"], r["dref"], r["dref32"], x, g)
    assert not dbad.any(), f"{name} backward: " + _describe(dbad, r["dx"], r["dref"], x, g)
    # Beyond 1 ulp only where the float32 math cancels: gelu and gelu_tanh for x near -4..-6,
    # where f or f' is a small difference of values near 1 (measured: 17 forward and 193
    # backward elements of 65536 in all, see kernels/README.md); never a sizeable share.
    assert (ulps > 1).sum() + (dulps > 1).sum() < 0.01 * x.size
    print(
        f"{name} {param}: forward/backward beyond 1 binary16 ulp (within the float32 bound): "
        f"{(ulps > 1).sum()}/{(dulps > 1).sum()} of {x.size}, worst {ulps.max()}/{dulps.max()}"
    )


def test_f16_comparison_catches_wrong_formulas(host_lib) -> None:
    # sigmoid' written as s(1+s). (gelu_tanh's 0.0447 for 0.044715 is a change of 3e-4 relative
    # in a term of the argument, below binary16's resolution: it is caught in float32 only.)
    x, g = _f16_points()
    r = _f16_run(host_lib, "sigmoid", None, x, g, bwd="wrong_sigmoid")
    assert _f16_vs_float64(r["dx"], r["dref"], r["dref32"], x, g)[1].sum() > 1000


# --- 2. optimizer update math (kernels/optim.cuh) against the NumPy twins --------------------
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
    dict(lr=1e-3, amsgrad=True),
    dict(lr=1e-2, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.01, amsgrad=True),
    dict(lr=1e-3, weight_decay=0.1, decoupled=True, amsgrad=True),  # AdamW with amsgrad
]
RMSPROP_CASES = [
    dict(lr=1e-2),
    dict(lr=1e-2, alpha=0.9, eps=1e-6),
    dict(lr=1e-2, centered=True),
    dict(lr=1e-2, momentum=0.9),
    dict(lr=1e-2, weight_decay=0.01),
    dict(lr=1e-2, centered=True, momentum=0.9),
    dict(lr=1e-3, alpha=0.95, eps=1e-6, weight_decay=1e-3, momentum=0.5, centered=True),
]
# `initial` is the optimizer's initial_accumulator_value (the state the twin starts from).
ADAGRAD_CASES = [
    dict(lr=1e-2),
    dict(lr=0.1, lr_decay=0.01),
    dict(lr=1e-2, weight_decay=0.01),
    dict(lr=0.05, lr_decay=1e-3, weight_decay=1e-3, eps=1e-6, initial=0.1),
]
OPTIM_STEPS = 4
# The twins' defaults, for the arguments a case leaves out.
OPTIM_DEFAULTS = {
    "sgd": dict(momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
    "adam": dict(
        beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False, amsgrad=False
    ),
    "rmsprop": dict(alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False),
    "adagrad": dict(lr_decay=0.0, weight_decay=0.0, eps=1e-10),
}
# The state arrays of each optimizer, in the kernel's argument order.
OPTIM_STATE = {
    "sgd": ("momentum_buffer",),
    "adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "rmsprop": ("square_avg", "grad_avg", "momentum_buffer"),
    "adagrad": ("state_sum",),
}


@pytest.fixture(scope="module")
def optim_lib(builds: dict) -> ctypes.CDLL:
    return _host_lib(builds, "optim")


def _optim_fn(lib: ctypes.CDLL, name: str, dtype, argtypes: list):
    """The host function gg_<name>_<f32|f64>: (n, arrays..., then `argtypes`)."""
    fn = getattr(lib, f"gg_{name}_{'f32' if dtype == np.float32 else 'f64'}")
    fn.argtypes = [ctypes.c_longlong, *argtypes]
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


def _optim_state(kind: str, case: dict, n: int, dtype) -> dict[str, np.ndarray]:
    """The state arrays this configuration uses; the others are passed as null / None, as a
    caller of the kernel may pass them."""
    c = OPTIM_DEFAULTS[kind] | case
    unused = {
        "max_exp_avg_sq": kind == "adam" and not c["amsgrad"],
        "grad_avg": kind == "rmsprop" and not c["centered"],
        "momentum_buffer": kind in ("sgd", "rmsprop") and not c["momentum"] > 0,
    }
    names = [k for k in OPTIM_STATE[kind] if not unused.get(k, False)]
    return {k: np.full(n, c.get("initial", 0.0), dtype) for k in names}


def _twin_step(kind: str, case: dict, twin: dict, g: np.ndarray, step: int) -> None:
    """One update by the NumPy twin (the cpu backend's primitive), in place in `twin`."""
    cpu = get_backend("cpu")
    case = {k: v for k, v in case.items() if k != "initial"}
    p = twin["param"]
    if kind == "sgd":
        cpu.sgd_step(p, g, twin.get("momentum_buffer"), first=step == 1, **case)
    elif kind == "adam":
        cpu.adam_step(p, g, *[twin.get(k) for k in OPTIM_STATE[kind]], step, **case)
    elif kind == "rmsprop":
        cpu.rmsprop_step(p, g, *[twin.get(k) for k in OPTIM_STATE[kind]], **case)
    else:
        cpu.adagrad_step(p, g, twin["state_sum"], step, **case)


def _host_step(lib, kind, case, host: dict, g, step: int, name: str | None = None) -> None:
    """The same update by the header (optim_host.cpp), with the kernel's arguments: the bias
    corrections and Adagrad's clr are formed here in double, as the twin forms them."""
    c = OPTIM_DEFAULTS[kind] | case
    n, dtype = g.size, g.dtype
    arr = [host["param"].ctypes.data, g.ctypes.data]
    # A state array the configuration does not use goes as None: a null pointer.
    arr += [host[k].ctypes.data if k in host else None for k in OPTIM_STATE[kind]]
    ptrs = [ctypes.c_void_p] * len(arr)
    dbl, i32 = ctypes.c_double, ctypes.c_int
    if kind == "sgd":
        fn = _optim_fn(lib, name or "sgd", dtype, ptrs + [dbl] * 4 + [i32] * 2)
        fn(
            n,
            *arr,
            c["lr"],
            c["momentum"],
            c["dampening"],
            c["weight_decay"],
            int(c["nesterov"]),
            int(step == 1),
        )
    elif kind == "adam":
        step_size = c["lr"] / (1.0 - c["beta1"] ** step)
        correction2_sqrt = math.sqrt(1.0 - c["beta2"] ** step)
        fn = _optim_fn(lib, name or "adam", dtype, ptrs + [dbl] * 5 + [i32] * 2 + [dbl] * 2)
        fn(
            n,
            *arr,
            c["lr"],
            c["beta1"],
            c["beta2"],
            c["eps"],
            c["weight_decay"],
            int(c["decoupled"]),
            int(c["amsgrad"]),
            step_size,
            correction2_sqrt,
        )
    elif kind == "rmsprop":
        fn = _optim_fn(lib, name or "rmsprop", dtype, ptrs + [dbl] * 5 + [i32])
        fn(
            n,
            *arr,
            c["lr"],
            c["alpha"],
            c["eps"],
            c["weight_decay"],
            c["momentum"],
            int(c["centered"]),
        )
    else:
        clr = float(c["lr"]) / (1.0 + (step - 1) * float(c["lr_decay"]))
        fn = _optim_fn(lib, name or "adagrad", dtype, ptrs + [dbl] * 3)
        fn(n, *arr, clr, c["weight_decay"], c["eps"])


def _run_optim(lib, kind: str, case: dict, dtype, host_name: str | None = None) -> dict:
    """OPTIM_STEPS updates by the twin and by the host header, each step from the same inputs
    (the host's state is reset to the twin's before each step, so errors cannot compound).
    Returns {array name: number of elements outside the bound, summed over the steps}."""
    n = 20_000
    rng = np.random.default_rng(7)
    state = {"param": rng.standard_normal(n).astype(dtype), **_optim_state(kind, case, n, dtype)}
    bad = dict.fromkeys(state, 0)
    for step, g in enumerate(_optim_grads(dtype, n, OPTIM_STEPS), start=1):
        twin = {k: v.copy() for k, v in state.items()}
        host = {k: v.copy() for k, v in state.items()}
        with np.errstate(all="ignore"):  # inf/NaN gradients on purpose
            _twin_step(kind, case, twin, g, step)
            _host_step(lib, kind, case, host, g, step, host_name)
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


OPTIM_CASES = [
    (kind, case)
    for kind, cases in (
        ("sgd", SGD_CASES),
        ("adam", ADAM_CASES),
        ("rmsprop", RMSPROP_CASES),
        ("adagrad", ADAGRAD_CASES),
    )
    for case in cases
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize(("kind", "case"), OPTIM_CASES, ids=[f"{k}-{c}" for k, c in OPTIM_CASES])
def test_optim_header_matches_numpy_twin(optim_lib, kind, case, dtype) -> None:
    bad = _run_optim(optim_lib, kind, case, dtype)
    assert not any(bad.values()), f"elements outside the bound: {bad} (see stdout)"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_optim_comparison_catches_eps_inside_sqrt(optim_lib, dtype) -> None:
    bad = _run_optim(optim_lib, "adam", ADAM_CASES[0], dtype, host_name="adam_wrong")
    assert bad["param"] > 1000


# --- 3. softmax cross-entropy (kernels/losses.cuh) against the NumPy twin --------------------
# The bound. A kernel thread sums a row's exp(x - max) front to back, rescaling the sum when the
# max grows, where NumPy sums pairwise; and it forms the smoothing term's mean(x - max) from a
# sum in double of x - x[0]. Each exp(x - max) and every step after the sums is the twin's own
# operation, so the two differ by the roundings of the sum of exps (an absolute error in
# log_norm, a relative one in the softmax) and of the mean (eps times the spread of the row's
# finite logits). A sequential sum's error can grow like sqrt(classes)·eps (classes·eps at
# worst); up to 1000 classes that stays inside the log(classes) term below, as measured. In
# units of eps of the dtype:
#   loss:     |err| <= ULPS·eps·(|ref| + log(classes) + max_j |x_j - max|)   (finite x_j only)
#   gradient: |err| <= ULPS·eps·(|ref| + |g|)    (the softmax's error, times g)
# Measured worst case (rows up to 300, classes up to 1000, a third of the rows sorted ascending
# so that the max grows at every logit, scales 1, 30, 1e4, 3e38, three seeds each): loss 1.34
# (float64, 3e38, smoothing 0.1), gradient 3.25 (float64, scale 30); float32 at most 1.0 and 1.4.
# Where the twin's result is not finite the two must be identical (NaN for NaN). Exception:
# float32 logits near ±3e38, where the twin's x - max overflows to -inf (a +inf loss) though the
# loss is finite. There the kernel must agree with the twin run in float64 instead, or be +inf
# where the unsmoothed part (1 - ls)·(log_norm - (x_label - max)) alone reaches the float32
# range (the kernel forms that part in float32, as the twin does; the smoothing part in double).
XENT_SCALES = (1.0, 30.0, 1e4, 3e38)
XENT_SMOOTHING = (0.0, 0.1)
XENT_IGNORE = (-100, -1, 0)  # ignore_index: the default, and two that are possible labels


@pytest.fixture(scope="module")
def losses_lib(builds: dict) -> ctypes.CDLL:
    return _host_lib(builds, "losses")


def _xent_host(lib, kind: str, logits, labels, g, ignore_index: int, ls: float, name=None):
    """The host build of the forward (per-row losses) or backward (dlogits) kernel."""
    dtype = logits.dtype
    fn = getattr(lib, f"gg_xent_{name or kind}_{'f32' if dtype == np.float32 else 'f64'}")
    rows, classes = logits.shape
    arrays = [logits, labels] if kind == "forward" else [g, logits, labels]
    out = np.empty(rows if kind == "forward" else (rows, classes), dtype)
    arrays = [np.ascontiguousarray(a) for a in arrays] + [out]
    fn.argtypes = [ctypes.c_longlong] * 2 + [ctypes.c_void_p] * len(arrays)
    fn.argtypes += [ctypes.c_longlong, ctypes.c_double]
    fn.restype = None
    fn(rows, classes, *[a.ctypes.data for a in arrays], ignore_index, ls)
    return out


def _xent_inputs(dtype, scale: float, seed: int, random_shapes: int = 4) -> list[tuple]:
    """(logits, labels, g, ignore_index) for fixed edge shapes and random ones (rows 0..300,
    classes 1..1000); a third of the rows sorted ascending (the max grows at every logit), a
    third descending; some rows ignored, some g zero."""
    rng = np.random.default_rng(seed)
    shapes = [(0, 7), (1, 1), (300, 1), (257, 2), (64, 10), (2, 1000)]
    shapes += [
        (int(rng.integers(0, 301)), int(rng.integers(1, 1001))) for _ in range(random_shapes)
    ]
    cases = []
    for k, (rows, classes) in enumerate(shapes):
        u = rng.standard_normal((rows, classes))
        if scale > 1e30:  # keep float32 logits finite: within ±1.1·3e38
            u = np.clip(u, -1.1, 1.1)
        x = u * scale
        third = rows // 3
        x[:third].sort(axis=1)
        x[third : 2 * third] = -np.sort(-x[third : 2 * third], axis=1)
        ignore_index = XENT_IGNORE[k % len(XENT_IGNORE)]
        labels = rng.integers(0, classes, rows)
        labels[rng.random(rows) < 0.15] = ignore_index
        g = rng.standard_normal(rows)
        g[rng.random(rows) < 0.05] = 0.0
        cases.append((x.astype(dtype), labels.astype(np.int64), g.astype(dtype), ignore_index))
    return cases


def _xent_special(dtype) -> list[tuple]:
    """Rows with NaN, ±inf, -inf first, at the label and elsewhere, only -inf, huge logits,
    ignored rows holding NaN, and non-finite g; classes 1, 2 and 5."""
    nan, inf = np.nan, np.inf
    big = 3e38 if dtype == np.float32 else 1e300
    five = [
        ([nan, 0, 1, 2, 3], 2),
        ([0, 1, nan, 2, 3], 2),
        ([inf, 0, 1, 2, 3], 1),
        ([0, inf, 1, 2, 3], 1),
        ([-inf, 0, 1, 2, 3], 0),
        ([-inf, 0, 1, 2, 3], 3),
        ([0, 1, -inf, 2, 3], 4),
        ([-inf] * 5, 1),
        ([-inf, -inf, 5, -inf, -inf], 2),
        ([inf, -inf, 0, 0, 0], 2),
        ([1e4, -1e4, 0, 1e4, 3], 1),
        ([big, -big, 0, big, 1], 0),
        ([big, -big, 0, big, 1], 1),
        ([5, 5, 5, 5, 5], 0),
        ([-3e4, -3e4, -3e4, 0, 1], 3),
        ([nan, inf, -inf, 0, 1], -100),
        ([inf, 0, 0, 0, 0], -100),
        ([1, 2, 3, 4, 5], -100),
    ]
    one = [([nan], 0), ([inf], 0), ([-inf], 0), ([3.0], 0), ([big], 0), ([nan], -100)]
    two = [
        ([nan, 1], 1),
        ([inf, 1], 0),
        ([-inf, 1], 0),
        ([-inf, 1], 1),
        ([-inf, -inf], 1),
        ([big, -big], 1),
        ([1e4, -1e4], 0),
        ([1, 2], -100),
    ]
    gs = [1.0, -2.0, 0.0, inf, nan, -inf, 0.5]
    cases = []
    for rows in (five, one, two):
        x = np.array([r for r, _ in rows], dtype=dtype)
        labels = np.array([label for _, label in rows], dtype=np.int64)
        for g0 in range(len(gs)):  # every row meets every g
            g = np.array([gs[(g0 + i) % len(gs)] for i in range(len(rows))], dtype=dtype)
            cases.append((x, labels, g, -100))
    return cases


def _xent_compare(lib, logits, labels, g, ignore_index, ls, fwd=None, bwd=None) -> dict:
    """Compare the host build with the twin on one input. Returns the number of bad losses and
    gradient elements and the worst error in units of eps·scale where the bound applies."""
    cpu = get_backend("cpu")
    dtype = logits.dtype
    eps = np.finfo(dtype).eps
    classes = logits.shape[1]
    with np.errstate(all="ignore"):  # non-finite logits on purpose
        ref = cpu.softmax_cross_entropy_forward(logits, labels, ignore_index, ls)
        dref = cpu.softmax_cross_entropy_backward(g, logits, labels, ignore_index, ls)
        got = _xent_host(lib, "forward", logits, labels, g, ignore_index, ls, fwd)
        dgot = _xent_host(lib, "backward", logits, labels, g, ignore_index, ls, bwd)
        x64 = logits.astype(np.float64)
        finite = np.isfinite(x64)
        finite_row = finite.all(axis=1)
        # The spread of the row's finite logits (a -inf one is a zero probability, not a scale).
        hi = np.where(finite, x64, -np.inf).max(axis=1, initial=-np.inf)
        lo = np.where(finite, x64, np.inf).min(axis=1, initial=np.inf)
        spread = np.where(hi >= lo, hi - lo, 0.0)
        # float32 rows whose twin overflowed on finite logits: the float64 twin is the reference.
        over = finite_row & ~np.isfinite(ref)
        ref64 = cpu.softmax_cross_entropy_forward(x64, labels, ignore_index, ls)
        bounded = np.isfinite(ref)
        ref = np.where(over, ref64, ref)
        scale = np.abs(ref) + math.log(max(classes, 1)) + spread
        err = np.abs(got.astype(np.float64) - ref) / (eps * scale)
        err = np.where(scale > 0, err, np.where(got == ref, 0.0, np.inf))
        same = (got == ref) | (np.isnan(got) & np.isnan(ref))
        beyond = over & np.isposinf(got) & (ref64 >= (1 - ls) * float(np.finfo(dtype).max))
        bad_fwd = np.where(bounded | (over & ~beyond), ~(err <= ULPS), ~(same | beyond))
        # Backward: ignored rows are exact zeros (the kernel does not read them; the twin
        # multiplies them by 0, NaN where the row is not finite); elsewhere as the forward.
        valid = (labels != ignore_index)[:, None]
        gcol = np.broadcast_to(np.abs(g.astype(np.float64))[:, None], dref.shape)
        dscale = np.abs(dref) + gcol
        derr = np.abs(dgot.astype(np.float64) - dref) / (eps * dscale)
        derr = np.where(dscale > 0, derr, np.where(dgot == dref, 0.0, np.inf))
        dbounded = valid & np.isfinite(dref)
        dsame = (dgot == dref) | (np.isnan(dgot) & np.isnan(dref))
        zero = (dgot == 0) & ~np.signbit(dgot)
        bad_bwd = np.where(dbounded, ~(derr <= ULPS), np.where(valid, ~dsame, ~zero))
        # The twin agrees that ignored rows are zero wherever they are finite.
        bad_bwd |= ~valid & finite_row[:, None] & (dref != 0)
    bad_rows = np.flatnonzero(bad_fwd | bad_bwd.any(axis=1))[:3]
    examples = [
        f"row {i}: logits {logits[i]} label {labels[i]} g {g[i]}: loss {got[i]} (twin {ref[i]}),"
        f" gradient {dgot[i]} (twin {dref[i]})"
        for i in bad_rows
    ]
    return {
        "examples": examples,
        "loss": int(bad_fwd.sum()),
        "grad": int(bad_bwd.sum()),
        "worst_loss": float(np.max(np.where(bounded | (over & ~beyond), err, 0), initial=0.0)),
        "worst_grad": float(np.max(np.where(dbounded, derr, 0), initial=0.0)),
        "overflowed": int(over.sum()),
    }


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("ls", XENT_SMOOTHING, ids=lambda v: f"ls{v}")
@pytest.mark.parametrize("scale", XENT_SCALES, ids=lambda v: f"scale{v:g}")
def test_xent_header_matches_numpy_twin(losses_lib, scale, ls, dtype) -> None:
    seed = XENT_SCALES.index(scale) * 10 + XENT_SMOOTHING.index(ls)
    worst = {"worst_loss": 0.0, "worst_grad": 0.0}
    for logits, labels, g, ignore_index in _xent_inputs(dtype, scale, seed):
        r = _xent_compare(losses_lib, logits, labels, g, ignore_index, ls)
        shape = logits.shape
        assert r["loss"] == 0, f"{r['loss']} losses outside the bound, shape {shape}: {r}"
        assert r["grad"] == 0, f"{r['grad']} gradients outside the bound, shape {shape}: {r}"
        worst = {k: max(v, r[k]) for k, v in worst.items()}
    print(f"worst error in eps·scale: {worst}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("ls", XENT_SMOOTHING, ids=lambda v: f"ls{v}")
def test_xent_special_values_match_numpy_twin(losses_lib, ls, dtype) -> None:
    for logits, labels, g, ignore_index in _xent_special(dtype):
        r = _xent_compare(losses_lib, logits, labels, g, ignore_index, ls)
        assert r["loss"] == 0 and r["grad"] == 0, f"{r} for\n{logits}\n{labels} g={g}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_xent_label_out_of_range_gives_nan(losses_lib, dtype) -> None:
    """The twin raises for such a label; the kernel writes NaN (loss and whole gradient row) and
    leaves the other rows alone. Negative labels are out of range too (the twin would wrap -1
    around to the last class, as NumPy indexing does)."""
    rng = np.random.default_rng(3)
    classes = 7
    logits = rng.standard_normal((8, classes)).astype(dtype)
    labels = np.array([0, classes, -1, 3, -101, 2**40, -100, classes - 1], dtype=np.int64)
    g = np.ones(8, dtype)
    for ls in XENT_SMOOTHING:
        loss = _xent_host(losses_lib, "forward", logits, labels, g, -100, ls)
        dlogits = _xent_host(losses_lib, "backward", logits, labels, g, -100, ls)
        invalid = np.array([False, True, True, False, True, True, False, False])
        assert np.isnan(loss[invalid]).all() and np.isnan(dlogits[invalid]).all()
        assert np.isfinite(loss[~invalid]).all() and np.isfinite(dlogits[~invalid]).all()
        assert loss[6] == 0 and (dlogits[6] == 0).all()
        good = [0, 3, 7]
        r = _xent_compare(losses_lib, logits[good], labels[good], g[good], -100, ls)
        assert r["loss"] == 0 and r["grad"] == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_xent_comparison_catches_wrong_formulas(losses_lib, dtype) -> None:
    # Forward without the max shift: exp(1e4) overflows, so the losses are inf or NaN.
    bad = 0
    for logits, labels, g, ignore_index in _xent_inputs(dtype, 1e4, 99, random_shapes=1):
        r = _xent_compare(losses_lib, logits, labels, g, ignore_index, 0.1, fwd="forward_noshift")
        bad += r["loss"]
    assert bad > 100
    # Backward with a one-hot target though label smoothing is on.
    bad = 0
    for logits, labels, g, ignore_index in _xent_inputs(dtype, 1.0, 98, random_shapes=1):
        r = _xent_compare(losses_lib, logits, labels, g, ignore_index, 0.1, bwd="backward_nosmooth")
        bad += r["grad"]
    assert bad > 1000


# --- 4. the real kernel bodies through the launch shim, under ASan/UBSan ---------------------
def _kernel_names(*files: str) -> set[str]:
    """Every kernel that the given kernels/*.cu files (default: all) define: each kernel stem of
    the file's macro with each suffix the file instantiates it for (the last argument of its
    top-level GG_..._KERNELS(...) lines)."""
    names = set()
    for src in [KERNELS / f for f in files] or CU_FILES:
        text = src.read_text(encoding="utf-8")
        stems = re.findall(r'extern "C" __global__ void (\w+)_##S\(', text)
        suffixes = re.findall(r"^GG_\w+_KERNELS\(.*,\s*(\w+)\)$", text, re.MULTILINE)
        assert stems and suffixes, f"no kernels or no instantiations found in {src.name}"
        names |= {f"{stem}_{suffix}" for stem in stems for suffix in suffixes}
    return names


@pytest.fixture(scope="module")
def launch_check(builds: dict) -> dict:
    """{"exe": path, group: CompletedProcess of that group's run} (built and run in the
    background by `builds`)."""
    _require("g++")
    results = builds["shim"].result()
    build = results["build"]
    assert build.returncode == 0, f"g++ failed:\n{build.stderr}"
    return results


def _run_shim(exe: Path, *args: str) -> subprocess.CompletedProcess:
    return _run([str(exe), *args], env=_shim_env())


def test_kernels_have_twins() -> None:
    names = _kernel_names("activations.cu")
    assert names, "no kernels found in kernels/activations.cu"
    expected = {
        f"activation_{kind}_{act}_{suffix}"
        for kind in ("forward", "backward")
        for act in ELEMENTWISE
        for suffix in ("f32", "f64", "f16")
    }
    assert names == expected
    assert set(ELEMENTWISE) <= set(FORWARD)
    steps = ("sgd", "adam", "rmsprop", "adagrad")
    optim = {f"{k}_step_{suffix}" for k in steps for suffix in ("f32", "f64")}
    assert _kernel_names("optim.cu") == optim
    losses = {
        f"softmax_cross_entropy_{kind}_{suffix}"
        for kind in ("forward", "backward")
        for suffix in ("f32", "f64")
    }
    assert _kernel_names("losses.cu") == losses
    bias = {
        f"bias_activation_forward_{act}_{suffix}"
        for act in ("relu", "sigmoid", "tanh")
        for suffix in ("f32", "f64", "f16")
    }
    assert _kernel_names("bias_activation.cu") == bias
    cpu = get_backend("cpu")
    twins = [f"{k}_step" for k in steps] + [
        f"softmax_cross_entropy_{k}" for k in ("forward", "backward")
    ]
    assert all(hasattr(cpu, twin) for twin in [*twins, "bias_activation_forward"])
    assert _kernel_names() == names | optim | losses | bias, "a kernels/*.cu file without a check"


def test_kernel_bodies_cover_every_element_in_bounds(launch_check: dict) -> None:
    checked = set()
    for group in SHIM_GROUPS:
        proc = launch_check[group]
        assert proc.returncode == 0, f"launch shim {group} failed:\n{proc.stdout}\n{proc.stderr}"
        checked |= set(re.findall(r"^kernel (\w+)$", proc.stdout, re.MULTILINE))
        assert re.search(r"checked \d+ elements in \d+ launches, 0 mismatches", proc.stdout)
    assert checked == _kernel_names(), "launch_check.cpp must run every kernel of the .cu files"


def test_launch_shim_control_out_of_bounds_is_reported(launch_check: dict) -> None:
    proc = _run_shim(launch_check["exe"], "control-oob")
    assert proc.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in proc.stderr


def test_launch_shim_control_unwritten_element_is_reported(launch_check: dict) -> None:
    proc = _run_shim(launch_check["exe"], "control-unwritten")
    assert proc.returncode == 1
    assert "MISMATCH control_unwritten" in proc.stdout


# --- 5. nvcc ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nvcc_results(builds: dict) -> dict:
    """{(file name, arch): CompletedProcess} for every kernels/*.cu and arch, and the control."""
    _require("nvcc")
    return {key: f.result() for key, f in builds.items() if isinstance(key, tuple)}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("source", CU_FILES, ids=lambda p: p.name)
def test_nvcc_compiles_without_warnings(nvcc_results: dict, source: Path, arch: str) -> None:
    proc = nvcc_results[(source.name, arch)]
    assert proc.returncode == 0, f"nvcc {source.name} for {arch}:\n{proc.stdout}{proc.stderr}"


def test_nvcc_control_with_local_memory_fails(nvcc_results: dict) -> None:
    proc = nvcc_results[("control_lmem.cu", "sm_90")]
    assert proc.returncode != 0, "a kernel using local memory compiled: the ptxas flags are off"
    assert "Local memory used" in proc.stderr
