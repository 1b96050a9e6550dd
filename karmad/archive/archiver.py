"""The archiver: every own transcript linked (or copied) into karmad's state directory.

What it keeps: main transcripts, subagent transcripts and tool results under Claude
Code's projects folder, whether or not any team shares their project, except projects
the user excluded (`archive.exclude_projects`). The archive has the same layout as that
folder, so a file gone from Claude Code's folder is found in the archive under the same
relative path; the index reads it from there as the same file (`Root.archive`).

When: a pass over the sessions the index reports changed (`index.sessions`), a full
sweep at start-up, every `archive.sweep_interval_s` and on `archive.sweep`. A new
transcript is linked within a debounce of its first lines; after that the link follows
it by itself, so later appends cost nothing (copies are brought up to date by the next
pass). All file work runs in a worker thread.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Final

import anyio
import msgspec
from anyio.abc import TaskStatus

from karmad import gitremote, logs, protocol
from karmad.archive import layout, mirror
from karmad.bus import Bus, Clock, Subscription
from karmad.config import ArchiveConfig
from karmad.health import Health
from karmad.index import discovery
from karmad.index.schema import INDEX_SCHEMA
from karmad.store import Store, StoreError

log = logs.get("karmad.archive")

DEBOUNCE_S: Final = 0.05
PENDING_S: Final = 60.0
"""A file younger than this that is not archived yet is pending, not uncovered."""
LISTED: Final = 200
HEAD_BYTES: Final = 256 << 10
"""How much of a transcript is searched for the working directory it names."""
_CWD = re.compile(rb'"cwd"\s*:\s*"((?:[^"\\]|\\.)*)"')


def excluded_identities(entries: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """(project identities, checkout paths) from `archive.exclude_projects`."""
    identities: set[str] = set()
    paths: list[str] = []
    for entry in entries:
        text = entry.strip()
        if text.startswith(("/", "~")):
            path = os.path.realpath(os.path.expanduser(text))
            paths.append(path)
            found = gitremote.identify(path)
            identities.add(found.identity)
            continue
        remote = gitremote.normalise_remote(text)
        if remote is None and "/" in text:
            remote = gitremote.normalise_remote(f"https://{text}")
        identities.add(remote or text)
    return frozenset(identities), tuple(paths)


def _cwd_of(path: Path) -> str | None:
    """The first working directory a transcript names (in its first lines)."""
    try:
        with path.open("rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return None
    match = _CWD.search(head)
    if match is None:
        return None
    try:
        value = json.loads(b'"' + match.group(1) + b'"')
    except ValueError:
        return None
    return value if isinstance(value, str) and value else None


@dataclass
class _Projects:
    """Which project each of Claude Code's project directories belongs to.

    One directory holds the sessions started in one working directory, so one identity
    answers for every file in it; it is read from the first transcript there that
    names its working directory, once.
    """

    identities: frozenset[str]
    paths: tuple[str, ...]
    known: dict[str, bool | None] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.identities or self.paths)

    def excluded(self, live: Path, project_dir: str) -> bool | None:
        """True/False, or None while no transcript there names its directory."""
        if not self.any:
            return False
        known = self.known.get(project_dir)
        if known is not None:
            return known
        folder = live / project_dir
        for entry in sorted(discovery.list_dir(str(folder)), key=lambda e: e.name):
            if not entry.name.endswith(discovery.SUFFIX):
                continue
            cwd = _cwd_of(Path(entry.path))
            if cwd is None:
                continue
            found = gitremote.identify(cwd)
            answer = found.identity in self.identities or any(
                cwd == p or cwd.startswith(p + os.sep) for p in self.paths
            )
            self.known[project_dir] = answer
            return answer
        return None


@dataclass
class PassReport:
    files: int = 0
    linked: int = 0
    copied: int = 0
    written: int = 0
    replaced: int = 0
    waiting: int = 0
    """Files of a project directory whose project is not known yet (exclusions set)."""
    errors: list[str] = field(default_factory=list)


def _mtime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


class Archiver:
    def __init__(
        self,
        *,
        live: Path,
        archive: Path,
        replaced: Path,
        index_path: Path,
        config: ArchiveConfig,
        bus: Bus,
        health: Health,
        clock: Clock,
    ) -> None:
        self.live = live
        self.archive = archive
        self.replaced = replaced
        self._index_path = index_path
        self.config = config
        self._bus = bus
        self._health = health
        self._clock = clock
        identities, paths = excluded_identities(config.exclude_projects)
        self._projects = _Projects(identities, paths)
        self._jobs = itertools.count(1)
        self._wanted_job = 0
        self._full = True
        self._sessions: set[str] = set()
        self._wake = anyio.Event()
        self._limiter = anyio.CapacityLimiter(1)
        self._index: Store | None = None
        self._status = protocol.ArchiveStatus(
            enabled=config.enabled,
            state="starting" if config.enabled else "disabled",
            path=str(archive.parent),
            excluded=list(config.exclude_projects),
        )
        health.add_summary("archive", self.summary)

    # ------------------------------------------------------------------ event loop side

    @property
    def status(self) -> protocol.ArchiveStatus:
        return self._status

    def summary(self) -> str:
        status = self._status
        if not status.enabled or status.as_of is None:
            return ""
        return f"{status.sessions} sessions archived"

    def sweep(self) -> int:
        """Ask for a full sweep; returns the job `archive.status` will report when done."""
        job = next(self._jobs)
        self._wanted_job = job
        self._full = True
        self._wake.set()
        return job

    def wake(self, sessions: set[str]) -> None:
        self._sessions |= sessions
        self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        if not self.config.enabled:
            self._health.set("archive", "disabled", "archive.enabled is false")
            task_status.started()
            return
        sub = self._bus.subscribe(("index.sessions",), buffer=1000)
        self.sweep()  # whatever changed while karmad was not running
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._listen, sub)
                task_status.started()
                while True:
                    with anyio.move_on_after(self.config.sweep_interval_s) as scope:
                        await self._wake.wait()
                    if scope.cancelled_caught:
                        self._full = True
                    await anyio.sleep(DEBOUNCE_S)
                    self._wake = anyio.Event()
                    await self._pass()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._close, limiter=self._limiter)

    async def _listen(self, sub: Subscription) -> None:
        while True:
            async with sub.receive:
                async for event in sub.receive:
                    sessions = event.data.get("sessions")
                    if not isinstance(sessions, list):
                        self._full = True  # too many to name
                        self._wake.set()
                        continue
                    local = {
                        str(s["id"])
                        for s in sessions
                        if isinstance(s, dict) and s.get("origin") == "local"
                    }
                    if local:
                        self.wake(local)
            self._full = True  # fell behind: look at everything
            self._wake.set()
            sub = self._bus.subscribe(("index.sessions",), buffer=1000)

    async def _pass(self) -> None:
        full, job = self._full, self._wanted_job
        sessions, self._sessions = self._sessions, set()
        self._full = False
        if full:
            self._status = msgspec.structs.replace(self._status, state="sweeping")
        try:
            report, status = await anyio.to_thread.run_sync(
                self._work, full, sessions, limiter=self._limiter
            )
        except (OSError, StoreError) as exc:
            log.error("archive_failed", error=str(exc))
            self._health.set("archive", "error", str(exc))
            self._status = msgspec.structs.replace(
                self._status, state="error", error=str(exc), job=job
            )
            self._full = True
            return
        except Exception as exc:  # a bug here must not take the daemon down
            log.exception("archive_crashed")
            self._health.set("archive", "error", f"{type(exc).__name__}: {exc}")
            self._status = msgspec.structs.replace(
                self._status, state="error", error=f"{type(exc).__name__}: {exc}", job=job
            )
            self._full = True
            return
        if report.linked or report.copied or report.replaced:
            log.info(
                "archived",
                linked=report.linked,
                copied=report.copied,
                replaced=report.replaced,
                bytes=report.written,
            )
        if status is not None:
            self._status = msgspec.structs.replace(status, job=job)
            self._bus.publish("archive.swept", {"job": job, "sessions": status.sessions})
        if report.errors:
            self._health.set("archive", "degraded", f"{len(report.errors)} file(s) failed")
        else:
            self._health.set("archive", "ok", f"{self._status.sessions} sessions archived")

    # ------------------------------------------------------------------ worker thread

    def _close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def _work(
        self, full: bool, sessions: set[str]
    ) -> tuple[PassReport, protocol.ArchiveStatus | None]:
        paths = self.live_files() if full else self._files_of(sessions)
        report = self.keep(paths)
        return report, (self.survey() if full else None)

    def live_files(self) -> Iterator[Path]:
        """Every file under Claude Code's projects folder the archive keeps."""
        for ref, _ in discovery.walk(self.live):
            yield Path(ref.path)
            if ref.kind == "main":
                yield from self._side_files(Path(ref.path))

    def _side_files(self, main: Path) -> Iterator[Path]:
        """A session's tool results (its subagents come from `walk` or the index)."""
        results = main.with_suffix("") / discovery.TOOL_RESULTS
        for dirpath, _dirs, names in os.walk(results, followlinks=False):
            for name in names:
                if not name.startswith("."):
                    yield Path(dirpath) / name

    def _files_of(self, sessions: set[str]) -> Iterator[Path]:
        """The live files of these local sessions, as the index knows them."""
        if not sessions:
            return
        if self._index is None:
            if not self._index_path.exists():
                return
            self._index = Store.open(
                self._index_path, INDEX_SCHEMA, check_same_thread=False, migrate=False
            )
        rows = self._index.query(
            "SELECT f.path, f.kind FROM files f JOIN sessions s ON s.id = f.session_pk "
            "JOIN roots r ON r.id = s.root_id WHERE r.origin = 'local' "
            "AND s.session_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(sessions)),),
        )
        for row in rows:
            path = Path(row["path"])
            if self.live not in path.parents:
                continue  # read from the archive already: its live file is gone
            yield path
            if row["kind"] == "main":
                yield from self._side_files(path)

    def keep(self, paths: Iterable[Path]) -> PassReport:
        """Archive each of these live files (paths under the live projects folder)."""
        report = PassReport()
        for src in paths:
            try:
                rel = src.relative_to(self.live)
            except ValueError:
                continue
            if any(part.startswith(".") for part in rel.parts):
                continue
            excluded = self._projects.excluded(self.live, rel.parts[0])
            if excluded is None:
                report.waiting += 1
                continue
            if excluded:
                continue
            try:
                outcome = mirror.keep(
                    src, layout.archived(self.archive, PurePosixPath(rel)), self.replaced / rel
                )
            except OSError as exc:
                log.warning("archive_file_failed", path=str(src), error=str(exc))
                report.errors.append(f"{rel}: {exc}")
                continue
            report.files += 1
            report.written += outcome.written
            if outcome.action == "linked":
                report.linked += 1
            elif outcome.action == "copied":
                report.copied += 1
            elif outcome.action == "replaced":
                report.replaced += 1
                log.warning("archive_generation_kept", path=str(rel), kept=str(outcome.set_aside))
        return report

    def survey(self) -> protocol.ArchiveStatus:
        """What the archive holds and what it misses, from the files themselves."""
        now = time.time()
        sessions: dict[str, tuple[str, str, int, PurePosixPath]] = {}
        """archived main path -> (session id, project dir, mtime_ns, live path)"""
        sizes: dict[str, int] = {}
        """`<project dir>/<session>` -> bytes of every archived file of the session"""
        files = size = only = linked = copied = 0
        for kept, origin, st in layout.walk(self.archive):
            files += 1
            size += st.st_size
            if st.st_nlink > 1:
                linked += 1
            else:
                copied += 1
                only += st.st_blocks * 512
            ref = discovery.classify(self.live, self.live.joinpath(*origin.parts))
            if ref is not None and ref.kind == "main":
                sessions[str(kept)] = (ref.session_id, ref.project_dir, st.st_mtime_ns, origin)
            key = "/".join(origin.parts[:2]).removesuffix(discovery.SUFFIX)
            sizes[key] = sizes.get(key, 0) + st.st_size
        replaced_files = 0
        for _, st in _files_under(self.replaced):
            replaced_files += 1
            only += st.st_blocks * 512
        gone: list[protocol.ArchivedSession] = []
        oldest: tuple[int, str] | None = None
        for main, (sid, project_dir, mtime, origin) in sessions.items():
            if oldest is None or mtime < oldest[0]:
                oldest = (mtime, sid)
            if not self.live.joinpath(*origin.parts).exists():
                gone.append(
                    protocol.ArchivedSession(
                        id=sid,
                        project_dir=project_dir,
                        path=main,
                        bytes=sizes.get(f"{project_dir}/{sid}", 0),
                        last_active=_mtime(mtime),
                    )
                )
        gone.sort(key=lambda s: s.last_active or datetime.min.replace(tzinfo=UTC), reverse=True)
        uncovered: list[str] = []
        pending = excluded = 0
        for path, st in self._live_stats():
            rel = Path(path).relative_to(self.live)
            target = layout.archived(self.archive, PurePosixPath(rel))
            try:
                at = os.stat(target, follow_symlinks=False)
            except FileNotFoundError:
                at = None
            if at is not None and (
                (at.st_dev, at.st_ino) == (st.st_dev, st.st_ino) or at.st_size == st.st_size
            ):
                continue
            verdict = self._projects.excluded(self.live, rel.parts[0])
            if verdict:
                excluded += 1
            elif now - st.st_mtime < PENDING_S:
                pending += 1
            else:
                uncovered.append(rel.as_posix())
        uncovered.sort()
        return protocol.ArchiveStatus(
            enabled=True,
            state="idle",
            path=str(self.archive.parent),
            as_of=self._clock(),
            sessions=len(sessions),
            files=files,
            bytes=size,
            archive_only_bytes=only,
            linked_files=linked,
            copied_files=copied,
            replaced_files=replaced_files,
            oldest_session=oldest[1] if oldest else "",
            oldest_at=_mtime(oldest[0]) if oldest else None,
            gone=gone[:LISTED],
            gone_total=len(gone),
            uncovered=uncovered[:LISTED],
            uncovered_total=len(uncovered),
            pending=pending,
            excluded=list(self.config.exclude_projects),
            excluded_files=excluded,
        )

    def _live_stats(self) -> Iterator[tuple[str, os.stat_result]]:
        for ref, st in discovery.walk(self.live):
            yield ref.path, st
            if ref.kind == "main":
                for side in self._side_files(Path(ref.path)):
                    try:
                        yield str(side), os.stat(side, follow_symlinks=False)
                    except FileNotFoundError:
                        continue


def _files_under(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every regular file below `root` (hidden temporary files left out)."""
    for dirpath, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if os.path.isfile(path) and not os.path.islink(path):
                yield path, st
