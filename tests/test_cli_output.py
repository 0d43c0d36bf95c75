"""What the console prints: the simulation's summary, the offline report check, the Lambdas' output kept off it."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sys
import threading
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from irf import cli
from simulation.console_logs import lambda_output_to
from simulation.simulate import SimulationResult, Stage

CASE = "333333333333-i-0abc12345def67890-eu-west-1-1796409772"


def _summary(result: SimulationResult, width: int = 100) -> str:
    buffer = io.StringIO()
    saved = cli.console
    cli.console = Console(file=buffer, width=width, color_system=None)
    try:
        cli._print_simulation_summary(result, 12.0)
    finally:
        cli.console = saved
    return buffer.getvalue()


def _result(tmp_path: Path, findings: int) -> SimulationResult:
    artefacts = [
        {"key": f"{CASE}/disk/vol-1.img", "size": 1024**3, "sha256": "a" * 64},
        {"key": f"{CASE}/memory/i-0abc12345def67890.lime", "size": 8 * 1024**2 + 64, "sha256": "b" * 64},
        {"key": f"{CASE}/containment/after.json", "size": 2200, "sha256": "c" * 64},
        {"key": f"{CASE}/analysis/timeline.csv", "size": 10, "sha256": "d" * 64},
        {"key": f"{CASE}/report/report.html", "size": 10, "sha256": "e" * 64},
    ]
    return SimulationResult(
        case_id=CASE,
        case_dir=tmp_path / CASE,
        action="Contain",
        status="SUCCEEDED",
        stages=[Stage("deploy", 1.0)],
        containment={
            "state": {
                "interfaces": [{"eni_id": "eni-1", "groups": ["sg-deny"]}],
                "profile": {"profile_arn": "arn:aws:iam::333333333333:instance-profile/acme-ir-isolation"},
                "shutdown_behavior": "stop",
                "auto_scaling": None,
                "disable_api_termination": True,
            }
        },
        artefacts=artefacts,
        findings=[{"severity": "high", "path": f"/tmp/f{n}", "reason": "planted"} for n in range(findings)],
        report=tmp_path / CASE / "report" / "report.html",
        instance_id="i-0abc12345def67890",
        trigger="guardduty",
        finding="GuardDuty Backdoor:EC2/C&CActivity.B severity 8 finding f-1",
    )


def test_the_summary_says_how_many_findings_and_artefacts_it_leaves_out(tmp_path: Path) -> None:
    text = _summary(_result(tmp_path, findings=13))
    assert "/tmp/f11" in text and "/tmp/f12" not in text
    assert "and 1 more: the report lists all 13" in text
    assert "and 2 more artefacts" in text
    shown = _summary(_result(tmp_path, findings=12))
    assert "more: the report" not in shown and "/tmp/f11" in shown


def test_the_summary_shows_the_memory_image_sizes_for_people_and_protections_in_words(tmp_path: Path) -> None:
    text = _summary(_result(tmp_path, findings=1))
    assert "memory/i-0abc12345def67890.lime" in text
    assert "1.0 GiB" in text and "8.0 MiB" in text and "2.1 KiB" in text
    assert (
        "termination protection │ on" in " ".join(text.split(" "))
        or "on" in text.split("termination protection")[1][:12]
    )
    assert "True" not in text
    assert "started by: guardduty (GuardDuty Backdoor:EC2/C&CActivity.B severity 8 finding f-1)" in text


def test_no_summary_line_is_wider_than_the_terminal(tmp_path: Path) -> None:
    result = _result(tmp_path, findings=13)
    result.findings[0]["reason"] = "a very long reason " * 20
    for width in (60, 80, 120):
        assert max(len(line) for line in _summary(result, width).splitlines()) <= width


def _case_folder(tmp_path: Path) -> Path:
    case_dir = tmp_path / CASE
    (case_dir / "report").mkdir(parents=True)
    artefacts = []
    for name, body in (("report.html", b"<html>report</html>"), ("report.md", b"# report"), ("report.json", b"{}")):
        (case_dir / "report" / name).write_bytes(body)
        artefacts.append({"key": f"{CASE}/report/{name}", "sha256": hashlib.sha256(body).hexdigest()})
    (case_dir / "manifest.json").write_text(json.dumps({"artefacts": artefacts}))
    return case_dir


def test_report_of_a_downloaded_case_folder_checks_it_offline(tmp_path: Path) -> None:
    case_dir = _case_folder(tmp_path)
    opened: list[str] = []
    saved = cli.open_report
    cli.open_report = opened.append
    try:
        result = CliRunner(env={"COLUMNS": "200"}).invoke(cli.app, ["report", str(case_dir), "--open"])
    finally:
        cli.open_report = saved
    assert result.exit_code == 0, result.output
    assert result.stdout.count("matches recorded") == 3
    assert opened == [(case_dir / "report" / "report.html").resolve().as_uri()]


def test_report_of_a_folder_whose_report_differs_from_its_manifest_exits_1(tmp_path: Path) -> None:
    case_dir = _case_folder(tmp_path)
    (case_dir / "report" / "report.md").write_bytes(b"# altered")
    result = CliRunner().invoke(cli.app, ["report", str(case_dir)])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"irf: {case_dir / 'report' / 'report.md'} hashes to ") and "; " in line


def test_verbose_log_lines_are_one_readable_line() -> None:
    line = json.dumps(
        {
            "level": "INFO",
            "location": "snapshot_volumes:101",
            "message": "snapshot set taken",
            "timestamp": "2026-12-04 18:43:01,329+0000",
            "service": "irforensics",
            "case_id": "c-1",
        }
    )
    assert cli._brief_log(line) == "log INFO irforensics: snapshot set taken case_id=c-1"
    assert cli._brief_log("not json") == "log: not json"


def test_lambda_output_goes_to_the_sink_and_the_main_threads_stays(capsys: object) -> None:
    captured: list[str] = []
    logger = logging.getLogger("irforensics-console-test")
    handler = logging.StreamHandler(sys.stdout)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with lambda_output_to(captured.append):
            print("the console's own line")

            def handler_thread() -> None:
                print('{"level":"INFO","message":"from a handler"}')
                logger.info("x")

            worker = threading.Thread(target=handler_thread)
            worker.start()
            worker.join()
    finally:
        logger.removeHandler(handler)
    assert captured == ['{"level":"INFO","message":"from a handler"}', "x"]
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "the console's own line" in out and "from a handler" not in out
