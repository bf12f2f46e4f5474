"""Registers, spills, local and shared memory of every CUDA kernel, as ptxas reports them.

    python bench/kernel_resources.py [--out PATH] [--arch sm_80 --arch sm_90 ...]

Compiles every kernels/*.cu with nvcc for each arch (sm_80 and sm_90 by default) to a cubin,
as the offline nvcc check in tests/test_kernels.py does but with `-Xptxas -v` and without
-Werror, and writes one table row per (kernel, arch) to bench/results/kernel-resources.txt,
headed by the date and the nvcc version. No GPU is needed: these are what the compiler
allocated, not what a run measured.

Columns: registers per thread; spill stores / loads (bytes per thread written to and read back
from local memory because registers ran out); local memory (the per-thread stack frame: spills
plus arrays the compiler could not keep in registers); static shared memory per block (bytes);
barriers. Any spill or local memory in an elementwise kernel is a regression: the nvcc check
of the test suite already fails on it (-warn-spills, -warn-lmem-usage); this table shows the
numbers behind it, and how close each kernel is to the register limits (255 per thread; fewer
than 64 lets a full 2048-thread SM stay resident on sm_80/sm_90).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KERNELS = REPO / "kernels"
DEFAULT_OUT = REPO / "bench" / "results" / "kernel-resources.txt"
ARCHS = ("sm_80", "sm_90")
FLAGS = ["-std=c++17", "-cubin", "-Xptxas", "-v"]

# ptxas -v prints, per kernel:
#   ptxas info    : Compiling entry function 'NAME' for 'sm_90'
#   ptxas info    : Function properties for NAME
#       0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
#   ptxas info    : Used 32 registers, used 0 barriers[, 16 bytes smem][, 408 bytes cmem[0]]...
ENTRY = re.compile(r"Compiling entry function '(\w+)' for '(\w+)'")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers")
SMEM = re.compile(r"(\d+) bytes smem")
BARRIERS = re.compile(r"used (\d+) barriers")
COLUMNS = (
    "kernel",
    "file",
    "arch",
    "registers",
    "spill stores (B)",
    "spill loads (B)",
    "local (B)",
    "shared (B)",
    "barriers",
)


def parse_ptxas(log: str, source: str) -> list[dict]:
    """One dict per kernel in a `ptxas -v` log (the order ptxas compiled them in)."""
    rows: list[dict] = []
    for line in log.splitlines():
        if m := ENTRY.search(line):
            rows.append({"kernel": m.group(1), "file": source, "arch": m.group(2)})
            continue
        if not rows:
            continue
        row = rows[-1]
        if m := FRAME.search(line):
            row["local (B)"], row["spill stores (B)"], row["spill loads (B)"] = map(int, m.groups())
        if m := USED.search(line):
            row["registers"] = int(m.group(1))
            smem = SMEM.search(line)
            row["shared (B)"] = int(smem.group(1)) if smem else 0
            barriers = BARRIERS.search(line)
            row["barriers"] = int(barriers.group(1)) if barriers else 0
    return rows


def compile_one(nvcc: str, source: Path, arch: str, tmp: Path) -> list[dict]:
    cubin = tmp / f"{source.stem}.{arch}.cubin"
    cmd = [nvcc, f"-arch={arch}", *FLAGS, "-o", str(cubin), str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    rows = parse_ptxas(proc.stdout + proc.stderr, source.name)
    if not rows:
        raise RuntimeError(f"no kernels in the ptxas log of {source.name} for {arch}")
    return rows


def nvcc_version(nvcc: str) -> str:
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    release = [line for line in out.splitlines() if "release" in line]
    return release[-1].strip() if release else out.strip().splitlines()[-1]


def table(rows: list[dict]) -> list[str]:
    cells = [list(COLUMNS)] + [[str(row[c]) for c in COLUMNS] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    lines = []
    for k, r in enumerate(cells):
        # Text columns left-aligned, numbers right-aligned.
        parts = [v.ljust(w) if i < 3 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(parts).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the table")
    parser.add_argument("--arch", action="append", help="an arch to compile for (repeatable)")
    args = parser.parse_args(argv)
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        print("nvcc is not on PATH: install the CUDA toolkit to make this report", file=sys.stderr)
        return 2
    archs = tuple(args.arch or ARCHS)
    sources = sorted(KERNELS.glob("*.cu"))
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        jobs = [(src, arch) for src in sources for arch in archs]
        results = pool.map(lambda job: compile_one(nvcc, *job, Path(tmp)), jobs)
        rows = [row for rows in results for row in rows]
    rows.sort(key=lambda r: (r["file"], r["kernel"], r["arch"]))
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    lines = [
        "Kernel resources: what ptxas allocated for each kernel (no GPU involved).",
        f"date: {today}",
        f"nvcc: {nvcc_version(nvcc)}",
        f"command: nvcc -arch=<arch> {' '.join(FLAGS)} kernels/<file>.cu",
        "made by: python bench/kernel_resources.py",
        "",
        *table(rows),
    ]
    spilled = [r for r in rows if r["spill stores (B)"] or r["spill loads (B)"] or r["local (B)"]]
    lines += ["", f"{len(rows)} kernel builds, {len(spilled)} with spills or local memory."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
