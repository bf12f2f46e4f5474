"""The program tests/test_distributed_trainer.py runs under `mpiexec -n N`: one job per scenario.

    python distributed_trainer_worker.py fit OUT    # fit, checkpoint, resume, early stop; writes
                                                    # OUT/rankR.npz and OUT/rankR.json
    python distributed_trainer_worker.py refusals   # errors raised alike on every rank; prints
                                                    # "rank R ok"
    python distributed_trainer_worker.py crash      # rank 1's loss raises mid-epoch

`run_fit` is imported by the test too, to compute the one-process reference with the same code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import gpugrad as gg
import gpugrad.distributed as dist
import gpugrad.nn.functional as F
from gpugrad import data, nn, optim
from gpugrad.errors import ArgumentError, SaveError
from gpugrad.train import Trainer

# 256 training samples: 8 global batches of 32, no padding, so N ranks follow one process step
# for step. 101 validation samples: 2 ranks get 51 each, one of them a padding duplicate that
# must not be counted.
N_TRAIN, N_VAL, BATCH = 256, 101, 32


def datasets() -> tuple[data.TensorDataset, data.TensorDataset]:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(N_TRAIN + N_VAL, 6))  # float64: differences show sharply
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] + X[:, 2] > 0.5).astype(np.int64)
    return (
        data.TensorDataset(X[:N_TRAIN], y[:N_TRAIN]),
        data.TensorDataset(X[N_TRAIN:], y[N_TRAIN:]),
    )


def make_trainer(log) -> Trainer:
    gg.manual_seed(dist.get_rank())  # any init: rank 0's weights are broadcast
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return Trainer(model, F.cross_entropy, opt, log=log, progress=False)


def loaders() -> tuple[data.DataLoader, data.DataLoader]:
    train_set, val_set = datasets()
    train = data.DataLoader(train_set, batch_size=BATCH, shuffle=True, seed=11)
    return train, data.DataLoader(val_set, batch_size=40)


def run_fit(out: Path, name: str) -> None:
    """Two epochs with a checkpoint; then a new Trainer resumes from it and goes on with early
    stopping that fires; writes the parameters, history and printed lines under `name`."""
    lines: list[str] = []
    checkpoint = out / "checkpoint.npz"
    trainer = make_trainer(lines.append)
    train, val = loaders()
    trainer.fit(train, epochs=2, val_loader=val, checkpoint=checkpoint)
    if dist.is_initialized():
        dist.barrier()  # rank 0's file is complete before any rank reads it
    again = make_trainer(lines.append)
    again.resume(checkpoint)
    train, val = loaders()
    # val_loss falls, so "max" sees no improvement: patience 1 stops after epoch 3.
    again.fit(train, epochs=6, val_loader=val, early_stopping=1, monitor="val_loss", mode="max")
    result = again.evaluate(val)
    np.savez(out / f"{name}.npz", **{k: v.numpy() for k, v in again.model.state_dict().items()})
    report = {
        "history": {k: v for k, v in again.history.items() if k != "samples_per_s"},
        "evaluate": result,
        "epoch": again.epoch,
        "stopped": again.stopped,
        "lines": lines,
    }
    (out / f"{name}.json").write_text(json.dumps(report))


def expect(error: type[Exception], words: str, action) -> None:
    try:
        action()
    except error as exc:
        assert words in str(exc), str(exc)
    else:
        raise AssertionError(f"no {error.__name__} ({words})")


def refusals() -> None:
    """Misuse raises the same typed error on every rank, and the job goes on."""
    rank = dist.get_rank()
    train_set, _ = datasets()
    trainer = make_trainer(None)
    batches = [(gg.tensor(np.zeros((4, 6))), gg.tensor(np.zeros(4, dtype=np.int64)))]
    expect(ArgumentError, "cannot split", lambda: trainer.fit(batches, epochs=1))
    weighted = data.DataLoader(
        train_set, batch_size=8, sampler=data.WeightedRandomSampler(np.ones(N_TRAIN), 64)
    )
    expect(ArgumentError, "WeightedRandomSampler", lambda: trainer.fit(weighted, epochs=1))
    # A loader the user sharded unevenly: the ranks would run different numbers of steps.
    uneven = data.DataLoader(
        train_set, batch_size=8 * (rank + 1), sampler=data.DistributedSampler(train_set)
    )
    expect(ArgumentError, "same number of steps", lambda: trainer.fit(uneven, epochs=1))
    # Rank 0 alone writes checkpoints: its failure is raised on every rank.
    import gpugrad.train as train_module

    def failing_save(state, path):
        raise SaveError(f"disk full writing {path}")

    train_module.save = failing_save
    train, _ = loaders()
    words = "disk full" if rank == 0 else "rank 0: disk full"
    expect(SaveError, words, lambda: trainer.fit(train, epochs=1, checkpoint="ck.npz"))
    print(f"rank {rank} ok", flush=True)


def crash() -> None:
    """Rank 1's loss function raises on its third batch; rank 0 waits in the allreduce."""
    calls = [0]

    def loss_fn(output, target):
        calls[0] += 1
        if dist.get_rank() == 1 and calls[0] == 3:
            raise RuntimeError("boom on rank 1")
        return F.cross_entropy(output, target)

    trainer = make_trainer(None)
    trainer.loss_fn = loss_fn
    trainer.fit(loaders()[0], epochs=2)


def main(argv: list[str]) -> None:
    dist.init_process_group("mpi")
    scenario = argv[0]
    if scenario == "fit":
        run_fit(Path(argv[1]), f"rank{dist.get_rank()}")
    elif scenario == "refusals":
        refusals()
    elif scenario == "crash":
        crash()
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
