"""What a resume writes is a copy: it never counts again, whatever the index reads first;
what Claude Code appends to it afterwards is new, and this member's.

Each materialised line names the session it copies (`karmadCopyOf`); the index's copy
rule (docs/index.md) decides which copy of a request counts, and counts each record of a
session once.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import KarmadProcess
from tests.support.indexing import same_tokens
from tests.support.resume import archived, indexed, resume, wait_for
from tests.support.sessions import SessionWriter, corpus_records, make_checkout
from tests.support.transcripts import assistant, line

REMOTE = "git@github.com:acme/app.git"


def totals(daemon: KarmadProcess) -> dict[str, Any]:
    result: dict[str, Any] = daemon.call("usage.summary", {"group_by": "session"})
    return result


def by_session(daemon: KarmadProcess) -> dict[str, int]:
    return {r["key"]: r["tokens"]["requests"] for r in totals(daemon)["rows"]}


def rebuilt(daemon: KarmadProcess) -> None:
    job = daemon.call("index.rebuild")["job"]
    wait_for(
        lambda: any(
            e["data"].get("job") == job
            for e in daemon.call("events.recent", {"topics": ["index.done"]})["events"]
        ),
        what="the rebuilt index",
    )


def continued(path: Path, session_id: str) -> None:
    """What Claude Code appends to a resumed session: a new request."""
    with path.open("ab") as f:
        f.write(
            line(
                assistant(
                    "msg_continuation",
                    "req_continuation",
                    session=session_id,
                    input=7,
                    output=11,
                    stop="end_turn",
                    ts="2026-12-02T09:00:00.000Z",
                )
            )
        )


@pytest.fixture
def copied(
    karmad_factory: Callable[..., KarmadProcess],
) -> tuple[KarmadProcess, SessionWriter, dict[str, Any]]:
    """An own session, resumed into a second clone while it still exists: a second
    session (its own id) holding copies of every line."""
    k = karmad_factory()
    k.call("identity.init", {"user": "bob", "machine": "laptop"})
    writer = SessionWriter(k.home.claude, make_checkout(k.home.home / "src", REMOTE))
    writer.append(*corpus_records(40))
    indexed(k, writer.session_id)
    answer = resume(
        k, writer.session_id, "--checkout", str(make_checkout(k.home.home / "b", REMOTE))
    )
    indexed(k, answer["session_id"])
    return k, writer, answer


def test_materialised_lines_never_count_again(
    copied: tuple[KarmadProcess, SessionWriter, dict[str, Any]],
) -> None:
    k, writer, answer = copied
    original = k.call("session.get", {"id": writer.session_id})["tokens"]
    counted = wait_for(
        lambda: (s := by_session(k)).get(answer["session_id"], 0) == 0 and s,
        what="the copy indexed",
    )
    assert counted == {writer.session_id: original["requests"]}
    assert totals(k)["totals"]["cost"] == pytest.approx(original["cost"])
    copy = k.call("session.get", {"id": answer["session_id"]})
    assert copy["shared_requests"] == original["requests"]  # says they count elsewhere

    continued(Path(answer["path"]), answer["session_id"])
    wait_for(
        lambda: by_session(k) == {writer.session_id: original["requests"], answer["session_id"]: 1},
        what="the continuation counted for the resumed session, and only it",
    )


def test_the_copy_never_counts_even_when_indexed_before_its_original(
    copied: tuple[KarmadProcess, SessionWriter, dict[str, Any]],
) -> None:
    """Claude Code deleted the original; the rebuilt index reads the copy (live) before
    the original (archive). The copied requests are still the original's."""
    k, writer, _ = copied
    original = k.call("session.get", {"id": writer.session_id})["tokens"]["requests"]
    archived(k, writer.session_id)
    shutil.rmtree(writer.path.parent)
    rebuilt(k)
    assert by_session(k) == {writer.session_id: original}


def test_an_own_session_restored_elsewhere_counts_each_record_once(
    karmad: KarmadProcess,
) -> None:
    """Same id, moved checkout: the archived original and the materialised copy are one
    session; its tools and messages are each counted and shown once."""
    old = make_checkout(karmad.home.home / "src", REMOTE)
    writer = SessionWriter(karmad.home.claude, old)
    writer.append(*corpus_records(40))
    indexed(karmad, writer.session_id)
    before = karmad.call("session.get", {"id": writer.session_id})
    shown = karmad.call("session.messages", {"id": writer.session_id, "limit": 500})["total"]
    archived(karmad, writer.session_id)
    shutil.rmtree(writer.path.parent)
    new = karmad.home.home / "moved"
    old.rename(new)
    answer = resume(karmad, writer.session_id, "--checkout", str(new))
    assert answer["session_id"] == writer.session_id
    wait_for(
        lambda: len(karmad.call("session.get", {"id": writer.session_id})["files"]) == 2,
        what="the copy indexed",
    )
    after = karmad.call("session.get", {"id": writer.session_id})
    assert same_tokens(after, before)
    assert after["tool_uses"] == before["tool_uses"]
    assert after["user_prompts"] == before["user_prompts"]
    again = karmad.call("session.messages", {"id": writer.session_id, "limit": 500})
    assert again["total"] == shown


def test_copied_lines_say_whose_they_are(
    copied: tuple[KarmadProcess, SessionWriter, dict[str, Any]],
) -> None:
    _, writer, answer = copied
    lines = [json.loads(x) for x in Path(answer["path"]).read_text().splitlines()]
    assert lines and all(x["karmadCopyOf"] == writer.session_id for x in lines)
