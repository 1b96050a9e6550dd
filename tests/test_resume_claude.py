"""`sessions resume` proven with the real Claude Code CLI (offline, see support.claude).

Claude Code writes the session, karmad archives, indexes and materialises it, and Claude
Code continues it with `claude --resume <id> -p ...`: what it sends the (fake) API must
hold the earlier conversation, name the local checkout as its working directory, and
name none of the places the session came from, plainly or encoded.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from karmad.resume.claudecode import project_dir_name
from karmad.resume.plan import COPY_FIELD
from tests.support.claude import run_claude, why_not
from tests.support.daemon import KarmadProcess
from tests.support.resume import (
    archived,
    assert_continues,
    claude_session,
    indexed,
    resume,
    sender_traces,
)
from tests.support.sessions import make_checkout

pytestmark = pytest.mark.skipif(why_not() is not None, reason=str(why_not()))

REMOTE = "git@github.com:acme/app.git"
NEXT = "Continue where we stopped."


def test_own_session_deleted_by_claude_code_continues_in_the_moved_checkout(
    karmad_factory: Callable[..., KarmadProcess],
) -> None:
    k = karmad_factory()
    home = k.home.home
    old = make_checkout(home / "src", REMOTE)
    made = claude_session(home, old, "Read the readme and show big.txt")
    indexed(k, made.session_id)
    archived(k, made.session_id)

    # Claude Code's cleanup removes the session; the checkout moves elsewhere.
    shutil.rmtree(made.path.parent)
    new = home / "work" / "app"
    new.parent.mkdir()
    old.rename(new)
    gone = k.call("archive.sweep")["job"]
    status = archived(k, made.session_id)
    assert status["job"] >= gone
    assert [g["id"] for g in status["gone"]] == [made.session_id]
    assert indexed(k, made.session_id)["title"]  # still listed, read from the archive

    answer = resume(k, made.session_id, "--checkout", str(new))
    assert answer["session_id"] == made.session_id  # own, and nowhere here: keeps its id
    assert answer["outcome"] == "materialised"
    assert answer["path"] == str(
        home / ".claude" / "projects" / project_dir_name(str(new)) / f"{made.session_id}.jsonl"
    )
    assert answer["command"] == f"cd {new} && claude --resume {made.session_id}"
    results = Path(answer["path"]).with_suffix("") / "tool-results"
    assert [p.name for p in results.iterdir()], "the saved tool output came along"

    run = run_claude(home, new, ["--resume", made.session_id, "-p", NEXT])
    assert len(run.messages_requests()) == 1, run.stdout + run.stderr
    assert_continues(
        run,
        prompt=made.prompt,
        directory=new,
        forbidden=sender_traces(old),
        new_prompt=NEXT,
    )

    # Only the resumed id is known: any other is "no conversation found", with no request.
    stranger = str(uuid.uuid4())
    unknown = run_claude(home, new, ["--resume", stranger, "-p", NEXT])
    assert unknown.exit_code == 1
    assert f"No conversation found with session ID: {stranger}" in unknown.stderr
    assert unknown.messages_requests() == []

    # Every line karmad wrote says what it is a copy of; the lines Claude Code appended
    # afterwards do not.
    lines = [json.loads(x) for x in Path(answer["path"]).read_text().splitlines()]
    copied = [x for x in lines if COPY_FIELD in x]
    assert copied and {x[COPY_FIELD] for x in copied} == {made.session_id}
    assert lines[: len(copied)] == copied
    assert len(lines) > len(copied)
    assert all(x.get("sessionId") in (None, made.session_id) for x in lines)
