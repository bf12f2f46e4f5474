"""Trainer reliability: resume is all or nothing, bad arguments raise typed errors before any
training, resuming mid-patience and mid-shuffle continues the uninterrupted run, and memory
stays flat over many steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_train import make_trainer, moons_loaders

import gpugrad as gg
from gpugrad import data, nn, optim
from gpugrad.nn import functional as F
from gpugrad.train import Trainer


def snapshot(trainer: Trainer) -> dict:
    """Every number a resume could change: parameters, optimizer and scheduler state."""
    out = {f"model/{k}": v.numpy().copy() for k, v in trainer.model.state_dict().items()}
    opt = trainer.optimizer.state_dict()
    for index, entry in opt["state"].items():
        for name, value in entry.items():
            out[f"opt/{index}/{name}"] = value if name == "step" else value.numpy().copy()
    out["opt/groups"] = repr(opt["param_groups"])
    out["scheduler"] = repr(trainer.scheduler and trainer.scheduler.state_dict())
    out["progress"] = (trainer.epoch, repr(trainer.history), trainer.best, trainer.stale_epochs)
    return out


def assert_same(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value, err_msg=key)
            assert after[key].tobytes() == value.tobytes(), key  # bit for bit
        else:
            assert after[key] == value, key


def last_key(mapping):
    return list(mapping)[-1]


def set_last_model_entry(state):
    state["model"][last_key(state["model"])] = gg.zeros(5)


def set_last_optimizer_state(state):
    entry = state["optimizer"]["state"][last_key(state["optimizer"]["state"])]
    entry["exp_avg_sq"] = gg.zeros(7)


# Each corrupts one entry, most of them late ones, of a good checkpoint; (case, edit, words).
CORRUPTIONS = [
    ("model-last-shape", set_last_model_entry, "(5,)"),
    ("model-missing-key", lambda s: s["model"].pop(last_key(s["model"])), "missing keys"),
    ("model-not-a-dict", lambda s: s.update(model=[1, 2]), "got list"),
    ("optimizer-last-state-shape", set_last_optimizer_state, "(7,)"),
    ("optimizer-step", lambda s: s["optimizer"]["state"][0].update(step="many"), "'many'"),
    ("optimizer-lr", lambda s: s["optimizer"]["param_groups"][0].update(lr="fast"), "'fast'"),
    ("optimizer-negative-lr", lambda s: s["optimizer"]["param_groups"][0].update(lr=-1.0),
     "-1.0"),
    ("optimizer-betas", lambda s: s["optimizer"]["param_groups"][0].update(betas=[0.9]),
     "betas"),
    ("scheduler-last-epoch", lambda s: s["scheduler"].update(last_epoch="x"), "'x'"),
    ("scheduler-base-lrs", lambda s: s["scheduler"].update(base_lrs=[0.1, 0.2]), "base_lrs"),
    ("scheduler-missing", lambda s: s.pop("scheduler"), "no scheduler state"),
    ("history-a-string", lambda s: s.update(history="loss"), "'loss'"),
    ("history-values", lambda s: s["history"].update(loss=["low"]), "history"),
    ("epoch", lambda s: s.update(epoch=-3), "-3"),
    ("stale-epochs", lambda s: s.update(stale_epochs=1.5), "1.5"),
    ("stopped", lambda s: s.update(stopped="yes"), "'yes'"),
    ("best", lambda s: s.update(best="low"), "'low'"),
    ("rng", lambda s: s["rng"].update(cpu={"bit_generator": "MT19937"}), "random state"),
    ("rng-not-a-dict", lambda s: s.update(rng=3), "'rng'"),
    ("no-epoch", lambda s: s.pop("epoch"), "not a Trainer checkpoint"),
]  # fmt: skip


@pytest.mark.parametrize(
    "corrupt, words", [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS]
)
def test_a_failed_resume_changes_nothing(tmp_path, corrupt, words):
    train, _ = moons_loaders("cpu", n=64)
    saved = make_trainer("cpu", scheduler=True)
    saved.fit(train, epochs=2, checkpoint=tmp_path / "good.npz")
    state = gg.load(tmp_path / "good.npz")
    corrupt(state)
    bad = tmp_path / "bad.npz"
    gg.save(state, bad)

    trainer = make_trainer("cpu", seed=5, scheduler=True)
    trainer.fit(train, epochs=1)  # its own optimizer state, history and schedule position
    before = snapshot(trainer)
    rng_before = gg.backend.get_backend("cpu").rng_state()
    with pytest.raises(gg.CheckpointError) as info:
        trainer.resume(bad)
    assert str(bad) in str(info.value) and words in str(info.value)
    assert_same(before, snapshot(trainer))
    assert gg.backend.get_backend("cpu").rng_state() == rng_before


@pytest.mark.parametrize(
    "target",
    ["module", "optimizer", "scheduler", "trainer"],
)
def test_load_state_dict_of_none_raises_checkpoint_error(target):
    trainer = make_trainer("cpu", scheduler=True)
    owner = {
        "module": trainer.model,
        "optimizer": trainer.optimizer,
        "scheduler": trainer.scheduler,
        "trainer": trainer,
    }[target]
    with pytest.raises(gg.CheckpointError, match="NoneType"):
        owner.load_state_dict(None)


def empty_generator():
    yield from ()


def scalar_loss_fn(value):
    return lambda output, target: value


# (case, Trainer keyword overrides, fit keyword overrides, words the message must contain)
BAD_TRAINER_USES = [
    ("loss-returns-a-float", {"loss_fn": scalar_loss_fn(0.5)}, {}, "float 0.5"),
    ("loss-returns-a-numpy-scalar", {"loss_fn": scalar_loss_fn(np.float32(2.5))}, {},
     "float32"),
    ("loss-not-scalar", {"loss_fn": lambda o, t: o}, {}, "shape (32, 2)"),
    ("epochs-a-string", {}, {"epochs": "a"}, "'a'"),
    ("epochs-negative", {}, {"epochs": -1}, "-1"),
    ("epochs-a-float", {}, {"epochs": 2.5}, "2.5"),
    ("epochs-a-bool", {}, {"epochs": True}, "True"),
    ("empty-loader", {}, {"train_loader": []}, "[] is empty"),
    ("empty-data-loader",
     {}, {"train_loader": data.DataLoader(data.TensorDataset(np.zeros((0, 2)), np.zeros(0)))},
     "is empty"),
    ("loader-yields-nothing", {}, {"train_loader": empty_generator()}, "yielded no batches"),
    ("loader-not-iterable", {}, {"train_loader": 3}, "int"),
    ("early-stopping-zero", {}, {"early_stopping": 0}, "0"),
    ("mode", {}, {"mode": "up"}, "'up'"),
    ("unknown-monitor", {}, {"early_stopping": 2, "monitor": "loss_typo"}, "'loss_typo'"),
    ("val-monitor-without-val-loader", {}, {"early_stopping": 2, "monitor": "val_accuracy"},
     "'val_accuracy'"),
    ("scheduler-interval", {"scheduler_interval": "batch"}, None, "'batch'"),
    ("unknown-metric", {"metrics": ("f1",)}, None, "f1"),
    ("loss-not-callable", {"loss_fn": 3}, None, "3"),
    ("metadata", {"metadata": [1]}, None, "list"),
]  # fmt: skip


@pytest.mark.parametrize(
    "trainer_kw, fit_kw, words",
    [c[1:] for c in BAD_TRAINER_USES],
    ids=[c[0] for c in BAD_TRAINER_USES],
)
def test_bad_trainer_arguments_raise_argument_error(trainer_kw, fit_kw, words):
    train, _ = moons_loaders("cpu", n=64)
    gg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    kwargs = {"loss_fn": F.cross_entropy, "log": None, **trainer_kw}
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    with pytest.raises(gg.ArgumentError) as info:
        trainer = Trainer(model, optimizer=optim.Adam(model.parameters()), **kwargs)
        trainer.fit(**{"train_loader": train, "epochs": 1, **(fit_kw or {})})
    assert words in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key])  # nothing was trained


def test_resume_in_the_middle_of_patience_stops_where_the_uninterrupted_run_does(tmp_path):
    val_losses = [0.5, 0.4, 0.45, 0.46, 0.47, 0.3, 0.2, 0.1]  # best at 2; patience 3 ends at 5
    train, test = moons_loaders("cpu", n=64)

    def run(trainer, epochs, start=0, **kw):
        losses = iter(val_losses[start:])
        trainer.evaluate = lambda loader: {"loss": next(losses), "accuracy": 0.5}
        trainer.fit(train, epochs=epochs, val_loader=test, early_stopping=3, **kw)

    whole = make_trainer("cpu")
    run(whole, 8)
    assert whole.stopped and whole.epoch == 5

    first = make_trainer("cpu")
    run(first, 4, checkpoint=tmp_path / "c.npz")  # two epochs into its patience
    assert first.stale_epochs == 2 and not first.stopped
    resumed = make_trainer("cpu")
    resumed.resume(tmp_path / "c.npz")
    run(resumed, 8, start=4)
    assert resumed.stopped and resumed.epoch == whole.epoch
    assert resumed.history["val_loss"] == whole.history["val_loss"]


class RecordingLoader(data.DataLoader):
    """A DataLoader that notes which of its epochs each iteration serves."""

    served: list

    def __iter__(self):
        self.served.append(self.epoch)
        return super().__iter__()


def recording_loader(n=48):
    x, y = data.make_moons(n_samples=n, noise=0.1, seed=0)
    loader = RecordingLoader(data.TensorDataset(x, y), batch_size=16, shuffle=True, seed=7)
    loader.served = []
    return loader


def test_trainer_epoch_k_uses_the_loaders_epoch_k_order(tmp_path):
    loader = recording_loader()
    trainer = make_trainer("cpu")
    seen = []
    forward = trainer.model.forward
    trainer.model.forward = lambda x: (seen.append(x.numpy().copy()), forward(x))[1]
    trainer.fit(loader, epochs=3, checkpoint=tmp_path / "c.npz")
    # Epoch k (from 1) is the loader's epoch k - 1 (from 0), as iterating it plainly gives.
    assert loader.served == [0, 1, 2] and loader.epoch == 3
    plain = recording_loader()
    expected = [batch[0].numpy() for _ in range(3) for batch in plain]
    assert len(seen) == len(expected)
    for got, want in zip(seen, expected):
        np.testing.assert_array_equal(got, want)

    more = recording_loader()
    resumed = make_trainer("cpu")
    resumed.resume(tmp_path / "c.npz")
    resumed.fit(more, epochs=5)
    assert more.served == [3, 4] and more.epoch == 5


def current_rss_bytes() -> int:
    statm = Path("/proc/self/statm")
    if not statm.exists():
        pytest.skip("needs /proc/self/statm to read the resident set size")
    import resource

    return int(statm.read_text().split()[1]) * resource.getpagesize()


def test_memory_stays_flat_over_10000_steps():
    gg.manual_seed(0)
    x = gg.randn(4, 2)
    y = gg.tensor([0, 1, 0, 1])
    batches = [(x, y)] * 1000
    model = nn.Linear(2, 2)
    trainer = Trainer(
        model, F.cross_entropy, optim.Adam(model.parameters(), lr=1e-3), log=None, progress=False
    )
    trainer.fit(batches, epochs=1)  # warm-up: caches, first allocations
    start = current_rss_bytes()
    trainer.fit(batches, epochs=11)  # 10,000 more steps
    growth = current_rss_bytes() - start
    assert trainer.epoch == 11
    assert growth < 5 * 2**20, f"RSS grew {growth / 2**20:.1f} MB over 10,000 steps"


def bad_module_entry(value):
    def corrupt(model_state, opt_state):
        model_state[last_key(model_state)] = value

    return corrupt


def bad_optimizer_entry(key, value):
    def corrupt(model_state, opt_state):
        opt_state["state"][last_key(opt_state["state"])][key] = value

    return corrupt


# (case, edit of a good (model, optimizer) state, words): one late entry each.
BAD_STATE_ENTRIES = [
    ("module-shape", bad_module_entry(np.zeros(3, np.float32)), "shape (3,)"),
    ("module-strings", bad_module_entry(np.array(["a", "b"])), "dtype str"),
    ("module-complex", bad_module_entry(np.ones(2, np.complex64)), "complex64"),
    ("module-not-an-array", bad_module_entry(object()), "object"),
    ("optimizer-shape", bad_optimizer_entry("exp_avg", gg.zeros(3)), "(3,)"),
    ("optimizer-int-state", bad_optimizer_entry("exp_avg", gg.zeros(2, dtype="int64")), "int64"),
    ("optimizer-step", bad_optimizer_entry("step", -2), "-2"),
]  # fmt: skip


@pytest.mark.parametrize(
    "corrupt, words", [c[1:] for c in BAD_STATE_ENTRIES], ids=[c[0] for c in BAD_STATE_ENTRIES]
)
def test_module_and_optimizer_load_all_or_nothing(corrupt, words):
    trainer = make_trainer("cpu")
    train, _ = moons_loaders("cpu", n=64)
    trainer.fit(train, epochs=1)
    model_state = {k: v.numpy().copy() for k, v in trainer.model.state_dict().items()}
    opt_state = trainer.optimizer.state_dict()
    trainer.fit(train, epochs=2)  # move on, so that loading would change everything
    corrupt(model_state, opt_state)
    before = snapshot_model_and_optimizer(trainer)
    for owner, state in ((trainer.model, model_state), (trainer.optimizer, opt_state)):
        try:
            owner.load_state_dict(state)
        except gg.CheckpointError as exc:
            assert words in str(exc)
            break
    else:
        pytest.fail("no CheckpointError")
    if owner is trainer.model:
        assert_same(before, snapshot_model_and_optimizer(trainer))
    else:  # the model loaded its good state; the optimizer must be untouched
        after = snapshot_model_and_optimizer(trainer)
        assert_same(
            {k: v for k, v in before.items() if k.startswith("opt")},
            {k: v for k, v in after.items() if k.startswith("opt")},
        )


def snapshot_model_and_optimizer(trainer: Trainer) -> dict:
    return {k: v for k, v in snapshot(trainer).items() if k.startswith(("model", "opt"))}
