"""Tests for gpugrad.data's datasets: the bundled digits, synthetic sets and the MNIST reader."""

from __future__ import annotations

import gzip
import hashlib
import struct
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.data import (
    DataFormatError,
    DataLoader,
    TensorDataset,
    load_digits,
    load_mnist,
    make_moons,
    make_regression,
    make_spirals,
    read_idx,
)

# --- bundled digits ------------------------------------------------------------------------

# sha256 of images.tobytes() + labels.tobytes() as stored in digits.npz (uint8, C order).
DIGITS_SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"
DIGITS_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def _bundled(name):
    return resources.files("gpugrad.data").joinpath(name)


def test_digits_files_sit_inside_the_package():
    package_dir = Path(str(resources.files("gpugrad.data")))
    for name in ("digits.npz", "DIGITS-LICENSE.txt"):
        assert _bundled(name).is_file(), f"{name} missing from the gpugrad.data package"
        assert (package_dir / name).parent == package_dir


def test_digits_raw_arrays_match_checksum():
    with _bundled("digits.npz").open("rb") as f, np.load(f) as archive:
        assert sorted(archive.files) == ["images", "labels"]
        images, labels = archive["images"], archive["labels"]
    assert images.dtype == np.uint8 and labels.dtype == np.uint8
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    assert digest == DIGITS_SHA256, "digits.npz contents changed or are corrupt"


def test_load_digits_known_facts():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == DIGITS_CLASS_COUNTS
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(X * 16, np.round(X * 16))  # raw pixels were 0..16
    # The first image is a zero: its top row is 0 0 5 13 9 1 0 0.
    assert y[0] == 0
    np.testing.assert_array_equal(X[0, :8] * 16, [0, 0, 5, 13, 9, 1, 0, 0])
    assert len({tuple(row) for row in X}) > 1700  # real images, not copies of a few


def test_digits_attribution():
    text = _bundled("DIGITS-LICENSE.txt").read_text(encoding="utf-8")
    for fact in ("Optical Recognition of Handwritten Digits", "Alpaydin", "Kaynak",
                 "10.24432/C50P49", "CC BY 4.0", "archive.ics.uci.edu", "format only"):  # fmt: skip
        assert fact in text


def test_digits_through_a_loader(device):
    X, y = load_digits()
    loader = DataLoader(TensorDataset(X, y), batch_size=256, shuffle=True, seed=0, device=device)
    assert len(loader) == 8
    xb, yb = next(iter(loader))
    assert xb.shape == (256, 64) and xb.device == device and yb.dtype == gg.int64


# --- synthetic sets ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [make_moons, make_spirals, make_regression])
def test_synthetic_repeat_for_a_seed(make):
    a, b, c = make(seed=5), make(seed=5), make(seed=6)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    gg.manual_seed(9)
    d = make()
    gg.manual_seed(9)
    np.testing.assert_array_equal(make()[0], d[0])


def test_moons_shape_and_geometry():
    X, y = make_moons(n_samples=101, noise=0.0, seed=0)
    assert X.shape == (101, 2) and X.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [50, 51]
    upper, lower = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(*upper.T), 1.0, atol=1e-6)
    assert upper[:, 1].min() >= -1e-6
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1.0, lower[:, 1] - 0.5), 1.0, atol=1e-6)
    assert lower[:, 1].max() <= 0.5 + 1e-6
    assert not np.all(y[:50] == 0)  # shuffled
    noisy, labels = make_moons(n_samples=1000, noise=0.1, seed=0)
    off_arc = np.hypot(*noisy[labels == 0].T) - 1.0
    assert 0.07 < off_arc.std() < 0.13  # noise of std 0.1 per coordinate
    with pytest.raises(ValueError, match="noise"):
        make_moons(noise=-1.0)
    with pytest.raises(ValueError, match="n_samples"):
        make_moons(n_samples=1)


def test_spirals_classes_and_radius():
    X, y = make_spirals(n_samples=301, n_classes=3, noise=0.3, seed=0)
    assert X.shape == (301, 2) and X.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [101, 100, 100]
    radius = np.hypot(*X.T)  # noise turns points along the arm, never off the radius range
    assert radius.min() >= 0.05 - 1e-6 and radius.max() <= 1.0 + 1e-6
    clean, labels = make_spirals(n_samples=200, n_classes=2, noise=0.0, seed=0)
    # Without noise the two arms are point reflections of each other through the origin.
    arm0 = clean[labels == 0][np.argsort(np.hypot(*clean[labels == 0].T))]
    arm1 = clean[labels == 1][np.argsort(np.hypot(*clean[labels == 1].T))]
    np.testing.assert_allclose(arm0, -arm1, atol=1e-5)
    with pytest.raises(ValueError, match="n_classes"):
        make_spirals(n_classes=0)


def test_regression_is_linear():
    X, y, w = make_regression(n_samples=50, n_features=4, noise=0.0, seed=0, bias=2.0,
                              return_coef=True)  # fmt: skip
    assert X.shape == (50, 4) and y.shape == (50,) and w.shape == (4,)
    assert X.dtype == y.dtype == np.float32
    np.testing.assert_allclose(X @ w + 2.0, y, rtol=1e-5, atol=1e-5)
    Xn, yn, wn = make_regression(n_samples=2000, n_features=4, noise=0.5, seed=0,
                                 return_coef=True)  # fmt: skip
    assert 0.45 < np.std(yn - Xn @ wn) < 0.55
    assert len(make_regression(seed=0)) == 2


# --- MNIST IDX reader ---------------------------------------------------------------------


def _idx(array: np.ndarray, magic_type: int = 0x08) -> bytes:
    header = struct.pack(">BBBB", 0, 0, magic_type, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write(folder: Path, prefix: str, images: bytes, labels: bytes, gz: bool = False) -> None:
    ext = ".gz" if gz else ""
    pack = gzip.compress if gz else bytes
    (folder / f"{prefix}-images-idx3-ubyte{ext}").write_bytes(pack(images))
    (folder / f"{prefix}-labels-idx1-ubyte{ext}").write_bytes(pack(labels))


@pytest.fixture
def mnist_arrays(rng):
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[1, 0, 0] = 0, 255
    labels = np.array([3, 0, 9, 1, 7], dtype=np.uint8)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_round_trip(tmp_path, mnist_arrays, gz):
    images, labels = mnist_arrays
    _write(tmp_path, "train", _idx(images), _idx(labels), gz=gz)
    _write(tmp_path, "t10k", _idx(images[:2]), _idx(labels[:2]), gz=gz)
    X, y = load_mnist(tmp_path)
    assert X.shape == (5, 784) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(X * 255, images.reshape(5, 784), atol=1e-4)
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(y, labels)
    X_test, y_test = load_mnist(str(tmp_path), kind="test")
    assert X_test.shape == (2, 784) and y_test.tolist() == [3, 0]


def test_load_mnist_accepts_dotted_names(tmp_path, mnist_arrays):
    images, labels = mnist_arrays
    (tmp_path / "train-images.idx3-ubyte").write_bytes(_idx(images))
    (tmp_path / "train-labels.idx1-ubyte").write_bytes(_idx(labels))
    assert load_mnist(tmp_path)[0].shape == (5, 784)


def test_read_idx_rejects_bad_files(tmp_path, mnist_arrays):
    images, _ = mnist_arrays
    good = _idx(images)
    cases = {
        "wrong type code": (_idx(images, magic_type=0x0D), "magic number 0x00000d03"),
        "nonzero lead": (b"\x01" + good[1:], "magic number"),
        "wrong ndim": (_idx(images[0]), "expected 0x00000803"),
        "truncated data": (good[:-10], "truncated"),
        "trailing data": (good + b"\x00", "trailing bytes"),
        "short header": (good[:6], "truncated IDX header"),
        "tiny": (b"\x00\x00", "too short"),
        "bad gzip": (gzip.compress(good)[:-20], "gzip"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name.replace(" ", "_")
        path.write_bytes(data)
        with pytest.raises(DataFormatError, match=message):
            read_idx(path, ndim=3)
    assert issubclass(DataFormatError, ValueError) and issubclass(DataFormatError, gg.GpugradError)


def test_load_mnist_errors(tmp_path, mnist_arrays):
    images, labels = mnist_arrays
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="folder"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="kind"):
        load_mnist(tmp_path, kind="validation")
    _write(tmp_path, "train", _idx(images), _idx(labels[:4]))
    with pytest.raises(DataFormatError, match=r"5 images.*4 labels"):
        load_mnist(tmp_path)
    _write(tmp_path, "train", _idx(images), _idx(labels)[:-1])
    with pytest.raises(DataFormatError, match="truncated"):
        load_mnist(tmp_path)
