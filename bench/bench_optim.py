"""One optimizer update on the MLP 784-512-512-10's parameters (float32): gpugrad vs NumPy.

The forward and backward are measured in `bench_mlp.py`; this measures only the update, so
the cost of the optimizer machinery (flat buffers, the fused primitive, bookkeeping) shows.
The NumPy baseline is the hand-written loop `for W, g: W -= lr * g`; gpugrad runs
`optimizer.step()` with gradients freshly deposited by backward (separate arrays, as after
`zero_grad()`). Both update the same weights with the same gradients, and are checked to give
identical results before anything is timed.

    python bench/bench_optim.py              # round-robin medians and the ratio
    python -m pytest bench/bench_optim.py --benchmark-only
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for `workloads`

import workloads

import gpugrad as gg
from gpugrad import nn, optim

pytestmark = pytest.mark.bench

LR = 0.01
TARGET = 1.15  # the bar for the SGD update, printed, never asserted


def _arrays(seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    sizes = workloads.MLP_SIZES
    shapes = []
    for n_in, n_out in itertools.pairwise(sizes):
        shapes += [(n_in, n_out), (n_out,)]
    weights = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    grads = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    return weights, grads


def numpy_step() -> Callable[[], None]:
    """The hand-written update on plain arrays."""
    weights, grads = _arrays()

    def run() -> None:
        for w, g in zip(weights, grads):
            w -= LR * g

    run.weights = weights  # type: ignore[attr-defined]
    return run


def gpugrad_step(name: str = "SGD", **options: object) -> Callable[[], None]:
    """optimizer.step() over Parameters whose .grad holds separate arrays."""
    weights, grads = _arrays()
    params = [nn.Parameter(gg.tensor(w)) for w in weights]
    for p, g in zip(params, grads):
        p.grad = gg.tensor(g)
    opt = getattr(optim, name)(params, lr=LR, **options)

    def run() -> None:
        opt.step()

    run.params = params  # type: ignore[attr-defined]
    return run


def check_same() -> None:
    """Both variants compute the same numbers (run once each, outside any timing)."""
    a, b = numpy_step(), gpugrad_step()
    a()
    b()
    for w, p in zip(a.weights, b.params):  # type: ignore[attr-defined]
        np.testing.assert_array_equal(w, p.numpy())


def _sample(run: Callable[[], None], min_time: float) -> float:
    run()
    calls, start = 0, time.perf_counter()
    while True:
        run()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / calls


def compare(rounds: int = 25, min_time: float = 0.05) -> None:
    """Round-robin medians of each variant, and gpugrad's ratio to NumPy."""
    check_same()
    variants = {
        "numpy  W -= lr*g": numpy_step(),
        "gpugrad SGD": gpugrad_step(),
        "gpugrad SGD flat=False": gpugrad_step(flat=False),
        "gpugrad SGD momentum=0.9": gpugrad_step(momentum=0.9),
        "gpugrad Adam": gpugrad_step("Adam"),
    }
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for key, run in variants.items():
            samples[key].append(_sample(run, min_time))
    base = statistics.median(samples["numpy  W -= lr*g"])
    print(
        f"update of the {'-'.join(map(str, workloads.MLP_SIZES))} MLP, float32, median of {rounds}"
    )
    for key, times in samples.items():
        med = statistics.median(times)
        print(f"  {key:28s} {med * 1e6:8.1f} us   x{med / base:5.2f} vs numpy")
    ratio = statistics.median(samples["gpugrad SGD"]) / base
    verdict = "met" if ratio <= TARGET else "not met"
    print(f"SGD update / NumPy loop: {ratio:.3f} (target <= {TARGET}: {verdict})")


@pytest.mark.parametrize("variant", ["numpy", "gpugrad"])
def test_sgd_update(benchmark, variant):
    run = numpy_step() if variant == "numpy" else gpugrad_step()
    benchmark.group = "SGD update, MLP 784-512-512-10 float32"
    benchmark.pedantic(run, rounds=50, iterations=5, warmup_rounds=2)


if __name__ == "__main__":
    compare()
