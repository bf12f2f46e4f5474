"""The blocked optimizer updates of the NumPy twin are bit for bit one whole-array pass each."""

from __future__ import annotations

import numpy as np
import pytest

from gpugrad.backend import get_backend

ADAM_CASES = [
    dict(),
    dict(weight_decay=0.1, decoupled=True),
    dict(weight_decay=0.01),
    dict(weight_decay=0.1, decoupled=True, amsgrad=True),
]
SGD_CASES = [
    dict(),
    dict(weight_decay=0.01),
    dict(momentum=0.9),
    dict(momentum=0.9, dampening=0.3, weight_decay=0.05),
    dict(momentum=0.8, nesterov=True),
]
SIZES = [[37], [3, 5, 29], [1, 40, 2, 2]]


def _run(update, start, grads, steps, layout):
    """Run `steps` updates from copies of `start`; layout "block7" (blocks of 7 elements, so
    blocks span gradient pieces and pieces span blocks), "whole" (one block) or "strided" (the
    arrays are every other element of a bigger one, so they are updated whole, not in blocks)."""
    a = {}
    for k, v in start.items():
        if layout == "strided":
            big = np.zeros(2 * v.size, v.dtype)
            big[::2] = v
            a[k] = big[::2]
        else:
            a[k] = v.copy()
    for step in steps:
        update(a, grads, step)
    return {k: np.array(v) for k, v in a.items()}


def _layouts(monkeypatch, run):
    cpu = get_backend("cpu")
    results = {}
    for layout, block in (("block7", 7), ("whole", 1 << 30), ("strided", 7)):
        monkeypatch.setattr(cpu, "optimizer_block", block, raising=False)
        results[layout] = run(cpu, layout)
    return results


@pytest.mark.parametrize("case", ADAM_CASES, ids=str)
@pytest.mark.parametrize("sizes", SIZES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_adam_equals_whole_array_passes(monkeypatch, case, sizes, dtype):
    rng = np.random.default_rng(3)
    n = sum(sizes)
    start = {k: rng.standard_normal(n).astype(dtype) for k in ("param", "m")}
    start["v"] = rng.random(n).astype(dtype)
    start["vmax"] = rng.random(n).astype(dtype)
    grads = [rng.standard_normal(s).astype(dtype) for s in sizes]

    def run(cpu, layout):
        def update(a, grads, step):
            kw = dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False)
            kw.update(decoupled=False, scratch=[] if layout != "strided" else None)
            kw.update(case)
            cpu.adam_step(a["param"], grads, a["m"], a["v"], a["vmax"], step, 1e-2, **kw)

        return _run(update, start, grads, (1, 2, 3), layout)

    results = _layouts(monkeypatch, run)
    for k in start:
        np.testing.assert_array_equal(results["block7"][k], results["whole"][k], err_msg=k)
        np.testing.assert_array_equal(results["strided"][k], results["whole"][k], err_msg=k)
    assert not np.array_equal(results["whole"]["param"], start["param"])


@pytest.mark.parametrize("case", SGD_CASES, ids=str)
@pytest.mark.parametrize("sizes", SIZES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_sgd_equals_whole_array_passes(monkeypatch, case, sizes, dtype):
    rng = np.random.default_rng(5)
    n = sum(sizes)
    start = {"param": rng.standard_normal(n).astype(dtype), "buf": np.zeros(n, dtype)}
    grads = [rng.standard_normal(s).astype(dtype) for s in sizes]

    def run(cpu, layout):
        def update(a, grads, step):
            scratch = [] if layout != "strided" else None
            cpu.sgd_step(a["param"], grads, a["buf"], 0.1, first=step == 1, scratch=scratch, **case)

        return _run(update, start, grads, (1, 2, 3), layout)

    results = _layouts(monkeypatch, run)
    for k in start:
        np.testing.assert_array_equal(results["block7"][k], results["whole"][k], err_msg=k)
        np.testing.assert_array_equal(results["strided"][k], results["whole"][k], err_msg=k)
    # The plain update is exactly param − lr·Σ-of-steps: check the formula itself once.
    if not case:
        flat = np.concatenate([g.reshape(-1) for g in grads])
        expected = start["param"]
        for _ in range(3):
            expected = expected - flat * dtype(0.1)
        np.testing.assert_array_equal(results["whole"]["param"], expected)


def test_gradient_pieces_of_the_wrong_size_change_nothing():
    cpu = get_backend("cpu")
    param = np.ones(5)
    state = [np.zeros(5), np.zeros(5), None]
    with pytest.raises(ValueError, match="4 elements"):
        cpu.adam_step(param, [np.ones(4)], *state, 1, 0.1, weight_decay=0.1, decoupled=True)
    np.testing.assert_array_equal(param, np.ones(5))
    with pytest.raises(ValueError, match="4 elements"):
        cpu.sgd_step(param, [np.ones(4)], None, 0.1, weight_decay=0.1)
    np.testing.assert_array_equal(param, np.ones(5))


def test_work_arrays_kept_from_smaller_blocks_are_replaced(monkeypatch):
    # A bank keeps its work arrays between steps; ones sized for smaller blocks (or of
    # another dtype) must be replaced, not reused for bigger blocks.
    cpu = get_backend("cpu")
    rng = np.random.default_rng(7)
    grads = [rng.standard_normal(30), rng.standard_normal(9)]
    start = rng.standard_normal(39)
    kept, fresh = start.copy(), start.copy()
    scratch: list = []
    for block in (7, 1 << 30, 4):
        monkeypatch.setattr(cpu, "optimizer_block", block, raising=False)
        cpu.sgd_step(kept, grads, None, 0.5, scratch=scratch)
        cpu.sgd_step(fresh, grads, None, 0.5, scratch=None)
    np.testing.assert_array_equal(kept, fresh)
    assert not np.array_equal(kept, start)
    as32 = [g.astype(np.float32) for g in grads]
    moments = np.zeros(39, np.float32), np.zeros(39, np.float32)
    cpu.adam_step(start.astype(np.float32), as32, *moments, None, 1, 0.1, scratch=scratch)
    assert all(w.dtype == np.float32 for w in scratch[:2])
