"""The case report: `report/report.html`, `report.md` and `report.json` from one case's records.

The HTML opens offline: inline CSS, the events-per-hour chart drawn here as inline SVG, no
script, no external asset, links only within the page. It is laid out for a desk and a phone:
one template per section (templates/html/), tables that become labelled cards under 640 px, ids
and paths that wrap only between their parts (`breakable`), checked in Chromium by
tests/handlers/test_report_browser.py. Every value comes from the suspect's disk or an API answer and
is treated as hostile: HTML is rendered with autoescaping on, Markdown through `md_escape`
(Markdown viewers render raw HTML).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import jinja2
import markupsafe
from markupsafe import Markup

from examiner.findings import Finding, Window, order_findings, severity_rank
from examiner.memory import MemoryAnalysis
from examiner.memory_findings import MemoryFinding
from examiner.narrative import MEMORY_STAGE
from examiner.notes import ExaminerNotes
from examiner.timeline import BodyfileEntry, TimelineEvent, timeline_events

TEMPLATES = Path(__file__).parent / "templates"
RECENT_EVENTS = 50
MAX_CHART_HOURS = 14 * 24
CHART_MARGIN = timedelta(hours=12)
MEMORY_ROWS_SHOWN = 50
ANOMALIES_SHOWN = 25
LOG_EVENTS_SHOWN = 100
# Keys a list of records is identified by when flattened for the containment table.
_RECORD_IDS = ("eni_id", "allocation_id", "volume_id", "group_id", "target_group_arn", "id", "arn", "name")
_MD_SPECIAL = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "|": "\\|",
        "`": "\\`",
        "*": "\\*",
        "_": "\\_",
        "[": "\\[",
        "]": "\\]",
        "\\": "\\\\",
        "\n": " ",
        "\r": " ",
    }
)


class StageTime(NamedTuple):
    stage: str
    start: datetime | None
    end: datetime | None
    status: str


@dataclass(frozen=True)
class EvidenceItem:
    key: str
    size: int
    sha256: str
    source: str
    tool: str

    @classmethod
    def from_artefact(cls, artefact: Any) -> EvidenceItem:
        """From `handlers.common.evidence.Artefact` (or a manifest entry dict)."""
        names = ("key", "size", "sha256", "source", "tool")
        if isinstance(artefact, Mapping):
            values = {name: artefact[name] for name in names}
        else:
            values = {name: getattr(artefact, name) for name in names}
        return cls(
            key=str(values["key"]),
            size=int(values["size"]),
            sha256=str(values["sha256"]),
            source=str(values["source"]),
            tool=str(values["tool"]),
        )


@dataclass
class CaseReportInput:
    case_id: str
    instance_id: str
    account: str
    region: str
    trigger: str
    action: str
    stages: Sequence[StageTime | tuple[str, datetime | None, datetime | None, str]] = ()
    containment_before: Mapping[str, Any] | None = None
    containment_after: Mapping[str, Any] | None = None
    evidence: Sequence[EvidenceItem] = ()
    findings: Sequence[Finding] = ()
    timeline: Sequence[BodyfileEntry] = ()
    memory: MemoryAnalysis = field(
        default_factory=lambda: MemoryAnalysis.not_analysed("no memory image was acquired for this case")
    )
    # Parsed Volatility JSON per plugin, for the rows worth reading in the report (bash history, sockets).
    memory_rows: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    memory_findings: Sequence[MemoryFinding] = ()
    notes: Sequence[str] = ()
    incident_window: Window | None = None
    filesystems: Sequence[Mapping[str, Any]] = ()
    generated_at: datetime | None = None
    examiner_notes: ExaminerNotes = field(default_factory=ExaminerNotes)
    tools: Mapping[str, str] = field(default_factory=dict)
    # `handlers.common.verification.Verification.to_dict()` of the case as examined; None: not verified.
    verification: Mapping[str, Any] | None = None
    lineage: Sequence[Mapping[str, Any]] = ()
    contained_at: datetime | None = None
    failure: Mapping[str, Any] | None = None
    # Objects written after this report (the final manifest lists them); named so the table is complete.
    later_objects: Sequence[str] = ()
    # Why acquisition took no (or not every) disk: the manifest's disks_not_acquired, e.g. instance store.
    disks_not_acquired: str = ""


def md_escape(value: Any) -> str:
    return ("" if value is None else str(value)).translate(_MD_SPECIAL)


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@dataclass(frozen=True)
class HourBar:
    hour: datetime
    count: int
    in_window: bool


@dataclass(frozen=True)
class Chart:
    bars: list[HourBar]
    start: datetime | None
    end: datetime | None
    total: int
    outside: int
    svg: str
    svg_narrow: str = ""


def _chart_range(events: Sequence[TimelineEvent], window: Window | None) -> tuple[datetime, datetime]:
    if window:
        start, end = window[0] - CHART_MARGIN, window[1] + CHART_MARGIN
    else:
        end = events[-1].time + timedelta(hours=1)
        start = end - timedelta(hours=48)
    start = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = min(end, start + timedelta(hours=MAX_CHART_HOURS))
    return start, end


def events_per_hour(events: Sequence[TimelineEvent], window: Window | None) -> Chart:
    """Hourly counts around the incident window (or the last 48 hours of activity), as SVG bar charts
    (one for a desk, one with fewer, larger labels for a phone) with the window shaded."""
    if not events:
        return Chart(bars=[], start=None, end=None, total=0, outside=0, svg="")
    start, end = _chart_range(events, window)
    counts = Counter(
        e.time.astimezone(UTC).replace(minute=0, second=0, microsecond=0) for e in events if start <= e.time < end
    )
    hours = max(1, int((end - start).total_seconds() // 3600) + (1 if (end - start).total_seconds() % 3600 else 0))
    bars = []
    for offset in range(hours):
        hour = start + timedelta(hours=offset)
        inside = bool(window and window[0] - timedelta(hours=1) < hour <= window[1])
        bars.append(HourBar(hour=hour, count=counts.get(hour, 0), in_window=inside))
    shown = sum(bar.count for bar in bars)
    chart_end = start + timedelta(hours=hours)
    return Chart(
        bars=bars,
        start=start,
        end=chart_end,
        total=len(events),
        outside=len(events) - shown,
        svg=_svg(bars, window, start, chart_end, width=760, height=200, font=11, labels=7),
        svg_narrow=_svg(bars, window, start, chart_end, width=380, height=220, font=12, labels=3),
    )


def _svg(
    bars: Sequence[HourBar],
    window: Window | None,
    start: datetime,
    end: datetime,
    *,
    width: int,
    height: int,
    font: int,
    labels: int,
) -> str:
    left, right, bottom, top = 8 + font * 3, 10, font * 3 + 10, font + 14
    plot_width, plot_height = width - left - right, height - bottom - top
    peak = max((bar.count for bar in bars), default=0) or 1
    step = plot_width / len(bars)
    span = (end - start).total_seconds()

    def x_of(moment: datetime) -> float:
        return left + plot_width * min(max((moment - start).total_seconds() / span, 0.0), 1.0)

    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="file-system events per hour, UTC" '
        f'class="chart" style="font-size:{font}px">'
    ]
    if window:
        # A path, not a rect: rects are the bars (one per hour).
        x0, x1 = x_of(window[0]), x_of(window[1])
        parts.append(
            f'<path d="M{x0:.2f} {top} H{x1:.2f} V{top + plot_height} H{x0:.2f} Z" class="window-zone">'
            f"<title>incident window {window[0]:%Y-%m-%d %H:%M} to {window[1]:%Y-%m-%d %H:%M} UTC</title></path>"
        )
        parts.append(
            f'<text x="{(x0 + x1) / 2:.2f}" y="{top - 4}" class="label zone" text-anchor="middle">'
            "incident window</text>"
        )
    parts += [
        f'<line x1="{left}" y1="{top + plot_height}" x2="{width - right}" y2="{top + plot_height}" class="axis"/>',
        f'<text x="{left - 4}" y="{top + font}" class="label" text-anchor="end">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_height}" class="label" text-anchor="end">0</text>',
    ]
    for index, bar in enumerate(bars):
        bar_height = plot_height * bar.count / peak
        x = left + index * step
        css = "bar window" if bar.in_window else "bar"
        # The tooltip is SVG's own <title>: no script needed.
        parts.append(
            f'<rect x="{x:.2f}" y="{top + plot_height - bar_height:.2f}" width="{max(step - 1, 0.5):.2f}" '
            f'height="{bar_height:.2f}" class="{css}"><title>{bar.hour:%Y-%m-%d %H:00} UTC: '
            f"{bar.count} events</title></rect>"
        )
    ticks = [start + (end - start) * i / (labels - 1) for i in range(labels)] if labels > 1 else [start]
    for number, moment in enumerate(ticks):
        x = x_of(moment)
        anchor = "start" if number == 0 else "end" if number == len(ticks) - 1 else "middle"
        parts.append(
            f'<line x1="{x:.2f}" y1="{top + plot_height}" x2="{x:.2f}" y2="{top + plot_height + 4}" class="axis"/>'
        )
        parts.append(
            f'<text x="{x:.2f}" y="{top + plot_height + font + 6}" class="label" text-anchor="{anchor}">'
            f"{moment:%m-%d %H:%M}</text>"
        )
    parts.append(f'<text x="{width - right}" y="{height - 4}" class="label" text-anchor="end">time (UTC)</text>')
    parts.append("</svg>")
    return "".join(parts)


def _value_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=1, sort_keys=True, default=str)
    return str(value)


def containment_rows(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """One row per top-level key of either record (security groups per ENI, profile, protections, ...)."""
    before, after = before or {}, after or {}
    keys = list(before) + [k for k in after if k not in before]
    return [
        {
            "key": k,
            "before": _value_text(before.get(k)),
            "after": _value_text(after.get(k)),
            "changed": before.get(k) != after.get(k),
        }
        for k in keys
    ]


def _record_id(item: Mapping[str, Any]) -> str | None:
    return next((str(item[k]) for k in _RECORD_IDS if isinstance(item.get(k), (str, int)) and item.get(k)), None)


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Dotted field paths to display values; lists of records keyed by their id (interfaces[eni-0a].groups)."""
    if isinstance(value, Mapping):
        flat: dict[str, str] = {}
        for key in value:
            flat.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return flat or {prefix: "(none)"}
    if isinstance(value, list) and value and all(isinstance(v, Mapping) and _record_id(v) for v in value):
        flat = {}
        for item in value:
            flat.update(flatten({k: v for k, v in item.items()}, f"{prefix}[{_record_id(item)}]"))
        return flat
    if isinstance(value, list):
        return {prefix: ", ".join(_value_text(v) if not isinstance(v, str) else v for v in value) or "(none)"}
    return {prefix: _value_text(value)}


def containment_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """Only what containment changed, field by field: one row per changed leaf of the two records."""
    old = flatten((before or {}).get("state", before or {}))
    new = flatten((after or {}).get("state", after or {}))
    fields = list(old) + [k for k in new if k not in old]
    return [
        {"field": k, "before": old.get(k, "(absent)"), "after": new.get(k, "(absent)")}
        for k in fields
        if old.get(k) != new.get(k)
    ]


def finding_groups(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    """One group per file: its most severe finding first, every reason it was flagged for."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.filesystem, finding.path), []).append(finding)
    rows = []
    for (filesystem, path), found in groups.items():
        found = sorted(found, key=lambda f: (severity_rank(f.severity), f.category))
        times = [f.time for f in found if f.time]
        rows.append(
            {
                "filesystem": filesystem,
                "path": path,
                "anchor": file_anchor(filesystem, path),
                "severity": found[0].severity,
                "time": min(times) if times else None,
                "reasons": [{"severity": f.severity, "category": f.category, "reason": f.reason} for f in found],
            }
        )
    return sorted(
        rows,
        key=lambda g: (
            severity_rank(g["severity"]),
            -(g["time"].timestamp() if g["time"] else float("-inf")),
            g["path"],
        ),
    )


def file_anchor(filesystem: str, path: str) -> str:
    """A stable, safe HTML id for one file's findings group."""
    import hashlib

    return "f-" + hashlib.sha256(f"{filesystem}{path}".encode("utf-8", "surrogateescape")).hexdigest()[:12]


def duration_text(seconds: float) -> str:
    """'0.99 s', '36 s', '19 min 0 s', '1 h 2 min': a stage that took under a second still shows."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# After '/', '_', ',' and '='; after '-' and ':' unless between digits (dates, times, ports stay whole);
# never after '.', so addresses and file names stay whole.
# Only tokens this long get break opportunities: words of prose stay as written.
_LONG_TOKEN = re.compile(r"[^\s<>]{21,}")
_BREAK_AFTER = re.compile(r"(?<=[/_,=])|(?<=[-:])(?<!\d[-:])|(?<=\d[-:])(?!\d)")


def breakable(text: Any) -> Markup:
    """HTML-escaped text with line-break opportunities between the parts of ids and paths (`_BREAK_AFTER`):
    long ids and paths wrap between their parts, never inside one."""
    escaped = str(markupsafe.escape("" if text is None else str(text)))
    parts = re.split(r"\b([0-9a-f]{40,128})\b", escaped)
    # Even parts are prose or ids (break after separators); odd parts are digests, kept whole and set
    # in the digest style (smaller monospace) so a 64-digit sha256 fits a phone's width unbroken.
    return Markup(
        "".join(
            f'<span class="mono digest">{part}</span>' if index % 2 else _LONG_TOKEN.sub(_break_token, part)
            for index, part in enumerate(parts)
        )
    )


def _break_token(match: re.Match[str]) -> str:
    return _BREAK_AFTER.sub("<wbr>", match.group(0))


def disk_status(case: CaseReportInput) -> dict[str, Any]:
    """Which disks were examined, or, plainly, that none was and why (an instance without EBS volumes)."""
    volumes = list(dict.fromkeys(str(fs.get("volume_id", "")) for fs in case.filesystems if fs.get("volume_id")))
    if volumes:
        summary = f"{len(volumes)} disk image{'s' if len(volumes) != 1 else ''} examined: {', '.join(volumes)}"
        if case.disks_not_acquired:
            summary += f"; not acquired: {case.disks_not_acquired}"
        return {"examined": True, "volumes": volumes, "summary": summary, "sentence": _sentence(summary)}
    why = case.disks_not_acquired or "the case holds no disk image"
    summary = f"no disk was examined: there was no disk to examine ({why})"
    if case.memory.analysed:
        summary += "; this examination is of the instance's memory alone"
    return {"examined": False, "volumes": [], "summary": summary, "sentence": _sentence(summary)}


def _sentence(text: str) -> str:
    # Not str.capitalize: it would lower-case the ids and paths in the rest of the text.
    return text[:1].upper() + text[1:] + "."


def _outcome(case: CaseReportInput, findings: Sequence[Finding]) -> dict[str, Any]:
    contained = (case.containment_after is not None and case.action.lower() == "contain") or bool(case.contained_at)
    failed = bool(case.failure)
    if failed:
        failure = case.failure or {}
        result = f"response FAILED at {failure.get('stage', '?')}: {failure.get('error', '')}"
    elif not disk_status(case)["examined"] and case.memory.analysed:
        result = "response succeeded: evidence acquired and examined (memory only: the instance had no disk to acquire)"
    elif not disk_status(case)["examined"]:
        result = "response succeeded: evidence acquired; no disk to examine and memory not analysed"
    else:
        result = "response succeeded: evidence acquired and examined"
    if contained:
        state = f"Contained at {_iso(case.contained_at)}" if case.contained_at else "Contained"
    elif case.action.lower() == "analyze":
        state = "Not contained (Analyze: protected, still serving)"
    else:
        state = "Not contained"
    steps = []
    release = f"irf release {case.instance_id} --case {case.case_id} --account {case.account} --region {case.region}"
    respond = f"irf respond {case.instance_id} --account {case.account} --region {case.region} --action contain"
    if contained:
        steps.append({"why": "when the investigation no longer needs the instance isolated", "command": release})
    elif findings and severity_rank(findings[0].severity) <= severity_rank("high"):
        steps.append({"why": "the findings show a compromise: isolate the instance", "command": respond})
    steps.append(
        {"why": "check every artefact, the custody chain and the signature", "command": f"irf verify {case.case_id}"}
    )
    return {"state": state, "result": result, "failed": failed, "contained": contained, "next": steps}


def _stage_rows(stages: Sequence[StageTime]) -> list[dict[str, Any]]:
    rows = []
    for s in stages:
        duration = (s.end - s.start).total_seconds() if s.start and s.end else None
        rows.append(
            {
                "stage": s.stage,
                "start": _iso(s.start),
                "end": _iso(s.end),
                "status": s.status,
                "duration": duration_text(duration) if duration is not None else "",
                "seconds": duration,
            }
        )
    return rows


def _filesystem_rows(case: CaseReportInput) -> list[dict[str, Any]]:
    rows = []
    facts = case.examiner_notes.filesystems
    for fs in case.filesystems:
        fact = facts.get(str(fs.get("prefix", "")))
        rows.append(
            {
                **fs,
                "size_bytes": fact.size_bytes if fact else None,
                "created": _iso(fact.created) if fact and fact.created else "",
                "created_source": fact.created_source if fact else "",
            }
        )
    return rows


def _relative_key(case_id: str, key: str) -> str:
    return key[len(case_id) + 1 :] if key.startswith(case_id + "/") else key


def _memory_tables(rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    tables = []
    for plugin, plugin_rows in rows.items():
        flat = [{k: v for k, v in row.items() if k != "__children"} for row in plugin_rows][:MEMORY_ROWS_SHOWN]
        columns: list[str] = []
        for row in flat:
            columns.extend(k for k in row if k not in columns)
        tables.append(
            {
                "plugin": plugin,
                "columns": columns,
                "total": len(plugin_rows),
                "rows": [[_value_text(row.get(c)) for c in columns] for row in flat],
            }
        )
    return tables


def _context(case: CaseReportInput) -> dict[str, Any]:
    events = timeline_events(case.timeline)
    chart = events_per_hour(events, case.incident_window)
    stages = [StageTime(*stage) for stage in case.stages]
    findings = order_findings(case.findings)
    generated = case.generated_at or datetime.now(UTC)
    notes = case.examiner_notes
    anomaly_counts = notes.anomaly_counts()
    return {
        "case": case,
        "generated_at": _iso(generated),
        "iso": _iso,
        "size": _size,
        "rel": lambda key: _relative_key(case.case_id, key),
        "outcome": _outcome(case, findings),
        "stages": _stage_rows(stages),
        "window": [_iso(m) for m in case.incident_window] if case.incident_window else None,
        "containment": containment_rows(case.containment_before, case.containment_after),
        "changes": containment_changes(case.containment_before, case.containment_after),
        "findings": findings,
        "groups": finding_groups(findings),
        "severity_counts": Counter(f.severity for f in findings),
        "chart": chart,
        "recent": list(reversed(events))[:RECENT_EVENTS],
        "memory_tables": _memory_tables(case.memory_rows),
        "notes": notes,
        "narrative": notes.narrative,
        "anchors": {f"{g['filesystem']}{g['path']}": g["anchor"] for g in finding_groups(findings)},
        "indicators": notes.indicators,
        "observations": notes.observations,
        "anomaly_counts": anomaly_counts,
        "anomalies": notes.anomalies[:ANOMALIES_SHOWN],
        "log_events": notes.log_events[:LOG_EVENTS_SHOWN],
        "filesystems": _filesystem_rows(case),
        "disk": disk_status(case),
        "memory_stage": MEMORY_STAGE,
        "verification": case.verification,
        "lineage": case.lineage,
    }


def _report_json(case: CaseReportInput, context: dict[str, Any]) -> str:
    chart: Chart = context["chart"]
    notes: ExaminerNotes = context["notes"]
    document = {
        "case_id": case.case_id,
        "instance_id": case.instance_id,
        "account": case.account,
        "region": case.region,
        "trigger": case.trigger,
        "action": case.action,
        "generated_at": context["generated_at"],
        "outcome": context["outcome"],
        "incident_window": [m.isoformat() for m in case.incident_window] if case.incident_window else None,
        "stages": [
            {
                "stage": s.stage,
                "start": s.start.isoformat() if s.start else None,
                "end": s.end.isoformat() if s.end else None,
                "status": s.status,
            }
            for s in (StageTime(*stage) for stage in case.stages)
        ],
        "containment": {"before": case.containment_before, "after": case.containment_after},
        "containment_changes": context["changes"],
        "evidence": [vars(item) for item in case.evidence],
        "evidence_after_this_report": list(case.later_objects),
        "lineage": list(case.lineage),
        "verification": case.verification,
        "filesystems": [{k: v for k, v in row.items()} for row in context["filesystems"]],
        "disk": context["disk"],
        "tools": dict(case.tools),
        "findings": [f.to_dict() for f in context["findings"]],
        "narrative": [step.to_dict() for step in notes.narrative],
        "indicators": [i.to_dict() for i in notes.indicators],
        "anti_forensics": [o.to_dict() for o in notes.observations],
        "timestamp_anomalies": {"counts": context["anomaly_counts"], "entries_checked": notes.entries_checked},
        "memory": case.memory.to_dict(),
        "memory_findings": [f.to_dict() for f in case.memory_findings],
        "timeline": {
            "events": chart.total,
            "events_outside_chart": chart.outside,
            "chart_start": chart.start.isoformat() if chart.start else None,
            "chart_end": chart.end.isoformat() if chart.end else None,
            "events_per_hour": [
                {"hour": bar.hour.isoformat(), "count": bar.count, "in_incident_window": bar.in_window}
                for bar in chart.bars
            ],
            "recent_events": [event.to_dict() for event in context["recent"]],
            "log_events": [event.to_dict() for event in notes.log_events],
        },
        "notes": list(case.notes),
    }
    return json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["md"] = md_escape
    environment.filters["br"] = breakable
    return environment


def render_report(case: CaseReportInput) -> dict[str, bytes]:
    """{'report.html', 'report.md', 'report.json'} -> UTF-8 bytes, ready for `report/` of the case."""
    context = _context(case)
    environment = _environment()
    return {
        "report.html": environment.get_template("report.html.j2").render(**context).encode(),
        "report.md": environment.get_template("report.md.j2").render(**context).encode(),
        "report.json": _report_json(case, context).encode(),
    }
