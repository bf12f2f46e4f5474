"""The README's main job: `python -m gpugrad` trains the demo network to high accuracy."""

import subprocess
import sys
from pathlib import Path

from gpugrad.demo import main, make_spirals

ROOT = Path(__file__).resolve().parents[1]


def test_spirals_are_balanced_and_bounded():
    x, y = make_spirals(100, seed=0)
    assert x.shape == (200, 2) and x.dtype.name == "float32"
    assert y.dtype.name == "int64" and (y == 0).sum() == (y == 1).sum() == 100
    assert abs(x).max() < 1.2


def test_demo_learns_the_spirals(capsys, device):
    accuracy = main(["--device", device, "--seed", "0"])
    out = capsys.readouterr().out
    assert "train accuracy:" in out
    assert accuracy >= 0.95


def test_python_dash_m_runs():
    result = subprocess.run(
        [sys.executable, "-m", "gpugrad", "demo", "--epochs", "5"],
        capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT)}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "train accuracy:" in result.stdout
