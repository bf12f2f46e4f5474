"""The Trainer and `gpugrad train` across processes, ReduceLROnPlateau in the Trainer, and the
progress bar's count.

Multi-process behaviour runs in real MPI jobs (`mpiexec -n 2`, with a timeout each): the
scenarios of tests/distributed_trainer_worker.py and the `gpugrad` command itself. The
one-process references run here, with the same code. Without mpi4py or mpiexec those skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import cli_launch, data, nn, optim
from gpugrad.cli import main
from gpugrad.errors import ArgumentError
from gpugrad.nn import functional as F
from gpugrad.train import Trainer, _length

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "distributed_trainer_worker.py"
MPIEXEC = shutil.which(
    "mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
)
# What a launcher sets: a test run under mpiexec must not pass it on to the jobs it starts.
LAUNCH_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK",
                    "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS")  # fmt: skip

needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
    reason='needs mpi4py and mpiexec: pip install "gpugrad[mpi]"',
)


def job_environment() -> dict[str, str]:
    # One BLAS thread a rank: ranks that each start a thread per core crawl on a small machine.
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip
    for name in LAUNCH_VARIABLES:
        env.pop(name, None)
    return env


def run(command: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run a command from the repository root; one that hangs fails the test."""
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=job_environment(), cwd=REPO
    )


def run_worker(ranks: int, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return run([MPIEXEC, "-n", str(ranks), sys.executable, str(WORKER), *args], timeout)


# --- the Trainer on two processes trains as on one ---------------------------------------------


@pytest.fixture(scope="module")
def fit_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Rank 0's, rank 1's and the one-process run's reports and parameters."""
    sys.path.insert(0, str(WORKER.parent))
    import distributed_trainer_worker as worker

    out = tmp_path_factory.mktemp("trainer2")
    proc = run_worker(2, "fit", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reference = tmp_path_factory.mktemp("trainer1")
    worker.run_fit(reference, "one")
    results = {}
    for name, folder in (("rank0", out), ("rank1", out), ("one", reference)):
        report = json.loads((folder / f"{name}.json").read_text())
        with np.load(folder / f"{name}.npz") as f:
            report["params"] = dict(f)
        results[name] = report
    results["checkpoint"] = {"path": out / "checkpoint.npz"}
    return results


@needs_mpi
def test_two_processes_train_as_one_on_the_global_batch(fit_results) -> None:
    one, rank0, rank1 = fit_results["one"], fit_results["rank0"], fit_results["rank1"]
    assert one["params"].keys() == rank0["params"].keys()
    for name, value in one["params"].items():
        np.testing.assert_allclose(rank0["params"][name], value, rtol=1e-9, atol=0, err_msg=name)
        assert np.array_equal(rank0["params"][name], rank1["params"][name]), name


@needs_mpi
def test_metrics_are_exact_and_the_same_on_every_rank(fit_results) -> None:
    # 101 validation samples on 2 ranks: one padding duplicate, which must not be counted.
    one, rank0, rank1 = fit_results["one"], fit_results["rank0"], fit_results["rank1"]
    assert rank0["history"] == rank1["history"]
    assert rank0["evaluate"] == rank1["evaluate"]
    for key, values in one["history"].items():
        np.testing.assert_allclose(rank0["history"][key], values, rtol=1e-12, err_msg=key)
    assert rank0["evaluate"]["accuracy"] == one["evaluate"]["accuracy"]
    correct = one["evaluate"]["accuracy"] * 101
    assert correct == pytest.approx(round(correct))


@needs_mpi
def test_early_stopping_after_resume_decides_alike_and_rank0_alone_prints(fit_results) -> None:
    one, rank0, rank1 = fit_results["one"], fit_results["rank0"], fit_results["rank1"]
    assert one["stopped"] and one["epoch"] == 4  # the run does stop early
    assert (rank0["stopped"], rank0["epoch"]) == (rank1["stopped"], rank1["epoch"]) == (True, 4)
    assert rank1["lines"] == []
    strip = [re.sub(r"[\d,]+ samples/s", "", line) for line in rank0["lines"]]
    assert strip == [re.sub(r"[\d,]+ samples/s", "", line) for line in one["lines"]]


@needs_mpi
def test_a_two_process_checkpoint_resumes_in_one_process(fit_results) -> None:
    gg.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    trainer = Trainer(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1), log=None)
    assert trainer.resume(fit_results["checkpoint"]["path"]) == 2  # keys without "module."
    assert trainer.history["val_accuracy"] == fit_results["rank0"]["history"]["val_accuracy"][:2]


@needs_mpi
def test_misuse_raises_alike_on_every_rank() -> None:
    # Unsplittable loaders, an uneven user shard, a failed checkpoint write on rank 0.
    proc = run_worker(2, "refusals")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rank 0 ok" in proc.stdout and "rank 1 ok" in proc.stdout, proc.stdout


@needs_mpi
def test_an_exception_on_one_rank_ends_the_training_job() -> None:
    proc = run_worker(2, "crash", timeout=20)
    assert proc.returncode != 0
    assert "boom on rank 1" in proc.stderr


# --- gpugrad train on two processes ------------------------------------------------------------


def accuracy_of(out: str) -> float:
    return float(re.search(r"test accuracy: ([\d.]+)%", out).group(1))


@needs_mpi
def test_mpiexec_gpugrad_train_beats_97_percent_with_one_set_of_lines() -> None:
    command = [MPIEXEC, "-n", "2", sys.executable, "-m", "gpugrad", "train", "--quiet"]
    proc = run(command, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].endswith("device cpu, 2 processes"), lines[0]
    assert sum(line.startswith("epoch") for line in lines) == 40
    assert len(lines) == 42 and lines[-1].startswith("test accuracy"), proc.stdout
    assert accuracy_of(proc.stdout) >= 97.0


@needs_mpi
def test_nproc_trains_the_cnn_to_the_accuracy_of_one_process(capsys) -> None:
    options = ["train", "--model", "cnn", "--epochs", "2", "--quiet"]
    proc = run([sys.executable, "-m", "gpugrad", *options, "--nproc", "2"], timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert main(options) == 0
    one = capsys.readouterr().out
    # The same global batches in the same order: only summation order differs.
    assert abs(accuracy_of(proc.stdout) - accuracy_of(one)) <= 0.5, (proc.stdout, one)
    assert proc.stdout.count("test accuracy") == 1


@needs_mpi
def test_a_usage_error_stops_every_rank_with_one_message(tmp_path) -> None:
    checkpoint = tmp_path / "c.npz"
    checkpoint.write_bytes(b"not a checkpoint")
    command = [MPIEXEC, "-n", "2", sys.executable, "-m", "gpugrad", "train", "--quiet",
               "--checkpoint", str(checkpoint)]  # fmt: skip
    proc = run(command, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.count("gpugrad train: error:") == 1, proc.stderr
    assert str(checkpoint) in proc.stderr


# --- --nproc: the launch ------------------------------------------------------------------------


def test_without_nproc_keeps_every_other_argument() -> None:
    argv = ["train", "--nproc", "2", "--epochs", "3", "--nproc=4", "--quiet"]
    assert cli_launch.without_nproc(argv) == ["train", "--epochs", "3", "--quiet"]


@pytest.mark.parametrize(
    ("open_mpi", "nproc", "as_root", "flags"),
    [
        (False, 8, True, []),  # MPICH runs more processes than cores, and as root
        (True, 2, False, []),
        (True, 4, False, ["--oversubscribe"]),
        (True, 2, True, ["--allow-run-as-root"]),
    ],
)
def test_launch_command_adds_what_open_mpi_needs(open_mpi, nproc, as_root, flags) -> None:
    command = cli_launch.launch_command("mpiexec", nproc, ["train"], open_mpi, 2, as_root)
    assert command == ["mpiexec", "-n", str(nproc), *flags, sys.executable, "-m", "gpugrad",
                       "train"]  # fmt: skip


def test_child_environment_shares_the_cores_unless_told() -> None:
    env = cli_launch.child_environment({"MKL_NUM_THREADS": "3"}, nproc=2, cpus=8)
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "4"
    assert env["MKL_NUM_THREADS"] == "3"
    assert cli_launch.child_environment({}, nproc=4, cpus=2)["OMP_NUM_THREADS"] == "1"


NPROC_ERRORS = [
    # (environment, mpiexec found, argv, words in the one error line)
    ({"PMI_SIZE": "2"}, True, ["--nproc", "2"], "already one of 2"),
    ({}, False, ["--nproc", "3"], 'pip install "gpugrad[mpi]"'),
]


@pytest.mark.parametrize(("environ", "found", "argv", "words"), NPROC_ERRORS)
def test_nproc_errors(monkeypatch, capsys, environ, found, argv, words) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    if not found:
        monkeypatch.setattr(cli_launch, "find_mpiexec", lambda: None)
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and argv[-1] in err[0], err


def test_nproc_must_be_a_positive_integer(capsys) -> None:
    with pytest.raises(SystemExit) as status:
        main(["train", "--nproc", "0"])
    assert status.value.code == 2
    assert "argument --nproc: must be a positive integer, got '0'" in capsys.readouterr().err


@pytest.mark.parametrize(("gpus", "local_rank", "device"), [(4, 3, "cuda:3"), (2, 3, "cuda:1"),
                                                               (1, 1, "cuda:0")])  # fmt: skip
def test_each_rank_takes_the_gpu_of_its_local_rank(monkeypatch, gpus, local_rank, device) -> None:
    import gpugrad.backend as backend
    from gpugrad.cli_job import cuda_device_for

    monkeypatch.setattr(backend, "cuda_device_count", lambda: gpus)
    assert cuda_device_for(local_rank) == device


# --- ReduceLROnPlateau in the Trainer, and the progress bar's count -----------------------------


def constant_metric(output, target):
    return gg.tensor(float(len(target)))  # per-batch sum: 1.0 a sample, never improves


def small_loader(n=64, **kwargs) -> data.DataLoader:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 2, n)
    return data.DataLoader(data.TensorDataset(X, y), batch_size=16, **kwargs)


def test_reduce_lr_on_plateau_steps_with_the_monitored_metric() -> None:
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.4)
    plateau = optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=0)
    trainer = Trainer(
        model, F.cross_entropy, opt, scheduler=plateau, metrics={"const": constant_metric},
        log=None,
    )  # fmt: skip
    trainer.fit(small_loader(), epochs=3, monitor="const")
    assert plateau.best == 1.0  # it was given the metric's value
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)  # halved after epochs 2 and 3


def test_reduce_lr_on_plateau_refuses_per_step_scheduling() -> None:
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.4)
    plateau = optim.lr_scheduler.ReduceLROnPlateau(opt)
    with pytest.raises(ArgumentError, match="scheduler_interval='epoch'"):
        Trainer(model, F.cross_entropy, opt, scheduler=plateau, scheduler_interval="step")


@pytest.mark.parametrize(
    ("n", "kwargs", "served"),
    [
        (64, {}, 64),
        (70, {"drop_last": True}, 64),
        (64, {"sampler": data.DistributedSampler(range(64), num_replicas=3, rank=0)}, 22),
        (64, {"sampler": data.DistributedSampler(range(64), num_replicas=3, rank=2)}, 22),
        (70, {"sampler": data.DistributedSampler(range(70), num_replicas=3, rank=1)}, 24),
        (
            70,
            {
                "sampler": data.DistributedSampler(range(70), num_replicas=3, rank=1),
                "drop_last": True,
            },
            16,
        ),
        (64, {"sampler": data.SubsetRandomSampler(range(10), seed=0)}, 10),
    ],
)
def test_progress_bar_counts_what_the_loader_serves(n, kwargs, served) -> None:
    loader = small_loader(n, **kwargs)
    assert _length(loader) == served
    assert served == sum(len(batch[1]) for batch in loader)


@needs_mpi
def test_the_docs_trainer_script_on_two_ranks(tmp_path: Path) -> None:
    text = (REPO / "docs" / "distributed.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    script = tmp_path / "train_trainer.py"
    script.write_text(next(b for b in blocks if "Trainer(" in b))
    proc = run([MPIEXEC, "-n", "2", sys.executable, str(script)], timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[1] for line in lines[:-1]] == [f"{e}/8" for e in range(1, 9)], lines
    assert lines[-1].endswith("on 2 process(es)"), proc.stdout
    assert float(lines[-1].split()[2]) >= 0.95, lines[-1]
