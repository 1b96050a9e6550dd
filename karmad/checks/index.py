"""The session index: its file's integrity and schema, what the indexer is doing, how far
behind it is, and which lines it had to skip.

The index is derived data (a damaged file is rebuilt from transcripts), so the fixes
here are "rebuild", never "recover".
"""

from __future__ import annotations

from pathlib import Path

from karmad import protocol
from karmad.checks.store import store_findings
from karmad.doctor import Doctor, duration, fail, ok, warn
from karmad.index.schema import INDEX_SCHEMA
from karmad.protocol import DoctorCheck
from karmad.services import Services

LAG_WARN_S = 60.0
"""Changes waiting longer than this mean the indexer is stuck or overwhelmed: the
watcher's batches normally take well under a second."""


def integrity_findings(path: Path, latest: int, *, enabled: bool) -> list[DoctorCheck]:
    if not enabled:
        return []  # index.state says that the index is turned off
    return store_findings("index", path, latest, precious=False)


def state_findings(status: protocol.IndexStatus) -> list[DoctorCheck]:
    name = "index.state"
    if not status.enabled:
        return [ok(name, "the session index is turned off (index.enabled = false)")]
    if status.state == "error":
        retrying = f" ({status.detail})" if status.detail else ""
        return [
            fail(
                name,
                f"indexing failed: {status.error or status.detail}{retrying}",
                "what failed is tried again until it succeeds (a full disk: free some space); "
                "karmad's log has the details, and `karmactl index rebuild` starts afresh "
                "(the index is rebuilt from the transcripts, nothing is lost)",
            )
        ]
    watching = "following changes" if status.watching else "not following changes"
    if status.state == "idle":
        return [ok(name, f"idle, {watching}: {status.sessions} sessions in {status.files} files")]
    return [ok(name, f"{status.state}, {watching}: {status.sessions} sessions so far")]


def lag_findings(status: protocol.IndexStatus, waiting: int) -> list[DoctorCheck]:
    name = "index.lag"
    if not status.enabled:
        return []
    progress = status.progress
    catching_up = ""
    if progress is not None and progress.phase == "scan":
        left = progress.files_total - progress.files_done
        catching_up = f"catching up: {progress.percent:.0f}% done, {left} files to read"
    if status.lag_s > LAG_WARN_S:
        what = f"{waiting} changed transcript(s)" if waiting else "changed transcripts"
        return [
            warn(
                name,
                f"{what} waiting for {duration(status.lag_s)}"
                + (f" ({catching_up})" if catching_up else ""),
                "`karmactl index status` shows what the indexer is doing; a stuck index is "
                "fixed by `karmactl service restart`",
            )
        ]
    if catching_up:
        return [ok(name, catching_up)]
    if waiting:
        return [ok(name, f"{waiting} changed transcript(s) queued, none for long")]
    return [ok(name, "up to date")]


def error_findings(status: protocol.IndexStatus) -> list[DoctorCheck]:
    name = "index.errors"
    if not status.enabled:
        return []
    if status.bad_lines:
        return [
            warn(
                name,
                f"{status.bad_lines} transcript line(s) could not be read and were skipped "
                "(their sessions' figures leave them out)",
                "`karmactl index status` counts them and `karmactl sessions show SESSION` "
                "lists each with file, line and reason; they are usually lines Claude Code "
                "was writing when it was interrupted",
            )
        ]
    return [ok(name, "no transcript line had to be skipped")]


def problem_findings(
    status: protocol.IndexStatus, count: int, first: list[protocol.IndexFileProblem]
) -> list[DoctorCheck]:
    name = "index.files"
    if not status.enabled:
        return []
    if not count:
        return [ok(name, "every transcript could be read")]
    shown = "; ".join(f"{p.path}: {p.reason}" for p in first[:3])
    more = f" (and {count - 3} more)" if count > 3 else ""
    return [
        warn(
            name,
            f"{count} transcript file(s) could not be read and are not indexed: {shown}{more}",
            "`karmactl index status` lists them with the reason; files that could not be "
            "opened are tried again by themselves, the others as soon as they change",
        )
    ]


def register(doctor: Doctor, svc: Services) -> None:
    path = svc.paths.index
    latest = INDEX_SCHEMA.latest
    enabled = svc.config.index.enabled
    indexer = svc.indexer

    async def activity() -> list[DoctorCheck]:
        status = indexer.status({})
        return [
            *state_findings(status),
            *lag_findings(status, indexer.changes_waiting),
            *error_findings(status),
            *problem_findings(status, svc.index.problem_count(), svc.index.file_problems(limit=3)),
        ]

    doctor.register_blocking(
        "index.store", lambda: integrity_findings(path, latest, enabled=enabled)
    )
    doctor.register("index.activity", activity)
