"""The packager: local sessions of shared projects into the member's team folders.

For every outbox the reconciler wants (our own team folder, with the projects we accepted
to send), the sessions of those projects — main transcript, subagent transcripts, tool
results, and todo lists where the team opted in — are copied under `projects/<key>/`,
in the same layout as `~/.claude/projects`, redacted, incrementally and atomically (see
`copier`). After each write Syncthing is asked to scan exactly what changed.

Deletions at the source are never propagated: the outbox is the member's archive.
Packaging follows the index: a change to a local session (an `index.sessions` event)
packages that session; a change of outboxes (subscriptions, teams) or the periodic
sweep goes through all of them.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import anyio
from anyio.abc import TaskStatus

from karmad import atomic_file, logs
from karmad.bus import Bus, Clock, Subscription
from karmad.domain import EventKind, SyncEvent, project_key
from karmad.flow import manifest as mf
from karmad.flow.copier import Hashers, Progress, sync_file
from karmad.health import Health
from karmad.index.discovery import TOOL_RESULTS
from karmad.index.schema import INDEX_SCHEMA
from karmad.paths import UnsafeFolderId, managed_folder
from karmad.redact import Redactor
from karmad.state_schema import STATE_SCHEMA
from karmad.store import Row, Store, StoreError
from karmad.sync import teamstore
from karmad.sync.model import Outbox
from karmad.sync.statefile import TEMP_PREFIX

log = logs.get("karmad.flow")

SWEEP_S = 300.0
DEBOUNCE_S = 0.02
TODOS = "todos"
TASKS = "tasks"
PLANS = "plans"
_SLUG = re.compile(rb'"slug":"([a-z0-9][a-z0-9-]{0,79})"')


@dataclass(frozen=True, slots=True)
class LocalSession:
    pk: int
    session_id: str
    project: str
    project_dir: str
    project_path: str
    versions: tuple[str, ...]
    files: tuple[tuple[str, str], ...]
    """(absolute path, kind) of its transcripts."""


@dataclass
class PassReport:
    scans: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    files: int = 0
    bytes: int = 0
    new_sessions: list[tuple[str, str, str]] = field(default_factory=list)
    """(folder, project key, session) packaged for the first time."""
    errors: list[str] = field(default_factory=list)


class Packager:
    def __init__(
        self,
        *,
        state_path: Path,
        index_path: Path,
        claude_dir: Path,
        folders_dir: Path,
        outboxes: Callable[[], tuple[Outbox, ...]],
        member_tag: Callable[[], str | None],
        scan: Callable[[str, list[str]], None],
        redactor: Redactor,
        bus: Bus,
        health: Health,
        clock: Clock,
    ) -> None:
        self._state_path = state_path
        self._index_path = index_path
        self._claude_dir = claude_dir
        self._folders_dir = folders_dir
        self._outboxes = outboxes
        self._member_tag = member_tag
        self._scan = scan
        self._redactor = redactor
        self._bus = bus
        self._health = health
        self._clock = clock
        self._wake = anyio.Event()
        self._full = True
        self._sessions: set[str] = set()
        self._limiter = anyio.CapacityLimiter(1)
        self._state: Store | None = None
        self._index: Store | None = None
        self._hashers = Hashers()
        self._last_outboxes: tuple[Outbox, ...] = ()
        self.packaged_bytes = 0
        self.passes = 0

    # ------------------------------------------------------------------ start-up

    async def recover(self) -> None:
        """Cut every outbox file longer than recorded back to its last recorded line.

        Run before Syncthing starts. Only a crash (kill -9 in the middle of an append)
        leaves such a file, its last line partial; the Syncthing that started next would
        scan and send it before the packager's first pass came to it.
        """
        try:
            cut = await anyio.to_thread.run_sync(self._recover, limiter=self._limiter)
        except (OSError, StoreError) as exc:
            # The first pass cuts each file back before appending to it anyway.
            log.error("outbox_recovery_failed", error=str(exc))
            return
        if cut:
            log.warning("outboxes_cut_back", files=cut)

    def _recover(self) -> int:
        state, _index = self._open()
        cut = 0
        for row in state.query("SELECT folder_id, rel, dest_size FROM packaged_files"):
            try:
                base = managed_folder(self._folders_dir, row["folder_id"])
            except UnsafeFolderId:
                continue
            dest = base / row["rel"]
            if not dest.resolve().is_relative_to(base.resolve()):
                continue  # not a path karmad wrote: leave it alone
            try:
                if dest.stat().st_size <= row["dest_size"]:
                    continue
                with dest.open("r+b") as f:
                    f.truncate(row["dest_size"])
                    os.fsync(f.fileno())
            except OSError:
                continue  # gone or unreadable: the packager's pass decides what to do
            log.warning("outbox_cut_back", path=str(dest), size=row["dest_size"])
            cut += 1
        return cut

    # ------------------------------------------------------------------ triggers

    def wake(self, *, full: bool = False, sessions: set[str] | None = None) -> None:
        if full:
            self._full = True
        if sessions:
            self._sessions |= sessions
        self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        sub = self._bus.subscribe(("index.sessions", "sync.outboxes"), buffer=1000)
        self.wake(full=True)  # catch up with what changed while karmad was down
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._listen, sub)
                task_status.started()
                while True:
                    with anyio.move_on_after(SWEEP_S):
                        await self._wake.wait()
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
                    if event.topic == "sync.outboxes":
                        self.wake(full=True)
                        continue
                    sessions = event.data.get("sessions")
                    if not isinstance(sessions, list):
                        self.wake(full=True)  # too many to name: look at everything
                        continue
                    local = {
                        str(s["id"])
                        for s in sessions
                        if isinstance(s, dict) and s.get("origin") == "local"
                    }
                    if local:
                        self.wake(sessions=local)
            self.wake(full=True)
            sub = self._bus.subscribe(("index.sessions", "sync.outboxes"), buffer=1000)

    async def _pass(self) -> None:
        outboxes = self._outboxes()
        tag = self._member_tag()
        if not outboxes or tag is None:
            self._full, self._sessions = False, set()
            self._health.set("package", "idle", "nothing to package")
            return
        full = self._full or outboxes != self._last_outboxes
        sessions = None if full else set(self._sessions)
        self._full, self._sessions = False, set()
        self._last_outboxes = outboxes
        try:
            report = await anyio.to_thread.run_sync(
                self._work, outboxes, tag, sessions, limiter=self._limiter
            )
        except (OSError, StoreError) as exc:
            log.error("package_failed", error=str(exc))
            self._health.set("package", "error", str(exc))
            self._full = True  # look at everything again next time
            return
        except Exception as exc:  # a bug here must not take the daemon down
            log.exception("package_crashed")
            self._health.set("package", "error", f"{type(exc).__name__}: {exc}")
            self._full = True
            return
        self.passes += 1
        for folder, paths in report.scans.items():
            self._scan(folder, sorted(paths))
        for folder, key, session in report.new_sessions:
            self._bus.publish(
                "package.session", {"folder": folder, "project": key, "session": session}
            )
        if report.files:
            self._bus.publish(
                "package.written",
                {"files": report.files, "bytes": report.bytes, "folders": len(report.scans)},
                remember=False,
            )
        if report.errors:
            self._health.set("package", "degraded", f"{len(report.errors)} file(s) failed")
        else:
            self._health.set("package", "idle", f"{len(outboxes)} outbox(es)")

    # ------------------------------------------------------------------ thread side

    def _open(self) -> tuple[Store, Store]:
        if self._state is None:
            self._state = Store.open(self._state_path, STATE_SCHEMA, check_same_thread=False)
        if self._index is None:
            self._index = Store.open(
                self._index_path, INDEX_SCHEMA, check_same_thread=False, migrate=False
            )
        return self._state, self._index

    def _close(self) -> None:
        for store in (self._state, self._index):
            if store is not None:
                store.close()
        self._state = self._index = None

    def _local_sessions(
        self, index: Store, keys: set[str], only: set[str] | None
    ) -> tuple[Path | None, list[tuple[str, LocalSession]]]:
        root = index.query_one("SELECT id, path FROM roots WHERE origin = 'local' LIMIT 1")
        if root is None:
            return None, []
        sql = (
            "SELECT id, session_id, project, project_dir, project_path, facts FROM sessions "
            "WHERE root_id = ?"
        )
        params: list[object] = [root["id"]]
        if only is not None:
            sql += " AND session_id IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(sorted(only)))
        found: list[tuple[str, LocalSession]] = []
        rows = [r for r in index.query(sql, params) if r["project"]]
        wanted = [(project_key(r["project"]), r) for r in rows]
        wanted = [(k, r) for k, r in wanted if k in keys]
        if not wanted:
            return Path(root["path"]), []
        pks = json.dumps([r["id"] for _, r in wanted])
        files: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for f in index.query(
            "SELECT session_pk, path, kind FROM files "
            "WHERE session_pk IN (SELECT value FROM json_each(?)) ORDER BY path",
            (pks,),
        ):
            files[f["session_pk"]].append((f["path"], f["kind"]))
        for key, r in wanted:
            versions: tuple[str, ...] = ()
            try:
                facts = json.loads(r["facts"])
                versions = tuple(str(v) for v in facts.get("versions", []))
            except (ValueError, AttributeError):
                pass
            found.append(
                (
                    key,
                    LocalSession(
                        r["id"],
                        r["session_id"],
                        r["project"],
                        r["project_dir"],
                        r["project_path"],
                        versions,
                        tuple(files[r["id"]]),
                    ),
                )
            )
        return Path(root["path"]), found

    def _work(
        self, outboxes: tuple[Outbox, ...], member_tag: str, only: set[str] | None
    ) -> PassReport:
        state, index = self._open()
        report = PassReport()
        keys = {k for o in outboxes for k in o.project_keys}
        root, sessions = self._local_sessions(index, keys, only)
        if root is None:
            return report
        for outbox in outboxes:
            base = managed_folder(self._folders_dir, outbox.folder_id)
            if not base.is_dir():
                continue  # the reconciler creates it; next pass
            for key, session in sessions:
                if key not in outbox.project_keys:
                    continue
                try:
                    self._package_session(
                        state, report, outbox, base, root, key, session, member_tag
                    )
                except (OSError, StoreError) as exc:
                    log.warning(
                        "package_session_failed",
                        session=session.session_id,
                        folder=outbox.folder_id,
                        error=str(exc),
                    )
                    report.errors.append(f"{session.session_id}: {exc}")
        return report

    def _sources(
        self, outbox: Outbox, root: Path, key: str, session: LocalSession
    ) -> list[tuple[Path, str, bool]]:
        """(source, path under projects/<key>/, is a transcript) for one session."""
        out: list[tuple[Path, str, bool]] = []
        for path, _kind in session.files:
            src = Path(path)
            try:
                rel = src.relative_to(root)
            except ValueError:
                continue
            out.append((src, rel.as_posix(), True))
        results = root / session.project_dir / session.session_id / TOOL_RESULTS
        if results.is_dir():
            for dirpath, _dirs, names in os.walk(results, followlinks=False):
                for name in names:
                    src = Path(dirpath) / name
                    if src.is_symlink() or not src.is_file():
                        continue
                    out.append((src, src.relative_to(root).as_posix(), False))
        if key in outbox.include_todos:
            # Todo lists (`todos/<session>-agent-*.json`) and their successor, task lists
            # (`tasks/<session>/...`): what the session planned to do.
            todos = self._claude_dir / TODOS
            if todos.is_dir():
                for src in sorted(todos.glob(f"{session.session_id}-agent-*.json")):
                    if src.is_file() and not src.is_symlink():
                        out.append((src, f"{TODOS}/{src.name}", False))
            tasks = self._claude_dir / TASKS / session.session_id
            if tasks.is_dir() and not tasks.is_symlink():
                for src in sorted(tasks.rglob("*")):
                    if src.is_file() and not src.is_symlink():
                        out.append((src, src.relative_to(self._claude_dir).as_posix(), False))
        if key in outbox.include_plans:
            # Plan files are named by the slug the session's records carry.
            for slug in self._plan_slugs(session):
                src = self._claude_dir / PLANS / f"{slug}.md"
                if src.is_file() and not src.is_symlink():
                    out.append((src, f"{PLANS}/{src.name}", False))
        return out

    def _plan_slugs(self, session: LocalSession) -> list[str]:
        """Slugs named in the session's main transcript (its last 1 MiB suffices: every
        record after a plan starts carries it)."""
        slugs: set[str] = set()
        for path, kind in session.files:
            if kind != "main":
                continue
            try:
                with Path(path).open("rb") as f:
                    f.seek(max(0, os.fstat(f.fileno()).st_size - (1 << 20)))
                    tail = f.read()
            except OSError:
                continue
            slugs.update(m.decode() for m in _SLUG.findall(tail))
        return sorted(slugs)

    def _package_session(
        self,
        state: Store,
        report: PassReport,
        outbox: Outbox,
        base: Path,
        root: Path,
        key: str,
        session: LocalSession,
        member_tag: str,
    ) -> None:
        project_dir = base / "projects" / key
        known = {
            r["rel"]: r
            for r in state.query(
                "SELECT * FROM packaged_files WHERE folder_id = ? AND project_key = ? "
                "AND session_id = ?",
                (outbox.folder_id, key, session.session_id),
            )
        }
        first_time = not known
        changed = False
        now = self._clock()
        current: dict[str, Progress] = {rel: _progress(r) for rel, r in known.items()}
        # One transaction per session: a crash before it commits leaves outbox files
        # longer than recorded (cut back on restart) or unrecorded (written again).
        with state.transaction():
            for src, rel, transcript in self._sources(outbox, root, key, session):
                folder_rel = f"projects/{key}/{rel}"
                row = known.get(folder_rel)
                previous = _progress(row) if row is not None and row["src"] == str(src) else None
                dest = project_dir / rel
                progress = sync_file(
                    src, dest, previous, self._redactor, self._hashers, transcript=transcript
                )
                if progress is None:
                    continue
                _record(
                    state, outbox.folder_id, folder_rel, key, session.session_id, src, progress, now
                )
                current[folder_rel] = progress
                report.scans[outbox.folder_id].add(folder_rel)
                report.files += 1
                added = progress.dest_size - (previous.dest_size if previous else 0)
                report.bytes += max(added, 0)
                self.packaged_bytes += max(added, 0)
                changed = True
        if changed:
            rel = self._write_manifest(current, project_dir, key, session, member_tag, now)
            report.scans[outbox.folder_id].add(rel)
            if first_time:
                report.new_sessions.append((outbox.folder_id, key, session.session_id))
                teamstore.append_event(
                    state,
                    SyncEvent(
                        EventKind.SESSION_PACKAGED,
                        now,
                        outbox.team_id,
                        member_tag,
                        None,
                        key,
                        {"session": session.session_id},
                    ),
                )

    def _write_manifest(
        self,
        files_progress: dict[str, Progress],
        project_dir: Path,
        key: str,
        session: LocalSession,
        member_tag: str,
        now: datetime,
    ) -> str:
        counts: dict[str, int] = defaultdict(int)
        files: dict[str, mf.FileEntry] = {}
        prefix = f"projects/{key}/"
        for rel, p in sorted(files_progress.items()):
            for kind, n in p.redactions.items():
                counts[kind] += int(n)
            files[rel.removeprefix(prefix)] = mf.FileEntry(
                size=p.dest_size, sha256=p.sha256, lines=p.lines, dropped_lines=p.dropped
            )
        manifest = mf.Manifest(
            session_id=session.session_id,
            project_key=key,
            project=session.project,
            checkout=session.project_path,
            member_tag=member_tag,
            updated_at=now,
            cli_versions=sorted(session.versions),
            files=files,
            redaction=mf.Redaction(
                rules_version=self._redactor.rules_version,
                replacements=sum(counts.values()),
                counts=dict(sorted(counts.items())),
            ),
        )
        target = project_dir / mf.MANIFESTS / f"{session.session_id}.json"
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
        atomic_file.write_atomic(
            target, mf.encode(manifest), 0o644, temp_prefix=TEMP_PREFIX, durable=False
        )
        return f"{prefix}{mf.MANIFESTS}/{session.session_id}.json"


def _progress(r: Row) -> Progress:
    return Progress(
        src_inode=r["src_inode"],
        src_offset=r["src_offset"],
        dest_size=r["dest_size"],
        lines=r["lines"],
        sha256=r["sha256"],
        dropped=r["dropped"],
        redactions=json.loads(r["redactions"]),
    )


def _record(
    state: Store,
    folder_id: str,
    rel: str,
    key: str,
    session_id: str,
    src: Path,
    p: Progress,
    now: datetime,
) -> None:
    state.execute(
        "INSERT INTO packaged_files (folder_id, rel, project_key, session_id, src, src_inode, "
        "src_offset, dest_size, lines, dropped, sha256, redactions, updated_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(folder_id, rel) DO UPDATE SET "
        "src = excluded.src, src_inode = excluded.src_inode, src_offset = excluded.src_offset, "
        "dest_size = excluded.dest_size, lines = excluded.lines, dropped = excluded.dropped, "
        "sha256 = excluded.sha256, redactions = excluded.redactions, "
        "updated_at = excluded.updated_at",
        (
            folder_id,
            rel,
            key,
            session_id,
            str(src),
            p.src_inode,
            p.src_offset,
            p.dest_size,
            p.lines,
            p.dropped,
            p.sha256,
            json.dumps(p.redactions, sort_keys=True),
            now.isoformat(),
        ),
    )
