"""Realistic Claude Code sessions for end-to-end tests, written where Claude Code would.

Lines come from the shared corpus of real transcripts, re-targeted at a checkout the test
creates (a directory with a `.git/config` naming a remote), so the session belongs to a
project identity the team can share.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CORPUS = Path(
    os.environ.get("KARMAD_TEST_CORPUS")
    or Path(__file__).resolve().parents[3] / "shared" / "corpus" / "claude" / "projects"
)


def make_checkout(parent: Path, remote: str, name: str = "app") -> Path:
    """A git checkout (as far as karmad looks at one) whose origin is `remote`."""
    checkout = parent / name
    (checkout / ".git").mkdir(parents=True, exist_ok=True)
    (checkout / ".git" / "config").write_text(
        f'[core]\n\tbare = false\n[remote "origin"]\n\turl = {remote}\n'
        "\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
    )
    return checkout


def encoded(path: Path) -> str:
    """Claude Code's directory name for a working directory."""
    return re.sub(r"[^A-Za-z0-9]", "-", str(path))


def synthetic_records(turns: int = 20) -> list[dict[str, Any]]:
    """A plausible conversation (prompts, priced answers with tool calls and results),
    for machines without the shared corpus of real transcripts."""
    records: list[dict[str, Any]] = []
    parent = None
    for n in range(turns):
        ts = f"2026-01-0{1 + n % 9}T10:{n % 60:02d}:00.000Z"
        prompt = {
            "type": "user",
            "uuid": str(uuid.uuid4()),
            "parentUuid": parent,
            "timestamp": ts,
            "version": "2.0.14",
            "cwd": "/tmp/x",
            "sessionId": "s",
            "message": {"role": "user", "content": f"Step {n}: run the tests and fix what fails"},
        }
        tool_id = f"toolu_{uuid.uuid4().hex[:20]}"
        answer = {
            "type": "assistant",
            "uuid": str(uuid.uuid4()),
            "parentUuid": prompt["uuid"],
            "timestamp": ts,
            "version": "2.0.14",
            "cwd": "/tmp/x",
            "sessionId": "s",
            "requestId": f"req_{uuid.uuid4().hex[:20]}",
            "message": {
                "id": f"msg_{uuid.uuid4().hex[:24]}",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "stop_reason": "tool_use",
                "content": [
                    {"type": "text", "text": f"Running the suite (step {n})."},
                    {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": "Bash",
                        "input": {"command": "pytest -q", "description": "Run the tests"},
                    },
                ],
                "usage": {
                    "input_tokens": 12 + n,
                    "output_tokens": 90 + n,
                    "cache_creation_input_tokens": 400,
                    "cache_read_input_tokens": 8000 + n,
                    "cache_creation": {
                        "ephemeral_5m_input_tokens": 400,
                        "ephemeral_1h_input_tokens": 0,
                    },
                },
            },
        }
        result = {
            "type": "user",
            "uuid": str(uuid.uuid4()),
            "parentUuid": answer["uuid"],
            "timestamp": ts,
            "version": "2.0.14",
            "cwd": "/tmp/x",
            "sessionId": "s",
            "message": {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tool_id, "content": f"{n} passed"}
                ],
            },
            "toolUseResult": {"stdout": f"{n} passed", "stderr": "", "interrupted": False},
        }
        records += [prompt, answer, result]
        parent = result["uuid"]
    return records


def corpus_records(limit: int) -> Iterator[dict[str, Any]]:
    """`limit` records of the largest real transcript in the corpus, in order (or of a
    synthetic conversation where the corpus is not available).

    Past the end the transcript starts over, each repeated record with a fresh `uuid`
    (and, for answers, a fresh message id) so that no two lines are the same.
    """
    files = sorted(CORPUS.glob("*/*.jsonl"), key=lambda p: p.stat().st_size, reverse=True)
    records = []
    for line in files[0].read_bytes().splitlines() if files else []:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    if not records:
        records = synthetic_records()
    for n in range(limit):
        record = records[n % len(records)]
        if n >= len(records):
            record = dict(record, uuid=str(uuid.uuid4()))
            message = record.get("message")
            if isinstance(message, dict) and "id" in message:
                record["message"] = dict(message, id=f"msg_{uuid.uuid4().hex[:24]}")
        yield record


def retarget(record: dict[str, Any], session_id: str, cwd: Path) -> dict[str, Any]:
    out = dict(record)
    if "sessionId" in out:
        out["sessionId"] = session_id
    if "cwd" in out:
        out["cwd"] = str(cwd)
    return out


def dump(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class SessionWriter:
    """Appends to one session the way Claude Code does: whole lines, one at a time."""

    def __init__(self, claude_dir: Path, checkout: Path, session_id: str | None = None) -> None:
        self.session_id = session_id or str(uuid.uuid4())
        self.checkout = checkout
        self.dir = claude_dir / "projects" / encoded(checkout)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"{self.session_id}.jsonl"

    def append(self, *records: dict[str, Any]) -> list[bytes]:
        lines = [dump(retarget(r, self.session_id, self.checkout)) for r in records]
        with self.path.open("ab") as f:
            for line in lines:
                f.write(line)
                f.flush()
        return lines

    def append_raw(self, data: bytes) -> None:
        with self.path.open("ab") as f:
            f.write(data)

    def subagent(self, agent_id: str, *records: dict[str, Any]) -> Path:
        path = self.dir / self.session_id / "subagents" / f"agent-{agent_id}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as f:
            for r in records:
                rec = retarget(r, self.session_id, self.checkout)
                rec["isSidechain"] = True
                rec["agentId"] = agent_id
                f.write(dump(rec))
        return path

    def tool_result(self, name: str, content: bytes) -> Path:
        path = self.dir / self.session_id / "tool-results" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return path
