"""The session index through a real karmad (asyncio and trio) and karmactl."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import KarmadProcess, RpcFailure, karmactl_command
from tests.support.transcripts import CORPUS, assistant, copy_corpus, line, user, write

needs_corpus = pytest.mark.skipif(
    not (CORPUS / "projects").is_dir(), reason=f"no corpus at {CORPUS} (KARMAD_TEST_CORPUS)"
)

SID = "44444444-4444-4444-4444-444444444444"


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def idle(daemon: KarmadProcess) -> dict[str, Any]:
    status: dict[str, Any] = wait_for(
        lambda: (s := daemon.call("index.status"))["state"] == "idle" and s["lag_s"] == 0 and s,
        what="an idle index",
    )
    return status


def with_corpus(
    factory: Callable[..., KarmadProcess], backend: str, config: str = ""
) -> KarmadProcess:
    daemon = factory(backend, start=False)
    projects = daemon.home.claude / "projects"
    shutil.rmtree(projects)
    copy_corpus(projects)
    if config:
        daemon.home.write_config(config)
    daemon.start()
    idle(daemon)
    return daemon


def karmactl(daemon: KarmadProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        karmactl_command(*args),
        env=daemon.home.env({"KARMAD_SOCKET": str(daemon.socket), "PAGER": "cat"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_corpus
def test_sessions_through_rpc(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    daemon = with_corpus(karmad_factory, anyio_backend)
    status = daemon.call("index.status")
    assert (status["sessions"], status["files"], status["bad_lines"]) == (13, 19, 4)
    assert status["indexed_bytes"] == status["bytes"] == status["text_indexed_bytes"]
    assert status["roots"][0]["path"] == str(daemon.home.claude / "projects")
    assert status["watching"] is True and status["last_scan"]["files"] == 19

    # Paging with a cursor visits every session once, in order.
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = daemon.call("session.list", {"limit": 4, "sort": "cost", "cursor": cursor})
        assert page["total"] == 13
        seen += page["sessions"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len({s["id"] for s in seen}) == 13
    costs = [s["tokens"]["cost"] for s in seen]
    assert costs == sorted(costs, reverse=True)
    assert seen[0]["id"].startswith("069508a5") and seen[0]["tokens"]["cost"] == pytest.approx(
        1.30026
    )

    assert {
        s["id"][:8]
        for s in daemon.call("session.list", {"project": "kenth56/Downloads"})["sessions"]
    } == {"9cc4a4b0", "9dd861b1"}
    haiku = daemon.call("session.list", {"model": "haiku", "sort": "first", "ascending": True})
    assert [s["id"][:8] for s in haiku["sessions"]] == ["0ccf1a04", "1656b075"]
    recent = daemon.call("session.list", {"since": "2026-01-30T00:00:00Z"})
    assert {s["id"][:8] for s in recent["sessions"]} == {"334e78d3", "1656b075"}
    with pytest.raises(RpcFailure) as bad:
        daemon.call("session.list", {"cursor": "garbage!"})
    assert bad.value.reason == "invalid_argument"

    detail = daemon.call("session.get", {"id": "0ccf"})
    assert detail["id"] == "0ccf1a04-1b4c-43b6-8aa5-79e41db43a68"
    assert detail["subagents"] == 5 and len(detail["files"]) == 6
    assert detail["tokens"]["cache_write_5m"] == 71257
    with pytest.raises(RpcFailure) as ambiguous:
        daemon.call("session.get", {"id": "9"})
    assert ambiguous.value.reason == "invalid_argument"
    with pytest.raises(RpcFailure) as missing:
        daemon.call("session.get", {"id": "deadbeef"})
    assert missing.value.reason == "not_found"

    # The whole conversation, page by page, in time order, subagent turns marked.
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = daemon.call("session.messages", {"id": "0ccf", "limit": 25, "cursor": cursor})
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(items) == page["total"] == 82
    times = [i["time"] for i in items]
    assert times == sorted(times)
    assert sum(i["sidechain"] for i in items) == 22  # conversation lines of 5 subagents
    tool_uses = [b for i in items for b in i["blocks"] if b["type"] == "tool_use"]
    assert {b["name"] for b in tool_uses} == {"Task", "TaskOutput", "Bash", "WebSearch"}
    assert any(b["type"] == "tool_result" and b["is_error"] for i in items for b in i["blocks"])
    main_only = daemon.call("session.messages", {"id": "0ccf", "limit": 500, "sidechains": False})
    assert main_only["total"] == 60 and not any(i["sidechain"] for i in main_only["items"])

    hits = daemon.call("session.search", {"text": "thai curry"})
    assert hits["available"] and hits["complete"]
    assert hits["hits"] and {h["session"][:8] for h in hits["hits"]} == {"0ccf1a04", "4b2030ed"}
    assert "«" in hits["hits"][0]["snippet"]
    assert (
        daemon.call("session.search", {"text": '"thai curry" sushi', "session": "4b20"})["hits"]
        == []
    )
    with pytest.raises(RpcFailure):
        daemon.call("session.search", {"text": "   "})

    by_day = daemon.call("usage.summary", {"group_by": "day", "tz": "UTC"})
    assert [r["key"] for r in by_day["rows"]][:2] == ["2025-07-16", "2025-07-17"]
    assert by_day["totals"]["cost"] == pytest.approx(4.6332821, rel=1e-6)
    assert (
        by_day["totals"]["requests"] == sum(r["tokens"]["requests"] for r in by_day["rows"]) == 123
    )
    assert by_day["price_version"] == status["price_version"]
    by_model = daemon.call("usage.summary", {"group_by": "model", "since": "2026-01-01T00:00:00Z"})
    assert [r["key"] for r in by_model["rows"]] == [
        "claude-opus-4-5-20251101",
        "claude-haiku-4-5-20251001",
    ]
    month = daemon.call(
        "usage.summary", {"group_by": "month", "breakdown": True, "tz": "Asia/Tokyo"}
    )
    assert [r["key"] for r in month["rows"]] == ["2025-07", "2026-01"]
    assert set(month["rows"][1]["models"]) == {
        "claude-opus-4-5-20251101",
        "claude-haiku-4-5-20251001",
    }
    with pytest.raises(RpcFailure) as zone:
        daemon.call("usage.summary", {"tz": "Mars/Olympus"})
    assert zone.value.reason == "invalid_argument"

    summary = daemon.call("daemon.status")["summary"]
    assert "13 sessions indexed" in summary
    assert daemon.call("daemon.status")["subsystems"]["index"]["state"] == "idle"


def test_changes_are_followed(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    daemon = karmad_factory(anyio_backend, start=False)
    # Without karmad's archive (tests/test_archive.py), a deleted transcript is missing.
    daemon.home.write_config("[archive]\nenabled = false\n")
    daemon.start()
    idle(daemon)
    path = daemon.home.claude / "projects" / "-work-app" / f"{SID}.jsonl"
    write(path, [user("hello", session=SID), assistant("m1", "r1", session=SID, output=3)])
    wait_for(lambda: daemon.call("session.list")["total"] == 1, what="the new session")

    def get() -> Any:
        return daemon.call("session.get", {"id": SID})

    assert get()["tokens"]["output"] == 3
    with path.open("ab") as f:
        f.write(line(assistant("m1", "r1", session=SID, output=30, stop="end_turn")))
        f.write(line(assistant("m2", "r2", session=SID, output=4, stop="end_turn")))
    wait_for(lambda: get()["tokens"]["output"] == 34, what="the appended lines")
    # Half a line: not counted until it is complete.
    rest = line(assistant("m3", "r3", session=SID, output=100, stop="end_turn"))
    with path.open("ab") as f:
        f.write(rest[:50])
    wait_for(lambda: get()["files"][0]["pending_bytes"] == 50, what="a pending half line")
    assert get()["tokens"]["requests"] == 2
    with path.open("ab") as f:
        f.write(rest[50:])
    wait_for(lambda: get()["tokens"]["requests"] == 3, what="the completed line")
    # Rewritten shorter: the session is read again from the start.
    write(path, [assistant("m9", "r9", session=SID, output=1, stop="end_turn")])
    wait_for(lambda: get()["tokens"]["output"] == 1, what="the rewritten session")
    assert get()["tokens"]["requests"] == 1
    search = daemon.call("session.search", {"text": "hello"})
    assert search["hits"] == []  # the rewrite took the old text out of the search index
    # Deleted: kept, marked missing.
    path.unlink()
    wait_for(lambda: get()["missing"], what="the missing flag")
    assert idle(daemon)["lag_s"] == 0


@needs_corpus
def test_progress_is_reported_during_a_long_index(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    daemon = karmad_factory(anyio_backend, start=False)
    daemon.home.write_config("[index]\nbatch_bytes = 65536\nchunk_bytes = 65536\n")
    daemon.start()
    idle(daemon)
    projects = daemon.home.claude / "projects"
    # Distinct copies of the corpus: rename every session id so nothing is de-duplicated.
    for n in range(12):
        for path in sorted((CORPUS / "projects").rglob("*.jsonl")):
            rel = path.relative_to(CORPUS / "projects")
            text = path.read_bytes().replace(b'"sessionId":"', f'"sessionId":"{n:02d}'.encode())
            parts = list(rel.parts)
            parts[1] = f"{n:02d}{parts[1]}"  # the session's file or directory
            target = projects.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text)
    events: list[dict[str, Any]] = []
    job = daemon.call("index.rebuild")["job"]

    def done() -> bool:
        events.extend(daemon.call("events.recent", {"topics": ["index"], "limit": 100})["events"])
        return any(e["topic"] == "index.done" and e["data"]["job"] == job for e in events)

    wait_for(done, what="index.done")
    status = idle(daemon)
    assert status["sessions"] == 13 * 12 and status["files"] == 19 * 12
    assert status["last_scan"]["files"] == 19 * 12


@needs_corpus
def test_progress_events_reach_subscribers(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    daemon = with_corpus(
        karmad_factory, anyio_backend, "[index]\nbatch_bytes = 65536\nchunk_bytes = 65536\n"
    )
    out = karmactl(daemon, "index", "rebuild", "--wait", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"]["state"] == "idle" and result["status"]["sessions"] == 13
    # The same through a raw subscription: progress ticks, then done.
    import socket

    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(daemon.socket))
        sock.settimeout(30)
        reader = sock.makefile("rb")
        sock.sendall(
            b'{"jsonrpc":"2.0","id":1,"method":"events.subscribe","params":{"topics":["index"]}}\n'
        )
        assert "result" in json.loads(reader.readline())
        sock.sendall(b'{"jsonrpc":"2.0","id":2,"method":"index.rebuild"}\n')
        topics: list[str] = []
        percents: list[float] = []
        while "index.done" not in topics:
            message = json.loads(reader.readline())
            if message.get("method") != "event":
                continue
            topic = message["params"]["topic"]
            if not topics and topic != "index.rebuild":
                continue  # the tail of earlier work
            topics.append(topic)
            if topic == "index.progress":
                percents.append(message["params"]["data"]["percent"])
        assert topics[:2] == ["index.rebuild", "index.started"]
        assert "index.progress" in topics and percents[-1] == 100.0


@needs_corpus
def test_karmactl_views(karmad_factory: Callable[..., KarmadProcess], anyio_backend: str) -> None:
    daemon = with_corpus(karmad_factory, anyio_backend)
    out = karmactl(daemon, "sessions", "ls")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split()[:3] == ["ID", "LAST", "DURATION"]
    assert "0ccf1a04" in out.stdout and "$1.30" in out.stdout
    listed = json.loads(
        karmactl(daemon, "sessions", "ls", "--json", "-n", "3", "--sort", "tokens").stdout
    )
    assert [s["id"][:8] for s in listed] == ["069508a5", "e80aa543", "0ccf1a04"]
    everything = json.loads(karmactl(daemon, "sessions", "ls", "--json", "--all", "-n", "2").stdout)
    assert len(everything) == 13

    shown = karmactl(daemon, "sessions", "show", "0ccf", "--no-pager")
    assert shown.returncode == 0, shown.stderr
    assert "Spawn curry poem agents, write sushi" in shown.stdout
    assert "⏺ Task(Poem about Thai green curry)" in shown.stdout
    assert "  │ ── user · agent a9cad17" in shown.stdout
    paged = karmactl(daemon, "sessions", "show", "0ccf")  # not a terminal: no pager
    assert paged.stdout == shown.stdout
    as_json = json.loads(karmactl(daemon, "sessions", "show", "0ccf", "--json").stdout)
    assert len(as_json["messages"]) == 82 and as_json["tokens"]["requests"] == 21
    assert karmactl(daemon, "sessions", "show", "9").returncode == 1
    assert karmactl(daemon, "sessions", "show", "nope").returncode == 1

    found = karmactl(daemon, "sessions", "search", "sushi", "poem")
    assert found.returncode == 0 and "0ccf1a04" in found.stdout and "«" in found.stdout

    usage = karmactl(daemon, "usage", "--tz", "UTC")
    assert usage.returncode == 0, usage.stderr
    assert "2025-07-16" in usage.stdout and "TOTAL" in usage.stdout and "$4.63" in usage.stdout
    assert "█" in usage.stdout
    assert json.loads(karmactl(daemon, "usage", "--by", "project", "--json").stdout)["rows"][0][
        "key"
    ] == ("/home/kenth56/vsla")
    assert karmactl(daemon, "usage", "--since", "not-a-date").returncode == 2

    status = karmactl(daemon, "index", "status")
    assert status.returncode == 0 and "sessions       13" in status.stdout
    followed = json.loads(karmactl(daemon, "index", "status", "--follow", "--json").stdout)
    assert followed["state"] == "idle"


def test_a_missing_claude_directory_is_waited_for(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str, tmp_path: Path
) -> None:
    claude = tmp_path / "not-yet" / "claude"
    daemon = karmad_factory(anyio_backend, env={"CLAUDE_CONFIG_DIR": str(claude)})
    status = idle(daemon)
    assert status["roots"][0]["exists"] is False and status["sessions"] == 0
    path = claude / "projects" / "-work" / f"{SID}.jsonl"
    write(path, [user("first session on this machine", session=SID)])
    wait_for(lambda: daemon.call("session.list")["total"] == 1, what="the first session")
    assert daemon.call("index.status")["roots"][0]["exists"] is True
