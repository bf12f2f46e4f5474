"""Training diagnostics: gradient norms, update/weight ratios, dead ReLUs, on the device."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import data, nn, optim
from gpugrad.cli import main
from gpugrad.diagnostics import is_diagnostic
from gpugrad.nn import functional as F
from gpugrad.train import Trainer, plot_history

PARAMS = ["0.weight", "0.bias", "2.weight", "2.bias"]


def moons_loader(device, n=96, batch_size=32, shuffle=False):
    x, y = data.make_moons(n_samples=n, noise=0.1, seed=0)
    dataset = data.TensorDataset(x, y)
    return data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, seed=0, device=device)


def make_trainer(device, diagnostics=True, lr=0.05, width=16, log=None):
    gg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 2))
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return Trainer(model, F.cross_entropy, opt, device=device, log=log, diagnostics=diagnostics)


def weights(trainer):
    return {name: p.numpy().copy() for name, p in trainer.model.named_parameters()}


def ratio(after, before):
    return np.linalg.norm(after - before) / np.linalg.norm(before)


def hooks_left(model):
    return sum(
        len(table) for m in model.modules() for table in m.__dict__.get("_hooks", {}).values()
    )


def test_one_step_matches_norms_and_ratios_by_hand(device):
    trainer = make_trainer(device)
    loader = moons_loader(device, n=32, batch_size=32)  # one batch: one step per epoch
    before = weights(trainer)
    history = trainer.fit(loader, epochs=1)
    after = weights(trainer)
    for name, param in trainer.model.named_parameters():
        grad = param.grad.numpy()  # still the gradient of the (only) step
        assert history[f"grad_norm/{name}"] == [pytest.approx(np.linalg.norm(grad), rel=1e-5)]
        expected = ratio(after[name], before[name])
        assert history[f"update_ratio/{name}"] == [pytest.approx(expected, rel=1e-4)]
    assert set(history) == {
        "loss", "accuracy", "samples_per_s", "dead_relu/1",
        *(f"grad_norm/{p}" for p in PARAMS), *(f"update_ratio/{p}" for p in PARAMS),
    }  # fmt: skip


def test_many_steps_average_what_each_step_measured(device):
    """Averages over the epoch's steps of the values measured around each optimizer step."""
    trainer = make_trainer(device)
    loader = moons_loader(device, n=96, batch_size=32, shuffle=True)
    seen = {"grad": [], "ratio": []}
    real_step = trainer.optimizer.step

    def spying_step():
        params = dict(trainer.model.named_parameters())
        seen["grad"].append({k: np.linalg.norm(p.grad.numpy()) for k, p in params.items()})
        before = {k: p.numpy().copy() for k, p in params.items()}
        real_step()
        seen["ratio"].append({k: ratio(p.numpy(), before[k]) for k, p in params.items()})

    trainer.optimizer.step = spying_step
    history = trainer.fit(loader, epochs=2)
    assert len(seen["grad"]) == 6  # 3 steps per epoch
    for name in PARAMS:
        for epoch in range(2):
            steps = slice(3 * epoch, 3 * epoch + 3)
            grads = [s[name] for s in seen["grad"][steps]]
            ratios = [s[name] for s in seen["ratio"][steps]]
            assert history[f"grad_norm/{name}"][epoch] == pytest.approx(np.mean(grads), rel=1e-5)
            assert history[f"update_ratio/{name}"][epoch] == pytest.approx(
                np.mean(ratios), rel=1e-4
            )


def test_diagnostics_do_not_change_training(device):
    plain, watched = make_trainer(device, diagnostics=False), make_trainer(device)
    plain.fit(moons_loader(device, shuffle=True), epochs=3)
    watched.fit(moons_loader(device, shuffle=True), epochs=3)
    assert watched.history["loss"] == plain.history["loss"]
    for name, value in weights(plain).items():
        np.testing.assert_array_equal(weights(watched)[name], value)


def test_a_dead_relu_reports_one_and_a_live_one_less(device):
    dead = make_trainer(device)
    with gg.no_grad():
        dead.model[0].bias.data[...] = -1e3  # every pre-activation is far below zero
    live = make_trainer(device)
    loader = moons_loader(device, n=32, batch_size=32)
    with gg.no_grad():  # what the single step's forward pass will see
        hidden = F.relu(live.model[0](next(iter(loader))[0])).numpy()
    expected = float(np.mean(~(hidden > 0).any(axis=0)))

    assert dead.fit(loader, epochs=2)["dead_relu/1"] == [1.0, 1.0]
    assert dead.history["grad_norm/0.weight"] == [0.0, 0.0]  # no gradient passes a dead ReLU
    assert live.fit(loader, epochs=1)["dead_relu/1"] == [pytest.approx(expected)]
    assert expected < 1.0


def test_dead_relu_of_a_conv_net_counts_channels(device):
    gg.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2)
    )
    with gg.no_grad():
        model[0].bias.data[:2] = -1e3  # two of the four channels never fire
    x = gg.tensor(np.random.default_rng(0).normal(size=(16, 1, 4, 4)), dtype="float32")
    y = gg.tensor(np.arange(16) % 2)
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=8, device=device)
    trainer = Trainer(
        model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.01), device=device,
        log=None, diagnostics=True,
    )  # fmt: skip
    assert trainer.fit(loader, epochs=1)["dead_relu/1"] == [0.5]


def test_history_keys_survive_a_checkpoint_round_trip(tmp_path, device):
    trainer = make_trainer(device)
    path = tmp_path / "run.npz"
    trainer.fit(moons_loader(device), epochs=2, checkpoint=path)
    resumed = make_trainer(device)
    assert resumed.resume(path) == 2
    assert resumed.history == trainer.history
    assert any(is_diagnostic(k) for k in resumed.history)
    resumed.fit(moons_loader(device), epochs=3)
    assert all(len(v) == 3 for v in resumed.history.values())


def test_off_by_default_no_hooks_and_no_keys(device):
    trainer = make_trainer(device, diagnostics=False)
    history = trainer.fit(moons_loader(device), epochs=2)
    assert not any(is_diagnostic(k) for k in history)
    assert all("_hooks" not in m.__dict__ for m in trainer.model.modules())

    assert inspect.signature(Trainer).parameters["diagnostics"].default is False


def test_hooks_are_removed_after_training_even_on_error(device):
    trainer = make_trainer(device)
    trainer.fit(moons_loader(device), epochs=1)
    assert hooks_left(trainer.model) == 0

    def broken_loss(output, target):
        raise RuntimeError("boom")

    trainer.loss_fn = broken_loss
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(moons_loader(device), epochs=2)
    assert hooks_left(trainer.model) == 0


def test_no_extra_output_per_epoch(device):
    lines = []
    trainer = make_trainer(device, log=lines.append)
    trainer.fit(moons_loader(device), epochs=2)
    assert len(lines) == 2 and not any("grad_norm" in line or "dead" in line for line in lines)


@pytest.mark.parametrize("batch_size", [8, 48])
def test_host_reads_per_epoch_do_not_grow_with_steps(device, monkeypatch, batch_size):
    """Loss, accuracy and one transfer for all diagnostics: three reads per epoch, whether an
    epoch has 12 steps or 2."""
    reads = []
    real_item, real_numpy = gg.Tensor.item, gg.Tensor.numpy

    def counting_item(self):
        reads.append("item")
        return real_item(self)

    def counting_numpy(self):
        reads.append("numpy")
        return real_numpy(self)

    loader = moons_loader(device, n=96, batch_size=batch_size)
    trainer = make_trainer(device)
    monkeypatch.setattr(gg.Tensor, "item", counting_item)
    monkeypatch.setattr(gg.Tensor, "numpy", counting_numpy)
    trainer.fit(loader, epochs=3)
    assert len(reads) == 3 * 3
    assert reads.count("numpy") == 3  # the diagnostics: one read per epoch


def test_plot_with_diagnostics_writes_a_png(tmp_path, device):
    pytest.importorskip("matplotlib")
    trainer = make_trainer(device)
    history = trainer.fit(moons_loader(device), epochs=3)
    path = plot_history(history, tmp_path / "diagnostics.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a resumed run may hold diagnostics for its later epochs only; zeros on a log scale
    history = {"loss": [1.0, 0.5, 0.2], "grad_norm/0.weight": [0.0, 0.1], "dead_relu/1": [0.5]}
    assert plot_history(history, tmp_path / "short.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_plot_turns_diagnostics_on(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    ckpt, png = tmp_path / "run.npz", tmp_path / "curves.png"
    options = ["--dataset", "moons", "--hidden", "8", "--epochs", "2", "--quiet"]
    main(["train", *options, "--plot", str(png), "--checkpoint", str(ckpt)])
    out = capsys.readouterr().out
    assert png.read_bytes()[:4] == b"\x89PNG"
    history = gg.load(ckpt)["history"]
    assert len(history["grad_norm/0.weight"]) == 2 and len(history["dead_relu/1"]) == 2
    assert "diagnostics, last epoch:" in out and "dead ReLU units" in out
    assert not any("grad norm" in line for line in out.splitlines() if line.startswith("epoch"))

    main(["train", *options, "--plot", str(png), "--no-diagnostics"])
    assert "diagnostics" not in capsys.readouterr().out
    main(["train", *options, "--checkpoint", str(tmp_path / "plain.npz")])
    assert not any(is_diagnostic(k) for k in gg.load(tmp_path / "plain.npz")["history"])
