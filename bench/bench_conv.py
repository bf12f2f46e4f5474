"""conv2d forward + backward (batch 64 of 3x32x32, 3→32 channels, 3x3 kernel, padding 1,
float32) in gpugrad, hand-written NumPy and PyTorch CPU.

One group, three variants; pytest-benchmark's table shows each column's ratio to the fastest
variant in parentheses. The issue's bar (gpugrad within 1.5x of PyTorch) is read from
`compare.py --only conv2d`, which interleaves the variants.
"""

from __future__ import annotations

import pytest
import workloads

pytestmark = pytest.mark.bench

# 10-30 ms a call: 10 rounds of 2 calls keeps the suite to a few seconds.
ROUNDS, ITERATIONS = 10, 2


@pytest.fixture(scope="module")
def conv() -> workloads.Workload:
    return workloads.WORKLOADS["conv2d"]()


@pytest.mark.parametrize("variant", ["gpugrad", "numpy", "torch"])
def test_conv2d(benchmark, conv, variant):
    run = conv.variants.get(variant)
    if run is None:
        pytest.skip(f"{variant} is not installed")
    benchmark.group = f"{conv.name}: {conv.description}"
    benchmark.pedantic(run, rounds=ROUNDS, iterations=ITERATIONS, warmup_rounds=1)
