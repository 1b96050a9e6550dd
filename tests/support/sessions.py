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


def corpus_records(limit: int) -> Iterator[dict[str, Any]]:
    """`limit` records of the largest real transcript in the corpus, in order.

    Past the end the transcript starts over, each repeated record with a fresh `uuid`
    (and, for answers, a fresh message id) so that no two lines are the same.
    """
    files = sorted(CORPUS.glob("*/*.jsonl"), key=lambda p: p.stat().st_size, reverse=True)
    if not files:
        raise FileNotFoundError(f"no corpus at {CORPUS}")
    records = []
    for line in files[0].read_bytes().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
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
