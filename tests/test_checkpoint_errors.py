"""Checkpoint files under attack and under failure: every tampered file raises CheckpointError
naming it, a failed save raises SaveError naming the checkpoint (never the hidden temporary)
and keeps the old file, and a killed save's temporaries are cleaned up by the next save."""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.serialization as ser

ROOT = Path(__file__).resolve().parents[1]


def write_archive(path: Path, tree, members=None, manifest_text=None) -> Path:
    """A .npz file with a hand-made manifest: how an attacker would make one."""
    text = manifest_text
    if text is None:
        text = json.dumps({"format": "gpugrad", "version": 1, "tree": tree})
    np.savez(path, __manifest__=np.frombuffer(text.encode(), np.uint8), **(members or {}))
    return path


def tensor_node(name="a0"):
    return {"type": "tensor", "array": name, "requires_grad": False, "device": "cpu"}


def nested_lists(depth: int):
    node = {"type": "value", "value": 1}
    for _ in range(depth):
        node = {"type": "list", "items": [node]}
    return node


ONES = {"a0": np.ones(3, np.float32)}

# (case, how to make the file in a folder, words the message must contain)
TAMPERED = [
    ("items-not-a-list", lambda d: write_archive(d / "f.npz", {"type": "dict", "items": 7}),
     "'items' is int"),
    ("tensor-without-array", lambda d: write_archive(d / "f.npz", {"type": "tensor"}),
     "no 'array'"),
    ("array-name-not-a-string",
     lambda d: write_archive(d / "f.npz", {"type": "tensor", "array": [1]}, ONES),
     "'array' is list"),
    ("deep-lists-past-the-limit", lambda d: write_archive(d / "f.npz", nested_lists(150)),
     "deeper than 100"),
    ("deep-lists-past-json", lambda d: write_archive(
        d / "f.npz", None, manifest_text='{"format": "gpugrad", "version": 1, "tree": '
        + "[" * 100_000 + "]" * 100_000 + "}"), "manifest is corrupt"),
    ("node-not-an-object", lambda d: write_archive(d / "f.npz", [1, 2]), "not an object"),
    ("unknown-node-type", lambda d: write_archive(d / "f.npz", {"type": "pickle"}), "'pickle'"),
    ("dict-item-not-a-pair",
     lambda d: write_archive(d / "f.npz", {"type": "dict", "items": [["k"]]}), "pair"),
    ("dict-key-a-bool", lambda d: write_archive(
        d / "f.npz", {"type": "dict", "items": [[True, {"type": "value", "value": 1}]]}),
     "True"),
    ("value-a-list", lambda d: write_archive(d / "f.npz", {"type": "value", "value": [1]}),
     "'value' is list"),
    ("bad-device", lambda d: write_archive(d / "f.npz", {"type": "device", "value": "tpu"}),
     "'tpu'"),
    ("tensor-on-bad-device",
     lambda d: write_archive(d / "f.npz", {**tensor_node(), "device": "gpu:x"}, ONES),
     "'gpu:x'"),
    ("string-member", lambda d: write_archive(
        d / "f.npz", tensor_node(), {"a0": np.array(["a", "b"])}), "dtype <U1"),
    ("complex-member", lambda d: write_archive(
        d / "f.npz", tensor_node(), {"a0": np.ones(2, np.complex64)}), "dtype complex64"),
    ("uint16-member", lambda d: write_archive(
        d / "f.npz", tensor_node(), {"a0": np.ones(2, np.uint16)}), "dtype uint16"),
    ("string-raw-array", lambda d: write_archive(
        d / "f.npz", {"type": "ndarray", "array": "a0"}, {"a0": np.array(["x"])}), "dtype <U1"),
    ("missing-member", lambda d: write_archive(d / "f.npz", tensor_node("a9"), ONES), "'a9'"),
    ("other-format", lambda d: write_archive(
        d / "f.npz", None, manifest_text='{"format": "keras", "version": 1, "tree": 1}'),
     "'keras'"),
    ("version-not-an-int", lambda d: write_archive(
        d / "f.npz", None, manifest_text='{"format": "gpugrad", "version": "1", "tree": 1}'),
     "'1'"),
    ("manifest-not-json", lambda d: write_archive(d / "f.npz", None, manifest_text="{nope"),
     "manifest is corrupt"),
    ("no-manifest", lambda d: (np.savez(d / "f.npz", x=np.ones(2)), d / "f.npz")[1],
     "no manifest"),
    ("npy-not-npz", lambda d: (np.save(d / "f.npy", np.ones(3)), d / "f.npy")[1], ".npy"),
    ("object-member", lambda d: write_archive(
        d / "f.npz", tensor_node(), {"a0": np.array([{}], dtype=object)}), "cannot be read"),
    ("plain-text", lambda d: (d / "f.npz").write_text("hello") and d / "f.npz",
     "not a readable"),
]  # fmt: skip


@pytest.mark.parametrize("make, words", [c[1:] for c in TAMPERED], ids=[c[0] for c in TAMPERED])
def test_a_tampered_file_raises_checkpoint_error_naming_it(tmp_path, make, words):
    path = make(tmp_path)
    with pytest.raises(gg.CheckpointError) as info:
        gg.load(path)
    message = str(info.value)
    assert str(path) in message and words in message
    assert "allow_pickle" not in message  # never advise unpickling an untrusted file


def test_a_tampered_file_leaves_no_traceback_chain_mentioning_pickle(tmp_path):
    path = write_archive(tmp_path / "f.npz", tensor_node(), {"a0": np.array([{}], dtype=object)})
    with pytest.raises(gg.CheckpointError) as info:
        gg.load(path)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_supported_dtypes_still_load(tmp_path):
    dtypes = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]
    state = {name: gg.ones(2, dtype=name) for name in dtypes}
    state["raw"] = np.arange(3, dtype=np.uint32)  # raw arrays keep any number type
    gg.save(state, tmp_path / "all.npz")
    loaded = gg.load(tmp_path / "all.npz")
    assert [str(loaded[name].dtype) for name in dtypes] == dtypes
    assert loaded["raw"].dtype == np.uint32


def test_saving_a_structure_nested_too_deep_is_refused(tmp_path):
    deep: list = []
    for _ in range(150):
        deep = [deep]
    with pytest.raises(TypeError, match="nested more than 100"):
        gg.save(deep, tmp_path / "deep.npz")
    gg.save(nested := [[[1]]], tmp_path / "ok.npz")
    assert gg.load(tmp_path / "ok.npz") == nested


# --- failed saves ----------------------------------------------------------------------------
@contextlib.contextmanager
def mounted_tmpfs(folder: Path, options: str):
    """A small tmpfs at `folder` (skips where mounting is not allowed); unmounted after."""
    folder.mkdir(exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def big_state(megabytes: float = 1.0) -> dict:
    return {"epoch": 2, "w": gg.zeros(int(megabytes * 2**18))}


def assert_failed_save_names_the_checkpoint(path: Path, error: BaseException) -> None:
    message = str(error)
    assert isinstance(error, gg.SaveError) and isinstance(error, OSError)
    assert f"cannot save {path}" in message
    assert ".tmp" not in message  # the hidden temporary would only confuse


@pytest.mark.parametrize("where", ["missing-folder", "folder-is-a-file"])
def test_a_save_into_a_folder_that_cannot_hold_it_names_the_checkpoint(tmp_path, where):
    if where == "missing-folder":
        path = tmp_path / "nope" / "c.npz"
    else:
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "c.npz"
    with pytest.raises(gg.SaveError) as info:
        gg.save({"x": gg.ones(2)}, path)
    assert_failed_save_names_the_checkpoint(path, info.value)


def test_a_full_tmpfs_keeps_the_old_checkpoint(tmp_path):
    with mounted_tmpfs(tmp_path / "small", "size=1m") as folder:
        path = folder / "c.npz"
        gg.save({"epoch": 1, "w": gg.ones(4)}, path)
        before = path.read_bytes()
        with pytest.raises(gg.SaveError) as info:
            gg.save(big_state(2.0), path)
        assert_failed_save_names_the_checkpoint(path, info.value)
        assert info.value.errno == 28  # ENOSPC
        assert path.read_bytes() == before and os.listdir(folder) == ["c.npz"]


def test_a_read_only_folder_names_the_checkpoint(tmp_path):
    with mounted_tmpfs(tmp_path / "ro", "size=1m,ro") as folder:
        path = folder / "c.npz"
        with pytest.raises(gg.SaveError) as info:
            gg.save({"x": gg.ones(2)}, path)
        assert_failed_save_names_the_checkpoint(path, info.value)


FSIZE_CHILD = """
import resource, signal, sys
import gpugrad as gg
path = sys.argv[1]
gg.save({"epoch": 1, "w": gg.ones(4)}, path)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
try:
    gg.save({"epoch": 2, "w": gg.zeros(200_000)}, path)
except gg.SaveError as exc:
    print(exc.errno, exc)
"""


def test_a_file_size_limit_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "c.npz"
    done = subprocess.run(
        [sys.executable, "-c", FSIZE_CHILD, str(path)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    errno, message = done.stdout.strip().split(" ", 1)
    assert int(errno) == 27  # EFBIG
    assert f"cannot save {path}: File too large" in message and ".tmp" not in message
    assert gg.load(path)["epoch"] == 1 and os.listdir(tmp_path) == ["c.npz"]


# --- killed saves ----------------------------------------------------------------------------
def temporaries(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def start_saving_in_a_loop(path: Path) -> int:
    """A forked process (no interpreter start-up to wait for) that saves a 3 MB checkpoint
    to `path` over and over until it is killed. Returns once its first save is complete,
    which has removed the temporaries of the processes killed before it."""
    ready, tell = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.close(ready)
            state = {"epoch": 0, "w": gg.zeros(750_000)}
            while True:
                state["epoch"] += 1
                gg.save(state, path)
                if tell is not None:
                    os.write(tell, b"1")
                    os.close(tell)
                    tell = None
        finally:
            os._exit(1)
    os.close(tell)
    readable, _, _ = select.select([ready], [], [], 60)
    assert readable and os.read(ready, 1) == b"1", "the saving process never completed a save"
    os.close(ready)
    return pid


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_saves_killed_at_random_times_leave_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "c.npz"
    gg.save({"epoch": 0}, path)
    chance = random.Random(0)
    for _ in range(10):
        pid = start_saving_in_a_loop(path)
        time.sleep(chance.uniform(0.0, 0.05))  # killed somewhere in a later save
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        assert isinstance(gg.load(path)["epoch"], int)
        # Only the in-flight save of the killed process can have left a temporary.
        assert len(temporaries(tmp_path)) <= 1
    gg.save({"epoch": -1}, path)
    assert temporaries(tmp_path) == [] and gg.load(path) == {"epoch": -1}


def test_the_next_save_removes_only_dead_processes_temporaries(tmp_path):
    path = tmp_path / "c.npz"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f".c.npz.{dead}.abc123.tmp"
    alive = tmp_path / f".c.npz.{os.getppid()}.def456.tmp"  # a save still running elsewhere
    other = tmp_path / f".d.npz.{dead}.abc123.tmp"  # another checkpoint's business
    longer = tmp_path / f".c.npz.{dead}.{dead}.abc123.tmp"  # ... of c.npz.<dead> here
    for leftover in (stale, alive, other, longer):
        leftover.write_bytes(b"half a checkpoint")
    gg.save({"x": 1}, path)
    assert not stale.exists() and alive.exists() and other.exists() and longer.exists()


def test_temporaries_carry_the_pid_of_their_process(tmp_path, monkeypatch):
    seen = []
    real = ser.np.savez

    def spy(file, **members):
        seen.extend(temporaries(tmp_path))
        real(file, **members)

    monkeypatch.setattr(ser.np, "savez", spy)
    gg.save({"x": 1}, tmp_path / "c.npz")
    assert seen[0].startswith(f".c.npz.{os.getpid()}.") and seen[0].endswith(".tmp")


def test_a_checkpoint_from_a_zip_with_a_bad_crc_raises_checkpoint_error(tmp_path):
    path = tmp_path / "c.npz"
    gg.save({"w": gg.ones(1000)}, path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("a0.npy")
    data[info.header_offset + 200] ^= 0xFF  # flip a byte inside the member's data
    path.write_bytes(bytes(data))
    with pytest.raises(gg.CheckpointError, match="cannot be read"):
        gg.load(path)
