"""The results as a markdown table (printed and written) and as JSON with every detail."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .core import ERROR, FAIL, PASS, Report


def _cell(text: Any) -> str:
    """A markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown(report: Report) -> str:
    """The table, then the verdict and where the time went."""
    lines = [
        f"# gpu_check ({report.settings.mode} mode, device {report.settings.device})",
        "",
        "| section | check | result | bar | status |",
        "|---|---|---|---|---|",
    ]
    for r in report.rows:
        cells = (r.section, r.check, r.result, r.bar, r.status)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append("")
    judged = [r for r in report.rows if r.status in (PASS, FAIL, ERROR)]
    if report.ok:
        lines.append(f"**PASS**: all {len(judged)} judged checks passed.")
    else:
        names = ", ".join(f"{r.section}/{r.check}" for r in report.failures)
        lines.append(f"**FAIL**: {len(report.failures)} of {len(judged)} judged checks: {names}")
    took = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    lines.append(f"Time: {took}.")
    return "\n".join(lines) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (np.dtype, Path)):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def report_json(report: Report) -> str:
    data = {
        "settings": asdict(report.settings),
        "info": report.info,
        "passed": report.ok,
        "seconds": report.seconds,
        "sections": sorted({r.section for r in report.rows}),
        "rows": [asdict(r) for r in report.rows],
    }
    return json.dumps(data, indent=2, default=_json_default)


def write_outputs(report: Report, out_dir: Path | None) -> list[Path]:
    """Write the table and JSON into out_dir (the pytest log is already there)."""
    if out_dir is None:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "gpu_check.md", out_dir / "gpu_check.json"
    md.write_text(markdown(report))
    js.write_text(report_json(report))
    return [md, js] + [
        p for p in (out_dir / "pytest.log", out_dir / "pytest-junit.xml") if p.exists()
    ]
