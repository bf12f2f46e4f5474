"""Trainer: fitting, evaluation, metrics on the device, checkpoints, resume, early stopping."""

from __future__ import annotations

import os

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.serialization as ser
from gpugrad import data, nn, optim
from gpugrad.nn import functional as F
from gpugrad.train import Trainer, plot_history


def moons_loaders(device, seed=0, n=400, batch_size=32):
    x, y = data.make_moons(n_samples=n, noise=0.1, seed=seed)
    x_train, x_test, y_train, y_test = data.train_test_split(x, y, test_size=0.25, seed=seed)
    train = data.DataLoader(
        data.TensorDataset(x_train, y_train), batch_size=batch_size, shuffle=True, seed=seed,
        device=device,
    )  # fmt: skip
    test = data.DataLoader(data.TensorDataset(x_test, y_test), batch_size=256, device=device)
    return train, test


def make_trainer(device, seed=0, dropout=0.0, scheduler=False, **kwargs):
    gg.manual_seed(seed)
    layers = [nn.Linear(2, 32), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(32, 2))
    model = nn.Sequential(*layers)
    opt = optim.Adam(model.parameters(), lr=0.02)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5) if scheduler else None
    return Trainer(model, F.cross_entropy, opt, device=device, scheduler=sched, log=None, **kwargs)


def params_of(trainer):
    return {k: v.numpy().copy() for k, v in trainer.model.state_dict().items()}


def test_fit_learns_and_records_history(device):
    train, test = moons_loaders(device)
    trainer = make_trainer(device)
    history = trainer.fit(train, epochs=15, val_loader=test)
    assert set(history) == {"loss", "accuracy", "samples_per_s", "val_loss", "val_accuracy"}
    assert all(len(v) == 15 for v in history.values())
    assert history["loss"][-1] < history["loss"][0]
    result = trainer.evaluate(test)
    assert set(result) == {"loss", "accuracy"}
    assert result["accuracy"] > 0.95
    assert result["accuracy"] == pytest.approx(history["val_accuracy"][-1])
    assert trainer.epoch == 15


def test_metrics_are_read_back_once_per_epoch(device, monkeypatch):
    """Loss and accuracy are summed on the device: one host read per value per epoch."""
    train, _ = moons_loaders(device)
    trainer = make_trainer(device)
    reads = []
    real_item = gg.Tensor.item

    def counting_item(self):
        reads.append(self.shape)
        return real_item(self)

    monkeypatch.setattr(gg.Tensor, "item", counting_item)
    trainer.fit(train, epochs=3)
    assert len(train) > 5
    assert len(reads) == 3 * 2  # loss and accuracy, once each per epoch


def test_evaluate_leaves_no_graph_and_uses_eval_mode(device):
    train, test = moons_loaders(device)
    trainer = make_trainer(device, dropout=0.5)
    trainer.fit(train, epochs=1)
    seen = []
    original = trainer.model.forward

    def spy(x):
        out = original(x)
        seen.append((trainer.model.training, out.requires_grad))
        return out

    trainer.model.forward = spy
    trainer.evaluate(test)
    assert seen and all(mode == (False, False) for mode in seen)


def test_resume_continues_to_the_same_result(tmp_path, device):
    """Stopping after 2 epochs and resuming gives exactly the uninterrupted 5-epoch run,
    shuffling, dropout masks, optimizer and scheduler state included."""
    full = make_trainer(device, dropout=0.3, scheduler=True)
    train, _ = moons_loaders(device)
    full.fit(train, epochs=5)

    first = make_trainer(device, dropout=0.3, scheduler=True)
    train, _ = moons_loaders(device)
    path = tmp_path / "run.npz"
    first.fit(train, epochs=2, checkpoint=path)

    gg.manual_seed(123)  # a fresh process would not share the first run's random state
    resumed = make_trainer(device, seed=99, dropout=0.3, scheduler=True)
    train, _ = moons_loaders(device)
    assert resumed.resume(path) == 2
    resumed.fit(train, epochs=5)

    assert resumed.history["loss"] == pytest.approx(full.history["loss"], rel=1e-6)
    for key, value in params_of(full).items():
        np.testing.assert_allclose(params_of(resumed)[key], value, rtol=1e-6, atol=1e-7)


def test_checkpoint_holds_everything_and_mismatches_raise(tmp_path, device):
    trainer = make_trainer(device, scheduler=True)
    train, _ = moons_loaders(device)
    trainer.fit(train, epochs=1, checkpoint=tmp_path / "c.npz")
    state = gg.load(tmp_path / "c.npz")
    assert {"model", "optimizer", "scheduler", "epoch", "history", "rng"} <= set(state)
    assert state["epoch"] == 1

    gg.save({"epoch": 3}, tmp_path / "other.npz")
    with pytest.raises(gg.CheckpointError, match="not a Trainer checkpoint"):
        make_trainer(device).resume(tmp_path / "other.npz")

    bigger = make_trainer(device)
    bigger.model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2))
    with pytest.raises((gg.CheckpointError, gg.ShapeError)):
        bigger.resume(tmp_path / "c.npz")

    no_scheduler = make_trainer(device, scheduler=True)
    plain = make_trainer(device)
    plain.fit(train, epochs=1, checkpoint=tmp_path / "plain.npz")
    with pytest.raises(gg.CheckpointError, match="scheduler"):
        no_scheduler.resume(tmp_path / "plain.npz")


def test_a_crash_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, device, monkeypatch):
    trainer = make_trainer(device)
    train, _ = moons_loaders(device)
    path = tmp_path / "ckpt.npz"
    trainer.fit(train, epochs=1, checkpoint=path)

    def crash(file, **members):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ser.np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        trainer.fit(train, epochs=2, checkpoint=path)
    monkeypatch.undo()
    assert gg.load(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_early_stopping(device, monkeypatch):
    train, test = moons_loaders(device)
    trainer = make_trainer(device)
    losses = iter([0.5, 0.4, 0.45, 0.46, 0.47, 0.3, 0.2])
    monkeypatch.setattr(trainer, "evaluate", lambda loader: {"loss": next(losses), "accuracy": 0.5})
    messages = []
    trainer.log = messages.append
    history = trainer.fit(train, epochs=7, val_loader=test, early_stopping=3)
    assert len(history["val_loss"]) == 5  # best at epoch 2, then three epochs without a gain
    assert trainer.best == 0.4
    assert "early stopping" in messages[-1]


def test_early_stopping_on_a_metric_to_maximise(device, monkeypatch):
    train, test = moons_loaders(device)
    trainer = make_trainer(device)
    accuracies = iter([0.5, 0.7, 0.6, 0.6, 0.9])
    fake = lambda loader: {"loss": 1.0, "accuracy": next(accuracies)}  # noqa: E731
    monkeypatch.setattr(trainer, "evaluate", fake)
    history = trainer.fit(
        train, epochs=5, val_loader=test, early_stopping=2, monitor="val_accuracy"
    )
    assert len(history["val_accuracy"]) == 4 and trainer.best == 0.7


def test_unknown_monitor_and_metric_raise(device):
    train, _ = moons_loaders(device)
    with pytest.raises(ValueError, match="cannot monitor"):
        make_trainer(device).fit(train, epochs=1, early_stopping=2, monitor="val_loss_typo")
    with pytest.raises(ValueError, match="unknown metrics"):
        make_trainer(device, metrics=("f1",))


def test_no_progress_bar_when_not_a_terminal(device, capsys):
    train, _ = moons_loaders(device)
    trainer = make_trainer(device, progress=None)
    trainer.log = print
    trainer.fit(train, epochs=2)
    out, err = capsys.readouterr()
    assert err == ""  # no tqdm bar: stderr is not a terminal under pytest
    assert out.count("epoch") == 2 and "samples/s" in out


def test_progress_bar_when_asked(device, capsys):
    train, _ = moons_loaders(device)
    make_trainer(device, progress=True).fit(train, epochs=1)
    assert "sample" in capsys.readouterr().err


def test_regression_with_mae(device):
    x, y = data.make_regression(n_samples=256, n_features=3, noise=0.01, seed=0)
    loader = data.DataLoader(data.TensorDataset(x, y.reshape(-1, 1)), batch_size=32, device=device)
    gg.manual_seed(0)
    model = nn.Linear(3, 1)
    trainer = Trainer(
        model, F.mse_loss, optim.SGD(model.parameters(), lr=0.05), device=device,
        metrics=("mae",), log=None,
    )  # fmt: skip
    history = trainer.fit(loader, epochs=30)
    assert history["mae"][-1] < 0.1 * history["mae"][0]


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    history = {"loss": [1.0, 0.5, 0.2], "val_loss": [1.1, 0.6, 0.4], "accuracy": [0.5, 0.8, 0.9]}
    path = plot_history(history, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_early_stopping_minimises_errors_and_honours_mode(device, monkeypatch):
    train, test = moons_loaders(device)
    trainer = make_trainer(device)
    errors = iter([1.0, 0.4, 0.2, 0.1, 0.05])
    fake = lambda loader: {"loss": 1.0, "mae": next(errors)}  # noqa: E731
    monkeypatch.setattr(trainer, "evaluate", fake)
    history = trainer.fit(train, epochs=5, val_loader=test, early_stopping=1, monitor="val_mae")
    assert len(history["val_mae"]) == 5 and trainer.best == 0.05  # a falling error improves
    with pytest.raises(ValueError, match="mode"):
        make_trainer(device).fit(train, epochs=1, early_stopping=1, mode="up")


def test_an_early_stopped_run_stays_stopped_after_resume(tmp_path, device, monkeypatch):
    train, test = moons_loaders(device)
    trainer = make_trainer(device)
    losses = iter([0.5, 0.6, 0.7])
    monkeypatch.setattr(trainer, "evaluate", lambda loader: {"loss": next(losses)})
    path = tmp_path / "stopped.npz"
    trainer.fit(train, epochs=10, val_loader=test, early_stopping=2, checkpoint=path)
    assert trainer.epoch == 3 and trainer.stopped

    resumed = make_trainer(device)
    resumed.resume(path)
    history = resumed.fit(train, epochs=10, val_loader=test, early_stopping=2, checkpoint=path)
    assert resumed.epoch == 3 and len(history["loss"]) == 3
