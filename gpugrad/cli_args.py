"""The checks of the `gpugrad` command's options, as argparse `type=` functions: each turns
the text given into a value or raises ArgumentTypeError naming it, which argparse prints as
`gpugrad train: error: argument --lr: ...` with exit status 2, before any training."""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

DATASETS = "digits | moons | spirals | mnist:PATH"
BUILTIN_DATASETS = ("digits", "moons", "spirals")


class UsageError(Exception):
    """A bad combination of options found after parsing; `main` prints it like argparse."""


def _bad(what: str, text: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{what}, got {text!r}")


def positive_int(text: str) -> int:
    """An integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise _bad("must be a positive integer", text) from None
    if value < 1:
        raise _bad("must be a positive integer", text)
    return value


def non_negative_int(text: str) -> int:
    """An integer ≥ 0."""
    try:
        value = int(text)
    except ValueError:
        raise _bad("must be a non-negative integer", text) from None
    if value < 0:
        raise _bad("must be a non-negative integer", text)
    return value


def _finite(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(what, text) from None
    if not math.isfinite(value):
        raise _bad(what, text)
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _finite(text, "must be a positive number")
    if value <= 0:
        raise _bad("must be a positive number", text)
    return value


def smoothing(text: str) -> float:
    """A label-smoothing amount in [0, 1)."""
    value = _finite(text, "must be a number in [0, 1)")
    if not 0.0 <= value < 1.0:
        raise _bad("must be a number in [0, 1)", text)
    return value


def hidden_widths(text: str) -> list[int]:
    """Comma-separated positive layer widths ("" for no hidden layer)."""
    if not text.strip():
        return []
    widths = []
    for part in text.split(","):
        try:
            width = int(part)
        except ValueError:
            width = 0
        if width < 1:
            raise _bad("must be positive widths separated by commas, like 256 or 128,64", text)
        widths.append(width)
    return widths


def existing_dataset(text: str) -> str:
    """A built-in dataset name, or mnist:FOLDER with an existing folder."""
    if text in BUILTIN_DATASETS:
        return text
    if text.startswith("mnist:"):
        folder = Path(text.split(":", 1)[1])
        if not folder.is_dir():
            raise _bad(
                f"mnist:PATH needs the folder of the IDX files, and {folder} is not one", text
            )
        return text
    raise _bad(f"must be one of {DATASETS}", text)


def device_name(text: str) -> str:
    """A device this machine has: cpu, or cuda[:N] with CuPy and that GPU present."""
    from .backend import get_backend
    from .errors import GpugradError

    try:
        get_backend(text)
    except GpugradError as exc:
        raise _bad(f"is not a usable device here ({exc})", text) from None
    return text


def writable_file(text: str) -> str:
    """A file path whose folder exists and takes new files (tried, not guessed: permission
    bits say nothing about a read-only file system, or to root)."""
    path = Path(text)
    if path.is_dir():
        raise _bad("is a folder, not a file path", text)
    folder = path.parent
    if not folder.is_dir():
        raise _bad(f"cannot be written: its folder {folder} does not exist", text)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise _bad(f"cannot be written: {exc.strerror or exc} in {folder}", text) from None
    return text


def plot_file(text: str) -> str:
    """A writable PNG path, with matplotlib installed to draw it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise _bad(
            'needs matplotlib, which is not installed (pip install "gpugrad[plot]")', text
        ) from None
    return writable_file(text)
