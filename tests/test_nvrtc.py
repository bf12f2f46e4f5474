"""NVRTC, the compiler CuPy uses at run time, compiles every kernel file as the backend gives it.

The CuPy backend (gpugrad/backend/cupy_kernels.py) hands `cupy.RawModule` the text of each
kernels/*.cu file with its headers pasted in (`module_source`) and `NVRTC_OPTIONS`; CuPy adds
the GPU's architecture, `-ftz=true` and `--device-as-default-execution-space`. Here the same
source goes through CuPy's own NVRTC path (`cupy.cuda.compiler.compile_using_nvrtc`) for sm_80
and sm_90 with those same options, without a GPU: only the question "which architecture does
the GPU have" is answered by the test instead of the driver.

Also checked: the PTX that this NVRTC writes is a version a CUDA 13.0 driver loads (an unpinned,
newer NVRTC writes PTX that older drivers reject; see ../shared/CUDA-CHECKS.md).
"""

from __future__ import annotations

import re

import pytest

from gpugrad.backend.fused_primitives import kernel_names
from gpugrad.backend.kernel_source import NVRTC_OPTIONS, kernel_file, kernels_dir, module_source

cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install -e '.[dev]')")
from cupy.cuda import compiler, nvrtc  # noqa: E402

# What CuPy appends to RawModule's options before NVRTC sees them (cupy/cuda/compiler.py).
CUPY_ADDS = ("-ftz=true",)
ARCHS = ("80", "90")
# PTX ISA of CUDA 13.0; a CUDA 13.0 driver loads PTX up to this version.
MAX_PTX_VERSION = (9, 0)
CU_FILES = sorted(p.name for p in kernels_dir().glob("*.cu"))


@pytest.fixture(autouse=True)
def _no_driver_needed(monkeypatch) -> None:
    try:
        nvrtc.getVersion()
    except Exception as exc:  # the NVRTC library itself is missing
        pytest.skip(f"NVRTC is not loadable here ({exc}); pip install 'nvidia-cuda-nvrtc==13.0.*'")
    # CuPy asks the driver whether it may emit a cubin for the architecture (else PTX), and
    # memoizes the answer per device; there is no driver or device here, so give CuPy's answer
    # for a GPU of that architecture: a cubin, '-arch=sm_XX'.
    monkeypatch.setattr(
        compiler, "_get_arch_for_options_for_nvrtc", lambda arch: (f"-arch=sm_{arch}", "cubin")
    )


def test_nvrtc_is_the_pinned_version() -> None:
    assert nvrtc.getVersion() == (13, 0), "pin nvidia-cuda-nvrtc to 13.0.* (see pyproject.toml)"


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("file", CU_FILES)
def test_nvrtc_compiles_each_kernel_file(file: str, arch: str) -> None:
    cubin, _ = compiler.compile_using_nvrtc(
        module_source(file), options=NVRTC_OPTIONS + CUPY_ADDS, arch=arch
    )
    assert isinstance(cubin, bytes) and cubin[:4] == b"\x7fELF", "expected a cubin (ELF)"
    # Every kernel the backend launches from this file is in it, under its unmangled name.
    wanted = {name for name in kernel_names() if kernel_file(name) == file}
    missing = [name for name in sorted(wanted) if name.encode() + b"\x00" not in cubin]
    assert not missing, f"{file} for sm_{arch} lacks kernels {missing}"


@pytest.mark.parametrize("file", CU_FILES)
def test_nvrtc_ptx_is_loadable_by_a_cuda_13_0_driver(file: str) -> None:
    program = nvrtc.createProgram(module_source(file), file, [], [])
    try:
        nvrtc.compileProgram(program, [*NVRTC_OPTIONS, *CUPY_ADDS, "-arch=compute_90"])
        ptx = nvrtc.getPTX(program)
    finally:
        nvrtc.destroyProgram(program)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    version = re.search(r"^\.version (\d+)\.(\d+)", ptx, re.MULTILINE)
    assert version, "no .version line in the PTX"
    assert tuple(map(int, version.groups())) <= MAX_PTX_VERSION, version.group(0)


def test_every_launched_kernel_has_a_file() -> None:
    for name in kernel_names():
        assert kernel_file(name) in CU_FILES, name


def test_compile_errors_are_reported() -> None:
    """A broken source must fail here, so that the passing tests above mean something."""
    with pytest.raises(compiler.CompileException, match="undefined"):
        compiler.compile_using_nvrtc(
            'extern "C" __global__ void k(float* x) { x[0] = undefined_name; }',
            options=NVRTC_OPTIONS + CUPY_ADDS,
            arch="90",
        )
