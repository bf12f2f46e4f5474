"""The MLP 784-512-512-10 (float32, batch 256) in gpugrad, NumPy and torch: forward + backward
(`mlp`) and one SGD training step with cross-entropy (`train_step`).

One group per workload, three variants each; pytest-benchmark's table shows each column's
ratio to the fastest variant in parentheses.
"""

from __future__ import annotations

import pytest
import workloads

pytestmark = pytest.mark.bench

# 5-50 ms a call: 10 rounds of 2 calls keeps the suite to a few seconds.
ROUNDS, ITERATIONS = 10, 2


@pytest.fixture(scope="module", params=["mlp", "train_step"])
def net(request) -> workloads.Workload:
    return workloads.WORKLOADS[request.param]()


@pytest.mark.parametrize("variant", ["gpugrad", "numpy", "torch"])
def test_mlp(benchmark, net, variant):
    run = net.variants.get(variant)
    if run is None:
        pytest.skip(f"{variant} is not installed")
    benchmark.group = f"{net.name}: {net.description}"
    benchmark.pedantic(run, rounds=ROUNDS, iterations=ITERATIONS, warmup_rounds=1)
