"""The `gpugrad` command: train on the bundled digits and other datasets, checkpoints, info."""

from __future__ import annotations

import gzip
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpugrad.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_train_on_digits_with_default_settings_beats_97_percent(capsys):
    assert main(["train", "--quiet"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert "MLP 64-256-10 on digits (1438 train / 359 test)" in lines[0]
    assert sum(line.startswith("epoch") for line in lines) == 40
    summary = lines[-1]
    match = re.fullmatch(
        r"test accuracy: (\d+\.\d)%  \(loss [\d.]+, [\d.]+ s, [\d,]+ samples/s\)", summary
    )
    assert match, summary
    assert float(match.group(1)) >= 97.0


def test_train_short_run_with_a_seed_beats_95_percent(capsys, device):
    main(["train", "--epochs", "15", "--seed", "0", "--device", device, "--quiet"])
    accuracy = float(re.search(r"test accuracy: ([\d.]+)%", capsys.readouterr().out).group(1))
    assert accuracy >= 95.0


def test_the_split_is_fixed_by_the_seed(capsys):
    runs = []
    for seed in (3, 3, 4):
        main(["train", "--epochs", "1", "--seed", str(seed), "--quiet"])
        runs.append(capsys.readouterr().out.strip().splitlines()[-1].split("(")[0])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("optimizer", ["sgd", "adamw", "rmsprop", "adagrad"])
def test_other_optimizers_and_options(capsys, optimizer):
    options = ["--hidden", "32,16", "--batch-size", "64", "--schedule", "none"]
    main(["train", "--epochs", "3", "--optimizer", optimizer, *options, "--quiet"])
    out = capsys.readouterr().out
    assert "MLP 64-32-16-10" in out and optimizer in out and "test accuracy:" in out


@pytest.mark.parametrize("dataset", ["moons", "spirals"])
def test_synthetic_datasets(capsys, dataset):
    main(["train", "--dataset", dataset, "--epochs", "20", "--quiet"])
    accuracy = float(re.search(r"test accuracy: ([\d.]+)%", capsys.readouterr().out).group(1))
    assert accuracy > 80.0


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_from_idx_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for kind, n in (("train", 120), ("t10k", 40)):
        labels = rng.integers(0, 10, n)
        images = np.zeros((n, 28, 28), np.uint8)
        for i, label in enumerate(labels):  # a learnable pattern: a bright row per class
            images[i, 2 + 2 * label, :] = 255
        _write_idx(tmp_path / f"{kind}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{kind}-labels-idx1-ubyte.gz", labels)
    main(["train", "--dataset", f"mnist:{tmp_path}", "--epochs", "5", "--quiet"])
    out = capsys.readouterr().out
    assert "MLP 784-256-10" in out and "(120 train / 40 test)" in out
    assert float(re.search(r"test accuracy: ([\d.]+)%", out).group(1)) > 90.0


def test_checkpoint_resume(tmp_path, capsys):
    ckpt = tmp_path / "digits.npz"
    main(["train", "--epochs", "2", "--checkpoint", str(ckpt), "--quiet"])
    assert ckpt.exists()
    main(["train", "--epochs", "4", "--checkpoint", str(ckpt), "--quiet"])
    out = capsys.readouterr().out
    assert "resumed from" in out and "after epoch 2" in out
    assert out.count("epoch 3/4") == 1 and "epoch 1/4" not in out


def test_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "curves.png"
    assert main(["train", "--epochs", "1", "--plot", str(plot), "--quiet"]) == 0
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_info(capsys):
    main(["info"])
    out = capsys.readouterr().out
    assert out.startswith("gpugrad ") and "cpu backend: NumPy" in out and "cuda backend:" in out


def test_python_dash_m_gpugrad():
    result = subprocess.run(
        [sys.executable, "-m", "gpugrad", "info"], capture_output=True, text=True, cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "cpu backend" in result.stdout


def test_cnn_beats_the_mlp_on_digits_with_the_same_seed_and_epochs(capsys):
    accuracies = {}
    for model in ("mlp", "cnn"):
        main(["train", "--model", model, "--epochs", "8", "--seed", "0", "--quiet"])
        out = capsys.readouterr().out
        accuracies[model] = float(re.search(r"test accuracy: ([\d.]+)%", out).group(1))
    assert "CNN (2 conv 3x3, max pool, linear)" in out
    assert accuracies["cnn"] > accuracies["mlp"], accuracies
