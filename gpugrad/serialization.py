"""gg.save / gg.load: tensors, state dicts and nested containers of them, in one .npz file.

The file is a plain NumPy archive: each array is a member, and a JSON manifest member
describes the structure around them (dicts, lists, numbers, strings). Loading never unpickles
anything, so an untrusted file cannot run code, and every way a file can be tampered with
(a foreign or corrupt archive, a malformed manifest, members of dtypes gpugrad does not have)
raises CheckpointError. Saving writes a temporary file beside the target and renames it into
place, so a crash mid-write never leaves a broken or missing file; the temporaries a killed
process left behind are removed by the next successful save to the same path.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .backend import Device, get_backend
from .backend import device as parse_device
from .dtypes import SUPPORTED
from .errors import (
    ArgumentError,
    ArgumentTypeError,
    BackendUnavailableError,
    CheckpointError,
    GpugradError,
    MissingFileError,
    SaveError,
)
from .tensor import Tensor, _make

FORMAT = "gpugrad"
VERSION = 1
MANIFEST = "__manifest__"
# Deeper trees are refused on both sides: no state dict comes near, and it keeps the
# recursive encoder and decoder far from Python's recursion limit.
MAX_DEPTH = 100

PathLike = str | os.PathLike[str]
# Raw (non-tensor) arrays may hold bools and any integers or floats (uint32 random states).
_ARRAY_KINDS = "biuf"


# --- saving --------------------------------------------------------------------------------
class _Writer:
    """Turns an object tree into a JSON-able description plus a dict of named arrays."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def _array(self, array: np.ndarray) -> str:
        name = f"a{len(self.arrays)}"
        # np.asarray(order="C"), not np.ascontiguousarray: the latter makes a 0-d array 1-d,
        # and a saved loss (nanoGPT's best_val_loss) must come back 0-d.
        self.arrays[name] = np.asarray(array, order="C")
        return name

    def encode(self, obj: Any, where: str, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ArgumentTypeError(
                f"cannot save {where}: nested more than {MAX_DEPTH} levels deep"
            )
        if isinstance(obj, Tensor):
            return {
                "type": "tensor",
                "array": self._array(obj.numpy()),
                "requires_grad": bool(obj.requires_grad),
                "device": str(obj.device),
            }
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                raise ArgumentTypeError(f"cannot save {where}: object arrays would need pickle")
            if obj.dtype.kind not in _ARRAY_KINDS:  # gg.load would refuse it
                raise ArgumentTypeError(
                    f"cannot save {where}: arrays of dtype {obj.dtype} cannot be in a gpugrad "
                    "checkpoint (bool, integer and floating-point arrays can)"
                )
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
                    raise ArgumentTypeError(
                        f"cannot save {where}: dict keys must be str or int, got {key!r}"
                    )
                items.append([key, self.encode(value, f"{where}[{key!r}]", depth + 1)])
            return {"type": "dict", "ordered": isinstance(obj, OrderedDict), "items": items}
        if isinstance(obj, (list, tuple)):
            kind = "list" if isinstance(obj, list) else "tuple"
            return {
                "type": kind,
                "items": [self.encode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(obj)],
            }
        raise ArgumentTypeError(
            f"cannot save {where} of type {type(obj).__name__}: gg.save takes tensors, arrays, "
            "numbers, strings, None, and dicts/lists/tuples of them"
        )


def save(obj: Any, path: PathLike | BinaryIO) -> None:
    """Save tensors, state dicts and nested dicts/lists of them to an .npz file (or a
    binary file object). The write is atomic: the old file stays until the new one is done.
    A failed write raises SaveError naming `path` (disk full, read-only or missing folder)."""
    writer = _Writer()
    tree = writer.encode(obj, "obj")
    manifest = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree})
    members = dict(writer.arrays)
    members[MANIFEST] = np.frombuffer(manifest.encode(), dtype=np.uint8)
    if hasattr(path, "write"):
        np.savez(path, **members)
        return
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(
            f"gg.save: path must be a str, a path or a binary file, got {type(path).__name__}"
        )
    target = Path(path)
    tmp = None
    try:
        # The pid in the name lets a later save tell a dead process's leftovers from the
        # temporary of a save still running in another process.
        fd, tmp = tempfile.mkstemp(
            dir=target.parent, prefix=_temp_prefix(target, os.getpid()), suffix=".tmp"
        )
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, target)
        tmp = None
        _fsync_dir(target.parent)  # make the rename itself durable
    except OSError as exc:
        # The hidden temporary's name would only confuse: say which checkpoint failed.
        message = f"cannot save {target}: {exc.strerror or exc}"
        raise (SaveError(message) if exc.errno is None else SaveError(exc.errno, message)) from exc
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    _remove_stale_temporaries(target)


def _temp_prefix(target: Path, pid: int) -> str:
    return f".{target.name}.{pid}."


def _remove_stale_temporaries(target: Path) -> None:
    """Delete the temporaries of `target` left by saves whose process was killed."""
    prefix = f".{target.name}."
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        # Exactly "<pid>.<random>" in between: a longer middle belongs to another file
        # whose name extends ours (".c.npz.1.<pid>.<random>.tmp" is c.npz.1's).
        middle = name[len(prefix) : -len(".tmp")].split(".")
        if len(middle) == 2 and middle[0].isdigit() and not _process_alive(int(middle[0])):
            (target.parent / name).unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) is no probe there: assume alive, delete nothing
        return True
    if pid == os.getpid():  # another thread of ours may be saving to the same path now
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


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
def _not_ours(name: str, why: str) -> CheckpointError:
    return CheckpointError(f"{name} is not a gpugrad checkpoint: {why}")


def _name_of(path: PathLike | BinaryIO) -> str:
    """The path to show in messages (a Path's `.name` would drop its folder)."""
    if isinstance(path, (str, os.PathLike)):
        return os.fsdecode(path)
    return str(getattr(path, "name", "<file object>"))


def _read(path: PathLike | BinaryIO) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    name = _name_of(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise MissingFileError(f"no checkpoint at {name}: the file does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"{name} is a folder, not a checkpoint file") from None
    except PermissionError:
        raise
    except Exception:
        # NumPy's own message may suggest allow_pickle, i.e. unpickling an untrusted file.
        raise _not_ours(name, "not a readable .npz archive (corrupt, or another format)") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _not_ours(name, "a single .npy array, not the .npz archive gg.save writes")
    try:
        with archive:
            members = {key: archive[key] for key in archive.files}
    except Exception:
        raise _not_ours(name, "a member cannot be read (corrupt, or Python objects)") from None
    if MANIFEST not in members:
        raise _not_ours(name, "an .npz archive with no manifest (not written by gg.save)")
    try:
        manifest = json.loads(members.pop(MANIFEST).tobytes().decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{name}: its manifest is corrupt: {exc}") from None
    if not isinstance(manifest, dict) or "tree" not in manifest:
        raise CheckpointError(f"{name}: its manifest has no object tree")
    version = manifest.get("version")
    bad_version = isinstance(version, bool) or not isinstance(version, int) or version < 1
    if manifest.get("format") != FORMAT or bad_version:
        raise _not_ours(name, f"format {manifest.get('format')!r}, version {version!r}")
    if version > VERSION:
        raise CheckpointError(
            f"{name} was written by a newer gpugrad (format version {version}); "
            f"this one reads up to version {VERSION}"
        )
    return manifest, members


_SCALARS = (type(None), bool, int, float, str)


class _Reader:
    """Rebuilds the object tree from the manifest, checking every node: the manifest is
    untrusted input, so each malformed part becomes a CheckpointError naming it."""

    def __init__(self, arrays: dict[str, np.ndarray], device: Device | None, name: str) -> None:
        self.arrays, self.device, self.name = arrays, device, name

    def _bad(self, node: Any, why: str) -> CheckpointError:
        shown = repr(node)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return CheckpointError(f"{self.name}: malformed manifest entry {shown}: {why}")

    def _field(self, node: dict[str, Any], key: str, kinds: type | tuple[type, ...]) -> Any:
        if key not in node:
            raise self._bad(node, f"it has no {key!r}")
        value = node[key]
        if not isinstance(value, kinds):
            raise self._bad(node, f"its {key!r} is {type(value).__name__}")
        return value

    def _array(self, node: dict[str, Any], tensor: bool) -> np.ndarray:
        key = self._field(node, "array", str)
        if key not in self.arrays:
            raise CheckpointError(
                f"{self.name}: the manifest names array {key!r}, which is missing"
            )
        array = self.arrays[key]
        # Raw arrays may hold any number (e.g. uint32 random states); tensors only what
        # gpugrad computes with.
        allowed = array.dtype in SUPPORTED if tensor else array.dtype.kind in _ARRAY_KINDS
        if not allowed:
            what = "a tensor" if tensor else "an array"
            raise CheckpointError(
                f"{self.name}: member {key!r} has dtype {array.dtype}, which {what} "
                "in a gpugrad checkpoint cannot have"
            )
        return array

    def decode(self, node: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise CheckpointError(f"{self.name}: the manifest nests deeper than {MAX_DEPTH}")
        if not isinstance(node, dict):
            raise self._bad(node, "not an object")
        kind = self._field(node, "type", str)
        if kind == "tensor":
            return self._tensor(node)
        if kind == "ndarray":
            return self._array(node, tensor=False)
        if kind == "value":
            return self._field(node, "value", _SCALARS)
        if kind == "device":
            return self._device(node, self._field(node, "value", str))
        if kind == "dict":
            pairs = []
            for pair in self._field(node, "items", list):
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise self._bad(node, "a dict item is not a [key, value] pair")
                key = pair[0]
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise self._bad(node, f"dict key {key!r} is not a str or int")
                pairs.append((key, self.decode(pair[1], depth + 1)))
            return OrderedDict(pairs) if node.get("ordered") else dict(pairs)
        if kind in ("list", "tuple"):
            items = [self.decode(value, depth + 1) for value in self._field(node, "items", list)]
            return items if kind == "list" else tuple(items)
        raise CheckpointError(f"{self.name}: unknown manifest entry type {kind!r}")

    def _tensor(self, node: dict[str, Any]) -> Tensor:
        array = self._array(node, tensor=True)
        if self.device is not None:
            dev = self.device
        else:
            dev = self._device(node, node.get("device", "cpu"))
        backend = get_backend(dev)
        t = _make(backend.asarray(array, copy=True), backend, None)
        requires_grad = node.get("requires_grad", False)
        if not isinstance(requires_grad, bool):
            raise self._bad(node, f"its 'requires_grad' is {type(requires_grad).__name__}")
        if requires_grad and t.dtype.kind == "f":
            t.requires_grad_(True)
        return t

    def _device(self, node: dict[str, Any], spec: Any) -> Device:
        try:
            return parse_device(spec)
        except BackendUnavailableError:
            raise  # a real device this machine lacks, not a tampered file
        except (GpugradError, TypeError, ValueError) as exc:
            raise self._bad(node, f"device {spec!r}: {exc}") from None


def load(
    path: PathLike | BinaryIO,
    device: str | Device | None = None,
    *,
    map_location: str | Device | None = None,
) -> Any:
    """Load what `save` wrote. Tensors go to `device`, or back where they were saved.
    A file that is not an intact gpugrad checkpoint raises CheckpointError naming it.
    `map_location=` is PyTorch's name for `device` (a device only, not a dict or function)."""
    if map_location is not None:
        if not isinstance(map_location, (str, Device)):
            raise ArgumentTypeError(
                f"load: map_location must be a device such as 'cpu' or 'cuda', "
                f"got {map_location!r} ({type(map_location).__name__})"
            )
        if device is not None and parse_device(device) != parse_device(map_location):
            raise ArgumentError(
                f"load: device={device!r} and map_location={map_location!r} disagree; give one"
            )
        device = map_location
    target = parse_device(device) if device is not None else None
    manifest, arrays = _read(path)
    return _Reader(arrays, target, _name_of(path)).decode(manifest["tree"])
