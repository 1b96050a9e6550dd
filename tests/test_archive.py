"""The archive of own sessions: links that outlive Claude Code's cleanup, copies across
filesystems, earlier generations kept; the index reading a deleted transcript from the
archive as the same file; the daemon, `karmactl archive status` and `doctor`."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from karmad import protocol
from karmad.archive import layout, mirror
from karmad.checks.archive import coverage_findings
from karmad.index.discovery import Root
from karmad.protocol import SessionMessagesParams
from tests.support.daemon import KarmadProcess, RpcFailure
from tests.support.indexing import LocalIndex, same_tokens
from tests.support.resume import archived, indexed, karmactl, wait_for
from tests.support.sessions import SessionWriter, corpus_records, make_checkout
from tests.support.transcripts import assistant, line, user, write

SID = "33333333-3333-3333-3333-333333333333"


def other_filesystem(near: Path) -> Path | None:
    """A writable directory on another filesystem than `near` (/dev/shm), if any."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        return None
    if os.stat(shm).st_dev == os.stat(near).st_dev:
        return None
    return Path(tempfile.mkdtemp(prefix="karmad-archive-test-", dir=shm))


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Path]:
    found = other_filesystem(tmp_path)
    if found is None:
        pytest.skip("no writable directory on another filesystem (/dev/shm)")
    yield found
    shutil.rmtree(found, ignore_errors=True)


# ---------------------------------------------------------------------- mirror


def test_a_link_follows_appends_and_outlives_the_transcript(tmp_path: Path) -> None:
    src = tmp_path / "live" / "s.jsonl"
    dest = tmp_path / "archive" / "s.jsonl"
    src.parent.mkdir()
    src.write_bytes(b'{"a":1}\n')
    assert mirror.keep(src, dest, tmp_path / "replaced" / "s.jsonl").action == "linked"
    with src.open("ab") as f:
        f.write(b'{"a":2}\n')
    assert mirror.keep(src, dest, tmp_path / "replaced" / "s.jsonl").action == "unchanged"
    assert dest.read_bytes() == b'{"a":1}\n{"a":2}\n'
    src.unlink()
    assert dest.read_bytes() == b'{"a":1}\n{"a":2}\n'
    assert mirror.keep(src, dest, tmp_path / "replaced" / "s.jsonl").action == "gone"


def test_across_filesystems_a_copy_is_kept_current_with_only_what_was_appended(
    tmp_path: Path, elsewhere: Path
) -> None:
    src = tmp_path / "s.jsonl"
    dest = elsewhere / "archive" / "s.jsonl"
    src.write_bytes(b'{"a":1}\n')
    first = mirror.keep(src, dest, elsewhere / "replaced" / "s.jsonl")
    assert (first.action, first.written) == ("copied", 8)
    with src.open("ab") as f:
        f.write(b'{"a":2}\n{"a":3}\n')
    second = mirror.keep(src, dest, elsewhere / "replaced" / "s.jsonl")
    assert (second.action, second.written) == ("appended", 16)
    assert dest.read_bytes() == src.read_bytes()
    assert os.stat(dest).st_mtime_ns == os.stat(src).st_mtime_ns
    assert mirror.keep(src, dest, elsewhere / "replaced" / "s.jsonl").action == "unchanged"
    assert not any(p.name.startswith(mirror.TEMP_PREFIX) for p in dest.parent.iterdir())


def test_a_replaced_transcript_never_overwrites_the_archived_generation(tmp_path: Path) -> None:
    src = tmp_path / "s.jsonl"
    dest = tmp_path / "archive" / "s.jsonl"
    replaced = tmp_path / "replaced" / "s.jsonl"
    src.write_bytes(b'{"first":1}\n')
    mirror.keep(src, dest, replaced)
    src.unlink()
    src.write_bytes(b'{"other":1}\n')  # a new file under the same name
    outcome = mirror.keep(src, dest, replaced)
    assert outcome.action == "replaced" and outcome.set_aside is not None
    assert outcome.set_aside.read_bytes() == b'{"first":1}\n'
    assert os.path.samefile(dest, src)


def test_a_new_file_continuing_the_archived_one_is_linked_in_its_place(tmp_path: Path) -> None:
    src = tmp_path / "s.jsonl"
    dest = tmp_path / "archive" / "s.jsonl"
    replaced = tmp_path / "replaced" / "s.jsonl"
    src.write_bytes(b'{"a":1}\n')
    mirror.keep(src, dest, replaced)
    fresh = tmp_path / "fresh.jsonl"
    fresh.write_bytes(b'{"a":1}\n{"a":2}\n')
    fresh.replace(src)  # rewritten whole, by a tool that writes a new file and renames it
    assert mirror.keep(src, dest, replaced).action == "relinked"
    assert os.path.samefile(dest, src)
    assert not replaced.parent.exists()


# ---------------------------------------------------------------------- the index


@pytest.fixture
def live(tmp_path: Path) -> Path:
    path = tmp_path / "projects"
    path.mkdir()
    return path


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    path = tmp_path / "archive" / "projects"
    path.mkdir(parents=True)
    return path


def _session(live: Path) -> Path:
    path = live / "-tmp-project" / f"{SID}.jsonl"
    write(
        path,
        [
            user("hello", session=SID),
            assistant("m1", "r1", session=SID, input=10, output=5, stop="end_turn"),
        ],
    )
    return path


def _link(live: Path, archive: Path, path: Path) -> Path:
    target = layout.archived(archive, PurePosixPath(path.relative_to(live)))
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(path, target)
    return target


def test_a_deleted_transcript_is_read_from_the_archive_as_the_same_file(
    tmp_path: Path, live: Path, archive: Path
) -> None:
    index = LocalIndex(tmp_path / "index.db", [Root(live, archive=archive)])
    try:
        path = _session(live)
        kept = _link(live, archive, path)
        index.scan()
        before = index.tokens(SID)
        files = index.store.query("SELECT path, missing FROM files")
        assert [(f["path"], f["missing"]) for f in files] == [(str(path), 0)]

        path.unlink()  # Claude Code's cleanup
        index.scan()
        files = index.store.query("SELECT path, missing FROM files")
        assert [(f["path"], f["missing"]) for f in files] == [(str(kept), 0)]
        assert index.tokens(SID) == before
        assert not index.session(SID)["missing"]
        shown = index.reader.messages(SessionMessagesParams(id=SID))
        assert [m.kind for m in shown.items] == ["user", "assistant"]

        # Appended lines of the archived file (a copy being finished) are read too, once.
        with kept.open("ab") as f:
            f.write(line(assistant("m2", "r2", session=SID, input=1, output=2, stop="end_turn")))
        index.process(kept)
        assert index.tokens(SID)["requests"] == 2

        # Put back where Claude Code had it: the row follows again.
        os.link(kept, path)
        index.process(path)
        files = index.store.query("SELECT path FROM files")
        assert [f["path"] for f in files] == [str(path)]
        assert index.tokens(SID)["requests"] == 2
        assert index.usage_total()["requests"] == 2
    finally:
        index.close()


def test_a_rebuilt_index_finds_deleted_sessions_in_the_archive_once(
    tmp_path: Path, live: Path, archive: Path
) -> None:
    gone = _session(live)
    _link(live, archive, gone)
    gone.unlink()
    still = live / "-tmp-project" / "44444444-4444-4444-4444-444444444444.jsonl"
    write(still, [user("other", session=still.stem)])
    _link(live, archive, still)
    index = LocalIndex(tmp_path / "index.db", [Root(live, archive=archive)])
    try:
        index.scan()
        rows = index.store.query(
            "SELECT s.session_id, f.path FROM files f JOIN sessions s "
            "ON s.id = f.session_pk ORDER BY s.session_id"
        )
        assert [(r["session_id"], r["path"]) for r in rows] == [
            (SID, str(archive / gone.relative_to(live))),
            (still.stem, str(still)),
        ]
        assert index.usage_total()["requests"] == 1
    finally:
        index.close()


# ---------------------------------------------------------------------- the daemon


def doctor_findings(daemon: KarmadProcess) -> dict[str, dict[str, Any]]:
    run = daemon.call("doctor.run")["run"]

    def finished() -> dict[str, Any] | None:
        try:
            report: dict[str, Any] = daemon.call("doctor.report")
        except RpcFailure:
            return None  # no run finished yet
        return report if report["run"] >= run else None

    report = wait_for(finished, what="the doctor's findings")
    return {c["name"]: c for c in report["checks"]}


def test_every_own_session_is_archived_and_kept_after_claude_code_deletes_it(
    karmad: KarmadProcess,
) -> None:
    checkout = make_checkout(karmad.home.home / "src", "git@github.com:acme/app.git")
    writer = SessionWriter(karmad.home.claude, checkout)
    writer.append(*corpus_records(30))
    agent = writer.subagent("a1b2", *corpus_records(5))
    result = writer.tool_result("toolu_1.txt", b"saved output\n")
    indexed(karmad, writer.session_id)
    wait_for(
        lambda: len(karmad.call("session.get", {"id": writer.session_id})["files"]) == 2,
        what="the subagent indexed",
    )
    status = archived(karmad, writer.session_id)
    assert (status["sessions"], status["files"]) == (1, 3)
    assert status["linked_files"] == 3 and status["archive_only_bytes"] == 0
    base = karmad.home.state / "archive" / "projects"
    for path in (writer.path, agent, result):
        kept = layout.archived(
            base, PurePosixPath(path.relative_to(karmad.home.claude / "projects"))
        )
        assert os.path.samefile(kept, path), "a hard link, costing no space"
    # One directory per project: a session's own files are kept beside it, flat.
    assert [p.name for p in base.iterdir()] == [writer.path.parent.name]
    assert all(p.is_file() for p in (base / writer.path.parent.name).iterdir())

    before = karmad.call("session.get", {"id": writer.session_id})
    shutil.rmtree(writer.path.parent)
    after = wait_for(
        lambda: (
            (s := karmad.call("session.get", {"id": writer.session_id}))["files"][0][
                "path"
            ].startswith(str(base))
            and s
        ),
        what="the session read from the archive",
    )
    assert same_tokens(after, before) and after["tool_uses"] == before["tool_uses"]
    assert not after["missing"]
    listed = karmad.call("session.list", {})["sessions"]
    assert [s["id"] for s in listed] == [writer.session_id]
    total = karmad.call("usage.summary", {"group_by": "session"})["totals"]
    assert total["requests"] == before["tokens"]["requests"]

    out = karmactl(karmad, "archive", "status")
    assert out.returncode == 0, out.stderr
    assert "gone from Claude Code's folder: 1" in out.stdout
    assert writer.session_id in out.stdout
    data = json.loads(karmactl(karmad, "archive", "status", "--json").stdout)
    assert [g["id"] for g in data["gone"]] == [writer.session_id]
    assert data["archive_only_bytes"] > 0  # the only copy now

    # A rebuilt index still lists it, once.
    job = karmad.call("index.rebuild")["job"]
    wait_for(
        lambda: any(
            e["data"].get("job") == job
            for e in karmad.call("events.recent", {"topics": ["index.done"]})["events"]
        ),
        what="the rebuilt index",
    )
    assert [s["id"] for s in karmad.call("session.list", {})["sessions"]] == [writer.session_id]
    rebuilt = karmad.call("session.get", {"id": writer.session_id})
    assert same_tokens(rebuilt, before)
    assert rebuilt["tool_uses"] == before["tool_uses"]


def test_excluded_projects_are_not_archived(
    karmad_factory: Callable[..., KarmadProcess],
) -> None:
    k = karmad_factory(start=False)
    k.home.write_config('[archive]\nexclude_projects = ["github.com/acme/secret"]\n')
    k.start()
    secret = make_checkout(k.home.home / "src", "git@github.com:acme/secret.git", "secret")
    public = make_checkout(k.home.home / "src", "https://github.com/acme/app", "app")
    hidden = SessionWriter(k.home.claude, secret)
    hidden.append(*corpus_records(5))
    shown = SessionWriter(k.home.claude, public)
    shown.append(*corpus_records(5))
    indexed(k, hidden.session_id)
    status = archived(k, shown.session_id)
    assert status["sessions"] == 1 and status["excluded_files"] == 1
    assert status["excluded"] == ["github.com/acme/secret"]
    assert not (k.home.state / "archive" / "projects" / hidden.path.parent.name).exists()
    found = doctor_findings(k)["archive.coverage"]
    assert found["status"] == "pass", found


def test_the_archive_can_be_turned_off(karmad_factory: Callable[..., KarmadProcess]) -> None:
    k = karmad_factory(start=False)
    k.home.write_config("[archive]\nenabled = false\n")
    k.start()
    writer = SessionWriter(k.home.claude, make_checkout(k.home.home / "src", "git@h.io:a/b"))
    writer.append(*corpus_records(3))
    indexed(k, writer.session_id)
    assert k.call("archive.sweep")["job"] == 0
    assert k.call("archive.status")["state"] == "disabled"
    assert not (k.home.state / "archive").exists()
    out = karmactl(k, "archive", "status")
    assert "turned off" in out.stdout


def test_doctor_names_what_the_archive_misses() -> None:
    status = protocol.ArchiveStatus(
        enabled=True,
        state="idle",
        sessions=3,
        uncovered=["-p/a.jsonl", "-p/b.jsonl"],
        uncovered_total=2,
    )
    [finding] = coverage_findings(status)
    assert finding.status == "warn" and "-p/a.jsonl" in finding.message
    [fine] = coverage_findings(protocol.ArchiveStatus(enabled=True, state="idle", sessions=3))
    assert fine.status == "pass" and "every own transcript is covered" in fine.message


def test_the_archive_layout_keeps_the_live_path_of_every_file(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    cases = [
        "-p/s.jsonl",
        "-p/agent-1.jsonl",
        "-p/s/subagents/agent-a1.jsonl",
        "-p/s/tool-results/nested/dir/50%off b.txt",
        f"-p/s/tool-results/{'x' * 250}.txt",
    ]
    for text in cases:
        rel = PurePosixPath(text)
        kept = layout.archived(archive, rel)
        assert layout.live_rel(archive, kept) == rel
    flat = layout.archived(archive, PurePosixPath("-p/s/subagents/agent-a1.jsonl"))
    assert flat.parent == archive / "-p"
    long = layout.archived(archive, PurePosixPath(cases[-1]))
    assert long == archive.joinpath(*PurePosixPath(cases[-1]).parts)  # too long to flatten
    for text in cases:
        kept = layout.archived(archive, PurePosixPath(text))
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(text)
    assert sorted(str(rel) for _, rel, _ in layout.walk(archive)) == sorted(cases)
    assert sorted(rel for _, rel in layout.side_files(archive, "-p", "s")) == sorted(
        c.removeprefix("-p/s/") for c in cases[2:]
    )
