"""Helpers for the resume tests: sessions made by the real Claude Code, karmactl's
`sessions resume`, and what a resumed conversation must (not) send."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from karmad.resume.claudecode import encoded, project_dir_name
from tests.support.claude import ClaudeRun, run_claude
from tests.support.daemon import KarmadProcess, karmactl_command

BIG_LINES = 3000
"""Lines of the file whose `cat` Claude Code saves under tool-results (> 30,000 chars)."""


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class MadeSession:
    session_id: str
    path: Path
    prompt: str
    run: ClaudeRun


def claude_session(home: Path, checkout: Path, prompt: str) -> MadeSession:
    """A session Claude Code itself writes in `checkout`: the prompt, a Read of a file
    there and a Bash command whose large output it saves under tool-results, then an
    answer. Every path in it names `home` and `checkout`."""
    (checkout / "README.md").write_text(f"The project lives in {checkout}.\n")
    big = checkout / "big.txt"
    big.write_text("".join(f"line {i} of {big}\n" for i in range(BIG_LINES)))
    before = set((home / ".claude" / "projects").rglob("*.jsonl"))
    show = {"command": f"cat {big}", "description": "show the file"}
    run = run_claude(
        home,
        checkout,
        ["-p", prompt, "--allowedTools", "Read", "Bash"],
        script=[
            {"tool_use": {"name": "Read", "input": {"file_path": str(checkout / "README.md")}}},
            {"tool_use": {"name": "Bash", "input": show}},
            {"text": "Both files read."},
        ],
    )
    assert run.exit_code == 0, f"{run.stdout}\n{run.stderr}\n{run.log}"
    made = sorted(set((home / ".claude" / "projects").rglob("*.jsonl")) - before)
    mains = [p for p in made if p.parent.parent.name == "projects"]
    assert len(mains) == 1, made
    return MadeSession(mains[0].stem, mains[0], prompt, run)


def karmactl(
    daemon: KarmadProcess, *args: str, check: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        karmactl_command(*args),
        env=daemon.home.env({"KARMAD_SOCKET": str(daemon.socket)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def resume(daemon: KarmadProcess, session_id: str, *extra: str) -> dict[str, Any]:
    """`karmactl sessions resume ID --json` that must succeed."""
    out = karmactl(daemon, "sessions", "resume", session_id, *extra, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


def indexed(daemon: KarmadProcess, session_id: str, origin: str | None = None) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        params: dict[str, Any] = {"limit": 500}
        if origin:
            params["origin"] = origin
        for s in daemon.call("session.list", params)["sessions"]:
            if s["id"] == session_id and s["project"]:
                return dict(s)
        return None

    result: dict[str, Any] = wait_for(found, what=f"session {session_id} and its project")
    return result


def archived(daemon: KarmadProcess, session_id: str) -> dict[str, Any]:
    """The archive status once a sweep has seen the session's transcript linked."""

    def done() -> dict[str, Any] | None:
        job = daemon.call("archive.sweep")["job"]
        status: dict[str, Any] = wait_for(
            lambda: (s := daemon.call("archive.status"))["job"] >= job and s, what="a sweep"
        )
        return status if status["sessions"] and not status["uncovered_total"] else None

    result: dict[str, Any] = wait_for(done, what=f"session {session_id} archived")
    return result


def sender_traces(*paths: Path) -> list[str]:
    """Every spelling of these paths a leak could take: as they are, and encoded the way
    Claude Code names its directories."""
    out: list[str] = []
    for path in paths:
        text = str(path)
        out += [text, encoded(text), project_dir_name(text)]
    return sorted(set(out), key=len, reverse=True)


def strings(value: Any) -> list[str]:
    """Every string inside a decoded JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def assert_continues(
    run: ClaudeRun, *, prompt: str, directory: Path, forbidden: list[str], new_prompt: str
) -> None:
    """The resumed conversation Claude Code sent: the earlier turns, the new prompt, the
    local working directory, and nothing naming the sender's places."""
    body = run.last
    messages = json.dumps(body["messages"], ensure_ascii=False)
    assert prompt in messages, "the earlier conversation is in `messages`"
    assert new_prompt in messages
    assert '"tool_use"' in messages and '"tool_result"' in messages
    assert str(directory / "README.md") in messages, "tool inputs name the local checkout"
    said = f"Primary working directory: {directory}\n"
    assert any(said in text for text in strings(body)), "the local checkout is the working dir"
    wire = run.wire
    for trace in forbidden:
        assert trace not in wire, f"{trace} was sent"
