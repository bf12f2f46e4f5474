"""A reader for MNIST-style IDX files a user already has on disk (nothing is downloaded).

IDX layout: a 4-byte magic number (two zero bytes, a type code — 0x08 for unsigned bytes —
and the number of dimensions), one big-endian uint32 per dimension, then the data. The
same layout holds Fashion-MNIST and KMNIST, so they load too.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import ArgumentError, DataFormatError, MissingFileError

UBYTE = 0x08
PREFIXES = {"train": "train", "test": "t10k", "t10k": "t10k"}


def _file_names(prefix: str, what: str, ndim: int) -> list[str]:
    # The official names use '-' before "idx"; some mirrors use '.'; either may be gzipped.
    bases = [f"{prefix}-{what}-idx{ndim}-ubyte", f"{prefix}-{what}.idx{ndim}-ubyte"]
    return [name + ext for name in bases for ext in ("", ".gz")]


def _find(folder: Path, prefix: str, what: str, ndim: int) -> Path:
    names = _file_names(prefix, what, ndim)
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise MissingFileError(f"no MNIST {what} file in {folder}: looked for {', '.join(names)}")


def _read_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise DataFormatError(f"{path} is a folder, not an IDX file")
    if not path.exists():
        raise MissingFileError(f"no IDX file at {path}")
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x1f\x8b":  # not gzip: the IDX bytes themselves
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataFormatError(f"{path}: corrupt or truncated gzip data ({err})") from None


def read_idx(path: str | os.PathLike[str], ndim: int | None = None) -> np.ndarray:
    """The array stored in one IDX file of unsigned bytes (gzipped or not), checked.

    The magic number, the number of dimensions (when `ndim` is given) and the data length
    must all agree with the header; otherwise a DataFormatError says what is wrong.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataFormatError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    zero, code, dims = raw[:2], raw[2], raw[3]
    if zero != b"\x00\x00" or code != UBYTE or dims == 0 or (ndim is not None and dims != ndim):
        want = f"0x0000{UBYTE:02x}{ndim:02x}" if ndim is not None else f"0x0000{UBYTE:02x}NN"
        raise DataFormatError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()}, expected {want} "
            "(unsigned bytes); is this an MNIST file?"
        )
    header = 4 + 4 * dims
    if len(raw) < header:
        raise DataFormatError(f"{path}: truncated IDX header ({len(raw)} of {header} bytes)")
    shape = tuple(int(n) for n in np.frombuffer(raw, dtype=">u4", count=dims, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise DataFormatError(
            f"{path}: {what}: header says shape {shape} ({expected} bytes of data), "
            f"the file holds {got}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_mnist(path: str | os.PathLike[str], kind: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST from the IDX files in folder `path`: `(X, y)` with X float32 (n, 784) in [0, 1]
    (pixels / 255, each 28x28 image flattened row by row; other sizes give rows·cols
    columns) and y int64.

    `kind` is "train" (train-images-idx3-ubyte, train-labels-idx1-ubyte) or "test"
    ("t10k-..."); files may be gzipped (".gz"). Bad or mismatched files raise DataFormatError
    (a ValueError), missing ones MissingFileError (a FileNotFoundError).
    """
    if kind not in PREFIXES:
        raise ArgumentError(f"load_mnist: kind must be 'train' or 'test', got {kind!r}")
    folder = Path(path)
    if not folder.is_dir():
        raise MissingFileError(f"load_mnist expects the folder holding the IDX files: {folder}")
    prefix = PREFIXES[kind]
    images_path = _find(folder, prefix, "images", 3)
    labels_path = _find(folder, prefix, "labels", 1)
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise DataFormatError(
            f"{images_path.name} holds {images.shape[0]} images but {labels_path.name} "
            f"holds {labels.shape[0]} labels"
        )
    X = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255)
    return X, labels.astype(np.int64)
