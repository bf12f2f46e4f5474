"""gg.save / gg.load: round trips, safety (no pickle), clear errors, atomic writes."""

from __future__ import annotations

import io
import os
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.serialization as ser


def test_tensor_round_trip_keeps_values_dtype_and_requires_grad(tmp_path, device):
    for dtype in ["float16", "float32", "float64", "int32", "int64", "uint8", "bool"]:
        t = gg.tensor(np.arange(6).reshape(2, 3) % 3, dtype=dtype, device=device)
        path = tmp_path / f"t_{dtype}.npz"
        gg.save(t, path)
        back = gg.load(path)
        assert back.dtype == t.dtype and back.device == t.device and back.shape == (2, 3)
        np.testing.assert_array_equal(back.numpy(), t.numpy())
    w = gg.randn(3, device=device, requires_grad=True)
    gg.save(w, tmp_path / "w.npz")
    back = gg.load(tmp_path / "w.npz")
    assert back.requires_grad and back.is_leaf
    assert back.data is not w.data  # a copy, not the saved tensor itself


def test_nested_structures_round_trip(tmp_path, device):
    state = OrderedDict(
        [
            ("layer.weight", gg.randn(2, 3, device=device)),
            ("layer.bias", gg.zeros(2, device=device)),
        ]
    )
    obj = {
        "model": state,
        "optimizer": {"state": {0: {"step": 3, "exp_avg": gg.ones(2, device=device)}},
                      "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0, 1]}]},
        "epoch": 7, "best": float("inf"), "name": "run-1", "note": None, "flag": True,
        "raw": np.arange(4.0), "device": gg.device("cpu"),
    }  # fmt: skip
    path = tmp_path / "ckpt.npz"
    gg.save(obj, path)
    back = gg.load(path)
    assert isinstance(back["model"], OrderedDict) and list(back["model"]) == list(state)
    for key, value in state.items():
        np.testing.assert_array_equal(back["model"][key].numpy(), value.numpy())
    opt = back["optimizer"]
    assert list(opt["state"]) == [0] and opt["state"][0]["step"] == 3
    assert opt["param_groups"][0]["betas"] == (0.9, 0.999)
    assert isinstance(opt["param_groups"][0]["betas"], tuple)
    assert back["epoch"] == 7 and back["best"] == float("inf") and back["name"] == "run-1"
    assert back["note"] is None and back["flag"] is True
    np.testing.assert_array_equal(back["raw"], np.arange(4.0))
    assert back["device"] == "cpu"


def test_load_onto_a_device(tmp_path):
    gg.save({"w": gg.ones(2)}, tmp_path / "a.npz")
    assert gg.load(tmp_path / "a.npz", device="cpu")["w"].device == "cpu"


def test_file_objects_work():
    buffer = io.BytesIO()
    gg.save({"x": gg.arange(3)}, buffer)
    buffer.seek(0)
    assert gg.load(buffer)["x"].tolist() == [0, 1, 2]


def test_the_file_is_plain_npz_without_pickle(tmp_path):
    gg.save({"x": gg.ones(3)}, tmp_path / "p.npz")
    with np.load(tmp_path / "p.npz", allow_pickle=False) as archive:
        assert ser.MANIFEST in archive.files


@pytest.mark.parametrize("value", [object(), {1.5: 2}, np.array([object()]), {(1, 2): 3}])
def test_unsupported_objects_raise_type_error(tmp_path, value):
    with pytest.raises(TypeError, match="cannot save"):
        gg.save({"v": value}, tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()


def test_corrupt_and_foreign_files_raise_checkpoint_error(tmp_path):
    good = tmp_path / "good.npz"
    gg.save({"x": gg.ones(1000)}, good)
    data = good.read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file at all" * 10)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.ones(3))
    pickled = tmp_path / "pickled.npz"
    np.savez(
        pickled, __manifest__=np.frombuffer(b"{}", dtype=np.uint8), a0=np.array([{}], dtype=object)
    )
    for path, words in [(truncated, "not a readable"), (garbage, "not a readable"),
                        (foreign, "no manifest"), (pickled, "cannot be read")]:  # fmt: skip
        with pytest.raises(gg.CheckpointError, match=words) as info:
            gg.load(path)
        assert str(path) in str(info.value) and "allow_pickle" not in str(info.value)


def test_manifest_pointing_at_a_missing_array(tmp_path):
    path = tmp_path / "m.npz"
    gg.save({"x": gg.ones(2)}, path)
    with zipfile.ZipFile(path) as z:
        manifest = z.read(ser.MANIFEST + ".npy")
    broken = tmp_path / "broken.npz"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr(ser.MANIFEST + ".npy", manifest)
    with pytest.raises(gg.CheckpointError, match="missing"):
        gg.load(broken)


def test_newer_format_version_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(ser, "VERSION", 99)
    gg.save(1, tmp_path / "new.npz")
    monkeypatch.setattr(ser, "VERSION", 1)
    with pytest.raises(gg.CheckpointError, match="newer gpugrad"):
        gg.load(tmp_path / "new.npz")


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        gg.load(tmp_path / "nope.npz")


def test_a_crash_mid_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    gg.save({"epoch": 1, "w": gg.ones(4)}, path)
    before = path.read_bytes()

    real_savez = np.savez

    def crash_halfway(file, **members):
        real_savez(file, **members)
        file.truncate(file.tell() // 2)  # leave a half-written file behind ...
        raise KeyboardInterrupt("power cut")  # ... and die

    monkeypatch.setattr(ser.np, "savez", crash_halfway)
    with pytest.raises(KeyboardInterrupt):
        gg.save({"epoch": 2, "w": gg.zeros(4)}, path)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert gg.load(path)["epoch"] == 1
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]  # no temporary file left behind


def test_saved_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        gg.save({"x": gg.ones(2)}, tmp_path / "perm.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "perm.npz").stat().st_mode & 0o777 == 0o644


def test_a_manifest_without_a_tree_raises_checkpoint_error(tmp_path):
    path = tmp_path / "notree.npz"
    np.savez(path, __manifest__=np.frombuffer(b'{"format": "gpugrad", "version": 1}', np.uint8))
    with pytest.raises(gg.CheckpointError, match="tree"):
        gg.load(path)
