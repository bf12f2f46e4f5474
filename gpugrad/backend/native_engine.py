"""The engine's compiled twin: `kernels/engine/engine.cpp`, a CPython extension built on import.

For arrays of a few elements an op's time is mostly the interpreter running the engine's
bookkeeping (`Function.apply`, the backward loop), not the arithmetic. The extension runs the
same steps in C: `autograd.py` stays the definition, and the extension calls back into it for
everything rare. It is built like the CPU kernels (`native.py`: the same compiler, cache folder,
ownership checks; ``GPUGRAD_NATIVE_KERNELS=0`` switches it off too) against this Python's
headers. Where that cannot be done (no compiler, no headers, not CPython) the Python engine
runs, as fast as it always was; nothing ever fails for want of the extension.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import sysconfig
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from . import native
from .kernel_source import kernels_dir

__all__ = ["load", "reason_unavailable"]

# No -march=native: bookkeeping, not arithmetic; so one build serves every CPU.
FLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC", "-fno-strict-aliasing", "-DNDEBUG")
MODULE = "gpugrad_engine"  # the name PyInit_gpugrad_engine in engine.cpp answers to

_lock = threading.Lock()
_state: dict[str, Any] = {"tried": False, "module": None, "reason": "not built yet"}


def load() -> ModuleType | None:
    """The compiled engine module, built on the first call; None where it is switched off
    (GPUGRAD_NATIVE_KERNELS=0) or cannot be built or loaded (`reason_unavailable()` says why).
    Never raises: importing gpugrad must not depend on a compiler or Python's headers, so even
    GPUGRAD_NATIVE_KERNELS=1, which makes the CPU kernels mandatory, leaves this optional."""
    if not _state["tried"]:
        with _lock:
            if not _state["tried"]:
                try:
                    _state["module"], _state["reason"] = _load()
                except Exception as error:  # any failure at all: the Python engine runs
                    _state["module"], _state["reason"] = None, f"could not build: {error!r}"
                _state["tried"] = True
    return _state["module"]


def reason_unavailable() -> str | None:
    """Why `load()` gave None (after it was called), or None when the module is loaded."""
    return None if _state["module"] is not None else _state["reason"]


def _load() -> tuple[ModuleType | None, str]:
    if native._switch() == "0":
        return None, f"switched off ({native.ENV_SWITCH}=0)"
    if sys.implementation.name != "cpython":
        return None, f"the compiled engine is for CPython, not {sys.implementation.name}"
    compiler = native._compiler()
    if compiler is None:
        return None, "no C++ compiler found ($CXX, g++, c++ or clang++)"
    include = Path(sysconfig.get_paths()["include"])
    if not (include / "Python.h").is_file():
        return None, f"no Python.h in {include} (install Python's development headers)"
    source = kernels_dir() / "engine" / "engine.cpp"
    if not source.is_file():
        return None, f"no engine source at {source}"
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return native.build_cached(
        compiler, (*FLAGS, f"-I{include}"), [source], [source], (sys.version, suffix),
        MODULE, suffix, _import_trusted,
    )  # fmt: skip


def _import_trusted(path: Path) -> tuple[ModuleType | None, str]:
    """Import the extension at `path` if the file is this user's and no one else may write to
    it (native.open_trusted: checked on the open file, loaded through /proc/self/fd)."""
    return native.open_trusted(path, _import_extension, ImportError)


def _import_extension(name: str) -> ModuleType:
    loader = importlib.machinery.ExtensionFileLoader(MODULE, name)
    spec = importlib.util.spec_from_file_location(MODULE, name, loader=loader)
    if spec is None:
        raise ImportError(f"no import spec for {name}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
