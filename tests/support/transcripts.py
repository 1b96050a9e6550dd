"""Transcripts for tests: the shared corpus (copied, never edited in place), lines
written the way Claude Code writes them, and ccusage as an independent referee."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

from tests.support.daemon import REPO

CORPUS = Path(os.environ.get("KARMAD_TEST_CORPUS", REPO.parent / "shared" / "corpus" / "claude"))
CCUSAGE_VERSION = "20.0.24"


def copy_corpus(dest: Path) -> Path:
    """A writable copy of the corpus's `projects` directory at `dest`; returns `dest`."""
    shutil.copytree(CORPUS / "projects", dest)
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), 0o700 if name in dirs else 0o600)
    os.chmod(dest, 0o700)
    return dest


def assistant(
    message_id: str | None,
    request_id: str | None,
    *,
    model: str = "claude-sonnet-4-20250514",
    session: str = "s",
    input: int = 0,
    output: int = 0,
    cache_write: int = 0,
    cache_read: int = 0,
    five_minutes: int | None = None,
    one_hour: int | None = None,
    stop: str | None = None,
    ts: str = "2026-01-10T10:00:00.000Z",
    content: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "input_tokens": input,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output,
    }
    if five_minutes is not None or one_hour is not None:
        usage["cache_creation"] = {
            "ephemeral_5m_input_tokens": five_minutes or 0,
            "ephemeral_1h_input_tokens": one_hour or 0,
        }
    message: dict[str, Any] = {
        "model": model,
        "type": "message",
        "role": "assistant",
        "content": content if content is not None else [{"type": "text", "text": "ok"}],
        "stop_reason": stop,
        "usage": usage,
    }
    if message_id is not None:
        message["id"] = message_id
    record: dict[str, Any] = {
        "parentUuid": None,
        "isSidechain": False,
        "userType": "external",
        "cwd": "/tmp/project",
        "sessionId": session,
        "version": "2.1.0",
        "type": "assistant",
        "message": message,
        "uuid": str(uuid.uuid4()),
        "timestamp": ts,
    }
    if request_id is not None:
        record["requestId"] = request_id
    record.update(extra or {})
    return record


def user(
    text: str | list[dict[str, Any]],
    *,
    session: str = "s",
    ts: str = "2026-01-10T09:59:59.000Z",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "parentUuid": None,
        "isSidechain": False,
        "userType": "external",
        "cwd": "/tmp/project",
        "sessionId": session,
        "version": "2.1.0",
        "gitBranch": "main",
        "type": "user",
        "message": {"role": "user", "content": text},
        "uuid": str(uuid.uuid4()),
        "timestamp": ts,
    }
    record.update(extra or {})
    return record


def line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def write(path: Path, records: list[dict[str, Any]], *, mode: str = "wb") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode) as f:
        for record in records:
            f.write(line(record))


# --------------------------------------------------------------------------- ccusage


def ccusage_path() -> Path | None:
    """ccusage as `./dev` installs it, or $KARMAD_TEST_CCUSAGE; None when missing."""
    override = os.environ.get("KARMAD_TEST_CCUSAGE")
    candidate = (
        Path(override)
        if override
        else REPO / ".venv" / "ccusage" / "node_modules" / ".bin" / "ccusage"
    )
    if not candidate.exists() or (shutil.which("node") is None and not override):
        return None
    return candidate


SKIP_CCUSAGE = (
    f"ccusage {CCUSAGE_VERSION} is not installed (./dev installs it into .venv/ccusage "
    "when npm is available; or set KARMAD_TEST_CCUSAGE)"
)


def ccusage_sessions(claude_dir: Path, home: Path) -> dict[str, dict[str, Any]]:
    """`ccusage session --json --offline` over `claude_dir`, by session id.

    HOME is a throw-away directory: ccusage 20 also reads other tools' logs from it.
    """
    binary = ccusage_path()
    assert binary is not None
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(claude_dir),
        "TZ": "UTC",
        "NO_COLOR": "1",
    }
    out = subprocess.run(
        [str(binary), "session", "--json", "--offline"],
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    data = json.loads(out.stdout)
    return {s["period"]: s for s in data["session"]}


def compact_copy(source: Path, dest: Path) -> None:
    """The same transcripts with every JSON line re-serialised compactly.

    ccusage 20 finds records by looking for `"type":"assistant"`-like byte patterns and
    misses lines written with spaces after the separators; this copy lets it see every
    session, for a comparison of all of them.
    """
    for path in source.rglob("*.jsonl"):
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        with path.open("rb") as src, target.open("wb") as out:
            for raw in src:
                try:
                    value = json.loads(raw)
                except ValueError:
                    out.write(raw)
                    continue
                out.write(
                    json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
                )
