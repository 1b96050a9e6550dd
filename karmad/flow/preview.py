"""`share.preview`: what would leave this machine, and what redaction would replace.

Reads the same sources the packager would and runs the same redactor over them, in a
worker thread, writing nothing. The answer names each redacted line and the kinds and
JSON paths replaced there — never the secret itself.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import anyio

from karmad import logs, protocol
from karmad.bus import Bus
from karmad.domain import project_key
from karmad.flow.copier import objects_only
from karmad.index.discovery import TOOL_RESULTS
from karmad.redact import Redactor
from karmad.store import Row
from karmad.sync.model import Outbox

log = logs.get("karmad.flow")

KEEP_JOBS = 20


def _preview_file(
    redactor: Redactor, path: Path, *, transcript: bool, max_lines: int
) -> protocol.PreviewFile:
    data = path.read_bytes()
    if transcript:
        end = data.rfind(b"\n")
        data = data[: end + 1] if end >= 0 else b""
    # Line numbers refer to the source: report per source line, then drop as the
    # packager does (dropped lines are never sent, so never redacted).
    kept, dropped = objects_only(data) if transcript else (data, 0)
    result = redactor.redact_chunk(kept, explain=True)
    counts: dict[str, int] = {}
    lines: list[protocol.PreviewLine] = []
    numbers = _source_numbers(data) if transcript and dropped else None
    for report in result.reports:
        for kind, n in report.counts.items():
            counts[kind] = counts.get(kind, 0) + n
        if len(lines) < max_lines and report.line is not None:
            number = numbers[report.line] if numbers is not None else report.line
            lines.append(
                protocol.PreviewLine(
                    line=number + 1, kinds=dict(report.counts), paths=list(report.paths)
                )
            )
    return protocol.PreviewFile(
        path=str(path),
        bytes=len(result.data),
        lines=result.data.count(b"\n") if transcript else 0,
        dropped_lines=dropped,
        redactions=dict(sorted(counts.items())),
        redacted_lines=lines,
    )


def _source_numbers(data: bytes) -> list[int]:
    """For each kept line (in order), its 0-based number in the source."""
    out = []
    for n, line in enumerate(data.split(b"\n")[:-1]):
        if line[:1] == b"{" and line.rstrip(b"\r \t")[-1:] == b"}":
            out.append(n)
    return out


class Previewer:
    def __init__(
        self,
        *,
        redactor: Redactor,
        bus: Bus,
        outboxes: Callable[[], tuple[Outbox, ...]],
        team_names: Callable[[], dict[str, str]],
        claude_dir: Path,
    ) -> None:
        self._redactor = redactor
        self._bus = bus
        self._outboxes = outboxes
        self._team_names = team_names
        self._claude_dir = claude_dir
        self._ids = itertools.count(1)
        self._jobs: OrderedDict[int, protocol.SharePreview] = OrderedDict()
        self._pending: list[tuple[int, list[tuple[Row, list[Row], list[str], str]], Path, int]] = []
        self._wake = anyio.Event()

    def start(self, sessions: list[tuple[Row, list[Row]]], root: Path, max_lines: int) -> int:
        job = next(self._ids)
        self._jobs[job] = protocol.SharePreview(
            state="running", rules_version=self._redactor.rules_version
        )
        while len(self._jobs) > KEEP_JOBS:
            self._jobs.popitem(last=False)
        # Destinations come from the store and the reconciler: decided here, on the loop.
        planned = [(row, files, *self._destinations(row["project"])) for row, files in sessions]
        self._pending.append((job, planned, root, max_lines))
        self._wake.set()
        return job

    def result(self, job: int) -> protocol.SharePreview | None:
        return self._jobs.get(job)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self._pending:
                job, sessions, root, max_lines = self._pending.pop(0)
                try:
                    done = await anyio.to_thread.run_sync(self._compute, sessions, root, max_lines)
                except OSError as exc:
                    done = protocol.SharePreview(state="error", error=str(exc))
                if job in self._jobs:
                    self._jobs[job] = done
                self._bus.publish("share.preview.done", {"job": job}, remember=False)

    def _destinations(self, project: str) -> tuple[list[str], str]:
        if not project:
            return [], "no project: the session's directory is not a known checkout"
        key = project_key(project)
        names = self._team_names()
        outboxes = self._outboxes()
        teams = sorted(names.get(o.team_id, o.team_id) for o in outboxes if key in o.project_keys)
        if teams:
            return teams, ""
        if not outboxes:
            return [], "not shared: this member sends to no team"
        return [], "not sent: the project is not shared with a team, or not accepted for sending"

    def _compute(
        self,
        sessions: list[tuple[Row, list[Row], list[str], str]],
        root: Path,
        max_lines: int,
    ) -> protocol.SharePreview:
        out: list[protocol.PreviewSession] = []
        for session, files, destinations, reason in sessions:
            previews: list[protocol.PreviewFile] = []
            for f in files:
                path = Path(f["path"])
                if path.is_file():
                    previews.append(
                        _preview_file(self._redactor, path, transcript=True, max_lines=max_lines)
                    )
            results = root / session["project_dir"] / session["session_id"] / TOOL_RESULTS
            if results.is_dir():
                for path in sorted(p for p in results.rglob("*") if p.is_file()):
                    previews.append(
                        _preview_file(self._redactor, path, transcript=False, max_lines=max_lines)
                    )
            totals: dict[str, int] = {}
            for p in previews:
                for kind, n in p.redactions.items():
                    totals[kind] = totals.get(kind, 0) + n
            out.append(
                protocol.PreviewSession(
                    session_id=session["session_id"],
                    project=session["project"],
                    destinations=destinations,
                    reason=reason,
                    files=previews,
                    redactions=dict(sorted(totals.items())),
                )
            )
        return protocol.SharePreview(
            state="done", rules_version=self._redactor.rules_version, sessions=out
        )
