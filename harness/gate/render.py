"""The gate's reports: text, Markdown (job summaries, PR comments), JUnit XML and JSON."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from harness.errors import HarnessError
from harness.gate.decide import GateResult

FORMATS = ("text", "markdown", "junit", "json")


def render(result: GateResult, format: str = "text") -> str:
    """The result as `text`, `markdown` (a table for a PR comment or job summary), `junit` (XML) or `json`."""
    if format == "text":
        return _render_text(result)
    if format == "markdown":
        return _render_markdown(result)
    if format == "junit":
        return _render_junit(result)
    if format == "json":
        return json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n"
    raise HarnessError(f"unknown report format {format!r}", hint=f"choose one of {', '.join(FORMATS)}")


def _describe_run(run: dict[str, Any]) -> str:
    who = "/".join(str(run[k]) for k in ("submission", "variant") if run.get(k))
    return f"run {run['run_id']}" + (f" ({who})" if who else "")


def _context_line(result: GateResult) -> str:
    base = result.baseline
    board = f"{base['track']} v{base['track_version']}"
    if base.get("dataset"):
        digest = f" @ {str(base['dataset_hash'])[:12]}" if base.get("dataset_hash") else ""
        board += f" · {base['dataset']}{digest}"
    if base.get("profile"):
        board += f" · {base['profile']} profile"
    board += f" · {base.get('ranked_latency') or 'device'} latency"
    return (
        f"{board} on {base['hardware_class']}: "
        f"baseline {_describe_run(base)}, candidate {_describe_run(result.candidate)}"
    )


def _format_value(value: Any, unit: str | None) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "–" if value is None else str(value)
    return f"{value:.3f} ms" if unit == "ms" else f"{value:.4f}"


def _format_change(values: dict[str, Any]) -> str:
    pct = values.get("change_pct")
    if "change" in values:
        text = f"{values['change']:+.4f}"
        return text + (f" ({pct:+.2f} %)" if pct is not None else "")
    return "–" if pct is None else f"{pct:+.2f} %"


def _format_ci(values: dict[str, Any]) -> str:
    if "ci_low" not in values:
        return "–"
    low, high = values["ci_low"], values["ci_high"]
    low_text = f"{100 * (low - 1):+.2f} %" if low > 0 else "-inf"
    high_text = f"{100 * (high - 1):+.2f} %" if math.isfinite(high) else "+inf"
    return f"{low_text} … {high_text}"


_MARKS = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "⚠️ inconclusive"}


def _render_text(result: GateResult) -> str:
    lines = [f"harness gate: {result.status.upper()} (exit {result.exit_code})", _context_line(result)]
    lines += [f"note: {note}" for note in result.notes]
    for check in result.checks:
        lines.append(f"[{check.status}] {check.name}: {check.detail}")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _render_markdown(result: GateResult) -> str:
    level = f"{100 * result.settings['confidence']:g} % CI"
    lines = [
        f"### harness gate: {_MARKS[result.status]} (exit {result.exit_code})",
        "",
        _cell(_context_line(result)) + ".",
        f"Thresholds: primary metric may drop by at most {result.settings['max_metric_drop']:g}; "
        f"latency may grow by at most {100 * result.settings['max_latency_increase']:g} % "
        f"({level}, {result.settings['method']}).",
        "",
    ]
    lines += [f"> **Note:** {_cell(note)}" for note in result.notes]
    if result.notes:
        lines.append("")
    lines += [
        f"| check | baseline | candidate | change | {level} | verdict |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for check in result.checks:
        unit = check.values.get("unit")
        cells = [
            check.name,
            _format_value(check.values.get("baseline"), unit),
            _format_value(check.values.get("candidate"), unit),
            _format_change(check.values),
            _format_ci(check.values),
            _MARKS[check.status],
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append("")
    lines += [f"- **{_cell(check.name)}**: {_cell(check.detail)}" for check in result.checks]
    return "\n".join(lines) + "\n"


def _render_junit(result: GateResult) -> str:
    failures = sum(check.status == "fail" for check in result.checks)
    skipped = sum(check.status == "inconclusive" for check in result.checks)
    suites = ET.Element(
        "testsuites", name="harness gate", tests=str(len(result.checks)), failures=str(failures), errors="0"
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="harness gate",
        tests=str(len(result.checks)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time="0",
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    properties = ET.SubElement(suite, "properties")
    for side, run in (("baseline", result.baseline), ("candidate", result.candidate)):
        for key, value in run.items():
            if value is not None:
                ET.SubElement(properties, "property", name=f"{side}.{key}", value=str(value))
    for key, value in result.settings.items():
        ET.SubElement(properties, "property", name=f"setting.{key}", value=str(value))
    for note in result.notes:
        ET.SubElement(properties, "property", name="note", value=note)
    for check in result.checks:
        case = ET.SubElement(suite, "testcase", classname="harness.gate", name=check.name, time="0")
        if check.status == "fail":
            failure = ET.SubElement(case, "failure", message=check.detail, type="regression")
            failure.text = check.detail
        elif check.status == "inconclusive":
            ET.SubElement(case, "skipped", message=check.detail)
        else:
            ET.SubElement(case, "system-out").text = check.detail
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
