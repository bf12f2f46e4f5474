"""Locate and read the CUDA C sources that the CuPy backend compiles at run time.

The sources live in the top-level ``kernels/`` folder of a source checkout and are shipped inside
the wheel as ``gpugrad/kernels``. :func:`kernels_dir` finds whichever is present, preferring the
in-package copy, so the same code works from an installed wheel, an editable install and a plain
checkout. This module only reads text files; it never imports CuPy.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["NVRTC_OPTIONS", "kernel_file", "kernels_dir", "module_source", "read_kernel"]

# .../gpugrad/backend/kernel_source.py -> .../gpugrad
_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def _candidate_dirs() -> tuple[Path, Path]:
    """Return the places searched for the kernels folder, in order of preference."""
    return (
        _PACKAGE_DIR / "kernels",  # installed wheel: gpugrad/kernels
        _PACKAGE_DIR.parent / "kernels",  # source checkout: <repo>/kernels
    )


def kernels_dir() -> Path:
    """Return the folder that holds the CUDA C sources (``*.cuh``, ``*.cu``).

    The in-package copy (``gpugrad/kernels``, as installed from a wheel) is preferred; otherwise the
    top-level ``kernels/`` folder of a source checkout (two levels above ``gpugrad/backend/``) is
    used.

    Raises:
        FileNotFoundError: if neither folder exists; the message names both places looked.
    """
    candidates = _candidate_dirs()
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    looked = " and ".join(f"'{c}'" for c in candidates)
    raise FileNotFoundError(
        f"gpugrad kernels folder not found: looked in {looked}. The CUDA C sources ship inside the "
        "wheel as gpugrad/kernels and live in <repo>/kernels in a source checkout; reinstall "
        "gpugrad or run from a complete checkout."
    )


def read_kernel(name: str) -> str:
    """Return the text of the file ``name`` in :func:`kernels_dir` (e.g. ``"activations.cu"``).

    ``name`` is a path relative to the kernels folder; it may not point outside it.

    Raises:
        FileNotFoundError: if the kernels folder or the file does not exist; the message lists the
            files that are there.
        ValueError: if ``name`` points outside the kernels folder.
    """
    root = kernels_dir()
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"kernel name {name!r} points outside the kernels folder '{root}'")
    if not path.is_file():
        available = sorted(p.name for p in root.iterdir() if p.is_file())
        raise FileNotFoundError(
            f"kernel source {name!r} not found in '{root}'; available: {', '.join(available)}"
        )
    return path.read_text(encoding="utf-8")


# Options the CuPy backend gives NVRTC for every kernel file (CuPy adds the architecture,
# -ftz=true and --device-as-default-execution-space itself; tests/test_nvrtc.py compiles with
# all of them). No -use_fast_math: the kernels are checked against NumPy to a few ulps.
NVRTC_OPTIONS = ("--std=c++17",)

# Which file defines a kernel, by the start of its name.
_FILE_BY_PREFIX = (
    ("activation_", "activations.cu"),
    ("bias_activation_", "bias_activation.cu"),
    ("softmax_cross_entropy_", "losses.cu"),
    ("sgd_step_", "optim.cu"),
    ("adam_step_", "optim.cu"),
    ("rmsprop_step_", "optim.cu"),
    ("adagrad_step_", "optim.cu"),
)

_INCLUDE = re.compile(r'^#include "([^"]+)"\s*$', re.MULTILINE)


def kernel_file(kernel: str) -> str:
    """The kernels/*.cu file that defines `kernel` (e.g. "sgd_step_f32" -> "optim.cu")."""
    for prefix, file in _FILE_BY_PREFIX:
        if kernel.startswith(prefix):
            return file
    raise KeyError(f"no kernels/*.cu file defines a kernel named {kernel!r}")


def module_source(name: str) -> str:
    """The text of kernel file `name` with its local `#include "..."` headers pasted in.

    One self-contained source needs no include path at run time, and CuPy's on-disk cache of
    compiled modules, which is keyed by the source text, sees every change to a header.
    """
    seen: set[str] = set()

    def expand(file: str) -> str:
        if file in seen:  # headers use #pragma once; paste each once
            return ""
        seen.add(file)
        return _INCLUDE.sub(lambda m: expand(m.group(1)), read_kernel(file))

    return expand(name)
