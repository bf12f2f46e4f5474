"""The blocked Adam/AdamW update of the NumPy twin is bit for bit the whole-array passes."""

from __future__ import annotations

import numpy as np
import pytest

from gpugrad.backend import get_backend

CASES = [
    dict(),
    dict(weight_decay=0.1, decoupled=True),
    dict(weight_decay=0.01),
    dict(weight_decay=0.1, decoupled=True, amsgrad=True),
]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("sizes", [[37], [3, 5, 29], [1, 40, 2, 2]], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_adam_equals_whole_array_passes(monkeypatch, case, sizes, dtype):
    cpu = get_backend("cpu")
    # Blocks of 7 elements: blocks span gradient pieces, pieces span blocks, one is partial.
    monkeypatch.setattr(cpu, "optimizer_block", 7, raising=False)
    rng = np.random.default_rng(3)
    n = sum(sizes)
    start = {k: rng.standard_normal(n).astype(dtype) for k in ("param", "m")}
    start["v"] = rng.random(n).astype(dtype)
    start["vmax"] = rng.random(n).astype(dtype)
    grads = [rng.standard_normal(s).astype(dtype) for s in sizes]
    results = []
    for update in (cpu.adam_step, cpu._adam_passes):
        a = {k: v.copy() for k, v in start.items()}
        for step in (1, 2, 3):
            args = (a["param"], grads, a["m"], a["v"], a["vmax"], step, 1e-2)
            kw = dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False)
            kw.update(decoupled=False, scratch=None)
            kw.update(case)
            update(*args, **kw)
        results.append(a)
    for k in start:
        np.testing.assert_array_equal(results[0][k], results[1][k], err_msg=k)
    assert not np.array_equal(results[0]["param"], start["param"])


def test_gradient_pieces_of_the_wrong_size_change_nothing():
    cpu = get_backend("cpu")
    param = np.ones(5)
    state = [np.zeros(5), np.zeros(5), None]
    with pytest.raises(ValueError, match="4 elements"):
        cpu.adam_step(param, [np.ones(4)], *state, 1, 0.1, weight_decay=0.1, decoupled=True)
    np.testing.assert_array_equal(param, np.ones(5))
