"""Shared fixtures: every test that takes `device` runs once per available device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import autograd as ag

DEVICES = ["cpu"] + (["cuda"] if gg.cuda.is_available() else [])


def pytest_report_header(config: pytest.Config) -> str:
    return f"gpugrad devices under test: {', '.join(DEVICES)}"


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """Each available device in turn: 'cpu' always, 'cuda' when a GPU is present."""
    return request.param


# The engine's files run under both engines: the compiled twin (kernels/engine/engine.cpp,
# which every other test uses where it builds) and the Python engine it mirrors.
BOTH_ENGINES = {
    "test_engine.py", "test_engine_traps.py", "test_hooks.py", "test_inplace.py",
    "test_gradcheck.py", "test_errors.py", "test_op_errors_new.py", "test_slice_grads.py",
    "test_create_graph_first_derivatives.py", "test_hostile_inputs.py", "test_tensor.py",
    "test_ops_elementwise.py", "test_native_engine.py",
}  # fmt: skip
ENGINES = (["compiled"] if ag._built is not None else []) + ["python"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if Path(str(metafunc.module.__file__)).name in BOTH_ENGINES:
        metafunc.parametrize("engine", ENGINES, indirect=True)


@pytest.fixture(autouse=True)
def engine(request: pytest.FixtureRequest):
    """'compiled' or 'python': the engine this test runs on (both, in BOTH_ENGINES' files)."""
    which = getattr(request, "param", ENGINES[0])
    ag.use_compiled_engine(which == "compiled")
    yield which
    ag.use_compiled_engine(True)


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
