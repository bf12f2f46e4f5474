"""Compiling and launching the kernels of `kernels/` on one GPU, through `cupy.RawModule`.

Each kernels/*.cu file becomes one module, compiled by NVRTC the first time one of its kernels
is launched on this device (float32 and float64 kernels together) and then kept; CuPy also
caches the compiled binary on disk, keyed by the source, so later processes skip NVRTC.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import cupy
from cupy.cuda.compiler import CompileException

from ..errors import BackendUnavailableError, DeviceError
from .kernel_source import NVRTC_OPTIONS, kernel_file, module_source

THREADS_PER_BLOCK = 256
# Grid-stride kernels need no more blocks than keep every SM busy; more only adds scheduling.
BLOCKS_PER_SM = 32


def nvrtc_version() -> tuple[int, int]:
    """NVRTC's (major, minor). CuPy loads the NVRTC library the first time it is used, and
    compiles every kernel with it, its own included: if the library cannot be loaded, say what
    to install here, instead of a loader error at the first operation."""
    try:
        major, minor = cupy.cuda.nvrtc.getVersion()
    except Exception as exc:  # CuPy 14: DynamicLibNotFoundError; older CuPy: OSError, RuntimeError
        cuda_major = cupy.cuda.runtime.runtimeGetVersion() // 1000
        raise BackendUnavailableError(
            f"CuPy could not load NVRTC (libnvrtc.so.{cuda_major}), the CUDA compiler it needs "
            f"for every GPU kernel ({type(exc).__name__}: {exc}). Install it with "
            f"pip install 'nvidia-cuda-nvrtc=={cuda_major}.*' (or a CUDA {cuda_major} toolkit), "
            "or use device='cpu'."
        ) from exc
    return int(major), int(minor)


def raw_module(file: str) -> cupy.RawModule:
    """The CuPy module of kernel file `file`, as this backend compiles it (source with its
    headers pasted in, NVRTC_OPTIONS; CuPy adds the rest when it compiles)."""
    return cupy.RawModule(code=module_source(file), options=NVRTC_OPTIONS)


class CupyKernels:
    """The fused kernels of one CUDA device: compiled on first use, launched by name."""

    def __init__(self, index: int) -> None:
        nvrtc_version()  # the compiler must load before any kernel can exist
        self.index = index
        self.device = cupy.cuda.Device(index)
        self.max_blocks = self.device.attributes["MultiProcessorCount"] * BLOCKS_PER_SM
        self._modules: dict[str, cupy.RawModule] = {}
        self._functions: dict[str, Any] = {}
        # Launches per kernel name since this device's backend was made: lets bench/gpu_check
        # show that an optimizer step is one launch per parameter group.
        self.launch_counts: Counter[str] = Counter()

    def function(self, name: str) -> Any:
        """The compiled kernel `name`, compiling its file on first use."""
        fn = self._functions.get(name)
        if fn is None:
            file = kernel_file(name)
            module = self._modules.get(file)
            if module is None:
                module = raw_module(file)
                self._modules[file] = module
            try:
                with self.device:
                    fn = module.get_function(name)  # NVRTC compiles the file here, once
            except CompileException as exc:
                raise BackendUnavailableError(
                    f"NVRTC could not compile kernels/{file} for cuda:{self.index}: {exc}\n"
                    "Set the environment variable GPUGRAD_FUSED_KERNELS=0 to run on stock CuPy "
                    "without gpugrad's fused kernels, and please report this."
                ) from exc
            self._functions[name] = fn
        return fn

    def launch(self, name: str, n: int, args: tuple) -> None:
        """Run kernel `name` over `n` work items: enough blocks of 256 threads to cover them,
        capped at a few per SM (the kernels' grid-stride loops take the rest)."""
        current = cupy.cuda.runtime.getDevice()
        if current != self.index:
            # The arrays around this launch (outputs, work buffers) were allocated on the current
            # device, and a kernel would follow their pointers from this one: refuse instead.
            raise DeviceError(
                f"{name}: tensors on cuda:{self.index} are being computed while cuda:{current} "
                f"is the current CUDA device; run that work inside gg.cuda.device({self.index})"
            )
        fn = self._functions.get(name) or self.function(name)
        blocks = min((n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK, self.max_blocks)
        fn((max(blocks, 1),), (THREADS_PER_BLOCK,), args)
        self.launch_counts[name] += 1
