"""The compiled CPU kernels (gpugrad/backend/native.py, kernels/cpu/*.cpp) against their NumPy
twins, and the build around them: the cache, the switch, and the fall-back to the twins where
no compiler works.

The kernels are built with the machine's C++ compiler; without one these tests skip, and the
rest of the suite runs on the twins.
"""

from __future__ import annotations

import contextlib
import os
import shutil

import numpy as np
import pytest
from helpers import in_forked_child, run_at_once

import gpugrad as gg
import gpugrad.nn.functional as F
from gpugrad.backend import NumpyBackend, cpu_kernels, erf_table, get_backend, native, special_math
from gpugrad.backend.activation_math import gelu_grad_from_cdf
from gpugrad.errors import BackendUnavailableError

# The twins raise NumPy's floating-point warnings on the inf and NaN inputs used here; they
# are not part of gpugrad's behaviour (backend/RULES.md, rule 16).
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

needs_compiler = pytest.mark.skipif(
    native._compiler() is None or native._switch() == "0",
    reason="no C++ compiler, or GPUGRAD_NATIVE_KERNELS=0: the compiled kernels are not built",
)


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """native.py with nothing loaded and an empty cache folder; restored afterwards."""
    monkeypatch.setenv(native.ENV_CACHE, str(tmp_path))
    monkeypatch.delenv(native.ENV_SWITCH, raising=False)
    native.reset()
    yield tmp_path
    monkeypatch.undo()
    native.reset()


def _twin_backend() -> NumpyBackend:
    return NumpyBackend()


def _float32_points(rng: np.random.Generator) -> np.ndarray:
    """Normals of several scales, a dense grid over the rational's range and past it, and the
    special values."""
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-38, 3e38, -3e38]
    end = erf_table.NORMAL32_END
    grid = np.linspace(-end - 2, end + 2, 200_001)
    scales = np.concatenate([rng.standard_normal(20_000) * s for s in (0.01, 1, 4, 100)])
    edges = [end, -end, end * 1.0001, -end * 1.0001]
    # 400,000 consecutive float32 from 0.7 (Φ in [0.75, 0.78]): where a tanh rounded twice once
    # put Φ past the bound (x = 0.738247).
    start = np.array(0.7, dtype=np.float32).view(np.int32)
    run = (start + np.arange(400_000, dtype=np.int32)).view(np.float32)
    points = np.concatenate([specials, edges, grid, scales]).astype(np.float32)
    return np.concatenate([points, run, -run])


# --- the build ---------------------------------------------------------------------------------
@needs_compiler
def test_the_library_is_built_once_and_then_loaded_from_the_cache(fresh) -> None:
    assert native.library() is not None and native.reason_unavailable() is None
    (built,) = (fresh / "native").glob("gpugrad_cpu_*.so")
    stamp = built.stat().st_mtime_ns
    native.reset()
    assert native.library() is not None
    assert [p.name for p in (fresh / "native").iterdir()] == [built.name]  # no temporary left
    assert built.stat().st_mtime_ns == stamp  # loaded, not built again


@needs_compiler
def test_processes_building_at_once_all_load_one_library(fresh) -> None:
    import subprocess
    import sys

    probe = "from gpugrad.backend import native; print(native.library() is not None)"
    env = {**os.environ, native.ENV_CACHE: str(fresh)}
    runs = [
        subprocess.Popen([sys.executable, "-c", probe], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=300)[0].strip() for run in runs]
    assert outputs == ["True"] * 3
    # Each wrote its own temporary file and renamed it into place: one library (and one
    # compiled engine, which importing gpugrad builds the same way), no leftovers.
    names = sorted(p.name for p in (fresh / "native").iterdir())
    engine = [n for n in names if n.startswith("gpugrad_engine_")]
    assert [n for n in names if n not in engine] == [
        p.name for p in (fresh / "native").glob("gpugrad_cpu_*.so")
    ]
    assert len(names) - len(engine) == 1 and len(engine) <= 1


def test_switched_off_nothing_is_built_and_the_twins_run(fresh, monkeypatch, rng) -> None:
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert native.library() is None
    assert "GPUGRAD_NATIVE_KERNELS=0" in native.reason_unavailable()
    assert not (fresh / "native").exists() or not list((fresh / "native").glob("*.so"))
    x = rng.standard_normal((3, 5)).astype(np.float32)
    assert cpu_kernels.gelu_and_cdf(x) is None
    _, cdf = get_backend("cpu").gelu_and_cdf(x)
    np.testing.assert_array_equal(cdf, special_math.normal_cdf(_twin_backend(), x))


def test_without_a_compiler_the_twins_run_and_1_raises(fresh, monkeypatch, rng) -> None:
    monkeypatch.setattr(native, "_compiler", lambda: None)
    assert native.library() is None
    assert "no C++ compiler" in native.reason_unavailable()
    x = gg.tensor(rng.standard_normal((2, 3, 4, 4)), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()  # the twin's path
    assert x.grad.shape == x.shape
    native.reset()
    monkeypatch.setenv(native.ENV_SWITCH, "1")
    for _ in range(2):  # every call says so, not just the one that tried to build
        with pytest.raises(BackendUnavailableError, match=r"no C\+\+ compiler"):
            native.library()


@pytest.mark.skipif(shutil.which("false") is None, reason="needs the `false` command")
def test_a_failing_build_falls_back_and_says_why(fresh, monkeypatch) -> None:
    monkeypatch.setenv("CXX", shutil.which("false"))
    assert native.library() is None
    assert "failed" in native.reason_unavailable()
    assert not list((fresh / "native").glob("*"))  # the temporary file was removed
    out = F.gelu(gg.tensor(np.linspace(-3, 3, 7, dtype=np.float32)))
    np.testing.assert_allclose(out.numpy()[3:], [0.0, 0.8413447, 1.9544997, 2.9959502])


# --- GELU --------------------------------------------------------------------------------------
@needs_compiler
def test_gelu_kernel_forward_agrees_with_the_twin_and_the_exact_cdf(rng) -> None:
    x = _float32_points(rng)
    fast = cpu_kernels.gelu_and_cdf(x)
    assert fast is not None
    out, cdf = fast
    twin_out, twin_cdf = special_math.gelu_and_cdf(_twin_backend(), x)
    finite = np.isfinite(x)
    exact = special_math.normal_cdf(_twin_backend(), x.astype(np.float64))
    # Φ within the twin's documented absolute bound of the exact value, and an ulp of the twin.
    error = np.abs(cdf[finite] - exact[finite]) * 2.0**24
    assert error.max() <= special_math.NORMAL32_ERROR
    assert np.abs(cdf[finite] - twin_cdf[finite]).max() <= 2.0**-23
    # GELU is x times the Φ stored: the same bits as the product.
    np.testing.assert_array_equal(out, x * cdf)
    # Tails exactly 0 and 1, infinities and NaN as the twin.
    end = erf_table.NORMAL32_END
    assert np.all(cdf[x <= -end] == 0) and np.all(cdf[x >= end] == 1)
    nonfinite = ~finite
    np.testing.assert_array_equal(cdf[nonfinite], twin_cdf[nonfinite])
    np.testing.assert_array_equal(out[nonfinite], twin_out[nonfinite])


@needs_compiler
def test_gelu_kernel_backward_agrees_with_the_twin(rng) -> None:
    x = _float32_points(rng)
    g = rng.standard_normal(x.size).astype(np.float32)
    g[:4] = [np.inf, -np.inf, np.nan, -0.0]
    _, cdf = special_math.gelu_and_cdf(_twin_backend(), x)
    fast = cpu_kernels.gelu_grad_from_cdf(g, x, cdf)
    assert fast is not None
    twin = gelu_grad_from_cdf(np, g, x, cdf)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(twin))
    both = ~np.isnan(twin) & np.isfinite(twin)
    # The two differ only in e^(-x²/2) (each within an ulp): a few ulps of the terms added.
    density = np.exp(-0.5 * x[both].astype(np.float64) ** 2) / np.sqrt(2 * np.pi)
    terms = np.abs(g[both]) * (cdf[both] + np.abs(x[both]) * density)
    # (e^(-x²/2) below the smallest normal float32 is 0 in the kernel, subnormal in NumPy)
    flushed = np.abs(g[both] * x[both]) * np.finfo(np.float32).tiny
    bound = 4 * np.finfo(np.float32).eps * terms + flushed + np.finfo(np.float32).tiny
    assert np.all(np.abs(fast[both] - twin[both]) <= bound)
    np.testing.assert_array_equal(fast[np.isinf(twin)], twin[np.isinf(twin)])


@needs_compiler
def test_gelu_kernels_leave_other_arrays_to_the_twins(rng) -> None:
    x = rng.standard_normal((6, 8)).astype(np.float32)
    assert cpu_kernels.gelu_and_cdf(x[:, ::2]) is None  # not contiguous
    assert cpu_kernels.gelu_and_cdf(x.astype(np.float64)) is None
    assert cpu_kernels.gelu_and_cdf(x.astype(np.float16)) is None
    assert cpu_kernels.gelu_grad_from_cdf(x[:, :1], x, x) is None  # shapes differ
    # The backend's answer for each of them is the twin's, bit for bit.
    cpu = get_backend("cpu")
    for other in (x[:, ::2], x.astype(np.float16)):
        np.testing.assert_array_equal(
            cpu.gelu_and_cdf(other)[1], special_math.normal_cdf(_twin_backend(), other)
        )


@needs_compiler
@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (3, 33), (2, 5, 129)])
def test_gelu_through_the_kernels_matches_the_twins_for_every_shape(shape, rng) -> None:
    x = gg.tensor((rng.standard_normal(shape) * 3).astype(np.float32), requires_grad=True)
    g = rng.standard_normal(shape).astype(np.float32)
    F.gelu(x).backward(gg.tensor(g))
    _, cdf = special_math.gelu_and_cdf(_twin_backend(), x.numpy())
    expected = gelu_grad_from_cdf(np, g, x.numpy(), cdf)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=2e-6, atol=2e-7)


# --- max pooling -------------------------------------------------------------------------------
def _pool_input(rng: np.random.Generator, shape: tuple, dtype: str, kind: str) -> np.ndarray:
    if kind == "ties":  # few distinct values: many windows with equal maxima
        return rng.integers(-2, 3, shape).astype(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    if kind == "specials":
        flat = x.reshape(-1)
        picks = rng.choice(flat.size, size=max(1, flat.size // 7), replace=False)
        flat[picks] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0], size=picks.size)
    return x


def _pooled(x: np.ndarray, kernel: tuple[int, int], g: np.ndarray):
    """max_pool2d's output and the input's gradient for upstream gradient g."""
    t = gg.tensor(x, requires_grad=True)
    out = F.max_pool2d(t, kernel)
    out.backward(gg.tensor(g))
    return out.numpy().copy(), t.grad.numpy().copy()


@contextlib.contextmanager
def _twins_only(monkeypatch: pytest.MonkeyPatch):
    """Inside: the NumPy backend without its compiled kernels."""
    with monkeypatch.context() as patch:
        patch.setenv(native.ENV_SWITCH, "0")
        native.reset()
        yield
    native.reset()


def _same_bits(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(a, b)
    ok = ~np.isnan(a)
    np.testing.assert_array_equal(np.signbit(a[ok]), np.signbit(b[ok]))  # -0.0 kept


@needs_compiler
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["normal", "ties", "specials"])
@pytest.mark.parametrize(
    "shape, kernel",
    [
        ((2, 3, 8, 8), (2, 2)),
        ((3, 2, 9, 12), (3, 3)),
        ((1, 4, 6, 10), (2, 5)),  # a width without its own compiled loop
        ((2, 1, 4, 6), (1, 2)),
        ((2, 2, 8, 3), (4, 1)),
        ((64, 6, 28, 28), (2, 2)),  # LeNet-5's first pool
    ],
)
def test_max_pool_kernel_matches_the_twin(monkeypatch, rng, dtype, kind, shape, kernel) -> None:
    x = _pool_input(rng, shape, dtype, kind)
    oh, ow = shape[2] // kernel[0], shape[3] // kernel[1]
    g = rng.standard_normal((*shape[:2], oh, ow)).astype(dtype)
    if kind == "specials":  # a non-finite g reaches the other positions as NaN, as g·mask
        g.reshape(-1)[:3] = [np.inf, np.nan, -np.inf]
    assert get_backend("cpu").max_pool_tiles(x, kernel) is not None
    out, gx = _pooled(x, kernel, g)
    with _twins_only(monkeypatch):
        twin_out, twin_gx = _pooled(x, kernel, g)
    np.testing.assert_array_equal(out, twin_out)  # maxima (NaN where a window has one)
    _same_bits(gx, twin_gx)


@needs_compiler
def test_max_pool_kernel_gives_the_first_maximum_in_row_major_order() -> None:
    # One 2×2 window [[1, 5], [5, 1]]: the maximum at (0, 1) comes first in row-major order.
    x = np.array([[[[1.0, 5.0], [5.0, 1.0]]]], dtype=np.float32)
    out, where = cpu_kernels.max_pool_tiles(x, (2, 2))
    assert out.item() == 5.0 and where.item() == 1
    # The first NaN wins, even after a larger value and before another NaN.
    x = np.array([[[[1.0, 9.0, np.nan], [np.nan, 2.0, 3.0], [4.0, 5.0, 6.0]]]], dtype=np.float32)
    out, where = cpu_kernels.max_pool_tiles(x, (3, 3))
    assert np.isnan(out.item()) and where.item() == 2


@needs_compiler
def test_max_pool_kernel_twice_differentiable(rng) -> None:
    x = gg.tensor(rng.standard_normal((2, 2, 4, 6)), requires_grad=True)
    (gx,) = gg.grad((F.max_pool2d(x, 2) ** 2).sum(), [x], create_graph=True)
    (gxx,) = gg.grad(gx.sum(), [x])
    _, where = cpu_kernels.max_pool_tiles(x.numpy(), (2, 2))
    mask = np.zeros(x.shape)
    for n, c, i, j in np.ndindex(where.shape):
        a, b = divmod(int(where[n, c, i, j]), 2)
        mask[n, c, 2 * i + a, 2 * j + b] = 1
    np.testing.assert_allclose(gx.numpy(), 2 * x.numpy() * mask)
    np.testing.assert_allclose(gxx.numpy(), 2 * mask)


@needs_compiler
def test_max_pool_kernels_leave_other_arrays_to_the_twins(monkeypatch, rng) -> None:
    x = rng.standard_normal((2, 3, 4, 4))
    assert cpu_kernels.max_pool_tiles(x[:, :, :, ::-1], (2, 2)) is None  # not contiguous
    assert cpu_kernels.max_pool_tiles(x.astype(np.float16), (2, 2)) is None
    assert cpu_kernels.max_pool_tiles(x[0], (2, 2)) is None  # not (N, C, H, W)
    g = rng.standard_normal((2, 3, 2, 2))
    where = np.zeros(g.shape, dtype=np.int32)
    assert cpu_kernels.max_pool_tiles_backward(g[..., ::-1], where, (2, 2), x.shape) is None
    # Through the op, a float64 g for a float32 input takes the recorded positions' mask
    # route: the same gradient as the twin's.
    x32, g64 = x.astype(np.float32), g[..., ::-1]
    t = gg.tensor(x32, requires_grad=True)
    out = F.max_pool2d(t, 2)
    fast = out.grad_fn.backward(get_backend("cpu"), g64, x32)
    with _twins_only(monkeypatch):
        twin = F.max_pool2d(gg.tensor(x32, requires_grad=True), 2)
        slow = twin.grad_fn.backward(get_backend("cpu"), g64, x32)
    np.testing.assert_array_equal(fast, slow)


# --- layer norm --------------------------------------------------------------------------------
def _layer_norm_run(x, w, b, g):
    """layer_norm's output and the gradients of x, w and b (None where not given)."""
    leaves = [gg.tensor(a, requires_grad=True) if a is not None else None for a in (x, w, b)]
    out = F.layer_norm(leaves[0], x.shape[-1:], leaves[1], leaves[2])
    out.backward(gg.tensor(g))
    grads = [None if t is None else t.grad.numpy().copy() for t in leaves]
    return out.numpy().copy(), grads


@needs_compiler
@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("shape", [(1, 1), (5, 1), (7, 3), (4, 6, 128), (3, 300)])
def test_layer_norm_kernels_match_the_twin(monkeypatch, rng, dtype, rtol, affine, shape) -> None:
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    w = rng.standard_normal(shape[-1]).astype(dtype) if affine != "none" else None
    b = rng.standard_normal(shape[-1]).astype(dtype) if affine == "both" else None
    g = rng.standard_normal(shape).astype(dtype)
    rows = x.reshape(-1, shape[-1])
    assert get_backend("cpu").layer_norm(rows, w, b, 1e-5) is not None
    out, grads = _layer_norm_run(x, w, b, g)
    with _twins_only(monkeypatch):
        twin_out, twin_grads = _layer_norm_run(x, w, b, g)
    # The kernels sum rows in float64 where the twin sums in the array's dtype by BLAS; the
    # gradients are sums of many terms, so they are compared relative to their size.
    np.testing.assert_allclose(out, twin_out, rtol=rtol, atol=rtol)
    for got, want in zip(grads, twin_grads):
        assert (got is None) == (want is None)
        if got is not None:
            scale = np.abs(want).max() + 1
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


@needs_compiler
def test_layer_norm_kernels_leave_other_arrays_to_the_twins(rng) -> None:
    x = rng.standard_normal((6, 8)).astype(np.float32)
    w = np.ones(8, dtype=np.float32)
    cpu = get_backend("cpu")
    assert cpu.layer_norm(x[:, ::2], None, None, 1e-5) is None  # not contiguous
    assert cpu.layer_norm(x.astype(np.float16), None, None, 1e-5) is None
    assert cpu.layer_norm(x, w.astype(np.float64), None, 1e-5) is None  # dtypes differ
    assert cpu.layer_norm(x, w[:4], None, 1e-5) is None  # sizes differ
    _, normalised, inv_std = cpu.layer_norm(x, w, None, 1e-5)
    wanted = (True, True, True)
    assert cpu.layer_norm_backward(x[:, ::-1], normalised, inv_std, w, wanted) is None
    gx, gw, gb = cpu.layer_norm_backward(x, normalised, inv_std, None, wanted)
    assert gx is not None and gw is None and gb is not None  # no weight: no dL/dw


# --- attention's softmax -----------------------------------------------------------------------
def _attention_run(q, k, v, g, is_causal):
    leaves = [gg.tensor(a, requires_grad=True) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*leaves, is_causal=is_causal)
    out.backward(gg.tensor(g))
    return out.numpy().copy(), [t.grad.numpy().copy() for t in leaves]


@needs_compiler
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("lengths", [(1, 1), (5, 5), (7, 3), (3, 9), (64, 64)])
def test_attention_softmax_kernels_match_the_twin(monkeypatch, rng, is_causal, lengths) -> None:
    queries, keys = lengths
    q = rng.standard_normal((2, 3, queries, 8)).astype(np.float32)
    k = rng.standard_normal((2, 3, keys, 8)).astype(np.float32) * 2
    v = rng.standard_normal((2, 3, keys, 8)).astype(np.float32)
    g = rng.standard_normal((2, 3, queries, 8)).astype(np.float32)
    out, grads = _attention_run(q, k, v, g, is_causal)
    with _twins_only(monkeypatch):
        twin_out, twin_grads = _attention_run(q, k, v, g, is_causal)
    np.testing.assert_allclose(out, twin_out, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, twin_grads):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@needs_compiler
def test_softmax_kernel_columns_sum_to_one_and_keep_nan_and_the_mask(rng) -> None:
    scores = (rng.standard_normal((2, 6, 5)) * 30).astype(np.float32)
    scores[1, 2, 3] = np.nan  # key 2 of query 3 in head 1
    assert cpu_kernels.softmax_columns(scores, causal=True)
    hidden = np.tri(6, 5, -1, dtype=bool)  # key j hidden from query i when j > i
    assert np.all(scores[0][hidden] == 0)
    # A NaN makes its whole column NaN, hidden keys included (as the twin's exp(-inf - NaN)).
    assert np.isnan(scores[1, :, 3]).all()
    assert np.all(np.delete(scores[1], 3, axis=1)[np.delete(hidden, 3, axis=1)] == 0)
    sums = scores.sum(axis=1)
    np.testing.assert_allclose(np.delete(sums.reshape(-1), 5 + 3), 1, rtol=1e-6)
    assert not cpu_kernels.softmax_columns(scores.astype(np.float64), causal=False)
    assert not cpu_kernels.softmax_columns(scores[:, ::2], causal=False)
    assert not cpu_kernels.softmax_columns_backward(scores, scores[:1])


# --- a layer's bias ----------------------------------------------------------------------------
@needs_compiler
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1024, 512), (3, 70, 129), (5, 1), (100_000, 3)])
def test_bias_rows_kernel_gives_numpys_bits(dtype, shape, rng) -> None:
    out = (rng.standard_normal(shape) * 1e3).astype(dtype)
    out.flat[:4] = [np.inf, -np.inf, np.nan, -0.0]
    row = rng.standard_normal(shape[-1]).astype(dtype)
    expected = out + row
    assert cpu_kernels.add_rows(out, row)
    np.testing.assert_array_equal(out, expected)


@needs_compiler
def test_bias_rows_kernel_leaves_other_arrays_to_numpy(rng) -> None:
    out = rng.standard_normal((64, 48)).astype(np.float32)
    row = rng.standard_normal(48).astype(np.float32)
    before = out.copy()
    assert not cpu_kernels.add_rows(out[:, ::2], row[:24])  # not contiguous
    assert not cpu_kernels.add_rows(out, row.astype(np.float64))  # dtypes differ
    assert not cpu_kernels.add_rows(out.astype(np.float16), row.astype(np.float16))
    assert not cpu_kernels.add_rows(out, row[:10])  # does not fit
    assert not cpu_kernels.add_rows(out, out[3])  # the row is inside out
    frozen = out.copy()
    frozen.flags.writeable = False
    assert not cpu_kernels.add_rows(frozen, row)
    np.testing.assert_array_equal(out, before)
    # Linear through the backend: the kernel where it applies, NumPy's add elsewhere.
    backend = get_backend("cpu")
    for x in (out.copy(), out.astype(np.float16)):
        expected = x + row.astype(x.dtype)
        backend.add_rows(x, row.astype(x.dtype))
        np.testing.assert_array_equal(x, expected)


@needs_compiler
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_add_kernel_gives_numpys_bits(dtype, rng) -> None:
    a = (rng.standard_normal((300, 700)) * 1e3).astype(dtype)
    b = rng.standard_normal(a.shape).astype(dtype)
    a.flat[:5] = [np.inf, -np.inf, np.nan, -0.0, 1e308 if dtype == "float64" else 3e38]
    b.flat[:5] = [-np.inf, 1.0, 2.0, -0.0, 1e308 if dtype == "float64" else 3e38]
    np.testing.assert_array_equal(cpu_kernels.add(a, b), a + b)
    # Through gg: Add of two large tensors of one shape, and its gradients.
    x, y = gg.tensor(a[5:], requires_grad=True), gg.tensor(b[5:], requires_grad=True)
    total = x + y
    np.testing.assert_array_equal(total.numpy(), a[5:] + b[5:])
    total.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones_like(a[5:]))
    np.testing.assert_array_equal(y.grad.numpy(), np.ones_like(b[5:]))


@needs_compiler
def test_add_kernel_leaves_other_arrays_to_numpy(rng) -> None:
    a = rng.standard_normal((64, 48)).astype(np.float32)
    assert cpu_kernels.add(a, a[:1]) is None  # shapes differ (NumPy broadcasts)
    assert cpu_kernels.add(a, a.astype(np.float64)) is None
    assert cpu_kernels.add(a[:, ::2], a[:, 1::2]) is None  # not contiguous
    assert cpu_kernels.add(a.astype(np.float16), a.astype(np.float16)) is None


# --- threads -----------------------------------------------------------------------------------
@needs_compiler
def test_split_kernels_give_the_same_bits_on_any_number_of_threads(rng) -> None:
    # A long array is split over the threads; pieces shorter than two grains run on one.
    x = (rng.standard_normal(300_001) * 3).astype(np.float32)
    g = rng.standard_normal(x.size).astype(np.float32)
    out, cdf = cpu_kernels.gelu_and_cdf(x)
    dx = cpu_kernels.gelu_grad_from_cdf(g, x, cdf)
    pieces = [slice(i, i + 10_000) for i in range(0, x.size, 10_000)]
    one = [cpu_kernels.gelu_and_cdf(x[p]) for p in pieces]
    np.testing.assert_array_equal(out, np.concatenate([o for o, _ in one]))
    np.testing.assert_array_equal(cdf, np.concatenate([c for _, c in one]))
    one_dx = [cpu_kernels.gelu_grad_from_cdf(g[p], x[p], cdf[p]) for p in pieces]
    np.testing.assert_array_equal(dx, np.concatenate(one_dx))


@needs_compiler
def test_split_kernels_work_from_python_threads_at_once_and_after_fork(rng) -> None:
    x = (rng.standard_normal(1 << 18) * 3).astype(np.float32)
    expected = cpu_kernels.gelu_and_cdf(x)[1]
    results: list = []

    def run() -> None:
        results.extend(cpu_kernels.gelu_and_cdf(x)[1] for _ in range(20))

    run_at_once(*[run] * 4, timeout=60)
    assert len(results) == 80 and all(np.array_equal(r, expected) for r in results)
    # A forked child (a DataLoader worker) has no helper threads: it makes its own.
    np.testing.assert_array_equal(in_forked_child(lambda: cpu_kernels.gelu_and_cdf(x)[1]), expected)


_SPLIT_CHILD = """
import sys
import numpy as np
from gpugrad.backend import cpu_kernels
rng = np.random.default_rng(7)
x = (rng.standard_normal((1000, 48)) * 3 + 1).astype(np.float32)
w, b = rng.standard_normal(48).astype(np.float32), rng.standard_normal(48).astype(np.float32)
out, normalised, inv_std = cpu_kernels.layer_norm(x, w, b, 1e-5)
g = rng.standard_normal(x.shape).astype(np.float32)
grads = cpu_kernels.layer_norm_backward(g, normalised, inv_std, w, (True, True, True))
scores = rng.standard_normal((24, 40, 40)).astype(np.float32)
assert cpu_kernels.softmax_columns(scores, causal=True)
ds = rng.standard_normal(scores.shape).astype(np.float32)
assert cpu_kernels.softmax_columns_backward(ds, scores)
q, k = rng.standard_normal((2, 24, 40, 16)).astype(np.float32)
prod = cpu_kernels.batched_matmul(q, np.ascontiguousarray(k.swapaxes(-1, -2)))
if prod is None:  # NumPy's BLAS is not one the batched kernel can call
    prod = np.zeros(0)
# Pooling with kernel widths 1 to 4 (two-step and exact paths) and NaNs in some rows.
images = rng.standard_normal((8, 6, 24, 24)).astype(np.float32)
images[2, 3, 5, ::7] = np.nan
pools = {}
for kernel in [(2, 2), (3, 3), (2, 1), (1, 4), (4, 4)]:
    pooled, where = cpu_kernels.max_pool_tiles(images, kernel)
    back = cpu_kernels.max_pool_tiles_backward(np.ones_like(pooled), where, kernel, images.shape)
    pools.update({f"pool{kernel}": pooled, f"where{kernel}": where, f"back{kernel}": back})
# col2im with stride, padding and dilation, both layouts.
for name, dims in {"plain": (6, 5, 5, 10, 10, 64, 14, 14, 0, 0, 1, 1, 1, 1),
                   "strided": (4, 3, 3, 8, 8, 16, 17, 17, 1, 1, 2, 2, 1, 1),
                   "dilated": (4, 3, 2, 9, 10, 16, 14, 13, 1, 0, 1, 1, 2, 3)}.items():
    size = int(np.prod(dims[:6]))
    pools["last" + name] = cpu_kernels.conv_fold_batch_last(
        rng.standard_normal(size).astype(np.float32), dims)
    pools["first" + name] = cpu_kernels.conv_fold_batch_first(
        rng.standard_normal(size).astype(np.float32), dims)
pools["sum"] = cpu_kernels.add(images, images[::-1].copy())
np.savez(sys.argv[1], out=out, normalised=normalised, inv_std=inv_std, gx=grads[0],
         gw=grads[1], gb=grads[2], p=scores, ds=ds, prod=prod, **pools)
"""


@needs_compiler
def test_row_and_head_kernels_give_the_same_bits_on_any_number_of_threads(tmp_path) -> None:
    # Layer norm (rows; its weight and bias sums by fixed blocks of rows), attention's softmax
    # (heads), the batched product (matrices), max pooling (rows of windows) and col2im (rows or
    # planes), run with 1 and with 3 threads.
    import subprocess
    import sys

    results = []
    for threads in ("1", "3"):
        path = tmp_path / f"threads{threads}.npz"
        subprocess.run(
            [sys.executable, "-c", _SPLIT_CHILD, str(path)],
            env={**os.environ, "GPUGRAD_CPU_THREADS": threads},
            check=True,
            timeout=300,
        )
        results.append(dict(np.load(path)))
    one, three = results
    assert one.keys() == three.keys()
    for name in one:
        np.testing.assert_array_equal(one[name], three[name], err_msg=name)


# --- a convolution's col2im --------------------------------------------------------------------
def _conv_input_grad(x, w, g, **options):
    t = gg.tensor(x, requires_grad=True)
    F.conv2d(t, gg.tensor(w), **options).backward(gg.tensor(g))
    return t.grad.numpy().copy()


@needs_compiler
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "shape, kernel, options",
    [
        ((2, 3, 9, 8), (4, 3, 3, 3), {}),
        ((3, 2, 10, 10), (5, 2, 5, 5), {"padding": 2}),  # LeNet-5's first convolution
        ((64, 6, 14, 14), (16, 6, 5, 5), {}),  # and its second
        ((2, 2, 11, 9), (3, 2, 3, 2), {"stride": (2, 3), "padding": (1, 0)}),
        ((2, 4, 12, 12), (6, 2, 3, 3), {"dilation": 2, "groups": 2, "padding": 1}),
        ((1, 1, 4, 5), (2, 1, 1, 1), {"stride": 2}),  # positions no window meets get 0
        # Output planes of 256 positions or more: the batch-first columns and fold.
        ((2, 3, 20, 20), (4, 3, 3, 3), {"padding": 1}),
        ((2, 2, 40, 50), (3, 2, 3, 2), {"stride": (2, 3), "padding": (1, 0)}),
        ((2, 4, 24, 24), (6, 2, 3, 3), {"dilation": 2, "groups": 2, "padding": 1}),
        ((1, 1, 40, 40), (2, 1, 1, 1), {"stride": 2}),
    ],
)
def test_conv_fold_kernel_gives_the_twins_bits(monkeypatch, rng, dtype, shape, kernel, options):
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(kernel).astype(dtype)
    out_shape = F.conv2d(gg.tensor(x), gg.tensor(w), **options).shape
    g = rng.standard_normal(out_shape).astype(dtype)
    fast = _conv_input_grad(x, w, g, **options)
    with _twins_only(monkeypatch):
        twin = _conv_input_grad(x, w, g, **options)
    # The same additions in the same order (see kernels/cpu/conv.cpp).
    np.testing.assert_array_equal(fast, twin)


@needs_compiler
def test_conv_fold_kernel_leaves_other_arrays_to_the_twins(rng) -> None:
    cols = rng.standard_normal((2, 3, 3, 4, 4, 5)).astype(np.float32)
    dims = (2, 3, 3, 4, 4, 5, 6, 6, 0, 0, 1, 1, 1, 1)
    assert cpu_kernels.conv_fold_batch_last(cols, dims) is not None
    assert cpu_kernels.conv_fold_batch_last(cols.astype(np.float16), dims) is None
    assert cpu_kernels.conv_fold_batch_last(cols[..., ::2], dims) is None  # not contiguous
    assert cpu_kernels.conv_fold_batch_last(cols, dims[:-1]) is None
    assert cpu_kernels.conv_fold_batch_last(cols, (3, *dims[1:])) is None  # sizes disagree
    first = np.ascontiguousarray(np.moveaxis(cols, -1, 0))  # (n, C, KH, KW, OH, OW)
    assert cpu_kernels.conv_fold_batch_first(first, dims) is not None
    assert cpu_kernels.conv_fold_batch_first(first[..., ::2], dims) is None


# --- backends without the hooks' NumPy overrides (CuPy's) ----------------------------------------
def _base_only_backend():
    """A Backend on NumPy arrays that, like CuPy's, is not a NumpyBackend: it has only the
    abstract methods from NumpyBackend and every hook (compiled kernels) from Backend."""
    from gpugrad.backend.base import Backend
    from gpugrad.backend.device import Device

    methods = {name: getattr(NumpyBackend, name) for name in Backend.__abstractmethods__}

    def init(self) -> None:
        Backend.__init__(self, np, Device("cpu"))
        self.rng = self.make_rng(None)

    return type("BaseOnly", (Backend,), {**methods, "__init__": init})()


def _every_hooked_op(rng: np.random.Generator) -> list[np.ndarray]:
    """Forward and backward of each op with a compiled-kernel hook; results and gradients."""
    results = []
    x = gg.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32), requires_grad=True)
    w_small = gg.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    big = gg.tensor(rng.standard_normal((2, 3, 20, 20)).astype(np.float32), requires_grad=True)
    q, k, v = (
        gg.tensor(rng.standard_normal((1, 2, 5, 4)).astype(np.float32), requires_grad=True)
        for _ in range(3)
    )
    rows = gg.tensor(rng.standard_normal((6, 16)).astype(np.float32), requires_grad=True)
    gain = gg.tensor(rng.standard_normal(16).astype(np.float32), requires_grad=True)
    outputs = [
        F.gelu(rows),
        F.max_pool2d(x, 2),
        F.layer_norm(rows, (16,), gain),
        F.scaled_dot_product_attention(q, k, v, is_causal=True),
        F.scaled_dot_product_attention(q, k, v),
        F.conv2d(x, w_small, padding=1),
        F.conv2d(big, w_small, padding=1),  # 400 output positions: the batch-first route
    ]
    for out in outputs:
        (out * out).sum().backward()
        results.append(out.numpy().copy())
    results += [t.grad.numpy().copy() for t in (x, w_small, big, q, k, v, rows, gain)]
    return results


def test_a_backend_without_numpy_overrides_runs_every_hooked_op(monkeypatch) -> None:
    import gpugrad.backend as backends
    from gpugrad.backend.device import Device

    expected = _every_hooked_op(np.random.default_rng(7))
    monkeypatch.setitem(backends._backends, Device("cpu"), _base_only_backend())
    got = _every_hooked_op(np.random.default_rng(7))
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# --- the cache folder and failures ------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")
def test_a_cache_folder_of_our_own_loses_group_write_and_is_used(fresh) -> None:
    ours = fresh / "native"
    ours.mkdir()
    ours.chmod(0o777)  # as an older gpugrad under umask 002 (or 000) could have left it
    assert native._cache_dir() == ours
    assert not ours.stat().st_mode & 0o022


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to chown")
def test_folders_and_libraries_of_another_user_are_not_trusted(fresh) -> None:
    theirs = fresh / "native"
    theirs.mkdir()
    os.chown(theirs, 12345, 12345)
    theirs.chmod(0o777)
    assert native._cache_dir() != theirs
    planted = fresh / "planted.so"
    planted.write_bytes(b"not a library")
    os.chown(planted, 12345, 12345)
    lib, why = native.open_trusted(planted)
    assert lib is None and "someone else" in why


@needs_compiler
def test_a_library_someone_else_owns_is_replaced_by_our_build(fresh) -> None:
    assert native.library() is not None
    (built,) = (fresh / "native").glob("gpugrad_cpu_*.so")
    built.chmod(0o757)  # others may write to it: not to be trusted
    native.reset()
    assert native.library() is not None
    assert not built.stat().st_mode & 0o022  # rebuilt, as 0755


def test_a_failing_write_falls_back_to_the_twins_on_every_call(fresh, monkeypatch) -> None:
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(native.tempfile, "mkstemp", full_disk)
    monkeypatch.setattr(native, "_cache_dir", lambda: fresh)  # nothing cached there yet
    for _ in range(2):
        assert native.library() is None
    assert "No space left" in native.reason_unavailable()


@needs_compiler
def test_misaligned_arrays_go_to_the_twins(rng) -> None:
    raw = np.zeros(4 * 64 + 1, dtype=np.uint8)
    x = np.frombuffer(raw.data, dtype=np.float32, count=64, offset=1)  # not 4-byte aligned
    assert not x.flags.aligned
    assert cpu_kernels.gelu_and_cdf(x) is None


@pytest.mark.parametrize("masking", ["causal", "bool mask"])
def test_a_nan_among_hidden_keys_reaches_no_query_on_either_path(monkeypatch, masking) -> None:
    q = np.ones((1, 1, 3, 2), dtype=np.float32)
    k = np.ones((1, 1, 3, 2), dtype=np.float32)
    k[..., 2, :] = np.nan  # the last key: hidden from queries 0 and 1
    v = np.arange(6, dtype=np.float32).reshape(1, 1, 3, 2)
    keep = np.tril(np.ones((3, 3), dtype=bool))

    def attend():
        args = [gg.tensor(a) for a in (q, k, v)]
        if masking == "causal":
            return F.scaled_dot_product_attention(*args, is_causal=True).numpy()
        return F.scaled_dot_product_attention(*args, attn_mask=gg.tensor(keep)).numpy()

    fast = attend()
    with _twins_only(monkeypatch):
        twin = attend()
    assert np.isfinite(fast[..., :2, :]).all() and np.isnan(fast[..., 2, :]).all()
    np.testing.assert_allclose(fast, twin, rtol=1e-6)


# --- optimizer updates (optim.cpp) against optimizer_math's twins: the same bits -------------
def _twin_and_kernel(update, arrays: list[np.ndarray]):
    """Run `update(backend, primitives, *arrays)` through the NumPy backend (the kernel where it
    applies) and through the twin on copies; return both sets of arrays."""
    from gpugrad.backend.optimizer_math import OptimizerPrimitives

    backend = get_backend("cpu")
    copies = [a.copy() for a in arrays]
    update(backend, type(backend), *arrays)
    update(backend, OptimizerPrimitives, *copies)
    return arrays, copies


def _same_bits(a: np.ndarray, b: np.ndarray) -> None:
    """Equal bit patterns (so -0.0 is not 0.0), NaNs aside: the sign of a NaN made from two
    NaNs is left open (optim.cpp's comment)."""
    nan = np.isnan(a)
    np.testing.assert_array_equal(nan, np.isnan(b))
    bits = {4: np.uint32, 8: np.uint64}[a.itemsize]
    np.testing.assert_array_equal(a[~nan].view(bits), b[~nan].view(bits))


SGD_CASES = [  # momentum, dampening, nesterov, weight_decay, first
    (0.0, 0.0, False, 0.0, False), (0.9, 0.0, False, 0.0, False), (0.9, 0.0, False, 0.0, True),
    (0.9, 0.25, False, 0.01, False), (0.8, 0.0, True, 0.001, False),
    (0.9, 0.0, np.True_, 1e-50, True),  # a decay that rounds to 0 in float32; a NumPy bool
]  # fmt: skip


@needs_compiler
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 37, 200_003])  # one element, a vector tail, threads
@pytest.mark.parametrize("case", SGD_CASES)
def test_sgd_kernel_matches_its_twin_bit_for_bit(rng, dtype, size, case) -> None:
    momentum, dampening, nesterov, decay, first = case
    p, g, buf = (rng.standard_normal(size).astype(dtype) for _ in range(3))
    g[0], p[0] = -0.0, 1.0  # signed zeros, inf, NaN and a large value ride along
    p[-1] = 1e30
    if size > 3:
        p[1], g[2], buf[3] = np.inf, np.nan, -0.0

    def update(backend, kind, p, buf):
        pieces = [g[: size // 3], g[size // 3 :]]  # the flat path's gradient pieces
        kind.sgd_step(backend, p, pieces, buf, 0.05, momentum, dampening, nesterov, decay, first)

    (ours, theirs) = _twin_and_kernel(update, [p, buf])
    for a, b in zip(ours, theirs):
        _same_bits(a, b)


@needs_compiler
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 37, 200_003])
@pytest.mark.parametrize(
    ("decay", "decoupled"), [(0.0, False), (0.01, False), (0.1, True), (1e-50, False)]
)
def test_adam_kernel_matches_its_twin_bit_for_bit(rng, dtype, size, decay, decoupled) -> None:
    p, g = rng.standard_normal(size).astype(dtype), rng.standard_normal(size).astype(dtype)
    m = (rng.standard_normal(size) * 0.1).astype(dtype)
    v = (np.abs(rng.standard_normal(size)) * 0.01).astype(dtype)
    v[0] = 0.0  # √0 + eps
    if size > 3:
        p[1], g[2], m[3] = np.inf, -0.0, -0.0

    def update(backend, kind, p, m, v):
        kind.adam_step(backend, p, g, m, v, None, 3, 1e-3, 0.9, 0.95, 1e-8, decay, False, decoupled)

    (ours, theirs) = _twin_and_kernel(update, [p, m, v])
    for a, b in zip(ours, theirs):
        _same_bits(a, b)


@needs_compiler
def test_optimizer_kernels_leave_what_they_cannot_take_to_the_twins(rng) -> None:
    p = rng.standard_normal((4, 6))[:, ::2]  # not contiguous
    g = np.ones_like(p)
    assert cpu_kernels.sgd(p, g, None, 0.1, 0.0, 0.0, False, 0.0, False) is False
    flat = rng.standard_normal(8).astype(np.float16)  # no float16 kernel
    assert (
        cpu_kernels.sgd(flat, np.ones_like(flat), None, 0.1, 0.0, 0.0, False, 0.0, False) is False
    )
    short = np.zeros(7)  # pieces that do not add up: the twin raises the error
    assert cpu_kernels.sgd(np.zeros(8), [short], None, 0.1, 0.0, 0.0, False, 0.0, False) is False
    frozen = np.zeros(8)
    frozen.flags.writeable = False  # the twin raises NumPy's read-only error
    assert cpu_kernels.sgd(frozen, np.ones(8), None, 0.1, 0.0, 0.0, False, 0.0, False) is False
    both = np.zeros(16)  # a gradient that is also the momentum buffer: read after written
    assert cpu_kernels.sgd(both[8:], both[:8], both[:8], 0.1, 0.9, 0.0, False, 0.0, False) is False


@needs_compiler
def test_many_small_gradient_pieces_update_as_the_twin(rng) -> None:
    sizes = [3, 64, 1, 17] * 50  # a bank of small parameters: gathered, one kernel call
    backend = get_backend("cpu")
    from gpugrad.backend.optimizer_math import OptimizerPrimitives

    p = rng.standard_normal(sum(sizes)).astype(np.float32)
    g = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    m, v = np.zeros_like(p), np.zeros_like(p)
    p2, m2, v2 = p.copy(), m.copy(), v.copy()
    backend.adam_step(p, g, m, v, None, 1, 1e-3, weight_decay=0.1, decoupled=True)
    OptimizerPrimitives.adam_step(backend, p2, g, m2, v2, None, 1, 1e-3, weight_decay=0.1,
                                  decoupled=True)  # fmt: skip
    for a, b in zip((p, m, v), (p2, m2, v2)):
        _same_bits(a, b)


def test_adam_with_amsgrad_and_odd_arrays_still_update_as_the_twin(rng) -> None:
    backend = get_backend("cpu")
    p = rng.standard_normal((5, 4))[:, ::2]  # a strided parameter goes to the twin
    g, m, v, vmax = (np.ascontiguousarray(np.abs(rng.standard_normal(p.shape))) for _ in range(4))
    expected = p.copy()
    from gpugrad.backend.optimizer_math import OptimizerPrimitives

    ms, vs, vmaxs = m.copy(), v.copy(), vmax.copy()
    OptimizerPrimitives.adam_step(backend, expected, g, ms, vs, vmaxs, 2, 1e-2, amsgrad=True)
    backend.adam_step(p, g, m, v, vmax, 2, 1e-2, amsgrad=True)
    np.testing.assert_array_equal(p, expected)
