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
from datetime import datetime
from pathlib import Path

import pytest

from karmad.resume.claudecode import project_dir_name
from karmad.resume.plan import COPY_FIELD, derived_id
from tests.support.claude import run_claude, why_not
from tests.support.daemon import KarmadProcess
from tests.support.resume import (
    archived,
    assert_continues,
    claude_session,
    indexed,
    resume,
    sender_traces,
    wait_for,
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


def _subagent(made_path: Path, checkout: Path, session_id: str) -> Path:
    """A subagent transcript beside a session, the way Claude Code 2.x writes one."""
    path = made_path.with_suffix("") / "subagents" / "agent-a1b2c3d.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    base = {
        "isSidechain": True,
        "agentId": "a1b2c3d",
        "sessionId": session_id,
        "cwd": str(checkout),
        "version": "2.1.328",
        "userType": "external",
    }
    first = str(uuid.uuid4())
    records = [
        {
            **base,
            "type": "user",
            "uuid": first,
            "parentUuid": None,
            "timestamp": "2026-12-01T10:00:00.000Z",
            "message": {"role": "user", "content": f"Look through {checkout}/src for TODOs"},
        },
        {
            **base,
            "type": "assistant",
            "uuid": str(uuid.uuid4()),
            "parentUuid": first,
            "timestamp": "2026-12-01T10:00:02.000Z",
            "requestId": "req_sub1",
            "message": {
                "id": "msg_sub1",
                "role": "assistant",
                "model": "claude-opus-5-5",
                "stop_reason": "tool_use",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_sub1",
                        "name": "Grep",
                        "input": {"pattern": "TODO", "path": f"{checkout}/src"},
                    }
                ],
                "usage": {"input_tokens": 10, "output_tokens": 3},
            },
        },
    ]
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
    return path


def test_a_session_with_subagents_resumed_in_a_second_clone_gets_its_own_id(
    karmad_factory: Callable[..., KarmadProcess],
) -> None:
    k = karmad_factory()
    k.call("identity.init", {"user": "bob", "machine": "laptop"})
    home = k.home.home
    first = make_checkout(home / "src", REMOTE)
    made = claude_session(home, first, "Read the readme, then ask a subagent")
    agent = _subagent(made.path, first, made.session_id)
    indexed(k, made.session_id)
    wait_for(
        lambda: k.call("session.get", {"id": made.session_id})["subagents"] == 1,
        what="the subagent indexed",
    )
    second = make_checkout(home / "clone", REMOTE)

    answer = resume(k, made.session_id, "--checkout", str(second))
    new_id = answer["session_id"]
    assert new_id == derived_id(made.session_id, "bob.laptop")  # the original is still here
    target = Path(answer["path"])
    copied = target.with_suffix("") / "subagents" / agent.name
    lines = [json.loads(x) for x in copied.read_text().splitlines()]
    assert [x["sessionId"] for x in lines] == [new_id, new_id]
    assert {x[COPY_FIELD] for x in lines} == {made.session_id}
    text = copied.read_text()
    assert f"{second}/src" in text and str(first) not in text
    # Claude Code's own "continue the last one" keeps choosing by the real last activity.
    last = max(
        json.loads(x)["timestamp"] for x in target.read_text().splitlines() if '"timestamp"' in x
    )
    stamp = datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp()
    assert abs(target.stat().st_mtime - stamp) < 0.01

    run = run_claude(home, second, ["--resume", new_id, "-p", NEXT])
    assert run.messages_requests()[-1]["headers"]["x-claude-code-session-id"] == new_id
    assert_continues(
        run, prompt=made.prompt, directory=second, forbidden=sender_traces(first), new_prompt=NEXT
    )
    # The original is untouched and still resumes where it was.
    original = run_claude(home, first, ["--resume", made.session_id, "-p", NEXT])
    assert made.prompt in json.dumps(original.last["messages"])
    assert str(second) not in original.wire
