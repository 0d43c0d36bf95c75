"""The case report: `report/report.html`, `report.md` and `report.json` from one case's records.

The HTML opens offline: inline CSS, the events-per-hour chart drawn here as inline SVG, no
script, no external asset. Every value comes from the suspect's disk or an API answer and
is treated as hostile: HTML is rendered with autoescaping on, Markdown through `md_escape`
(Markdown viewers render raw HTML).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import jinja2

from examiner.findings import Finding, Window, order_findings
from examiner.memory import MemoryAnalysis
from examiner.memory_findings import MemoryFinding
from examiner.timeline import BodyfileEntry, TimelineEvent, timeline_events

TEMPLATES = Path(__file__).parent / "templates"
RECENT_EVENTS = 50
MAX_CHART_HOURS = 14 * 24
CHART_MARGIN = timedelta(hours=12)
MEMORY_ROWS_SHOWN = 50
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
    """Hourly counts around the incident window (or the last 48 hours of activity), as an SVG bar chart."""
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
    return Chart(
        bars=bars,
        start=start,
        end=start + timedelta(hours=hours),
        total=len(events),
        outside=len(events) - shown,
        svg=_svg(bars),
    )


def _svg(bars: Sequence[HourBar]) -> str:
    width, height, left, bottom, top = 760, 180, 36, 24, 10
    plot_width, plot_height = width - left - 6, height - bottom - top
    peak = max((bar.count for bar in bars), default=0) or 1
    step = plot_width / len(bars)
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="file-system events per hour" class="chart">',
        f'<line x1="{left}" y1="{top + plot_height}" x2="{width - 6}" y2="{top + plot_height}" class="axis"/>',
        f'<text x="{left - 4}" y="{top + 8}" class="label" text-anchor="end">{peak}</text>',
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
    label_every = max(1, len(bars) // 6)
    for index in range(0, len(bars), label_every):
        x = left + index * step
        parts.append(f'<text x="{x:.2f}" y="{height - 6}" class="label">{bars[index].hour:%m-%d %H:00}</text>')
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
    return {
        "case": case,
        "generated_at": _iso(generated),
        "iso": _iso,
        "size": _size,
        "stages": [
            {
                "stage": s.stage,
                "start": _iso(s.start),
                "end": _iso(s.end),
                "status": s.status,
                "duration": str(s.end - s.start).split(".")[0] if s.start and s.end else "",
            }
            for s in stages
        ],
        "window": [_iso(m) for m in case.incident_window] if case.incident_window else None,
        "containment": containment_rows(case.containment_before, case.containment_after),
        "findings": findings,
        "severity_counts": Counter(f.severity for f in findings),
        "chart": chart,
        "recent": list(reversed(events))[:RECENT_EVENTS],
        "memory_tables": _memory_tables(case.memory_rows),
    }


def _report_json(case: CaseReportInput, context: dict[str, Any]) -> str:
    chart: Chart = context["chart"]
    document = {
        "case_id": case.case_id,
        "instance_id": case.instance_id,
        "account": case.account,
        "region": case.region,
        "trigger": case.trigger,
        "action": case.action,
        "generated_at": context["generated_at"],
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
        "evidence": [vars(item) for item in case.evidence],
        "filesystems": list(case.filesystems),
        "findings": [f.to_dict() for f in context["findings"]],
        "memory": case.memory.to_dict(),
        "memory_findings": [f.to_dict() for f in case.memory_findings],
        "timeline": {
            "events": chart.total,
            "events_outside_chart": chart.outside,
            "events_per_hour": [
                {"hour": bar.hour.isoformat(), "count": bar.count, "in_incident_window": bar.in_window}
                for bar in chart.bars
            ],
            "recent_events": [event.to_dict() for event in context["recent"]],
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
