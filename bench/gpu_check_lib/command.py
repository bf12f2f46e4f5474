"""The command: arguments, the sections in turn (a section that raises is a row), the files
written after each section so a run cut off later keeps what was done, the exit status."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpugrad.backend import get_backend
from gpugrad.errors import BackendUnavailableError

from .bandwidth import section_bandwidth
from .core import SECTIONS, Context, Report, budget_row, error_row, log, settings_for
from .device import section_device
from .distributed import section_distributed
from .kernels import section_kernels
from .mlp import section_mlp
from .report import markdown, write_outputs
from .suite import section_tests
from .timing import Clock

SECTION_FUNCTIONS: dict[str, Callable[[Context, Report], None]] = {
    "tests": section_tests,
    "kernels": section_kernels,
    "bandwidth": section_bandwidth,
    "mlp": section_mlp,
    "distributed": section_distributed,
}


def run(
    ctx: Context, sections: list[str], after_section: Callable[[Report], Any] | None = None
) -> Report:
    """Device rows, then each section in turn, then the budget row; a section that raises
    becomes an ERROR row.
    `after_section(report)` runs after each one (main writes the files then, so a run cut off
    by a time limit or a crash still leaves the sections done so far)."""
    report = Report(ctx.settings)
    for name, fn in [("device", section_device)] + [(s, SECTION_FUNCTIONS[s]) for s in sections]:
        log(f"section {name} ...")
        start = time.perf_counter()
        try:
            ctx.maybe_inject(name)
            fn(ctx, report)
        except Exception as exc:  # reported, and the next section still runs
            report.add(error_row(name, "section", exc))
        report.seconds[name] = time.perf_counter() - start
        if after_section is not None:
            after_section(report)
    report.add(budget_row(ctx))
    if after_section is not None:
        after_section(report)
    return report


def parse_args(argv: list[str] | None, doc: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/gpu_check",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for gpu_check.md, gpu_check.json, pytest.log (default: $OUT)",
    )
    parser.add_argument(
        "--only", default=None, help=f"comma-separated sections to run, of {','.join(SECTIONS)}"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="run on the cpu backend with tiny sizes, to test this script",
    )
    parser.add_argument("--skip-tests", action="store_true", help="do not run the test suite")
    parser.add_argument(
        "--pytest-timeout",
        type=float,
        default=None,
        help="seconds the test suite may take (default: what the 8-minute budget leaves "
        "after 3 minutes for the other sections)",
    )
    parser.add_argument("--device", default=None, help="the CUDA device (default cuda)")
    # Hidden: make a section raise, to see it reported instead of crashing (tests use it).
    parser.add_argument("--inject-failure", default=None, choices=SECTIONS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def selected_sections(args: argparse.Namespace) -> list[str]:
    """The sections to run, in SECTIONS order; raises ValueError for an unknown name."""
    wanted = list(SECTIONS) if args.only is None else [s.strip() for s in args.only.split(",")]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in wanted and not (s == "tests" and args.skip_tests)]


def main(argv: list[str] | None = None, doc: str = __doc__) -> int:
    """Run the check; 0 when every judged check passed, 1 when one failed, 2 on bad usage or
    when no GPU is there to check."""
    started = time.perf_counter()
    args = parse_args(argv, doc)
    try:
        sections = selected_sections(args)
    except ValueError as exc:
        print(f"bench/gpu_check: {exc}", file=sys.stderr)
        return 2
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    settings = settings_for(
        mode,
        device=args.device,
        pytest_timeout_s=args.pytest_timeout,
        inject_failure=args.inject_failure,
    )
    out_env = os.environ.get("OUT")
    out_dir = args.out or (Path(out_env) if out_env else None)
    try:
        dev = get_backend(settings.device)
    except BackendUnavailableError as exc:
        print(
            f"bench/gpu_check: no GPU to check: {exc}\n"
            "Run `bench/gpu_check --smoke` to check this script on the CPU.",
            file=sys.stderr,
        )
        return 2
    if dev.device.type != "cuda" and not settings.smoke:
        print(
            f"bench/gpu_check: {dev.device} is no CUDA device; use --smoke on the CPU",
            file=sys.stderr,
        )
        return 2
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(settings, dev, get_backend("cpu"), Clock(dev), out_dir, started)
    report = run(ctx, sections, after_section=lambda r: write_outputs(r, out_dir))
    print(markdown(report), end="")
    written = write_outputs(report, out_dir)
    if written:
        print("wrote: " + ", ".join(str(p) for p in written))
    else:
        print("no files written: give --out DIR or set $OUT")
    return 0 if report.ok else 1
