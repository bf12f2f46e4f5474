"""Shared fixtures: every test that takes `device` runs once per available device."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg

DEVICES = ["cpu"] + (["cuda"] if gg.cuda.is_available() else [])


def pytest_report_header(config: pytest.Config) -> str:
    return f"gpugrad devices under test: {', '.join(DEVICES)}"


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """Each available device in turn: 'cpu' always, 'cuda' when a GPU is present."""
    return request.param


@pytest.fixture
def rng() -> np.random.Generator:
    """A NumPy generator with a fixed seed, for reproducible test inputs."""
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    gg.manual_seed(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if gg.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU with CuPy (none found here)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture
def numpy_twins(monkeypatch: pytest.MonkeyPatch):
    """The NumPy backend without its compiled CPU kernels (GPUGRAD_NATIVE_KERNELS=0): every
    operation through its NumPy twin, as on a machine without a C++ compiler."""
    from gpugrad.backend import native

    monkeypatch.setenv(native.ENV_SWITCH, "0")
    native.reset()
    yield
    monkeypatch.undo()
    native.reset()


@pytest.fixture(scope="session")
def host_kernels(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The kernels of kernels/*.cu built for the host (tests/host_kernels.py), once per run."""
    from host_kernels import build_host_kernels

    kernels = build_host_kernels(tmp_path_factory.mktemp("host_kernels"))
    if kernels is None:
        pytest.skip("g++ is not on PATH, so the host build of the kernels cannot be made")
    return kernels
