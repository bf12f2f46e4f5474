"""Timing on the device: CUDA events on a GPU, time.perf_counter on the CPU (--smoke)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from gpugrad.backend import Backend


class Clock:
    """Times calls on a backend: CUDA events on a GPU, time.perf_counter on the CPU."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.cuda = backend.device.type == "cuda"

    def kernel_times(
        self, fn: Callable[[], Any], repeats: int, warmup: int, batch: int
    ) -> list[float]:
        """Seconds of device time per call, `repeats` times: each the time of `batch`
        back-to-back calls between one pair of events on the current stream, divided by
        `batch`. Nothing is subtracted.

        Why batches: an event recorded before one call counts Python's launch path (tens of
        µs) against a kernel of 0.2 ms. Here one untimed call goes first, so the GPU is busy
        while the start event is queued behind it, and the host queues the timed calls faster
        than the GPU runs them: start to stop holds the kernels alone, back to back."""
        for _ in range(warmup):
            fn()
        self.backend.synchronize()
        if not self.cuda:
            return [t / batch for t in self.wall_times(lambda: _calls(fn, batch), repeats, 0)]
        cuda = self.backend.xp.cuda
        start, stop = cuda.Event(), cuda.Event()
        times = []
        for _ in range(repeats):
            stream = cuda.get_current_stream()
            fn()  # untimed lead: keeps the GPU busy while the start event is queued
            start.record(stream)
            _calls(fn, batch)
            stop.record(stream)
            stop.synchronize()
            times.append(cuda.get_elapsed_time(start, stop) * 1e-3 / batch)
        return times

    def wall_times(
        self,
        fn: Callable[[], Any],
        repeats: int,
        warmup: int,
        sync: Callable[[], None] | None = None,
    ) -> list[float]:
        """Seconds per call from the host's clock, the device synchronised before and after
        each call (a training step is Python and kernels; both count)."""
        sync = sync or self.backend.synchronize
        for _ in range(warmup):
            fn()
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        return times


def _calls(fn: Callable[[], Any], n: int) -> None:
    for _ in range(n):
        fn()


def summary(times: list[float]) -> dict[str, float]:
    """Median (the number reported) and spread of a list of timings."""
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "n": len(times),
    }
