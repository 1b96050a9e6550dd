"""Applying a batch of reads: what each file's new bytes change, in one transaction.

Each read (`FileUpdate`) belongs to a session, found or created; its facts merge into the
session's, its usage rows go to the session's accounting (`accounting`), its conversation
lines become `entries`, and the file's row records where reading stopped. A read planned
from a state that changed meanwhile (another read of the file was applied first) is left
alone and reported, to be read again. A record the session already holds (read again,
or held in two of its files) counts and shows once (`repeats`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from karmad import codec, gitremote
from karmad.index.accounting import Accounting, SessionUsage
from karmad.index.discovery import Root
from karmad.index.facts import FACTS_JSON, Facts
from karmad.index.parse import UsageDelta, ts_ms
from karmad.index.pricing import PriceTable
from karmad.index.repeats import Repeats, Seen
from karmad.index.rows import (
    ENTRY_INSERT,
    FILE_INSERT,
    FILE_UPDATE,
    LINE_ERROR_INSERT,
    USAGE_INSERT,
    EntryValues,
    FileUpdate,
    FileValues,
    Ids,
    LineErrorValues,
    chunks,
    json_list,
)
from karmad.index.text import TextDelta
from karmad.store import Row, Store

_EMPTY_FACTS: Final = Facts()
_FACTS = codec.Decoder(Facts)


@dataclass(slots=True)
class SessionWork:
    """A session's part of a batch: its facts, identity and usage as they become."""

    root_id: int
    root: Root
    session_id: str
    project_dir: str
    facts: Facts
    usage: SessionUsage
    cwd: str = ""
    project: str = ""
    project_path: str = ""
    project_source: str = ""
    git_remote: str = ""
    bytes: int = 0
    bad_lines: int = 0
    seen: list[Seen] = field(default_factory=list)
    """What each range read in this batch counted, by identity (karmad.index.repeats)."""

    @property
    def pk(self) -> int:
        return self.usage.pk

    @property
    def fresh(self) -> bool:
        return self.usage.fresh


@dataclass(slots=True)
class _Rows:
    """Everything a batch inserts or updates besides usage."""

    file_inserts: list[tuple[Any, ...]] = field(default_factory=list)
    file_updates: list[tuple[Any, ...]] = field(default_factory=list)
    errors: list[LineErrorValues] = field(default_factory=list)
    entries: list[EntryValues] = field(default_factory=list)
    texts: list[tuple[int, str]] = field(default_factory=list)

    def file(self, file_id: int, values: FileValues, *, new: bool) -> None:
        if new:
            self.file_inserts.append((file_id, *values))
        else:
            self.file_updates.append((*values, file_id))


_SESSION_COLUMNS: Final = (
    "id, root_id, origin_key, session_id, project_dir, facts, requests, cwd, project, "
    "project_path, project_source, git_remote"
)
_SESSION_INSERT: Final = (
    "id, root_id, origin_key, session_id, project_dir, cwd, project, project_path, "
    "project_source, git_remote, title, first_ts, last_ts, user_prompts, requests, "
    "shared_requests, input, output, cache_write_5m, cache_write_1h, cache_read, cost, "
    "unpriced, web_search, web_fetch, bytes, bad_lines, facts, price_version, updated_at"
)
_SESSION_VALUES: Final = ", ".join("?" * len(_SESSION_INSERT.split(",")))
_SESSION_UPDATE: Final = """
UPDATE sessions SET
    cwd = ?, project = ?, project_path = ?, project_source = ?, git_remote = ?,
    title = ?, first_ts = ?, last_ts = ?, user_prompts = ?,
    requests = requests + ?, shared_requests = shared_requests + ?,
    input = input + ?, output = output + ?, cache_write_5m = cache_write_5m + ?,
    cache_write_1h = cache_write_1h + ?, cache_read = cache_read + ?, cost = cost + ?,
    unpriced = unpriced + ?, web_search = web_search + ?, web_fetch = web_fetch + ?,
    bytes = bytes + ?, bad_lines = bad_lines + ?, missing = 0, facts = ?,
    price_version = ?, updated_at = ?
WHERE id = ?
"""


def _session_common(s: SessionWork) -> tuple[Any, ...]:
    """The values `_SESSION_INSERT` and `_SESSION_UPDATE` share, in their order."""
    f = s.facts
    t = s.usage.totals
    return (
        s.cwd,
        s.project,
        s.project_path,
        s.project_source,
        s.git_remote,
        f.title,
        ts_ms(f.first_ts),
        ts_ms(f.last_ts),
        f.user_prompts,
        t.requests,
        s.usage.shared,
        t.input,
        t.output,
        t.cache_write_5m,
        t.cache_write_1h,
        t.cache_read,
        t.cost,
        t.unpriced,
        t.web_search,
        t.web_fetch,
        s.bytes,
        s.bad_lines,
        FACTS_JSON.encode(f).decode(),
    )


class BatchWriter:
    def __init__(
        self,
        store: Store,
        prices: PriceTable,
        accounting: Accounting,
        ids: tuple[Ids, Ids, Ids],
        now_ms: Callable[[], int],
        *,
        fts: bool,
    ) -> None:
        self.store = store
        self.prices = prices
        self.accounting = accounting
        self._session_ids, self._file_ids, self._entry_ids = ids
        self._now_ms = now_ms
        self.fts = fts
        self._identities: dict[str, gitremote.ProjectIdentity] = {}

    def current(self, updates: list[FileUpdate]) -> tuple[list[FileUpdate], list[str]]:
        """The reads planned from what is stored now, and the paths of the others."""
        stored: dict[str, tuple[int, int, int]] = {}
        for part in chunks([up.ref.path for up in updates]):
            for r in self.store.query(
                "SELECT id, path, usage_offset, text_offset FROM files "
                "WHERE path IN (SELECT value FROM json_each(?))",
                (json_list(part),),
            ):
                stored[r["path"]] = (r["id"], r["usage_offset"], r["text_offset"])
        fresh: list[FileUpdate] = []
        stale: list[str] = []
        seen: set[str] = set()
        for up in updates:
            path = up.ref.path
            planned = (
                (up.row.id, up.row.usage_offset, up.row.text_offset) if up.row is not None else None
            )
            if path in seen or stored.get(path) != planned:
                stale.append(path)
                continue
            seen.add(path)
            fresh.append(up)
        return fresh, stale

    def apply(self, updates: list[FileUpdate], roots: dict[int, Root]) -> list[int]:
        """Write these reads (current ones: see `current`); returns the sessions touched."""
        sessions = self._sessions(updates, roots)
        repeats = Repeats(self.store)
        touched: dict[int, SessionWork] = {}
        rows = _Rows()
        for up, session in zip(updates, sessions, strict=True):
            row = up.row
            file_id = row.id if row is not None else self._file_ids.take()
            if session is None:
                # An agent file that does not name its session yet: remember its size so
                # an unchanged file is not read again, consume nothing.
                rows.file(file_id, _unattached(up), new=row is None)
                continue
            touched[session.pk] = session
            usage = up.result.usage
            if usage is not None:
                self._take_usage(session, up, usage, file_id, rows)
            if up.result.text is not None:
                self._take_text(session, up.result.text, file_id, rows, repeats)
            rows.file(file_id, _file_values(up, session.pk), new=row is None)
        self._write(list(touched.values()), rows, repeats)
        return list(touched)

    # ------------------------------------------------------------------ per read

    def _take_usage(
        self, session: SessionWork, up: FileUpdate, usage: UsageDelta, file_id: int, rows: _Rows
    ) -> None:
        row = up.row
        old_size = row.size if row is not None and row.session_pk is not None else 0
        session.bytes += up.result.size - old_size
        session.bad_lines += usage.bad_lines
        if session.fresh and session.facts == _EMPTY_FACTS:
            session.facts = usage.facts  # nothing to merge into
        else:
            session.facts.merge(usage.facts)
        session.seen.append(usage.seen)
        session.usage.take(usage.usage, file_id)
        rows.errors += [
            LineErrorValues(file_id, e.offset, e.line, e.reason, e.sample, int(e.repaired))
            for e in usage.errors
        ]

    def _take_text(
        self, session: SessionWork, text: TextDelta, file_id: int, rows: _Rows, repeats: Repeats
    ) -> None:
        unknown = session.facts.unknown_fields
        for name, count in text.unknown_fields.items():
            unknown[name] = unknown.get(name, 0) + count
        pk = session.pk
        for e in repeats.entries(pk, session.fresh, text.entries):
            entry_id = self._entry_ids.take()
            rows.entries.append(
                (
                    entry_id,
                    pk,
                    file_id,
                    e.offset,
                    e.length,
                    e.line,
                    e.ts,
                    e.kind,
                    int(e.sidechain),
                    e.agent_id,
                    e.uuid,
                )
            )
            if e.text:
                rows.texts.append((entry_id, e.text))

    # ------------------------------------------------------------------ sessions

    def _sessions(
        self, updates: list[FileUpdate], roots: dict[int, Root]
    ) -> list[SessionWork | None]:
        """The session of each update, loaded or created; None while it is unknown."""
        by_key: dict[tuple[str, str], SessionWork] = {}
        by_pk: dict[int, SessionWork] = {}
        wanted: list[tuple[str, str] | int | None] = []
        for up in updates:
            root = roots[up.root_id]
            sid = up.ref.session_id
            usage = up.result.usage
            if not sid and usage is not None and usage.facts.session_ids:
                sid = usage.facts.session_ids[0]
            if sid:
                wanted.append((root.origin_key, sid))
            elif up.row is not None and up.row.session_pk is not None:
                wanted.append(up.row.session_pk)
            else:
                wanted.append(None)
        for r in self._load(wanted):
            facts = _FACTS.decode(r["facts"]) if r["facts"] not in ("", "{}") else Facts()
            work = SessionWork(
                root_id=r["root_id"],
                root=roots.get(r["root_id"]) or next(iter(roots.values())),
                session_id=r["session_id"],
                project_dir=r["project_dir"],
                facts=facts,
                usage=SessionUsage(r["id"], fresh=False),
                cwd=r["cwd"],
                project=r["project"],
                project_path=r["project_path"],
                project_source=r["project_source"],
                git_remote=r["git_remote"],
            )
            by_key[(r["origin_key"], r["session_id"])] = work
            by_pk[r["id"]] = work
        out: list[SessionWork | None] = []
        for up, want in zip(updates, wanted, strict=True):
            if want is None:
                out.append(None)
            elif isinstance(want, int):
                out.append(by_pk.get(want))
            else:
                work_or_none = by_key.get(want)
                if work_or_none is None:
                    work_or_none = by_key[want] = SessionWork(
                        root_id=up.root_id,
                        root=roots[up.root_id],
                        session_id=want[1],
                        project_dir=up.ref.project_dir,
                        facts=Facts(),
                        usage=SessionUsage(self._session_ids.take(), fresh=True),
                    )
                out.append(work_or_none)
        return out

    def _load(self, wanted: list[tuple[str, str] | int | None]) -> list[Row]:
        """Stored sessions by (origin, session id) or by row id."""
        keys = sorted({w for w in wanted if isinstance(w, tuple)})
        pks = sorted({w for w in wanted if isinstance(w, int)})
        loaded: list[Row] = []
        for origin_key in sorted({k[0] for k in keys}):
            ids = [k[1] for k in keys if k[0] == origin_key]
            for part in chunks(ids):
                loaded += self.store.query(
                    f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE origin_key = ? "  # noqa: S608
                    "AND session_id IN (SELECT value FROM json_each(?))",
                    (origin_key, json_list(part)),
                )
        for part in chunks(pks):
            loaded += self.store.query(
                f"SELECT {_SESSION_COLUMNS} FROM sessions "  # noqa: S608
                "WHERE id IN (SELECT value FROM json_each(?))",
                (json_list(part),),
            )
        return loaded

    def _identify(self, session: SessionWork) -> None:
        if session.cwd or not session.facts.cwds:
            return
        cwd = session.facts.cwds[0]
        if session.root.project:
            identity = gitremote.ProjectIdentity(session.root.project, cwd, "team")
        else:
            found = self._identities.get(cwd)
            if found is None:
                found = self._identities[cwd] = gitremote.identify(cwd)
            identity = found
        session.cwd = cwd
        session.project = identity.identity
        session.project_path = identity.path
        session.project_source = identity.source
        session.git_remote = identity.remote

    def _borrow_projects(self) -> None:
        """Sessions that name no working directory (only summaries, say) belong to the
        project of another session in the same project directory."""
        self.store.execute(
            """
            UPDATE sessions SET (project, project_path, project_source, git_remote) = (
                SELECT s.project, s.project_path, s.project_source, s.git_remote
                FROM sessions s
                WHERE s.root_id = sessions.root_id AND s.project_dir = sessions.project_dir
                  AND s.project != '' ORDER BY s.id LIMIT 1)
            WHERE project = '' AND EXISTS (
                SELECT 1 FROM sessions s
                WHERE s.root_id = sessions.root_id AND s.project_dir = sessions.project_dir
                  AND s.project != '')
            """
        )

    # ------------------------------------------------------------------ writing

    def _write(self, touched: list[SessionWork], rows: _Rows, repeats: Repeats) -> None:
        store = self.store
        accounting = self.accounting
        decision = accounting.decide(s.usage for s in touched)
        outside: dict[int, int] = {}
        by_pk = {s.pk: s for s in touched}
        for pk, _ in decision.demoted:
            if pk in by_pk:
                by_pk[pk].usage.shared += 1
            else:
                outside[pk] = outside.get(pk, 0) + 1
        for session in touched:
            repeats.facts(session.pk, session.fresh, session.facts, session.seen)
            self._identify(session)
        now = self._now_ms()
        version = self.prices.version
        new_sessions = [s for s in touched if s.fresh]
        if new_sessions:
            store.executemany(
                f"INSERT INTO sessions ({_SESSION_INSERT}) VALUES ({_SESSION_VALUES})",  # noqa: S608
                [
                    (
                        s.pk,
                        s.root_id,
                        s.root.origin_key,
                        s.session_id,
                        s.project_dir,
                        *_session_common(s),
                        version,
                        now,
                    )
                    for s in new_sessions
                ],
            )
        old_sessions = [s for s in touched if not s.fresh]
        if old_sessions:
            store.executemany(
                _SESSION_UPDATE,
                [(*_session_common(s), version, now, s.pk) for s in old_sessions],
            )
        repeats.write()  # after the sessions' rows exist
        if rows.file_inserts:
            store.executemany(FILE_INSERT, rows.file_inserts)
        if rows.file_updates:
            store.executemany(FILE_UPDATE, rows.file_updates)
        if rows.errors:
            store.executemany(LINE_ERROR_INSERT, rows.errors)
        if decision.inserts:
            # One per request: SQLite binds exact tuples much faster than a tuple subclass.
            store.executemany(USAGE_INSERT, map(tuple, decision.inserts))
        accounting.write_changes(decision)
        if outside:
            store.executemany(
                "UPDATE sessions SET shared_requests = shared_requests + ? WHERE id = ?",
                [(n, pk) for pk, n in outside.items()],
            )
        accounting.write_models(s.usage for s in old_sessions)
        accounting.aggregate_fresh([s.usage for s in new_sessions])
        if decision.buckets:
            accounting.add_buckets(decision.buckets)
            if decision.updates or decision.demoted:
                accounting.drop_empty_buckets(pk for (pk, _, _) in decision.buckets)
        if rows.entries:
            store.executemany(ENTRY_INSERT, rows.entries)
        if rows.texts and self.fts:
            store.executemany("INSERT INTO entries_text (rowid, text) VALUES (?, ?)", rows.texts)
        if any(not s.project for s in touched):
            self._borrow_projects()


def _unattached(up: FileUpdate) -> FileValues:
    result = up.result
    return FileValues(
        up.root_id,
        None,
        up.ref.path,
        up.ref.project_dir,
        up.ref.kind,
        up.ref.agent_id,
        result.inode,
        result.size,
        result.mtime_ns,
        None,
        0,
        0,
        0,
        0,
        0,
        result.pending,
        0,
    )


def _file_values(up: FileUpdate, session_pk: int) -> FileValues:
    result = up.result
    row = up.row
    usage = result.usage
    if usage is not None:
        read_text = result.text is not None
        return FileValues(
            up.root_id,
            session_pk,
            up.ref.path,
            up.ref.project_dir,
            up.ref.kind,
            up.ref.agent_id,
            result.inode,
            result.size,
            result.mtime_ns,
            result.digest,
            result.offset,
            result.line,
            result.records,
            result.offset if read_text else (row.text_offset if row else 0),
            result.line if read_text else (row.text_lines if row else 0),
            result.pending,
            usage.bad_lines,
        )
    # The text pass alone: nothing else about the file changes.
    assert row is not None
    return FileValues(
        up.root_id,
        session_pk,
        up.ref.path,
        up.ref.project_dir,
        up.ref.kind,
        up.ref.agent_id,
        row.inode,
        row.size,
        row.mtime_ns,
        row.digest,
        row.usage_offset,
        row.usage_lines,
        row.records,
        result.offset,
        result.line,
        None,
        0,
    )
