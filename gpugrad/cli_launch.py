"""`gpugrad train --nproc N`: the same command, started as N processes by the installed MPI's
`mpiexec` (MPICH from `pip install "gpugrad[mpi]"`, or Open MPI), for whoever would rather not
type `mpiexec -n N gpugrad train ...` themselves."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

from .cli_args import UsageError

# BLAS libraries start a thread per core in every process: N processes would fight over the
# cores. Each gets its share, unless the user chose otherwise.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def find_mpiexec() -> str | None:
    """The `mpiexec` next to this Python (the mpich wheel puts it there), else on PATH."""
    here = os.path.dirname(sys.executable)
    return shutil.which("mpiexec", path=f"{here}{os.pathsep}{os.environ.get('PATH', '')}")


def is_open_mpi(mpiexec: str) -> bool:
    """Whether `mpiexec` is Open MPI's, which needs flags MPICH's does not."""
    try:
        done = subprocess.run(
            [mpiexec, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    text = done.stdout + done.stderr
    return "Open MPI" in text or "OpenRTE" in text


def without_nproc(argv: list[str]) -> list[str]:
    """The command line less its `--nproc N` (or `--nproc=N`): what every process runs."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def launch_command(
    mpiexec: str, nproc: int, argv: list[str], open_mpi: bool, cpus: int, as_root: bool
) -> list[str]:
    """The mpiexec command that runs `gpugrad <argv>` as `nproc` processes. Open MPI refuses
    more processes than cores without --oversubscribe, and root without
    --allow-run-as-root; MPICH needs neither."""
    command = [mpiexec, "-n", str(nproc)]
    if open_mpi:
        if nproc > cpus:
            command.append("--oversubscribe")
        if as_root:
            command.append("--allow-run-as-root")
    return [*command, sys.executable, "-m", "gpugrad", *argv]


def child_environment(environ: dict[str, str], nproc: int, cpus: int) -> dict[str, str]:
    """The processes' environment: `environ`, with each BLAS given its share of the cores
    where the user has not set a thread count."""
    env = dict(environ)
    for name in THREAD_VARIABLES:
        env.setdefault(name, str(max(1, cpus // nproc)))
    return env


def launch(nproc: int, argv: list[str]) -> int:
    """Run `gpugrad <argv>` (less --nproc) as `nproc` MPI processes; returns the job's exit
    status (that of mpiexec, which is non-zero when any process failed)."""
    from .distributed.mpi import MPI_HINT, launcher_world_size

    if launcher_world_size() > 1:
        raise UsageError(
            f"--nproc {nproc} starts processes, but this one is already one of "
            f"{launcher_world_size()} that an MPI launcher started; leave out --nproc"
        )
    mpiexec = find_mpiexec()
    if mpiexec is None or importlib.util.find_spec("mpi4py") is None:
        missing = "mpiexec" if mpiexec is None else "mpi4py"
        raise UsageError(f"--nproc {nproc} needs MPI, and {missing} is missing; install {MPI_HINT}")
    cpus = os.cpu_count() or 1
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    command = launch_command(
        mpiexec, nproc, without_nproc(argv), is_open_mpi(mpiexec), cpus, as_root
    )
    job = subprocess.Popen(command, env=child_environment(dict(os.environ), nproc, cpus))
    try:
        code = job.wait()
    except KeyboardInterrupt:  # mpiexec got the Ctrl-C too and stops the processes
        job.wait()
        return 130
    return code if code >= 0 else 128 - code  # killed by a signal: the shell's convention
