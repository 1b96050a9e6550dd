"""`karmactl doctor` on the session index: skipped lines, a damaged file, and what the
indexer's state and lag say (the last from real status values, as the indexer reports
them: a backlog that stays behind for a minute cannot be produced on demand)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from karmad import protocol
from karmad.checks.index import error_findings, lag_findings, state_findings
from tests.support.daemon import Home, KarmadProcess
from tests.support.doctor import by_name, doctor, doctor_until, healthy_home, service_running
from tests.support.stubs import ServiceStubs
from tests.support.syncthing import wait_until
from tests.support.transcripts import assistant, line, user


@pytest.fixture
def stubs(tmp_path: Path) -> Iterator[ServiceStubs]:
    s = ServiceStubs(tmp_path / "stubs")
    yield s
    s.cleanup()


def test_a_skipped_line_is_reported(
    karmad_factory: Callable[..., KarmadProcess], home: Home, stubs: ServiceStubs
) -> None:
    transcript = (
        home.claude / "projects" / "-work-app" / "c0ffee00-0000-4000-8000-000000000001.jsonl"
    )
    transcript.parent.mkdir(parents=True)
    transcript.write_bytes(
        line(user("hello", session="c0ffee00"))
        + b'{"type": "assistant", "message": {"content": "cut off\n'
        + line(assistant("msg_1", "req_1", session="c0ffee00", output=5, stop="end_turn"))
    )
    karmad = karmad_factory(home=healthy_home(home))
    service_running(stubs, karmad.pid)
    wait_until(lambda: karmad.call("index.status")["bad_lines"] == 1, 30)
    code, checks = doctor_until(home, stubs, lambda c: c["index.errors"]["status"] != "pass")
    assert code == 0  # a warning
    errors = checks["index.errors"]
    assert errors["status"] == "warn"
    assert errors["message"].startswith("1 transcript line(s) could not be read")
    assert "karmactl index status" in errors["fix"]
    assert "karmactl sessions show" in errors["fix"]
    assert checks["index.state"]["status"] == "pass"
    assert "1 sessions in 1 files" in checks["index.state"]["message"]


def corrupt_index(path: Path) -> None:
    """Fill the meta table over several pages, then overwrite one of them with noise."""
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO meta(key, value) VALUES (?, ?)",
        [(f"k{i:05d}", "v" * 200) for i in range(400)],
    )
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    with path.open("r+b") as f:
        f.seek(page_size * (pages - 3))
        f.write(os.urandom(page_size))


def test_a_damaged_index(
    karmad_factory: Callable[..., KarmadProcess], home: Home, stubs: ServiceStubs
) -> None:
    karmad = karmad_factory(home=healthy_home(home))
    service_running(stubs, karmad.pid)
    code, report = doctor(home, stubs)
    assert by_name(report)["index.integrity"]["status"] == "pass"
    karmad.stop()
    corrupt_index(home.state / "index.db")
    karmad = karmad_factory(home=home)  # the damage is in a page start-up never reads
    service_running(stubs, karmad.pid)
    code, report = doctor(home, stubs)
    assert code == 1
    check = by_name(report)["index.integrity"]
    assert check["status"] == "fail"
    assert "index.db is damaged" in check["message"]
    assert "it is rebuilt at start" in check["fix"]
    assert ".recover" not in check["fix"]  # derived data: rebuilt, never recovered


# --------------------------------------------------------------------------- from status values


def status(**fields: object) -> protocol.IndexStatus:
    return protocol.IndexStatus(**{"state": "idle", "watching": True, **fields})  # type: ignore[arg-type]


def test_index_state() -> None:
    [failed] = state_findings(status(state="error", error="disk I/O error"))
    assert failed.status == "fail"
    assert "disk I/O error" in failed.message
    assert "karmactl index rebuild" in failed.fix
    [off] = state_findings(status(state="disabled", enabled=False))
    assert (off.status, off.message) == (
        "pass",
        "the session index is turned off (index.enabled = false)",
    )
    assert lag_findings(status(state="disabled", enabled=False), 0) == []
    assert error_findings(status(state="disabled", enabled=False)) == []
    [idle] = state_findings(status(sessions=3, files=4, watching=False))
    assert idle.message == "idle, not following changes: 3 sessions in 4 files"


def test_index_lag() -> None:
    [current] = lag_findings(status(), 0)
    assert (current.status, current.message) == ("pass", "up to date")
    [queued] = lag_findings(status(lag_s=2.0), 7)
    assert (queued.status, queued.message) == (
        "pass",
        "7 changed transcript(s) queued, none for long",
    )
    progress = protocol.IndexProgress(
        phase="scan",
        files_done=40,
        files_total=100,
        bytes_done=1,
        bytes_total=4,
        percent=25.0,
        elapsed_s=3.0,
    )
    [scanning] = lag_findings(status(state="scanning", progress=progress), 0)
    assert scanning.status == "pass"
    assert scanning.message == "catching up: 25% done, 60 files to read"
    [behind] = lag_findings(status(state="scanning", progress=progress, lag_s=185.0), 12)
    assert behind.status == "warn"
    assert behind.message == (
        "12 changed transcript(s) waiting for 3 min (catching up: 25% done, 60 files to read)"
    )
    assert "karmactl index status" in behind.fix
