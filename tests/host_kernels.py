"""The kernels of kernels/*.cu built for the host, and a NumPy backend that launches them.

Shared by tests/test_fused_host.py (the CuPy backend's kernel wiring, checked on the CPU) and
tests/test_gpu_check.py (bench/gpu_check's kernel section run against real kernels). See
test_fused_host.py for what the argument checks mean.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from gpugrad.backend import NumpyBackend
from gpugrad.backend.fused_primitives import FusedPrimitives

REPO = Path(__file__).resolve().parent.parent
KERNELS = REPO / "kernels"
HOST = Path(__file__).resolve().parent / "kernels_host"

# C parameter type -> (how CuPy passes a Python value there, NumPy dtype of a pointer's target)
SCALAR_TYPES = {
    "long long": ((int, np.int64), ctypes.c_longlong),
    "int": ((np.int32,), ctypes.c_int),
    "float": ((np.float32,), ctypes.c_float),
    "double": ((float, np.float64), ctypes.c_double),
}
# The f16 kernels take binary16 arrays as unsigned short (bit patterns): a float16 array.
POINTEE_DTYPES = {
    "float": np.float32,
    "double": np.float64,
    "long long": np.int64,
    "unsigned short": np.float16,
}
_KERNEL = re.compile(r'extern\s+"C"\s+void\s+(\w+)\s*\(([^)]*)\)')


def _parse_param(text: str) -> tuple[str, bool, str]:
    """(base type, is pointer, name) of one C parameter like 'const float* __restrict__ x'."""
    words = text.replace("*", " * ").split()
    name = words[-1]
    pointer = "*" in words
    base = " ".join(w for w in words[:-1] if w not in ("*", "const", "__restrict__"))
    return base, pointer, name


def build_host_kernels(out: Path) -> dict | None:
    """Every kernel of kernels/*.cu built for the host in folder `out`: {name: (ctypes
    function, params)}; None without g++."""
    gxx = shutil.which("g++")
    if gxx is None:
        return None
    flags = ["-std=c++17", "-O1", "-fPIC", "-ffp-contract=off", f"-I{KERNELS}", f"-I{HOST}"]

    def build(source: Path) -> tuple[Path, dict]:
        # Preprocess with the shim to read the kernels' signatures as the compiler sees them
        # (the .cu files declare them through macros), then add one C wrapper per kernel.
        pre = subprocess.run(
            [gxx, "-E", "-P", "-x", "c++", *flags, "-include", "launch_shim.h", str(source)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        signatures = {}
        wrappers = [f'#include "launch_shim.h"\n#include "{source.name}"\n']
        for name, params_text in _KERNEL.findall(pre.stdout):
            params = [_parse_param(p) for p in params_text.split(",")]
            signatures[name] = params
            names = ", ".join(p[2] for p in params)
            wrappers.append(
                f'extern "C" void host_{name}(unsigned grid, unsigned block, {params_text}) '
                f"{{ launch({name}, dim3(grid), dim3(block), {names}); }}\n"
            )
        cpp = out / f"{source.stem}_wrappers.cpp"
        cpp.write_text("".join(wrappers))
        obj = out / f"{source.stem}.o"
        proc = subprocess.run([gxx, "-c", *flags, "-o", str(obj), str(cpp)], capture_output=True)
        assert proc.returncode == 0, proc.stderr.decode()
        return obj, signatures

    with ThreadPoolExecutor() as pool:
        built = list(pool.map(build, sorted(KERNELS.glob("*.cu"))))
    lib_path = out / "libfused_host.so"
    objects = [str(obj) for obj, _ in built]
    subprocess.run([gxx, "-shared", "-o", str(lib_path), *objects], check=True)
    lib = ctypes.CDLL(str(lib_path))
    kernels = {}
    for _, signatures in built:
        for name, params in signatures.items():
            fn = getattr(lib, f"host_{name}")
            fn.argtypes = [ctypes.c_uint, ctypes.c_uint] + [
                ctypes.c_void_p if pointer else SCALAR_TYPES[base][1] for base, pointer, _ in params
            ]
            fn.restype = None
            kernels[name] = (fn, params)
    return kernels


class HostFusedBackend(FusedPrimitives, NumpyBackend):
    """The NumPy backend with its primitives run by the host-built kernels."""

    def __init__(self, host: dict) -> None:
        super().__init__()
        self.host = host
        self.launched: list[str] = []
        # As the CuPy backend's CupyKernels counts them (bench/gpu_check reads this).
        self.kernels = SimpleNamespace(launch_counts=Counter())

    def launch_kernel(self, name: str, n: int, args: tuple) -> None:
        fn, params = self.host[name]
        assert len(args) == len(params), f"{name}: {len(args)} arguments for {len(params)}"
        converted = []
        for arg, (base, pointer, pname) in zip(args, params):
            where = f"{name}({pname})"
            if pointer and arg is None:
                # What the backend passes for a buffer the kernel ignores: CuPy makes None a
                # null pointer, and so does ctypes (a kernel that follows it crashes the test).
                converted.append(None)
            elif pointer:
                assert isinstance(arg, np.ndarray), (
                    f"{where}: a pointer needs an array, got {arg!r}"
                )
                assert arg.dtype == POINTEE_DTYPES[base], f"{where}: {arg.dtype} for {base}*"
                assert arg.flags.c_contiguous, f"{where}: array is not C-contiguous"
                converted.append(arg.ctypes.data)
            else:
                allowed = SCALAR_TYPES[base][0]
                assert type(arg) in allowed, (
                    f"{where}: CuPy would not pass {type(arg).__name__} as {base}"
                )
                converted.append(arg)
        # A few small blocks, so that every kernel's grid-stride loop goes round.
        fn(3, 32, *converted)
        self.launched.append(name)
        self.kernels.launch_counts[name] += 1
