"""One SGD training step of the 784-512-512-10 MLP (cross-entropy, float32, batch 256).

One group, three variants; pytest-benchmark's table shows each column's ratio to the fastest
variant in parentheses.
"""

from __future__ import annotations

import pytest
import workloads

pytestmark = pytest.mark.bench

# 5-50 ms a call: 10 rounds of 2 calls keeps the suite to a few seconds.
ROUNDS, ITERATIONS = 10, 2


@pytest.fixture(scope="module")
def net() -> workloads.Workload:
    return workloads.train_step()


@pytest.mark.parametrize("variant", ["gpugrad", "numpy", "torch"])
def test_train_step(benchmark, net, variant):
    run = net.variants.get(variant)
    if run is None:
        pytest.skip(f"{variant} is not installed")
    benchmark.group = f"train step: {net.description}"
    benchmark.pedantic(run, rounds=ROUNDS, iterations=ITERATIONS, warmup_rounds=1)
