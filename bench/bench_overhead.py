"""Per-op overhead: forward + backward of 100 small elementwise ops on a 16-element tensor.

One group, three variants; pytest-benchmark's table shows each column's ratio to the fastest
variant in parentheses. Divide a time by `workloads.CHAIN_OPS` (100) for the per-op time.
"""

from __future__ import annotations

import pytest
import workloads

pytestmark = pytest.mark.bench

# About 1 ms a call for gpugrad: 20 rounds of 10 calls keeps the suite to a few seconds.
ROUNDS, ITERATIONS = 20, 10


@pytest.fixture(scope="module")
def chain() -> workloads.Workload:
    return workloads.op_chain()


@pytest.mark.parametrize("variant", ["gpugrad", "numpy", "torch"])
def test_op_chain(benchmark, chain, variant):
    run = chain.variants.get(variant)
    if run is None:
        pytest.skip(f"{variant} is not installed")
    benchmark.group = f"op_chain: {chain.description} (per op = time / {chain.ops})"
    benchmark.extra_info["ops"] = chain.ops
    benchmark.pedantic(run, rounds=ROUNDS, iterations=ITERATIONS, warmup_rounds=1)
