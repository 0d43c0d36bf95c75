from __future__ import annotations

from datetime import UTC, datetime, timedelta

from examiner.findings import WINDOW_RULES, Finding, find_suspicious, order_findings, skipped_rules
from examiner.timeline import BodyfileEntry
from examiner.yarascan import StringMatch, YaraHit

INCIDENT = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
WINDOW = (INCIDENT - timedelta(hours=1), INCIDENT + timedelta(hours=6))
OLD = int((INCIDENT - timedelta(days=200)).timestamp())
FS = "/vol-0abc/p1"


def at(minutes: int) -> int:
    return int((INCIDENT + timedelta(minutes=minutes)).timestamp())


def entry(
    path: str,
    mode: str = "r/rrw-r--r--",
    *,
    m: int = OLD,
    a: int = OLD,
    c: int | None = None,
    b: int | None = None,
    deleted: bool = False,
) -> BodyfileEntry:
    return BodyfileEntry(
        md5="0",
        name=FS + path + (" (deleted)" if deleted else ""),
        inode="12",
        mode=mode,
        uid=0,
        gid=0,
        size=10,
        atime=a,
        mtime=m,
        ctime=m if c is None else c,
        crtime=m if b is None else b,
    )


def by_category(findings: list[Finding]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for finding in findings:
        found.setdefault(finding.category, set()).add(finding.path)
    return found


def test_each_kind_of_planted_evidence_becomes_a_finding() -> None:
    entries = [
        entry("/var/www/html/uploads/.cache.php", m=at(2)),
        entry("/etc/cron.d/sysupdate", m=at(5)),
        entry("/root/.ssh/authorized_keys", "r/rrw-------", m=at(6), b=OLD),
        entry("/tmp/.X11-unix/kworkerd", "r/rrwsr-xr-x", m=at(7)),
        entry("/var/spool/cron/crontabs/www-data", m=at(8)),
        entry("/dev/shm/payload", m=OLD),
    ]
    found = by_category(find_suspicious(entries, [], WINDOW))
    assert found == {
        "web-root": {"/var/www/html/uploads/.cache.php"},
        "cron": {"/etc/cron.d/sysupdate", "/var/spool/cron/crontabs/www-data"},
        "authorized-keys": {"/root/.ssh/authorized_keys"},
        "setuid": {"/tmp/.X11-unix/kworkerd"},
        "temp-dir": {"/tmp/.X11-unix/kworkerd", "/dev/shm/payload"},
        "hidden-executable": {"/tmp/.X11-unix/kworkerd"},
    }


def test_the_reason_says_whether_a_cron_entry_is_new_or_changed() -> None:
    findings = find_suspicious(
        [entry("/etc/cron.d/sysupdate", m=at(5)), entry("/etc/crontab", m=at(9), b=OLD)], [], WINDOW
    )
    reasons = {f.path: f.reason for f in findings}
    assert reasons == {
        "/etc/cron.d/sysupdate": "new cron entry during the incident window",
        "/etc/crontab": "cron entry changed during the incident window",
    }


def test_files_untouched_during_the_window_are_not_findings() -> None:
    entries = [
        entry("/etc/crontab"),
        entry("/var/www/html/index.html", a=at(1)),
        entry("/root/.ssh/authorized_keys"),
        entry("/usr/bin/passwd", "r/rrwsr-xr-x"),
        entry("/etc/cron.d", "d/drwxr-xr-x", m=at(5)),
    ]
    assert find_suspicious(entries, [], WINDOW) == []


def test_window_rules_are_not_applied_without_an_incident_window() -> None:
    entries = [
        entry("/var/www/html/uploads/.cache.php", m=at(2)),
        entry("/etc/cron.d/sysupdate", m=at(5)),
        entry("/tmp/.X11-unix/kworkerd", "r/rrwsr-xr-x", m=at(7)),
    ]
    assert by_category(find_suspicious(entries, [], None)) == {
        "temp-dir": {"/tmp/.X11-unix/kworkerd"},
        "hidden-executable": {"/tmp/.X11-unix/kworkerd"},
    }
    assert skipped_rules(None) == list(WINDOW_RULES)
    assert skipped_rules(WINDOW) == []


def test_a_deleted_dropper_in_tmp_is_still_a_finding_and_says_deleted() -> None:
    [finding] = find_suspicious([entry("/tmp/dropper", "r/rrwxr-xr-x", deleted=True)], [], None)
    assert (finding.category, finding.severity, finding.path) == ("temp-dir", "high", "/tmp/dropper")
    assert "deleted" in finding.reason


def test_an_sgid_file_changed_in_the_window_is_critical() -> None:
    [finding] = find_suspicious([entry("/usr/local/bin/helper", "r/rrwxr-sr-x", m=OLD, c=at(3), b=OLD)], [], WINDOW)
    assert (finding.category, finding.severity, finding.time) == ("setuid", "critical", INCIDENT + timedelta(minutes=3))
    assert finding.reason == "SGID file changed during the incident window"


def test_yara_hits_use_the_rule_severity_and_description() -> None:
    hit = YaraHit(
        rule="cron_download_and_execute",
        path="/etc/cron.d/sysupdate",
        filesystem=FS,
        tags=["persistence"],
        meta={"severity": "critical", "description": "downloads and runs"},
        strings=[StringMatch(offset=40, identifier="$pipe_sh")],
    )
    findings = find_suspicious([entry("/etc/cron.d/sysupdate", m=at(5))], [hit], None)
    [yara] = [f for f in findings if f.category == "yara"]
    assert yara.severity == "critical"
    assert yara.reason == "YARA rule cron_download_and_execute matched: downloads and runs"
    assert yara.time == INCIDENT + timedelta(minutes=5)


def test_findings_are_ordered_most_severe_first_then_most_recent() -> None:
    findings = [
        Finding("medium", "temp-dir", FS, "/tmp/a", "r", INCIDENT),
        Finding("high", "cron", FS, "/etc/cron.d/x", "r", INCIDENT),
        Finding("critical", "setuid", FS, "/tmp/b", "r", INCIDENT - timedelta(hours=1)),
        Finding("high", "web-root", FS, "/var/www/html/x.php", "r", INCIDENT + timedelta(minutes=1)),
        Finding("high", "yara", FS, "/var/www/html/y.php", "r", None),
    ]
    assert [f.path for f in order_findings(findings)] == [
        "/tmp/b",
        "/var/www/html/x.php",
        "/etc/cron.d/x",
        "/var/www/html/y.php",
        "/tmp/a",
    ]


def test_a_finding_round_trips_through_its_json_form() -> None:
    finding = Finding("high", "cron", FS, "/etc/cron.d/x", "new cron entry", INCIDENT)
    assert Finding.from_dict(finding.to_dict()) == finding
    assert Finding.from_dict({**finding.to_dict(), "time": None}).time is None
