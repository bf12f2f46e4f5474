"""gg.save / gg.load: tensors, state dicts and nested containers of them, in one .npz file.

The file is a plain NumPy archive: each array is a member, and a JSON manifest member
describes the structure around them (dicts, lists, numbers, strings). Loading never unpickles
anything, so an untrusted file cannot run code. Saving writes a temporary file beside the
target and renames it into place, so a crash mid-write never leaves a broken or missing file.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .backend import Device, get_backend
from .backend import device as parse_device
from .errors import CheckpointError
from .tensor import Tensor, _make

FORMAT = "gpugrad"
VERSION = 1
MANIFEST = "__manifest__"

PathLike = str | os.PathLike[str]


# --- saving --------------------------------------------------------------------------------
class _Writer:
    """Turns an object tree into a JSON-able description plus a dict of named arrays."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def _array(self, array: np.ndarray) -> str:
        name = f"a{len(self.arrays)}"
        self.arrays[name] = np.ascontiguousarray(array)
        return name

    def encode(self, obj: Any, where: str) -> Any:
        if isinstance(obj, Tensor):
            return {
                "type": "tensor",
                "array": self._array(obj.numpy()),
                "requires_grad": bool(obj.requires_grad),
                "device": str(obj.device),
            }
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                raise TypeError(f"cannot save {where}: object arrays would need pickle")
            return {"type": "ndarray", "array": self._array(obj)}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return {"type": "value", "value": obj}
        if isinstance(obj, np.generic):
            return {"type": "value", "value": obj.item()}
        if isinstance(obj, Device):
            return {"type": "device", "value": str(obj)}
        if isinstance(obj, dict):
            items = []
            for key, value in obj.items():
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    raise TypeError(
                        f"cannot save {where}: dict keys must be str or int, got {key!r}"
                    )
                items.append([key, self.encode(value, f"{where}[{key!r}]")])
            return {"type": "dict", "ordered": isinstance(obj, OrderedDict), "items": items}
        if isinstance(obj, (list, tuple)):
            kind = "list" if isinstance(obj, list) else "tuple"
            return {
                "type": kind,
                "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)],
            }
        raise TypeError(
            f"cannot save {where} of type {type(obj).__name__}: gg.save takes tensors, arrays, "
            "numbers, strings, None, and dicts/lists/tuples of them"
        )


def save(obj: Any, path: PathLike | BinaryIO) -> None:
    """Save tensors, state dicts and nested dicts/lists of them to an .npz file (or a
    binary file object). The write is atomic: the old file stays until the new one is done."""
    writer = _Writer()
    tree = writer.encode(obj, "obj")
    manifest = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree})
    members = dict(writer.arrays)
    members[MANIFEST] = np.frombuffer(manifest.encode(), dtype=np.uint8)
    if hasattr(path, "write"):
        np.savez(path, **members)
        return
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, target)
        _fsync_dir(target.parent)  # make the rename itself durable
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some systems cannot open a directory; the rename stands regardless
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- loading -------------------------------------------------------------------------------
def _read(path: PathLike | BinaryIO) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    name = getattr(path, "name", path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            members = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CheckpointError(
            f"{name} is not a readable gpugrad file (corrupt or not .npz): {exc}"
        ) from exc
    if MANIFEST not in members:
        raise CheckpointError(
            f"{name} is an .npz file but not one written by gg.save (no manifest)"
        )
    try:
        manifest = json.loads(members.pop(MANIFEST).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{name}: its manifest is corrupt: {exc}") from exc
    if not isinstance(manifest, dict) or "tree" not in manifest:
        raise CheckpointError(f"{name}: its manifest has no object tree")
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("version"), int):
        raise CheckpointError(f"{name}: not a gpugrad file (format {manifest.get('format')!r})")
    if manifest["version"] > VERSION:
        raise CheckpointError(
            f"{name} was written by a newer gpugrad (format version {manifest['version']}); "
            f"this one reads up to version {VERSION}"
        )
    return manifest, members


class _Reader:
    def __init__(self, arrays: dict[str, np.ndarray], device: Device | None, name: str) -> None:
        self.arrays, self.device, self.name = arrays, device, name

    def _array(self, key: Any) -> np.ndarray:
        if key not in self.arrays:
            raise CheckpointError(
                f"{self.name}: the manifest names array {key!r}, which is missing"
            )
        return self.arrays[key]

    def decode(self, node: Any) -> Any:
        try:
            kind = node["type"]
        except (TypeError, KeyError) as exc:
            raise CheckpointError(f"{self.name}: malformed manifest entry {node!r}") from exc
        if kind == "tensor":
            dev = self.device if self.device is not None else node.get("device", "cpu")
            backend = get_backend(dev)
            t = _make(backend.asarray(self._array(node["array"]), copy=True), backend, None)
            if node.get("requires_grad"):
                t.requires_grad_(True)
            return t
        if kind == "ndarray":
            return self._array(node["array"])
        if kind == "value":
            return node["value"]
        if kind == "device":
            return parse_device(node["value"])
        if kind == "dict":
            pairs = [(key, self.decode(value)) for key, value in node["items"]]
            return OrderedDict(pairs) if node.get("ordered") else dict(pairs)
        if kind in ("list", "tuple"):
            items = [self.decode(value) for value in node["items"]]
            return items if kind == "list" else tuple(items)
        raise CheckpointError(f"{self.name}: unknown manifest entry type {kind!r}")


def load(path: PathLike | BinaryIO, device: str | Device | None = None) -> Any:
    """Load what `save` wrote. Tensors go to `device`, or back where they were saved."""
    manifest, arrays = _read(path)
    name = str(getattr(path, "name", path))
    target = parse_device(device) if device is not None else None
    return _Reader(arrays, target, name).decode(manifest["tree"])
