"""The `gpugrad` command under misuse: every bad argument is one line `gpugrad train: error:
...` with exit status 2 before any training, a checkpoint of other options names the option,
a resumed schedule keeps training, Ctrl-C exits 130, and a closed pipe exits quietly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_checkpoint_errors import mounted_tmpfs

import gpugrad as gg
from gpugrad import cli
from gpugrad.cli import main
from gpugrad.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--dataset", "moons", "--hidden", "8", "--quiet"]


def run(argv, capsys):
    """(exit status, stdout, stderr) of `gpugrad *argv`."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def corrupt_file(folder: Path) -> str:
    path = folder / "corrupt.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    return str(path)


def a_folder_as_file(folder: Path) -> str:
    (folder / "file").write_text("x")
    return str(folder / "file" / "c.npz")


def empty_mnist_folder(folder: Path) -> str:
    (folder / "mnist").mkdir()
    return f"mnist:{folder / 'mnist'}"


# (case, arguments (a callable gets a temporary folder), words the one line must contain)
BAD_ARGUMENTS = [
    ("batch-size-zero", ["--batch-size", "0"], "--batch-size: must be a positive integer, got '0'"),
    ("lr-negative", ["--lr", "-0.1"], "--lr: must be a positive number, got '-0.1'"),
    ("lr-nan", ["--lr", "nan"], "'nan'"),
    ("epochs-zero", ["--epochs", "0"], "--epochs: must be a positive integer, got '0'"),
    ("epochs-text", ["--epochs", "ten"], "'ten'"),
    ("hidden-text", ["--hidden", "abc"], "--hidden: must be positive widths"),
    ("hidden-zero", ["--hidden", "0"], "'0'"),
    ("hidden-empty-width", ["--hidden", "32,,16"], "'32,,16'"),
    ("label-smoothing", ["--label-smoothing", "1.5"], "--label-smoothing: must be a number in"),
    ("seed-negative", ["--seed", "-1"], "'-1'"),
    ("unknown-dataset", ["--dataset", "cifar"], "'cifar'"),
    ("missing-mnist-folder", ["--dataset", "mnist:/nonexistent"], "/nonexistent"),
    ("empty-mnist-folder", lambda d: ["--dataset", empty_mnist_folder(d)], "mnist"),
    ("unknown-device", ["--device", "tpu"], "'tpu'"),
    ("unknown-optimizer", ["--optimizer", "lbfgs"], "'lbfgs'"),
    ("checkpoint-missing-folder", lambda d: ["--checkpoint", str(d / "no" / "c.npz")], "no"),
    ("checkpoint-folder-is-a-file", lambda d: ["--checkpoint", a_folder_as_file(d)], "file"),
    ("checkpoint-is-a-folder", lambda d: ["--checkpoint", str(d)], "is a folder"),
    ("checkpoint-corrupt", lambda d: ["--checkpoint", corrupt_file(d)],
     "not a gpugrad checkpoint"),
    ("plot-missing-folder", lambda d: ["--plot", str(d / "no" / "p.png")], "p.png"),
    ("cnn-on-flat-data", ["--model", "cnn"], "square images"),
]  # fmt: skip


@pytest.mark.parametrize(
    "argv, words", [c[1:] for c in BAD_ARGUMENTS], ids=[c[0] for c in BAD_ARGUMENTS]
)
def test_a_bad_argument_is_one_line_and_exit_status_2(tmp_path, capsys, argv, words):
    argv = argv(tmp_path) if callable(argv) else argv
    code, out, err = run(["train", *QUICK, *argv], capsys)
    assert code == 2
    assert out == ""  # refused before anything was trained or printed
    assert err.count("\n") == 1 and err.startswith("gpugrad train: error: "), err
    assert words in err
    assert "Traceback" not in err


def test_cuda_without_a_gpu_is_refused(capsys):
    if gg.cuda.is_available():
        pytest.skip("this machine has a usable GPU")
    code, out, err = run(["train", *QUICK, "--device", "cuda"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("gpugrad train: error: argument --device: is not a usable device")
    assert "'cuda'" in err


def test_a_read_only_checkpoint_folder_is_refused(tmp_path, capsys):
    with mounted_tmpfs(tmp_path / "ro", "size=1m,ro") as folder:
        code, out, err = run(["train", *QUICK, "--checkpoint", str(folder / "c.npz")], capsys)
    assert code == 2 and out == "" and "Read-only file system" in err and str(folder) in err


def test_plot_without_matplotlib_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    code, out, err = run(["train", *QUICK, "--plot", str(tmp_path / "p.png")], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "--plot: needs matplotlib" in err and "p.png" in err


def test_a_checkpoint_made_with_other_options_names_the_option(tmp_path, capsys):
    ckpt = str(tmp_path / "c.npz")
    assert run(["train", *QUICK, "--epochs", "1", "--checkpoint", ckpt], capsys)[0] == 0
    before = Path(ckpt).read_bytes()
    argv = ["train", *QUICK, "--hidden", "16", "--epochs", "2", "--checkpoint", ckpt]
    code, out, err = run(argv, capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "made with --hidden 8, this run has --hidden 16" in err
    assert Path(ckpt).read_bytes() == before


def test_resuming_with_more_epochs_keeps_training(tmp_path, capsys):
    """The cosine schedule of a 1-epoch run ends at lr 0; resuming with --epochs 2 stretches
    it over two epochs, so epoch 2 changes the weights."""
    ckpt = str(tmp_path / "c.npz")
    assert run(["train", *QUICK, "--epochs", "1", "--checkpoint", ckpt], capsys)[0] == 0
    after_one = gg.load(ckpt)
    code, out, _ = run(["train", *QUICK, "--epochs", "2", "--checkpoint", ckpt], capsys)
    assert code == 0 and "cosine schedule now runs over 2 epochs" in out
    after_two = gg.load(ckpt)
    assert after_two["epoch"] == 2 and after_two["scheduler"]["T_max"] == 2
    moved = [
        not (after_two["model"][k].numpy() == v.numpy()).all()
        for k, v in after_one["model"].items()
    ]
    assert all(moved)


def test_resuming_a_finished_run_says_there_is_nothing_to_train(tmp_path, capsys):
    ckpt = str(tmp_path / "c.npz")
    assert run(["train", *QUICK, "--epochs", "2", "--checkpoint", ckpt], capsys)[0] == 0
    code, out, _ = run(["train", *QUICK, "--epochs", "1", "--checkpoint", ckpt], capsys)
    assert code == 0 and "--epochs 1 adds none" in out and not re.search(r"^epoch", out, re.M)


@pytest.mark.parametrize("with_checkpoint", [True, False])
def test_ctrl_c_exits_130_and_says_what_was_saved(tmp_path, capsys, monkeypatch, with_checkpoint):
    real = Trainer._run_epoch
    epochs = []

    def interrupted_in_epoch_2(self, loader, train, description):
        if train:
            epochs.append(description)
            if len(epochs) == 2:
                raise KeyboardInterrupt
        return real(self, loader, train, description)

    monkeypatch.setattr(Trainer, "_run_epoch", interrupted_in_epoch_2)
    extra = ["--checkpoint", str(tmp_path / "c.npz")] if with_checkpoint else []
    code, _, err = run(["train", *QUICK, "--epochs", "3", *extra], capsys)
    assert code == 130
    assert err == ("interrupted; checkpoint saved after epoch 1\n" if extra else "interrupted\n")


def test_a_checkpoint_that_cannot_be_written_mid_run_is_one_line_and_exit_status_1(
    tmp_path, capsys, monkeypatch
):
    ckpt = tmp_path / "c.npz"
    real = Trainer.save_checkpoint

    def disk_full_after_epoch_1(self, path):
        if self.epoch == 2:
            raise gg.SaveError(28, f"cannot save {path}: No space left on device")
        real(self, path)

    monkeypatch.setattr(Trainer, "save_checkpoint", disk_full_after_epoch_1)
    code, _, err = run(["train", *QUICK, "--epochs", "3", "--checkpoint", str(ckpt)], capsys)
    assert code == 1 and err.count("\n") == 1
    assert err == f"gpugrad train: error: [Errno 28] cannot save {ckpt}: No space left on device\n"
    assert gg.load(ckpt)["epoch"] == 1


def test_info_into_a_closed_pipe_exits_quietly():
    child = subprocess.Popen(
        [sys.executable, "-m", "gpugrad", "info"], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    child.stdout.close()  # like `| head -1` having read its line and gone
    err = child.stderr.read()
    child.stderr.close()
    assert child.wait(timeout=120) == 141
    assert err == b""


def test_help_shows_every_option_with_its_default(capsys):
    code, out, _ = run(["train", "--help"], capsys)
    assert code == 0
    train_parser = cli.make_parser()._subparsers._group_actions[0].choices["train"]
    options = [a for a in train_parser._actions if a.option_strings and a.dest != "help"]
    assert "--label-smoothing" in out
    for action in options:
        assert action.option_strings[0] in out
        # the help text as argparse renders it, %(default)s filled in
        shown = train_parser._get_formatter()._expand_help(action)
        assert "default" in shown, action.option_strings
        if action.default not in (None, False):
            assert str(action.default) in shown, (action.option_strings, shown)


def test_the_package_ships_py_typed():
    assert (Path(cli.__file__).parent / "py.typed").is_file()
