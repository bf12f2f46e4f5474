"""Compiled CPU kernels for the NumPy backend: `kernels/cpu/*.cpp`, built on first use.

A few CPU operations are a score of NumPy passes over memory where one compiled loop does
(exact GELU's rational and tanh, max pooling's window search, layer norm's row
sums, attention's softmax, a convolution's col2im, the SGD and Adam updates). Their C++
sources ship with gpugrad, next to the CUDA kernels; the first call that can use them builds one
shared library with the machine's C++ compiler (``$CXX``, else ``g++``, ``c++`` or
``clang++``) for this very CPU (``-march=native``), keeps it in a cache folder and loads it with
ctypes. Later processes load the cached library; a change to the sources, the flags, the
compiler or the CPU builds a new one.

Where no compiler is found or the build fails, every caller keeps its NumPy twin: the same
math in array passes, slower and never wrong. So is a non-contiguous or non-float array. The
two agree to the few ulps each kernel's file states (tests/test_native.py checks every kernel
against its twin). The environment variable ``GPUGRAD_NATIVE_KERNELS`` decides:

- unset (or ``auto``): use the kernels where they build, the twins elsewhere, silently;
- ``0``: never build or use them (the NumPy twins everywhere);
- ``1``: require them: a failed build raises ``BackendUnavailableError`` with the compiler's
  message.

The cache folder is ``$GPUGRAD_CACHE_DIR/native``, else ``$XDG_CACHE_HOME/gpugrad/native`` or
``~/.cache/gpugrad/native``, else a folder in the system's temporary directory; only a folder
(and a library) that this user owns and no one else may write to is used, since loading a
library runs its code. A library is written under a temporary name and renamed into place, so
processes building at once never load half a file.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailableError
from .kernel_source import kernels_dir

__all__ = ["ENV_SWITCH", "library", "reason_unavailable"]

ENV_SWITCH = "GPUGRAD_NATIVE_KERNELS"
ENV_CACHE = "GPUGRAD_CACHE_DIR"
# -ffp-contract=off: no product fused into a following add, so float32 steps round as NumPy's.
# -fno-trapping-math lets the compiler turn comparisons into vector blends (gpugrad never traps
# on floating-point exceptions), and -fno-math-errno lets sqrt vectorise (nothing reads errno;
# the values are the same); no -ffast-math: NaN, inf and -0.0 behave as in NumPy.
FLAGS = (
    "-O3",
    "-std=c++17",
    "-shared",
    "-fPIC",
    "-march=native",
    "-ffp-contract=off",
    "-fno-trapping-math",
    "-fno-math-errno",
    "-pthread",
)
# On x86 CPUs with 512-bit vectors GCC otherwise stops at 256 bits; measured ~20% quicker here.
X86_FLAGS = ("-mprefer-vector-width=512",)
BUILD_TIMEOUT_S = 300

_C_VOID_P, _C_LONG_LONG = ctypes.c_void_p, ctypes.c_longlong
_C_FLOAT, _C_DOUBLE, _C_INT = ctypes.c_float, ctypes.c_double, ctypes.c_int
# A batched product's operand: address, outer and inner steps between matrices, leading
# dimension, transposed.
_BMM_OPERAND = (_C_VOID_P, *[_C_LONG_LONG] * 3, _C_INT)
# name -> argument types (all return void). Pointers are passed as array addresses.
SIGNATURES: dict[str, tuple[Any, ...]] = {
    "gg_gelu_forward_f32": (*[_C_VOID_P] * 3, _C_LONG_LONG, _C_VOID_P, _C_VOID_P, _C_FLOAT),
    "gg_gelu_backward_f32": (*[_C_VOID_P] * 4, _C_LONG_LONG, _C_FLOAT),
    "gg_max_pool_tiled_forward_f32": (*[_C_VOID_P] * 3, *[_C_LONG_LONG] * 5),
    "gg_max_pool_tiled_forward_f64": (*[_C_VOID_P] * 3, *[_C_LONG_LONG] * 5),
    "gg_max_pool_tiled_backward_f32": (*[_C_VOID_P] * 3, *[_C_LONG_LONG] * 5),
    "gg_max_pool_tiled_backward_f64": (*[_C_VOID_P] * 3, *[_C_LONG_LONG] * 5),
    "gg_softmax_columns_f32": (_C_VOID_P, *[_C_LONG_LONG] * 3, ctypes.c_int),
    "gg_softmax_columns_backward_f32": (_C_VOID_P, _C_VOID_P, *[_C_LONG_LONG] * 3),
    "gg_conv_fold_batch_last_f32": (_C_VOID_P, _C_VOID_P, _C_VOID_P),
    "gg_conv_fold_batch_last_f64": (_C_VOID_P, _C_VOID_P, _C_VOID_P),
    "gg_conv_fold_batch_first_f32": (_C_VOID_P, _C_VOID_P, _C_VOID_P),
    "gg_conv_fold_batch_first_f64": (_C_VOID_P, _C_VOID_P, _C_VOID_P),
    "gg_layer_norm_forward_f32": (*[_C_VOID_P] * 6, _C_LONG_LONG, _C_LONG_LONG, _C_DOUBLE),
    "gg_layer_norm_forward_f64": (*[_C_VOID_P] * 6, _C_LONG_LONG, _C_LONG_LONG, _C_DOUBLE),
    "gg_layer_norm_backward_f32": (*[_C_VOID_P] * 7, _C_LONG_LONG, _C_LONG_LONG),
    "gg_layer_norm_backward_f64": (*[_C_VOID_P] * 7, _C_LONG_LONG, _C_LONG_LONG),
    "gg_sgd_f32": (*[_C_VOID_P] * 3, _C_LONG_LONG, *[_C_FLOAT] * 4, *[ctypes.c_int] * 4),
    "gg_sgd_f64": (*[_C_VOID_P] * 3, _C_LONG_LONG, *[_C_DOUBLE] * 4, *[ctypes.c_int] * 4),
    "gg_adam_f32": (*[_C_VOID_P] * 4, _C_LONG_LONG, *[_C_FLOAT] * 8, ctypes.c_int),
    "gg_adam_f64": (*[_C_VOID_P] * 4, _C_LONG_LONG, *[_C_DOUBLE] * 8, ctypes.c_int),
    "gg_pool_set_spin_us": (_C_LONG_LONG,),
    "gg_blas_attach": (*[_C_VOID_P] * 5, _C_INT),
    "gg_blas_share": (_C_INT,),  # returns int: blas_threads.py sets its restype
    "gg_add_f32": (*[_C_VOID_P] * 3, _C_LONG_LONG),
    "gg_add_f64": (*[_C_VOID_P] * 3, _C_LONG_LONG),
    "gg_add_rows_f32": (_C_VOID_P, _C_VOID_P, _C_LONG_LONG, _C_LONG_LONG),
    "gg_add_rows_f64": (_C_VOID_P, _C_VOID_P, _C_LONG_LONG, _C_LONG_LONG),
    "gg_bmm_f32": (_C_VOID_P, *[_C_LONG_LONG] * 5, *_BMM_OPERAND, *_BMM_OPERAND, _C_VOID_P),
    "gg_bmm_f64": (_C_VOID_P, *[_C_LONG_LONG] * 5, *_BMM_OPERAND, *_BMM_OPERAND, _C_VOID_P),
    # OpenBLAS calls this one (its threads callback); Python only takes its address.
    "gg_blas_threads": (ctypes.c_int, _C_VOID_P, ctypes.c_int, ctypes.c_size_t, _C_VOID_P, _C_INT),
}

_lock = threading.Lock()
_state: dict[str, Any] = {"tried": False, "library": None, "reason": "not built yet"}


def library() -> ctypes.CDLL | None:
    """The loaded kernel library, built on the first call; None where it is switched off or
    cannot be built (`reason_unavailable()` says why). Raises BackendUnavailableError when
    GPUGRAD_NATIVE_KERNELS=1 and it cannot be built."""
    if not _state["tried"]:
        loaded_here = False
        with _lock:
            if not _state["tried"]:
                try:
                    _state["library"], _state["reason"] = _load()
                except OSError as error:  # a full disk, a vanished folder: the twins run
                    _state["library"], _state["reason"] = None, f"could not build: {error}"
                _state["tried"] = loaded_here = True
        if loaded_here and _state["library"] is not None:
            from . import blas_threads  # (it calls back into library(): after the lock)

            blas_threads.share_by_default()
    lib = _state["library"]
    if lib is None and _switch() == "1":  # on every call, not only the one that tried
        raise BackendUnavailableError(
            f"{ENV_SWITCH}=1 asks for gpugrad's compiled CPU kernels, but they are not "
            f"available: {_state['reason']}"
        )
    return lib


def reason_unavailable() -> str | None:
    """Why `library()` gave None (after it was called), or None when the library is loaded."""
    return None if _state["library"] is not None else _state["reason"]


def reset() -> None:
    """Forget the loaded library, so the next `library()` looks again (for tests)."""
    with _lock:
        _state.update(tried=False, library=None, reason="not built yet")


def _switch() -> str:
    return os.environ.get(ENV_SWITCH, "auto").strip().lower()


def _load() -> tuple[ctypes.CDLL | None, str]:
    """(library, '') or (None, why not)."""
    if _switch() == "0":
        return None, f"switched off ({ENV_SWITCH}=0)"
    compiler = _compiler()
    if compiler is None:
        return None, "no C++ compiler found ($CXX, g++, c++ or clang++)"
    try:
        sources = sorted((kernels_dir() / "cpu").glob("*.cpp"))
    except FileNotFoundError as error:
        return None, str(error)
    if not sources:
        return None, f"no kernel sources in {kernels_dir() / 'cpu'}"
    flags = FLAGS + (X86_FLAGS if platform.machine().lower() in ("x86_64", "amd64") else ())
    hashed = sorted(sources + list((kernels_dir() / "cpu").glob("*.h")))
    lib, why = build_cached(
        compiler, flags, sources, hashed, (_cpu_identity(),), "gpugrad_cpu", ".so", open_trusted
    )
    if lib is None:
        return None, why
    for name, argtypes in SIGNATURES.items():
        function = getattr(lib, name, None)
        if function is None:
            return None, f"the kernel library in {_cache_dir()} has no function {name}"
        function.argtypes, function.restype = argtypes, None
    return lib, ""


def _compiler() -> str | None:
    for name in (os.environ.get("CXX", ""), "g++", "c++", "clang++"):
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


def _cpu_identity() -> str:
    """What -march=native depends on: the CPU's model and feature flags where Linux lists
    them, else what the platform module knows."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    wanted = ("model name", "flags", "Features", "CPU part")
    lines = {line.split(":")[0].strip(): line for line in text.splitlines() if ":" in line}
    return "\n".join(lines.get(name, "") for name in wanted)


def _cache_dir() -> Path:
    """The first of the cache folders (see the module docstring) that this user owns and
    nobody else can write to; a new private folder when none is."""
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    candidates = [Path(home) / "gpugrad" / "native"]
    if os.environ.get(ENV_CACHE):
        candidates.insert(0, Path(os.environ[ENV_CACHE]) / "native")
    user = getattr(os, "getuid", lambda: "user")()
    candidates.append(Path(tempfile.gettempdir()) / f"gpugrad-{user}" / "native")
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            continue
        if _private(folder) and os.access(folder, os.W_OK):
            return folder
    return Path(tempfile.mkdtemp(prefix="gpugrad-native-"))


def _private(path: Path) -> bool:
    """Whether `path` belongs to this user and no one else may write to it: a library in a
    folder another user can write to could be theirs, and loading it runs their code. A folder
    of our own that the group may write to (umask 002) loses those bits rather than being
    passed over."""
    if not hasattr(os, "getuid"):
        return True
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            path.chmod(stat.S_IMODE(info.st_mode) & ~(stat.S_IWGRP | stat.S_IWOTH))
            info = path.stat()
    except OSError:
        return False
    return _private_stat(info)


def _private_stat(info: os.stat_result) -> bool:
    """`_private` of an os.stat result: this user's (or anyone's where there are no users),
    and not writable by group or others."""
    if not hasattr(os, "getuid"):
        return True
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def open_trusted(
    path: Path, load: Callable[[str], Any] = ctypes.CDLL,
    failure: type[Exception] | tuple[type[Exception], ...] = OSError,
) -> tuple[Any, str]:  # fmt: skip
    """`load(name)` of the file at `path` (a ctypes library by default) if the file is this
    user's and no one else may write to it: (loaded, '') or (None, why not). On Linux the check
    and the load are of one open file (through /proc/self/fd), so nothing can swap the file in
    between; the descriptor stays open, so its number, and with it the name the loader knows,
    is never reused."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError as error:
        return None, f"could not open {path}: {error}"
    keep = False
    try:
        if not _private_stat(os.fstat(handle)):
            return None, f"{path} belongs to someone else or others may write to it"
        by_handle = Path(f"/proc/self/fd/{handle}")
        name = str(by_handle) if by_handle.exists() else str(path)
        try:
            loaded = load(name)
        except failure as error:
            return None, f"could not load {path}: {error}"
        keep = name != str(path)
        return loaded, ""
    finally:
        if not keep:
            os.close(handle)


def build_cached(
    compiler: str, flags: tuple[str, ...], compiled: list[Path], hashed: list[Path],
    key_parts: tuple[str, ...], stem: str, suffix: str,
    open_trusted: Callable[[Path], tuple[Any, str]],
) -> tuple[Any, str]:  # fmt: skip
    """(what `open_trusted` loads, '') or (None, why not): the build of `compiled`, cached in
    the cache folder under a name keyed by the compiler, its version, the flags, `key_parts`
    and the `hashed` files; built (once, through a temporary file) where that file is missing,
    someone else's or damaged."""
    try:
        version = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"{compiler} --version failed: {error}"
    key = hashlib.sha256()
    for part in (compiler, version, " ".join(flags), *key_parts):
        key.update(part.encode() + b"\0")
    for source in hashed:
        key.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    folder = _cache_dir()
    target = folder / f"{stem}_{key.hexdigest()[:24]}{suffix}"
    loaded, why = open_trusted(target)
    if loaded is None:
        target.unlink(missing_ok=True)
        error = _build(compiler, flags, compiled, folder, target)
        if error:
            return None, error
        loaded, why = open_trusted(target)
    return loaded, why


def _build(compiler: str, flags: tuple[str, ...], sources: list[Path], folder: Path,
           target: Path) -> str:  # fmt: skip
    """Compile `sources` into `target` (through a temporary file); '' or what went wrong."""
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=target.stem, suffix=".tmp")
        os.close(handle)
    except OSError as error:
        return f"could not write in {folder}: {error}"
    command = [compiler, *flags, "-o", temporary, *map(str, sources)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        if done.returncode != 0:
            return f"{' '.join(command)} failed:\n{done.stderr.strip()[-2000:]}"
        os.chmod(temporary, 0o755)  # a linker may follow a umask of 002: never group-writable
        os.replace(temporary, target)
        return ""
    except (OSError, subprocess.SubprocessError) as error:
        return f"{' '.join(command)} failed: {error}"
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
