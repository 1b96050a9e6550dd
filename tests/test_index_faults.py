"""One bad transcript, file or disk never stops the index: hostile lines are skipped
lines, unreadable files are recorded and tried again, named pipes are never opened, and
work that failed on a full disk is done once space returns."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from karmad.index.discovery import Root
from karmad.index.work import Limits, ParseJob, parse_file
from karmad.protocol import SessionGetParams
from tests.support.daemon import KarmadProcess, RpcFailure, karmactl_command
from tests.support.indexing import LocalIndex
from tests.support.transcripts import assistant, line, user, write

GOOD = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(3)]
DEEP = "dddddddd-0000-4000-8000-000000000000"
PIPE = "eeeeeeee-0000-4000-8000-000000000000"
LATER = "aaaaaaaa-0000-4000-8000-000000000000"
LOCKED = "cccccccc-0000-4000-8000-000000000000"
TOO_DEEP = "malformed: nested too deep to decode"
"""The reason a line nested thousands deep is skipped with."""


def deep_line(depth: int = 5000) -> bytes:
    """Valid JSON nested `depth` deep, as in a hostile or broken transcript (10 KB)."""
    return b'{"type":"user","sessionId":"x","toolUseResult":' + b"[" * depth + b"]" * depth + b"}\n"


def session(root: Path, sid: str, output: int = 5, project: str = "-tmp-project") -> Path:
    path = root / project / f"{sid}.jsonl"
    write(
        path,
        [
            user("hello", session=sid),
            assistant(f"msg_{sid[:8]}", f"req_{sid[:8]}", session=sid, output=output, stop="end"),
        ],
    )
    return path


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "projects"
    path.mkdir()
    return path


@pytest.fixture
def index(tmp_path: Path, root: Path) -> Iterator[LocalIndex]:
    idx = LocalIndex(tmp_path / "index.db", [Root(root)])
    yield idx
    idx.close()


def in_time(fn: Callable[[], None], release: Path | None = None, seconds: float = 20.0) -> None:
    """Run `fn`, failing (rather than hanging the suite) if it blocks; a blocked `open`
    of the named pipe `release` is let go by opening its other end."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if release is not None:
            fd = os.open(release, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
            thread.join(5)
        pytest.fail(f"blocked for {seconds} s")
    if failure:
        raise failure[0]


# --------------------------------------------------------------------------- in-process


def test_a_deeply_nested_line_is_a_skipped_line(index: LocalIndex, root: Path) -> None:
    for sid in GOOD:
        session(root, sid)
    deep = session(root, DEEP, output=7)
    with deep.open("ab") as f:
        f.write(deep_line())
        f.write(line(user("after the deep line", session=DEEP)))
    index.scan()
    assert index.store.scalar("SELECT COUNT(*) FROM sessions") == 4
    detail = index.detail(DEEP)
    assert detail.tokens.output == 7 and detail.bad_lines == 1
    assert [(e.line, e.reason) for e in detail.errors] == [(3, TOO_DEEP)]
    assert detail.record_types == {"user": 2, "assistant": 1}
    # The text pass read the other lines of the file too.
    kinds = index.store.query(
        "SELECT e.line FROM entries e JOIN sessions s ON s.id = e.session_pk "
        "WHERE s.session_id = ? ORDER BY e.line",
        (DEEP,),
    )
    assert [r[0] for r in kinds] == [1, 2, 4]


def test_parse_file_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / f"{PIPE}.jsonl"
    os.mkfifo(fifo)
    results: list[Any] = []
    in_time(
        lambda: results.append(parse_file(ParseJob(str(fifo), True), Limits(1 << 16, 1 << 20))),
        release=fifo,
    )
    (result,) = results
    assert (result.status, result.problem, result.transient) == (
        "failed",
        "not a regular file (a named pipe)",
        False,
    )
    assert parse_file(ParseJob(str(tmp_path), True), Limits(1 << 16, 1 << 20)).problem == (
        "not a regular file (a directory)"
    )


def test_a_named_pipe_is_recorded_never_opened(index: LocalIndex, root: Path) -> None:
    session(root, GOOD[0])
    fifo = root / "-tmp-project" / f"{PIPE}.jsonl"
    os.mkfifo(fifo)
    in_time(index.scan, release=fifo)
    # As the watcher would report it, too.
    in_time(lambda: index.process(fifo), release=fifo)
    assert index.store.scalar("SELECT COUNT(*) FROM sessions") == 1
    (problem,) = index.reader.file_problems()
    assert (problem.path, problem.session, problem.reason, problem.transient) == (
        str(fifo),
        PIPE,
        "not a regular file (a named pipe)",
        False,
    )
    assert problem.attempts == 1  # an unchanged pipe is not looked at again
    # Replaced by a real transcript: read, and no longer a problem.
    fifo.unlink()
    session(root, PIPE)
    index.process(fifo)
    assert index.reader.file_problems() == []
    assert index.tokens(PIPE)["requests"] == 1


def test_the_text_pass_skips_a_file_gone_since_the_first_pass(tmp_path: Path, root: Path) -> None:
    idx = LocalIndex(tmp_path / "index.db", [Root(root)], full_text=False)
    try:
        for sid in GOOD:
            session(root, sid)
        idx.scan()
        (root / "-tmp-project" / f"{GOOD[1]}.jsonl").unlink()
        idx.engine.full_text = True
        in_time(idx.engine.text_backlog)
        behind = idx.store.query(
            "SELECT path FROM files WHERE text_offset < usage_offset ORDER BY path"
        )
        assert [Path(r[0]).stem for r in behind] == [GOOD[1]]
    finally:
        idx.close()


# --------------------------------------------------------------------------- real daemon


def idle(daemon: KarmadProcess) -> dict[str, Any]:
    status: dict[str, Any] = wait_for(
        lambda: (s := daemon.call("index.status"))["state"] == "idle" and s["lag_s"] == 0 and s,
        what="an idle index",
    )
    return status


def test_hostile_transcripts_leave_the_others_indexed(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    daemon = karmad_factory(anyio_backend, start=False)
    projects = daemon.home.claude / "projects"
    for sid in GOOD:
        session(projects, sid)
    deep = session(projects, DEEP, output=7)
    with deep.open("ab") as f:
        f.write(deep_line())
        f.write(deep_line(100_000))
        f.write(b"\x00\xff" * 100 + b"\n")
    with (projects / "-tmp-project" / f"{GOOD[0]}.jsonl").open("ab") as f:
        f.write(b'{"type": "user", "mes\n')
    daemon.start()
    status = idle(daemon)
    assert status["sessions"] == 4 and status["bad_lines"] == 4 and status["error"] == ""
    detail = daemon.call("session.get", {"id": DEEP})
    assert detail["tokens"]["output"] == 7
    assert [e["reason"] for e in detail["errors"]][:2] == [TOO_DEEP] * 2

    # A named pipe appears where a transcript would: it is recorded, never opened, and
    # what arrives after it is indexed as usual.
    fifo = projects / "-tmp-project" / f"{PIPE}.jsonl"
    os.mkfifo(fifo)
    session(projects, LATER)
    status = wait_for(
        lambda: (s := daemon.call("index.status"))["sessions"] == 5 and s["problem_files"] and s,
        what="the session after the pipe",
    )
    assert [(p["path"], p["reason"]) for p in status["problems"]] == [
        (str(fifo), "not a regular file (a named pipe)")
    ]
    shown = subprocess.run(
        karmactl_command("index", "status"),
        env=daemon.home.env({"KARMAD_SOCKET": str(daemon.socket)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "unreadable files" in shown and str(fifo) in shown and "named pipe" in shown
    with pytest.raises(RpcFailure) as missing:
        daemon.call("session.get", {"id": PIPE})
    assert missing.value.reason == "not_found"
    assert "not a regular file" in str(missing.value)
    # The pipe is still there: shutdown completes all the same, within its bound.
    started = time.monotonic()
    assert daemon.stop(timeout=20) == 0
    assert time.monotonic() - started < 10


def test_sigterm_completes_while_a_pipe_is_in_the_projects_dir(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    daemon = karmad_factory(anyio_backend)
    projects = daemon.home.claude / "projects"
    idle(daemon)
    (projects / "-p").mkdir()
    os.mkfifo(projects / "-p" / f"{PIPE}.jsonl")
    wait_for(lambda: daemon.call("index.status")["problem_files"], what="the pipe recorded")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=20) == 0


def drop_file_permission_override() -> tuple[str, ...]:
    """A command prefix under which permission bits apply to karmad.

    Root reads any file whatever its mode; without CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH it is refused like an ordinary user.
    """
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search", "--")


def test_an_unreadable_transcript_is_recorded_and_tried_again(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    daemon = karmad_factory(anyio_backend, start=False, wrapper=drop_file_permission_override())
    projects = daemon.home.claude / "projects"
    for sid in GOOD:
        session(projects, sid)
    locked = session(projects, LOCKED, output=9)
    locked.chmod(0)
    # A readable session with an unreadable subagent file.
    agent = projects / "-tmp-project" / GOOD[1] / "subagents" / "agent-a1.jsonl"
    write(
        agent,
        [assistant("msg_sub", "req_sub", session=GOOD[1], output=11, stop="end")],
    )
    agent.chmod(0)
    daemon.start()
    status = idle(daemon)
    assert status["sessions"] == 3 and status["error"] == ""
    assert {(p["path"], p["reason"], p["transient"]) for p in status["problems"]} == {
        (str(locked), "not readable: Permission denied", True),
        (str(agent), "not readable: Permission denied", True),
    }
    assert all(p["retry_at"] for p in status["problems"])
    with pytest.raises(RpcFailure) as missing:
        daemon.call("session.get", {"id": LOCKED[:8]})
    assert "Permission denied" in str(missing.value)
    detail = daemon.call("session.get", {"id": GOOD[1]})
    assert [p["path"] for p in detail["file_problems"]] == [str(agent)]
    run = daemon.call("doctor.run")["run"]
    report = wait_for(lambda: doctor_report(daemon, run), what="doctor")
    doctor = {c["name"]: c for c in report["checks"]}
    assert doctor["index.files"]["status"] == "warn"
    assert "2 transcript file(s) could not be read" in doctor["index.files"]["message"]
    # Tried again with a growing delay: attempts go up while it stays unreadable.
    wait_for(
        lambda: all(p["attempts"] >= 2 for p in daemon.call("index.status")["problems"]),
        what="a second attempt",
    )
    # Permissions fixed: both are read, and the problems are gone.
    locked.chmod(0o600)
    agent.chmod(0o600)
    wait_for(
        lambda: (s := daemon.call("index.status"))["sessions"] == 4 and not s["problems"],
        what="the fixed files indexed",
    )
    assert daemon.call("session.get", {"id": LOCKED})["tokens"]["output"] == 9
    assert daemon.call("session.get", {"id": GOOD[1]})["tokens"]["output"] == 5 + 11


def doctor_report(daemon: KarmadProcess, run: int) -> dict[str, Any] | None:
    try:
        report: dict[str, Any] = daemon.call("doctor.report")
    except RpcFailure as exc:
        if exc.reason == "not_found":
            return None
        raise
    return report if report["run"] >= run else None


def filled(mount: Path) -> Path:
    """Fill the file system at `mount` to the last byte (again: space that SQLite gave
    back after a failed write is taken too); returns the filler file."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


def test_work_that_failed_on_a_full_disk_is_done_when_space_returns(
    karmad_factory: Callable[..., KarmadProcess],
    anyio_backend: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs for the state directory")
    mount = tmp_path_factory.mktemp("full")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        daemon = karmad_factory(anyio_backend, args=("--state-dir", str(mount / "state")))
        projects = daemon.home.claude / "projects"
        idle(daemon)
        filler = filled(mount)
        sessions = many_sessions(projects, 26)
        status = wait_for(
            lambda: (s := daemon.call("index.status"))["state"] == "error" and s,
            what="the full disk reported",
        )
        assert "full" in status["error"]
        # Everything the watcher reported has been tried (and failed) while the disk
        # stays full: what failed is not forgotten, and the error stays.
        time.sleep(2)
        filled(mount)
        time.sleep(2)
        filled(mount)
        status = daemon.call("index.status")
        assert status["state"] == "error" and status["sessions"] < len(sessions)
        filler.unlink()
        status = wait_for(
            lambda: (s := daemon.call("index.status"))["state"] == "idle" and s,
            timeout=60,
            what="recovery",
        )
        assert status["sessions"] == len(sessions) and status["error"] == ""
        assert status["indexed_bytes"] == status["bytes"]
        daemon.stop()
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def many_sessions(projects: Path, count: int) -> list[str]:
    """Sessions with enough text that indexing them needs more than a few pages."""
    ids = []
    for n in range(count):
        sid = f"{n:08d}-1111-4000-8000-000000000000"
        ids.append(sid)
        records = []
        for turn in range(40):
            records.append(user(f"question {turn} " + "words " * 200, session=sid))
            records.append(
                assistant(
                    f"msg_{n}_{turn}",
                    f"req_{n}_{turn}",
                    session=sid,
                    output=turn + 1,
                    stop="end_turn",
                    content=[{"type": "text", "text": f"answer {turn} " + "prose " * 300}],
                )
            )
        write(projects / "-tmp-many" / f"{sid}.jsonl", records)
    return ids


def test_session_get_in_process_lists_a_sessions_file_problems(
    index: LocalIndex, root: Path
) -> None:
    main = session(root, GOOD[0])
    fifo = main.parent / GOOD[0] / "subagents" / "agent-x.jsonl"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    in_time(index.scan, release=fifo)
    detail = index.reader.get_session(SessionGetParams(id=GOOD[0]))
    assert [(p.path, p.reason) for p in detail.file_problems] == [
        (str(fifo), "not a regular file (a named pipe)")
    ]


def test_a_received_pipe_or_hostile_line_is_refused_never_opened(tmp_path: Path) -> None:
    """A teammate's inbox goes through the same path: the pipe is refused without being
    opened, the hostile file refused with the line that made it so, the rest indexed."""
    inbox = tmp_path / "inbox"
    received = inbox / "projects" / "key"
    remote = Root(
        received,
        origin="remote",
        member_tag="alice.laptop",
        user_id="alice",
        device_id="DEV1",
        confine_to=str(inbox),
    )
    session(received, GOOD[0])
    deep = session(received, DEEP)
    with deep.open("ab") as f:
        f.write(deep_line())
    fifo = received / "-tmp-project" / f"{PIPE}.jsonl"
    os.mkfifo(fifo)
    idx = LocalIndex(tmp_path / "index.db", [remote])
    try:
        in_time(idx.scan, release=fifo)
        in_time(lambda: idx.process(fifo), release=fifo)
        assert [r[0] for r in idx.store.query("SELECT session_id FROM sessions")] == [GOOD[0]]
        assert sorted(idx.rejected) == [
            (str(deep), f"not one JSON object per line (line 3: {TOO_DEEP})"),
            (str(fifo), "not a regular file (a named pipe)"),
        ]
    finally:
        idx.close()


def test_work_tried_again_keeps_the_received_roots_to_retain() -> None:
    # A failed job that was to forget stale inboxes is merged with work asked for since
    # (and the other way round): a root added meanwhile must not be forgotten by it.
    from karmad.index.service import _Work

    kept, added = Path("/inbox/a"), Path("/inbox/b")
    added_root = Root(added, "remote")
    for failed, since in (
        (_Work(scan=True, retain=frozenset({kept})), _Work(scan=True, add=[added_root])),
        (_Work(scan=True, add=[added_root]), _Work(scan=True, retain=frozenset({kept}))),
    ):
        retry = _Work(scan=True)
        retry.merge(failed)
        retry.merge(since)
        assert retry.retain == frozenset({kept, added})
        assert [r.path for r in retry.add] == [added]
    plain = _Work(scan=True)
    plain.merge(_Work(remove=[kept]))
    assert plain.retain is None
