"""Section "tests": the test suite in a subprocess, which runs every `device` test on cuda too.

On the GPU machine the files that only check things offline (the kernels built for the host,
NVRTC without a driver, this script's own smoke run) are left out: they need no GPU and pass in
every CPU run. The suite is cut off at the time the budget leaves it (core.TOTAL_BUDGET_S)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import ROOT
from .core import SKIP, Context, Report, Row, log, verdict

# Test files that check the GPU code without a GPU, and so tell nothing more on one.
OFFLINE_ONLY_TESTS = ("test_kernels.py", "test_nvrtc.py", "test_fused_host.py", "test_gpu_check.py")


@dataclass
class PytestCounts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    cuda_passed: int = 0
    source: str = "none"  # where the counts came from: junit, summary line or progress


def counts_from_junit(path: Path) -> PytestCounts | None:
    """Outcome counts from pytest's JUnit XML; a test "ran on cuda" when its parameter id
    (the part in brackets) contains "cuda", as tests/conftest.py's device fixture makes it."""
    if not path.is_file():
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return None
    counts = PytestCounts(source="junit")
    for case in root.iter("testcase"):
        if not case.get("name"):  # the test an interrupt stopped: an empty entry, no outcome
            continue
        tags = {child.tag for child in case}
        if "error" in tags:
            counts.errors += 1
        elif "failure" in tags:
            counts.failed += 1
        elif "skipped" in tags:
            counts.skipped += 1
        else:
            counts.passed += 1
            name = case.get("name", "")
            if "[" in name and "cuda" in name[name.index("[") :]:
                counts.cuda_passed += 1
    return counts


_SUMMARY_ITEM = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)\b")
# xfail counts as skipped and xpass as passed, as in the JUnit XML.
_SUMMARY_FIELD = {
    "passed": "passed",
    "xpassed": "passed",
    "failed": "failed",
    "skipped": "skipped",
    "xfailed": "skipped",
    "error": "errors",
    "errors": "errors",
}
_PROGRESS_LINE = re.compile(r"^([.FEsxX]+)\s*(\[\s*\d+%\])?\s*$")


def counts_from_log(text: str) -> PytestCounts:
    """Counts from pytest -q's final summary line, or, when the run was cut off before it,
    from the progress characters (. passed, F failed, E error, s skipped)."""
    for line in reversed(text.splitlines()):
        items = _SUMMARY_ITEM.findall(line)
        if items and " in " in line:
            counts = PytestCounts(source="summary line")
            for number, word in items:
                attr = _SUMMARY_FIELD[word]
                setattr(counts, attr, getattr(counts, attr) + int(number))
            return counts
    counts = PytestCounts(source="progress characters (run cut off)")
    for line in text.splitlines():
        match = _PROGRESS_LINE.match(line)
        if match:
            chars = match.group(1)
            counts.passed += chars.count(".") + chars.count("X")
            counts.failed += chars.count("F")
            counts.errors += chars.count("E")
            counts.skipped += chars.count("s") + chars.count("x")
    return counts


# After the time limit pytest gets SIGINT, as from Ctrl-C: it stops, names the test it was in,
# prints its summary and writes the JUnit file. Whatever is still running after this long gets
# SIGKILL, the whole process group.
INTERRUPT_GRACE_S = 15.0


def run_pytest(
    out_dir: Path,
    timeout_s: float,
    cwd: Path = ROOT,
    target: str = "tests",
    ignore: Sequence[str] = OFFLINE_ONLY_TESTS,
) -> dict[str, Any]:
    """Run pytest on `target` in a subprocess (its own process group, interrupted on
    timeout), with `cwd` first on PYTHONPATH, leaving out the files `ignore` names inside
    `target`; the log and JUnit XML go to `out_dir`."""
    log_path, junit = out_dir / "pytest.log", out_dir / "pytest-junit.xml"
    junit.unlink(missing_ok=True)  # counts must come from this run
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target]
    cmd += [f"--ignore={Path(target) / name}" for name in ignore]
    cmd.append(f"--junitxml={junit}")  # per-test outcomes, to count the cuda ones
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cwd), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_default_interrupt,
        )  # fmt: skip
        try:
            returncode, timed_out = proc.wait(timeout=timeout_s), False
        except subprocess.TimeoutExpired:
            returncode, timed_out = _interrupt(proc), True
    counts = counts_from_junit(junit) or counts_from_log(log_path.read_text(errors="replace"))
    return {
        "command": " ".join(cmd),
        "returncode": returncode,
        "timed_out": timed_out,
        "seconds": time.perf_counter() - start,
        "log": str(log_path),
        **asdict(counts),
    }


def _default_interrupt() -> None:
    """In the child before pytest starts: SIGINT back to its default action. A command started
    in the background (`nohup ... &`, a non-interactive shell's `&`) inherits SIGINT ignored, and
    Python then never turns it into KeyboardInterrupt, so the time limit could not stop pytest
    until the SIGKILL after INTERRUPT_GRACE_S."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(proc: subprocess.Popen) -> int:
    """Stop the process group we started: SIGINT, then SIGKILL after INTERRUPT_GRACE_S."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(timeout=INTERRUPT_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


def section_tests(ctx: Context, report: Report) -> None:
    """Section 1: the test suite but the offline-only files, cut off at the budget's cap."""
    if ctx.settings.smoke:
        report.add(Row("tests", "pytest tests", "skipped (--smoke)", status=SKIP))
        return
    out_dir = ctx.out_dir or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    cap = ctx.pytest_cap_s()
    log(f"pytest tests, without {', '.join(OFFLINE_ONLY_TESTS)}; cut off after {cap:.0f} s")
    r = run_pytest(out_dir, cap)
    ok = (
        not r["timed_out"]
        and r["returncode"] == 0
        and r["failed"] == 0
        and r["errors"] == 0
        and r["cuda_passed"] > 0
    )
    result = (
        f"{r['passed']} passed, {r['failed']} failed, {r['errors']} errors, {r['skipped']} "
        f"skipped in {r['seconds']:.0f} s; {r['cuda_passed']} cuda tests passed"
    )
    if r["timed_out"]:
        result = f"TIMED OUT after {cap:.0f} s (counts so far): {result}"
    if ctx.out_dir is None:
        result += f" (log: {r['log']})"
    bar = f"0 failed/errors, cuda tests ran, exit 0, within {cap:.0f} s"
    r.update(time_cap_s=cap, left_out=list(OFFLINE_ONLY_TESTS))
    report.add(Row("tests", "pytest tests", result, bar, verdict(ok), r))
