"""What anomaly detection costs: the op chain with detect_anomaly off (the default) and on.

Off, the engine reads one per-thread flag per op (and once per backward); on, every op
captures its stack and every gradient is checked for NaN/inf. `test_flag_read` times the
flag read alone, the whole of the cost when off, to set against the per-op time.
"""

from __future__ import annotations

import pytest
import workloads

import gpugrad as gg
from gpugrad import autograd

pytestmark = pytest.mark.bench


@pytest.fixture(scope="module")
def chain() -> workloads.Workload:
    return workloads.op_chain()


@pytest.mark.parametrize("mode", ["off", "on"])
def test_op_chain_anomaly(benchmark, chain, mode):
    run = chain.variants["gpugrad"]
    benchmark.group = "anomaly detection: op chain (100 ops) forward + backward"
    if mode == "off":
        benchmark.pedantic(run, rounds=20, iterations=10, warmup_rounds=2)
    else:
        with gg.detect_anomaly():
            benchmark.pedantic(run, rounds=20, iterations=10, warmup_rounds=2)


def test_flag_read(benchmark):
    """The check an op pays when detection is off, 100 times (one op chain's worth)."""
    flag = autograd._anomaly

    def read_100() -> None:
        for _ in range(100):
            if flag.enabled:
                raise AssertionError("anomaly detection should be off here")

    benchmark.group = "anomaly detection: op chain (100 ops) forward + backward"
    benchmark.pedantic(read_100, rounds=20, iterations=100, warmup_rounds=2)
