"""Shared set-up of the bench suites: thread counts matched once, and shown in the header."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for `workloads`

import workloads

_threads: dict = {}


def pytest_configure(config) -> None:
    _threads.update(workloads.match_threads())


def pytest_report_header(config) -> list[str]:
    t = _threads
    line = f"bench threads: numpy BLAS {t['numpy_blas_threads']}, torch {t['torch_threads']}"
    return [line] + ([f"bench note: {t['note']}"] if t["note"] else [])
