"""NVRTC, the compiler CuPy uses at run time, compiles every kernel file as the backend gives it.

The CuPy backend (gpugrad/backend/cupy_kernels.py) makes one `cupy.RawModule` per kernels/*.cu
file (`raw_module`). On first use CuPy hands the module's code and options to
`cupy._core.core.compile_with_cache`, which assembles the compiler options
(`assemble_cupy_compiler_options`: the C++ standard if none is given, CuPy's and CUDA's include
folders) and goes on through `cupy.cuda.compiler` (which adds `-ftz=true`,
`--device-as-default-execution-space` and the architecture, and picks a cubin or PTX) to NVRTC.
These tests take that same call, from the same RawModule, without a GPU. Three questions that
only a driver can answer are answered here instead: the GPU's architecture (`_get_arch`, asked
per test), the on-disk cache (off: CUPY_CACHE_IN_MEMORY=1, so NVRTC always runs), and loading
the binary (`function.Module.load`, which keeps the image for the test to read).

Which NVRTC is good enough (the rule these tests hold it to):
- CuPy loads the NVRTC of the CUDA major it was built for (cupy-cuda13x: libnvrtc.so.13), and
  a CuPy of CUDA major M runs on drivers of CUDA M.0 and newer: those are the supported drivers.
- For every GPU that NVRTC knows (sm_80 and sm_90 here), CuPy asks it for a cubin. Under CUDA's
  minor-version compatibility a cubin from any M.x NVRTC loads on every M.y driver, so the
  NVRTC's minor version does not matter there.
- For a GPU newer than NVRTC knows, or with CUPY_COMPILE_WITH_PTX=1, CuPy asks for PTX, which
  the driver compiles when it loads it, and a driver rejects PTX newer than its own ISA. So the
  PTX this NVRTC writes must have an ISA version no newer than the oldest supported driver's
  (CUDA M.0: PTX ISA 9.0 for CUDA 13, 8.0 for CUDA 12). Any NVRTC that does so is accepted,
  whatever its own version: a newer one (NVRTC 13.5 writes `.version 9.5`) is not, since a
  13.0 driver could not load what it writes (see ../shared/CUDA-CHECKS.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from gpugrad.backend.fused_primitives import kernel_names
from gpugrad.backend.kernel_source import NVRTC_OPTIONS, kernel_file, kernels_dir

cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install -e '.[dev]')")
import cupy._core.core as cupy_core  # noqa: E402
from cupy.cuda import compiler, function  # noqa: E402

from gpugrad.backend import cupy_kernels  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ARCHS = ("80", "90")
CU_FILES = sorted(p.name for p in kernels_dir().glob("*.cu"))
# The PTX ISA version of the first release of each CUDA major: the newest PTX that every
# driver of that major (the oldest one included) can load.
PTX_ISA_OF_FIRST_RELEASE = {12: (8, 0), 13: (9, 0)}


def _cuda_major() -> int:
    """The CUDA major CuPy was built for (its runtime library answers without a driver)."""
    return cupy.cuda.runtime.runtimeGetVersion() // 1000


@pytest.fixture
def nvrtc_loaded() -> tuple[int, int]:
    try:
        return cupy_kernels.nvrtc_version()
    except Exception as exc:  # the NVRTC library itself is missing here
        pytest.skip(f"NVRTC is not loadable here ({exc})")


class LoadedImage(function.Module):
    """Stands in for the driver's load: keeps the compiled image instead of loading it."""

    def load(self, image: bytes) -> None:
        self.image = image


@pytest.fixture
def backend_path(monkeypatch, nvrtc_loaded):
    """compile(file, arch, ptx=False) -> (image, options NVRTC got), through the backend's
    call path with the driver's answers stood in (see the module docstring)."""
    monkeypatch.setenv("CUPY_CACHE_IN_MEMORY", "1")
    monkeypatch.setattr(compiler, "function", SimpleNamespace(Module=LoadedImage))
    # CuPy memoizes its cubin-or-PTX choice per device; there is no device: ask it every time.
    choose = compiler._get_arch_for_options_for_nvrtc.__wrapped__
    monkeypatch.setattr(compiler, "_get_arch_for_options_for_nvrtc", choose)
    seen: list[tuple[str, tuple[str, ...]]] = []  # (source, options) NVRTC was given
    nvrtc_compile = compiler._NVRTCProgram.compile

    def spy(program, options=(), log_stream=None):
        seen.append((program.src, tuple(options)))
        return nvrtc_compile(program, options, log_stream)

    monkeypatch.setattr(compiler._NVRTCProgram, "compile", spy)

    def compile_file(file: str, arch: str, ptx: bool = False) -> tuple[bytes, tuple[str, ...]]:
        monkeypatch.setattr(compiler, "_get_arch", lambda: arch)
        monkeypatch.setattr(compiler, "_use_ptx", ptx)  # as CUPY_COMPILE_WITH_PTX=1 would
        module = cupy_kernels.raw_module(file)  # what the backend compiles
        loaded = cupy_core.compile_with_cache(  # what RawModule does with it on first use
            module.code,
            module.options,
            prepend_cupy_headers=False,
            backend=module.backend,
            enable_cooperative_groups=module.enable_cooperative_groups,
            name_expressions=module.name_expressions,
        )
        (options,) = {opts for source, opts in seen if source == module.code}
        seen.clear()
        return loaded.image, options

    return compile_file


def test_nvrtc_is_the_cuda_major_cupy_was_built_for(nvrtc_loaded) -> None:
    assert nvrtc_loaded[0] == _cuda_major(), (nvrtc_loaded, cupy.__version__)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("file", CU_FILES)
def test_backend_call_path_compiles_each_kernel_file(backend_path, file: str, arch: str) -> None:
    cubin, options = backend_path(file, arch)
    assert isinstance(cubin, bytes) and cubin[:4] == b"\x7fELF", "expected a cubin (ELF)"
    # Every kernel the backend launches from this file is in it, under its unmangled name.
    wanted = {name for name in kernel_names() if kernel_file(name) == file}
    missing = [name for name in sorted(wanted) if name.encode() + b"\x00" not in cubin]
    assert not missing, f"{file} for sm_{arch} lacks kernels {missing}"
    # The options went through CuPy's assembly: ours once, and what CuPy adds.
    for option in NVRTC_OPTIONS:
        assert options.count(option) == 1, options
    assert "-ftz=true" in options and f"-arch=sm_{arch}" in options, options
    assert "--device-as-default-execution-space" in options, options
    assert any(o.startswith("-I") for o in options), options


@pytest.mark.parametrize("file", CU_FILES)
def test_ptx_is_loadable_by_every_supported_driver(backend_path, file: str) -> None:
    ptx, options = backend_path(file, "90", ptx=True)
    assert "-arch=compute_90" in options, options
    text = ptx.decode() if isinstance(ptx, bytes) else ptx
    version = re.search(r"^\.version (\d+)\.(\d+)", text, re.MULTILINE)
    assert version, "no .version line in the PTX"
    major = _cuda_major()
    oldest = PTX_ISA_OF_FIRST_RELEASE[major]
    assert tuple(map(int, version.groups())) <= oldest, (
        f"NVRTC {cupy_kernels.nvrtc_version()} writes PTX {version.group(0)!r}, newer than a "
        f"CUDA {major}.0 driver loads (ISA {oldest[0]}.{oldest[1]}); use an NVRTC whose PTX "
        f"is at most that (e.g. nvidia-cuda-nvrtc=={major}.0.*)"
    )


def test_every_launched_kernel_has_a_file() -> None:
    for name in kernel_names():
        assert kernel_file(name) in CU_FILES, name


def test_compile_errors_are_reported(backend_path, monkeypatch) -> None:
    """A broken source must fail on this path, so that the passing tests above mean something."""
    broken = 'extern "C" __global__ void k(float* x) { x[0] = undefined_name; }'
    monkeypatch.setattr(cupy_kernels, "module_source", lambda file: broken)
    with pytest.raises(compiler.CompileException, match="undefined"):
        backend_path("activations.cu", "90")


MISSING_NVRTC = """
import cuda.pathfinder as pathfinder

found = pathfinder.load_nvidia_dynamic_lib

def load(name):
    if name == "nvrtc":
        raise pathfinder.DynamicLibNotFoundError("planted: no libnvrtc here")
    return found(name)

pathfinder.load_nvidia_dynamic_lib = load  # before anything has loaded NVRTC

from gpugrad.backend.cupy_kernels import CupyKernels
from gpugrad.errors import BackendUnavailableError

try:
    CupyKernels(0)
except BackendUnavailableError as exc:
    print("BackendUnavailableError:", exc)
"""


def test_a_missing_libnvrtc_is_a_backend_unavailable_error_with_the_fix() -> None:
    """The library fails to load in a fresh process (this one has loaded it already)."""
    pytest.importorskip("cuda.pathfinder", reason="this CuPy does not load NVRTC by pathfinder")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", MISSING_NVRTC], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr  # no raw loader error escaped
    major = _cuda_major()
    message = proc.stdout
    assert message.startswith("BackendUnavailableError: CuPy could not load NVRTC"), message
    assert f"libnvrtc.so.{major}" in message and "planted: no libnvrtc here" in message
    assert f"pip install 'nvidia-cuda-nvrtc=={major}.*'" in message
