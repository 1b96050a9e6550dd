"""Every write to `index.db`, on the indexer's own connection, in its worker thread.

Parsed deltas are applied in one transaction per batch. Session figures are maintained by
adding deltas (never by re-summing a session), so an append costs the same however long
the session already is. Which copy of a request is *counted* in usage summaries
(`usage.canonical`) is decided in set-based SQL per batch: the earliest row of each
(message.id, requestId) across all sessions and origins, so a forked or resumed session,
or one received from two devices, never counts the same request twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from karmad import codec, gitremote
from karmad.index.discovery import FileRef, Root
from karmad.index.facts import FACTS_JSON, Facts
from karmad.index.parse import ts_ms
from karmad.index.pricing import Priced, PriceTable
from karmad.index.problems import Problems
from karmad.index.usage import UsageRow, better
from karmad.index.work import ParseResult
from karmad.store import Row, Store

BUCKET_MS: Final = 15 * 60 * 1000
SUM_COLUMNS: Final = (
    "requests",
    "input",
    "output",
    "cache_write_5m",
    "cache_write_1h",
    "cache_read",
    "cost",
    "unpriced",
)
"""The figures summed per model (`session_models`) and per slot (`usage_buckets`)."""
_ADD_SUMS: Final = ", ".join(f"{c} = {c} + excluded.{c}" for c in SUM_COLUMNS)
"""Upsert of usage sums: add the new figures to what is stored."""
WRITE_CACHE_KIB: Final = 32 * 1024
_EMPTY_FACTS: Final = Facts()
_FACTS = codec.Decoder(Facts)
_TOKENS: Final = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


@dataclass(slots=True)
class FileRow:
    id: int
    root_id: int
    session_pk: int | None
    path: str
    kind: str
    inode: int
    size: int
    mtime_ns: int
    digest: bytes | None
    usage_offset: int
    usage_lines: int
    records: int
    text_offset: int
    text_lines: int
    missing: bool

    @classmethod
    def of(cls, row: Row) -> FileRow:
        return cls(
            id=row["id"],
            root_id=row["root_id"],
            session_pk=row["session_pk"],
            path=row["path"],
            kind=row["kind"],
            inode=row["inode"],
            size=row["size"],
            mtime_ns=row["mtime_ns"],
            digest=row["digest"],
            usage_offset=row["usage_offset"],
            usage_lines=row["usage_lines"],
            records=row["records"],
            text_offset=row["text_offset"],
            text_lines=row["text_lines"],
            missing=bool(row["missing"]),
        )


@dataclass(slots=True)
class FileUpdate:
    """What one read of one file found, with what was known of the file before."""

    ref: FileRef
    root_id: int
    row: FileRow | None
    result: ParseResult


@dataclass(slots=True)
class _Totals:
    requests: int = 0
    input: int = 0
    output: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0
    cost: float = 0.0
    unpriced: int = 0
    web_search: int = 0
    web_fetch: int = 0

    def add(self, row: UsageRow, cost: float, priced: int, sign: int, requests: int) -> None:
        self.requests += requests
        self.input += sign * row.input
        self.output += sign * row.output
        self.cache_write_5m += sign * row.cache_write_5m
        self.cache_write_1h += sign * row.cache_write_1h
        self.cache_read += sign * row.cache_read
        self.cost += sign * cost
        if priced == Priced.UNPRICED:
            self.unpriced += sign
        self.web_search += sign * row.web_search
        self.web_fetch += sign * row.web_fetch


@dataclass(slots=True)
class _SessionWork:
    pk: int
    root_id: int
    root: Root
    session_id: str
    project_dir: str
    fresh: bool
    """Created by this batch: nothing of it is stored yet."""
    facts: Facts
    cwd: str = ""
    project: str = ""
    project_path: str = ""
    project_source: str = ""
    git_remote: str = ""
    rows: dict[int, tuple[UsageRow, int]] = field(default_factory=dict)
    totals: _Totals = field(default_factory=_Totals)
    models: dict[str, _Totals] = field(default_factory=dict)
    shared: int = 0
    bytes: int = 0
    bad_lines: int = 0
    negative: bool = False
    """Some model's figures went down (a row was replaced): drop emptied model rows."""

    def count(self, row: UsageRow, cost: float, priced: int, sign: int, requests: int) -> None:
        self.totals.add(row, cost, priced, sign, requests)
        model = self.models.get(row.model)
        if model is None:
            model = self.models[row.model] = _Totals()
        model.add(row, cost, priced, sign, requests)
        if sign < 0:
            self.negative = True


_SESSION_COLUMNS: Final = (
    "id, root_id, origin_key, session_id, project_dir, facts, requests, cwd, project, "
    "project_path, project_source, git_remote"
)


def _row_of(key: int, r: Row) -> UsageRow:
    return UsageRow(
        key,
        r["model"],
        r["ts"],
        r["input"],
        r["output"],
        r["cache_write_5m"],
        r["cache_write_1h"],
        r["cache_read"],
        bool(r["complete"]),
        r["speed"],
        r["web_search"],
        r["web_fetch"],
    )


def _json_list(values: Iterable[Any]) -> str:
    return codec.encode_json(list(values)).decode()


def _chunks(values: list[Any], size: int = 20000) -> Iterable[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


class _Ids:
    """Row ids handed out in Python, so rows can refer to each other before insertion.

    The indexer is the only writer of its database, so the next id is known; it is
    re-read after a rollback.
    """

    def __init__(self, store: Store, table: str) -> None:
        self._store = store
        self._table = table
        self._next: int | None = None

    def take(self) -> int:
        if self._next is None:
            self._next = int(
                self._store.scalar(f"SELECT COALESCE(MAX(id), 0) FROM {self._table}")  # noqa: S608
            )
        self._next += 1
        return self._next

    def forget(self) -> None:
        self._next = None


class IndexWriter:
    def __init__(self, store: Store, prices: PriceTable, now_ms: Callable[[], int]) -> None:
        self.store = store
        self.prices = prices
        self._now_ms = now_ms
        self._identities: dict[str, gitremote.ProjectIdentity] = {}
        self._session_ids = _Ids(store, "sessions")
        self._file_ids = _Ids(store, "files")
        self._entry_ids = _Ids(store, "entries")
        self.problems = Problems(store, now_ms)
        # Request keys are random, so their index is written all over: a page cache that
        # holds it avoids re-reading pages for every batch (SQLite's default is 2 MiB).
        store.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")
        store.execute("PRAGMA temp_store = MEMORY")
        store.execute("CREATE TEMP TABLE IF NOT EXISTS pending_keys (key INTEGER PRIMARY KEY)")
        self.fts = store.scalar("SELECT value FROM meta WHERE key = 'fts'") == "1"

    def _forget_ids(self) -> None:
        self._session_ids.forget()
        self._file_ids.forget()
        self._entry_ids.forget()
        self.problems.forget()

    # ------------------------------------------------------------------ roots and files

    def root_id(self, root: Root) -> int:
        row = self.store.query_one(
            """
            INSERT INTO roots (path, origin, origin_key, member_tag, user_id, device_id, project)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (path) DO UPDATE SET
                origin = excluded.origin, origin_key = excluded.origin_key,
                member_tag = excluded.member_tag, user_id = excluded.user_id,
                device_id = excluded.device_id, project = excluded.project
            RETURNING id
            """,
            (
                str(root.path),
                root.origin,
                root.origin_key,
                root.member_tag,
                root.user_id,
                root.device_id,
                root.project,
            ),
        )
        assert row is not None
        return int(row[0])

    def stored_roots(self, origin: str) -> dict[Path, int]:
        """Roots of that origin in the index, including those of earlier runs."""
        rows = self.store.query("SELECT id, path FROM roots WHERE origin = ?", (origin,))
        return {Path(str(r[1])): int(r[0]) for r in rows}

    def files_of_root(self, root_id: int) -> dict[str, FileRow]:
        rows = self.store.query("SELECT * FROM files WHERE root_id = ?", (root_id,))
        return {r["path"]: FileRow.of(r) for r in rows}

    def file(self, path: str) -> FileRow | None:
        row = self.store.query_one("SELECT * FROM files WHERE path = ?", (path,))
        return None if row is None else FileRow.of(row)

    def files_of_session(self, session_pk: int) -> list[FileRow]:
        rows = self.store.query("SELECT * FROM files WHERE session_pk = ?", (session_pk,))
        return [FileRow.of(r) for r in rows]

    def files_behind_on_text(self, limit: int, after: int = 0) -> list[FileRow]:
        rows = self.store.query(
            "SELECT * FROM files WHERE text_offset < usage_offset AND session_pk IS NOT NULL "
            "AND missing = 0 AND id > ? ORDER BY id LIMIT ?",
            (after, limit),
        )
        return [FileRow.of(r) for r in rows]

    def rejected_stats(self, root_id: int) -> dict[str, tuple[int, int, int]]:
        """path -> (inode, size, mtime_ns) of the rejected files of a root."""
        return {
            r["path"]: (r["inode"], r["size"], r["mtime_ns"])
            for r in self.store.query(
                "SELECT path, inode, size, mtime_ns FROM rejected WHERE root_id = ?", (root_id,)
            )
        }

    def reject(
        self, root_id: int, path: str, stat: tuple[int, int, int], reason: str
    ) -> int | None:
        """Record a refused file and forget what was read from it; returns the session to
        read again (its other files still count), if it had one."""
        row = self.file(path)
        with self.store.transaction():
            self.store.execute(
                "INSERT OR REPLACE INTO rejected (path, root_id, inode, size, mtime_ns, reason, "
                "at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (path, root_id, *stat, reason, self._now_ms()),
            )
            if row is not None:
                self.store.execute("DELETE FROM line_errors WHERE file_id = ?", (row.id,))
                self.store.execute("DELETE FROM files WHERE id = ?", (row.id,))
        return None if row is None else row.session_pk

    def unreject(self, path: str) -> None:
        self.store.execute("DELETE FROM rejected WHERE path = ?", (path,))

    def move_files(self, moves: Iterable[tuple[int, str]]) -> None:
        """(file id, path): the same file is now read from another place (a live
        transcript from karmad's archive after Claude Code deleted it, or back)."""
        pairs = [(path, file_id) for file_id, path in moves]
        if pairs:
            with self.store.transaction():
                self.store.executemany("UPDATE files SET path = ? WHERE id = ?", pairs)

    def mark_missing(self, file_ids: Iterable[int]) -> None:
        ids = list(file_ids)
        if not ids:
            return
        with self.store.transaction():
            self.store.executemany("UPDATE files SET missing = 1 WHERE id = ?", [(i,) for i in ids])
            self.store.execute(
                """
                UPDATE sessions SET missing = NOT EXISTS (
                    SELECT 1 FROM files f WHERE f.session_pk = sessions.id AND f.missing = 0)
                WHERE id IN (SELECT session_pk FROM files WHERE missing = 1)
                """
            )

    def set_tool_results(self, root_id: int, found: list[tuple[str, str, int, int]]) -> None:
        """(project dir, session, files, bytes) of sessions' tool-results folders."""
        if not found:
            return
        with self.store.transaction():
            self.store.executemany(
                "UPDATE sessions SET tool_result_files = ?, tool_result_bytes = ? "
                "WHERE root_id = ? AND project_dir = ? AND session_id = ?",
                [(files, size, root_id, folder, session) for folder, session, files, size in found],
            )

    # ------------------------------------------------------------------ applying reads

    def apply(
        self, updates: list[FileUpdate], roots: dict[int, Root]
    ) -> tuple[list[int], list[str]]:
        """Apply a batch of reads in one transaction.

        Returns the sessions touched, and the files whose read was planned from a state
        that has changed since (another read of them was applied first): those were
        left alone and must be read again.
        """
        try:
            with self.store.transaction():
                current, stale = self._current(updates)
                touched = self._apply(current, roots) if current else []
                return touched, stale
        except BaseException:
            self._forget_ids()
            raise

    def _current(self, updates: list[FileUpdate]) -> tuple[list[FileUpdate], list[str]]:
        stored: dict[str, tuple[int, int, int]] = {}
        for part in _chunks([up.ref.path for up in updates]):
            for r in self.store.query(
                "SELECT id, path, usage_offset, text_offset FROM files "
                "WHERE path IN (SELECT value FROM json_each(?))",
                (_json_list(part),),
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

    def _sessions(
        self, updates: list[FileUpdate], roots: dict[int, Root]
    ) -> list[_SessionWork | None]:
        """The session of each update, loaded or created; None while it is unknown."""
        by_key: dict[tuple[str, str], _SessionWork] = {}
        by_pk: dict[int, _SessionWork] = {}
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
        keys = sorted({w for w in wanted if isinstance(w, tuple)})
        pks = sorted({w for w in wanted if isinstance(w, int)})
        loaded: list[Row] = []
        for origin_key in sorted({k[0] for k in keys}):
            ids = [k[1] for k in keys if k[0] == origin_key]
            for part in _chunks(ids):
                loaded += self.store.query(
                    f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE origin_key = ? "  # noqa: S608
                    "AND session_id IN (SELECT value FROM json_each(?))",
                    (origin_key, _json_list(part)),
                )
        for part in _chunks(pks):
            loaded += self.store.query(
                f"SELECT {_SESSION_COLUMNS} FROM sessions "  # noqa: S608
                "WHERE id IN (SELECT value FROM json_each(?))",
                (_json_list(part),),
            )
        for r in loaded:
            facts = _FACTS.decode(r["facts"]) if r["facts"] not in ("", "{}") else Facts()
            work = _SessionWork(
                pk=r["id"],
                root_id=r["root_id"],
                root=roots.get(r["root_id"]) or next(iter(roots.values())),
                session_id=r["session_id"],
                project_dir=r["project_dir"],
                fresh=False,
                facts=facts,
                cwd=r["cwd"],
                project=r["project"],
                project_path=r["project_path"],
                project_source=r["project_source"],
                git_remote=r["git_remote"],
            )
            by_key[(r["origin_key"], r["session_id"])] = work
            by_pk[r["id"]] = work
        out: list[_SessionWork | None] = []
        for up, want in zip(updates, wanted, strict=True):
            if want is None:
                out.append(None)
            elif isinstance(want, int):
                out.append(by_pk.get(want))
            else:
                work_or_none = by_key.get(want)
                if work_or_none is None:
                    work_or_none = by_key[want] = _SessionWork(
                        pk=self._session_ids.take(),
                        root_id=up.root_id,
                        root=roots[up.root_id],
                        session_id=want[1],
                        project_dir=up.ref.project_dir,
                        fresh=True,
                        facts=Facts(),
                    )
                out.append(work_or_none)
        return out

    def _apply(self, updates: list[FileUpdate], roots: dict[int, Root]) -> list[int]:
        store = self.store
        sessions = self._sessions(updates, roots)
        touched: dict[int, _SessionWork] = {}
        file_inserts: list[tuple[Any, ...]] = []
        file_updates: list[tuple[Any, ...]] = []
        errors: list[tuple[Any, ...]] = []
        entries: list[tuple[Any, ...]] = []
        texts: list[tuple[int, str]] = []
        for up, session in zip(updates, sessions, strict=True):
            result = up.result
            usage = result.usage
            text = result.text
            row = up.row
            file_id = row.id if row is not None else self._file_ids.take()
            values: tuple[Any, ...]
            if session is None:
                # An agent file that does not name its session yet: remember its size so
                # an unchanged file is not read again, consume nothing.
                values = (
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
                if row is None:
                    file_inserts.append((file_id, *values))
                else:
                    file_updates.append((*values, file_id))
                continue
            touched[session.pk] = session
            if usage is not None:
                old_size = row.size if row is not None and row.session_pk is not None else 0
                session.bytes += result.size - old_size
                session.bad_lines += usage.bad_lines
                if session.fresh and session.facts == _EMPTY_FACTS:
                    session.facts = usage.facts  # nothing to merge into
                else:
                    session.facts.merge(usage.facts)
                rows = session.rows
                for key, urow in usage.usage.items():
                    held = rows.get(key)
                    if held is None or better(urow, held[0]):
                        rows[key] = (urow, file_id)
                errors += [
                    (file_id, e.offset, e.line, e.reason, e.sample, int(e.repaired))
                    for e in usage.errors
                ]
            if text is not None:
                unknown = session.facts.unknown_fields
                for name, count in text.unknown_fields.items():
                    unknown[name] = unknown.get(name, 0) + count
                for e in text.entries:
                    entry_id = self._entry_ids.take()
                    entries.append(
                        (
                            entry_id,
                            session.pk,
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
                        texts.append((entry_id, e.text))
            if usage is not None:
                values = (
                    up.root_id,
                    session.pk,
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
                    result.offset if text is not None else (row.text_offset if row else 0),
                    result.line if text is not None else (row.text_lines if row else 0),
                    result.pending,
                    usage.bad_lines,
                )
            else:  # the text pass alone: nothing else about the file changes
                assert row is not None
                values = (
                    up.root_id,
                    session.pk,
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
            if row is None:
                file_inserts.append((file_id, *values))
            else:
                file_updates.append((*values, file_id))
        buckets: dict[tuple[int, int, str], list[float]] = {}
        usage_inserts, usage_updates, demoted = self._decide_usage(touched.values(), buckets)
        outside: dict[int, int] = {}
        for pk, _ in demoted:
            if pk in touched:
                touched[pk].shared += 1
            else:
                outside[pk] = outside.get(pk, 0) + 1
        for session in touched.values():
            self._identify(session)
        now = self._now_ms()
        version = self.prices.version
        new_sessions = [s for s in touched.values() if s.fresh]
        if new_sessions:
            store.executemany(
                f"INSERT INTO sessions ({_SESSION_INSERT}) VALUES ({_SESSION_VALUES})",  # noqa: S608
                [_session_values(s, version, now) for s in new_sessions],
            )
        old_sessions = [s for s in touched.values() if not s.fresh]
        if old_sessions:
            store.executemany(
                _SESSION_UPDATE, [_session_delta(s, version, now) for s in old_sessions]
            )
        if file_inserts:
            store.executemany(
                "INSERT INTO files (id, root_id, session_pk, path, project_dir, kind, agent_id, "
                "inode, size, mtime_ns, digest, usage_offset, usage_lines, records, text_offset, "
                "text_lines, pending, bad_lines) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                file_inserts,
            )
        if file_updates:
            store.executemany(
                "UPDATE files SET root_id = ?, session_pk = ?, path = ?, project_dir = ?, "
                "kind = ?, agent_id = ?, inode = ?, size = ?, mtime_ns = ?, digest = ?, "
                "usage_offset = ?, usage_lines = ?, records = ?, text_offset = ?, "
                "text_lines = ?, pending = COALESCE(?, pending), bad_lines = bad_lines + ?, "
                "missing = 0 WHERE id = ?",
                file_updates,
            )
        if errors:
            store.executemany(
                "INSERT OR REPLACE INTO line_errors (file_id, offset, line, reason, sample, "
                "repaired) VALUES (?, ?, ?, ?, ?, ?)",
                errors,
            )
        if usage_inserts:
            store.executemany(
                "INSERT INTO usage (session_pk, key, file_id, model, ts, input, output, "
                "cache_write_5m, cache_write_1h, cache_read, complete, speed, web_search, "
                "web_fetch, cost, priced, canonical) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                usage_inserts,
            )
        if usage_updates:
            store.executemany(
                "UPDATE usage SET file_id = ?, model = ?, ts = ?, input = ?, output = ?, "
                "cache_write_5m = ?, cache_write_1h = ?, cache_read = ?, complete = ?, "
                "speed = ?, web_search = ?, web_fetch = ?, cost = ?, priced = ? "
                "WHERE session_pk = ? AND key = ?",
                usage_updates,
            )
        if demoted:
            store.executemany(
                "UPDATE usage SET canonical = 0 WHERE session_pk = ? AND key = ?", demoted
            )
            store.executemany(
                "UPDATE sessions SET shared_requests = shared_requests + ? WHERE id = ?",
                [(n, pk) for pk, n in outside.items()],
            )
        self._write_models(s for s in touched.values() if not s.fresh)
        self._aggregate_fresh(new_sessions)
        if buckets:
            self._add_buckets([(*k, *v) for k, v in buckets.items()])
            if usage_updates or demoted:
                self._drop_empty_buckets(pk for (pk, _, _) in buckets)
        if entries:
            store.executemany(
                "INSERT INTO entries (id, session_pk, file_id, offset, length, line, ts, kind, "
                "sidechain, agent_id, uuid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                entries,
            )
        if texts and self.fts:
            store.executemany("INSERT INTO entries_text (rowid, text) VALUES (?, ?)", texts)
        if any(not s.project for s in touched.values()):
            self._borrow_projects()
        return list(touched)

    def _decide_usage(
        self,
        sessions: Iterable[_SessionWork],
        buckets: dict[tuple[int, int, str], list[float]],
    ) -> tuple[list[list[Any]], list[tuple[Any, ...]], list[tuple[int, int]]]:
        """Which rows are new, which replace stored ones, and which copy of each counts.

        Sessions created in this batch are accounted for in SQL after their rows are
        inserted (`_aggregate_fresh`); only stored sessions are updated by deltas here.
        """
        price = self.prices.cost
        inserts: list[list[Any]] = []
        inserted: list[UsageRow] = []  # the row of each insert
        updates: list[tuple[Any, ...]] = []
        first: dict[int, int] = {}
        clashes: dict[int, list[int]] = {}
        owners: dict[int, _SessionWork] = {}
        for session in sessions:
            if not session.rows:
                continue
            owners[session.pk] = session
            stored: dict[int, Row] = {}
            if not session.fresh:
                for part in _chunks(list(session.rows)):
                    for r in self.store.query(
                        "SELECT * FROM usage WHERE session_pk = ? "
                        "AND key IN (SELECT value FROM json_each(?))",
                        (session.pk, _json_list(part)),
                    ):
                        stored[r["key"]] = r
            pk = session.pk
            fresh = session.fresh
            for key, (row, file_id) in session.rows.items():
                cost, priced = price(
                    row.model,
                    row.input,
                    row.output,
                    row.cache_write_5m,
                    row.cache_write_1h,
                    row.cache_read,
                    row.speed,
                )
                old = stored.get(key) if stored else None
                if old is None:
                    index = len(inserts)
                    inserts.append([pk, key, *_stored(row, file_id, cost, priced), 1])
                    inserted.append(row)
                    held = first.setdefault(key, index)
                    if held != index:
                        clashes.setdefault(key, [held]).append(index)
                    if not fresh:
                        session.count(row, cost, priced, 1, 1)
                    continue
                previous = _row_of(key, old)
                if not better(row, previous):
                    continue
                updates.append((*_stored(row, file_id, cost, priced), pk, key))
                session.count(row, cost, priced, 1, 0)
                session.count(previous, old["cost"], old["priced"], -1, 0)
                if old["canonical"] == 1:
                    _bucket(buckets, pk, previous, old["cost"], old["priced"], -1)
                    _bucket(buckets, pk, row, cost, priced, 1)
        # The copy of each new request that is counted so far (in another session), if any.
        counted: dict[int, Row] = {}
        for part in _chunks(list(first)):
            for r in self.store.query(
                "SELECT * FROM usage WHERE canonical = 1 "
                "AND key IN (SELECT value FROM json_each(?))",
                (_json_list(part),),
            ):
                counted[r["key"]] = r
        demoted: list[tuple[int, int]] = []
        for key in clashes.keys() | counted.keys():
            group = sorted(
                clashes.get(key, [first[key]]), key=lambda i: (inserts[i][4], inserts[i][0])
            )
            for index in group[1:]:
                inserts[index][16] = 0
            winner = inserts[group[0]]
            old = counted.get(key)
            if old is not None and (old["ts"], old["session_pk"]) <= (winner[4], winner[0]):
                winner[16] = 0
            elif old is not None:
                demoted.append((old["session_pk"], key))
                _bucket(
                    buckets, old["session_pk"], _row_of(key, old), old["cost"], old["priced"], -1
                )
            for index in group:
                if inserts[index][16] == 0:
                    owners[inserts[index][0]].shared += 1
        for values, row in zip(inserts, inserted, strict=True):
            if values[16] == 1 and not owners[values[0]].fresh:
                _bucket(buckets, values[0], row, values[14], values[15], 1)
        return inserts, updates, demoted

    def _aggregate_fresh(self, sessions: list[_SessionWork]) -> None:
        """Totals, per-model figures and usage slots of sessions created in this batch,
        summed by SQLite from the rows just inserted."""
        if not sessions:
            return
        pks = _json_list(s.pk for s in sessions)
        store = self.store
        store.execute(
            """
            INSERT INTO session_models (session_pk, model, requests, input, output,
                cache_write_5m, cache_write_1h, cache_read, cost, unpriced)
            SELECT session_pk, model, COUNT(*), SUM(input), SUM(output), SUM(cache_write_5m),
                SUM(cache_write_1h), SUM(cache_read), SUM(cost), SUM(priced = 0)
            FROM usage WHERE session_pk IN (SELECT value FROM json_each(?))
            GROUP BY session_pk, model
            """,
            (pks,),
        )
        store.execute(
            """
            UPDATE sessions SET (requests, input, output, cache_write_5m, cache_write_1h,
                                 cache_read, cost, unpriced, web_search, web_fetch) = (
                SELECT COUNT(*), COALESCE(SUM(input), 0), COALESCE(SUM(output), 0),
                    COALESCE(SUM(cache_write_5m), 0), COALESCE(SUM(cache_write_1h), 0),
                    COALESCE(SUM(cache_read), 0), COALESCE(SUM(cost), 0),
                    COALESCE(SUM(priced = 0), 0), COALESCE(SUM(web_search), 0),
                    COALESCE(SUM(web_fetch), 0)
                FROM usage u WHERE u.session_pk = sessions.id)
            WHERE id IN (SELECT value FROM json_each(?))
            """,
            (pks,),
        )
        store.execute(
            f"""
            INSERT INTO usage_buckets (session_pk, bucket, model, requests, input, output,
                cache_write_5m, cache_write_1h, cache_read, cost, unpriced)
            SELECT session_pk, ts / {BUCKET_MS}, model, COUNT(*), SUM(input), SUM(output),
                SUM(cache_write_5m), SUM(cache_write_1h), SUM(cache_read), SUM(cost),
                SUM(priced = 0)
            FROM usage
            WHERE session_pk IN (SELECT value FROM json_each(?)) AND canonical = 1
            GROUP BY session_pk, ts / {BUCKET_MS}, model
            ON CONFLICT (session_pk, bucket, model) DO UPDATE SET {_ADD_SUMS}
            """,  # noqa: S608 - constants only
            (pks,),
        )

    def _write_models(self, sessions: Iterable[_SessionWork]) -> None:
        """Per-model deltas of stored sessions."""
        rows: list[tuple[Any, ...]] = []
        emptied: list[tuple[int]] = []
        for s in sessions:
            for model, m in s.models.items():
                rows.append(
                    (
                        s.pk,
                        model,
                        m.requests,
                        m.input,
                        m.output,
                        m.cache_write_5m,
                        m.cache_write_1h,
                        m.cache_read,
                        m.cost,
                        m.unpriced,
                    )
                )
            if s.negative:
                emptied.append((s.pk,))
        if rows:
            self.store.executemany(
                f"""
                INSERT INTO session_models (session_pk, model, requests, input, output,
                    cache_write_5m, cache_write_1h, cache_read, cost, unpriced)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (session_pk, model) DO UPDATE SET {_ADD_SUMS}
                """,  # noqa: S608 - constants only
                rows,
            )
        if emptied:
            self.store.executemany(
                "DELETE FROM session_models WHERE session_pk = ? AND requests <= 0", emptied
            )

    def _add_buckets(self, rows: list[tuple[Any, ...]]) -> None:
        self.store.executemany(
            f"""
            INSERT INTO usage_buckets (session_pk, bucket, model, requests, input, output,
                cache_write_5m, cache_write_1h, cache_read, cost, unpriced)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (session_pk, bucket, model) DO UPDATE SET {_ADD_SUMS}
            """,  # noqa: S608 - constants only
            rows,
        )

    def _drop_empty_buckets(self, session_pks: Iterable[int]) -> None:
        self.store.executemany(
            "DELETE FROM usage_buckets WHERE session_pk = ? AND requests <= 0",
            [(pk,) for pk in set(session_pks)],
        )

    def _decide_canonical(self) -> None:
        """After a reset: which copy of each request in `pending_keys` counts now.

        Rows still undecided (NULL) and the current canonical rows of the same keys are
        ranked by (ts, session); codes used only inside this transaction: 2 newly
        counted, -2 newly not counted, -1 no longer counted.
        """
        store = self.store
        if not store.scalar("SELECT 1 FROM pending_keys LIMIT 1"):
            return
        store.execute(
            """
            UPDATE usage SET canonical = CASE
                WHEN session_pk = (
                    SELECT w.session_pk FROM usage w
                    WHERE w.key = usage.key AND (w.canonical IS NULL OR w.canonical >= 1)
                    ORDER BY w.ts, w.session_pk LIMIT 1)
                THEN CASE WHEN canonical = 1 THEN 1 ELSE 2 END
                ELSE CASE WHEN canonical = 1 THEN -1 ELSE -2 END
            END
            WHERE key IN (SELECT key FROM pending_keys) AND (canonical IS NULL OR canonical = 1)
            """
        )
        for code, sign in ((2, 1), (-1, -1)):
            store.execute(
                f"""
                INSERT INTO usage_buckets (session_pk, bucket, model, requests, input, output,
                    cache_write_5m, cache_write_1h, cache_read, cost, unpriced)
                SELECT session_pk, ts / {BUCKET_MS}, model, {sign} * COUNT(*),
                    {sign} * SUM(input), {sign} * SUM(output), {sign} * SUM(cache_write_5m),
                    {sign} * SUM(cache_write_1h), {sign} * SUM(cache_read), {sign} * SUM(cost),
                    {sign} * SUM(priced = 0)
                FROM usage
                WHERE key IN (SELECT key FROM pending_keys) AND canonical = {code}
                GROUP BY session_pk, ts / {BUCKET_MS}, model
                ON CONFLICT (session_pk, bucket, model) DO UPDATE SET {_ADD_SUMS}
                """  # noqa: S608 - constants only
            )
        shared = store.query(
            "SELECT session_pk, COUNT(*) AS n FROM usage "
            "WHERE key IN (SELECT key FROM pending_keys) AND canonical IN (-1, -2) "
            "GROUP BY session_pk"
        )
        if shared:
            store.executemany(
                "UPDATE sessions SET shared_requests = shared_requests + ? WHERE id = ?",
                [(r["n"], r["session_pk"]) for r in shared],
            )
            self._drop_empty_buckets(r["session_pk"] for r in shared)
        store.execute(
            "UPDATE usage SET canonical = CASE canonical WHEN 2 THEN 1 WHEN 1 THEN 1 ELSE 0 END "
            "WHERE key IN (SELECT key FROM pending_keys) AND canonical IN (2, -1, -2)"
        )
        store.execute("DELETE FROM pending_keys")

    # ------------------------------------------------------------------ sessions

    def _identify(self, session: _SessionWork) -> None:
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

    # ------------------------------------------------------------------ starting over

    def reset_sessions(self, session_pks: Iterable[int]) -> None:
        """Forget everything read from these sessions' files, to read them again.

        Requests these sessions counted are handed to the next copy (another session
        holding the same request), so summaries stay right meanwhile.
        """
        pks = sorted(set(session_pks))
        if not pks:
            return
        try:
            with self.store.transaction():
                self.store.execute("DELETE FROM pending_keys")
                for pk in pks:
                    self._reset(pk)
                    self.store.execute(
                        "UPDATE files SET usage_offset = 0, usage_lines = 0, records = 0, "
                        "text_offset = 0, text_lines = 0, pending = 0, bad_lines = 0, "
                        "digest = NULL WHERE session_pk = ?",
                        (pk,),
                    )
                self._decide_canonical()
        except BaseException:
            self._forget_ids()
            raise

    def _reset(self, pk: int) -> None:
        store = self.store
        store.execute(
            "INSERT OR IGNORE INTO pending_keys "
            "SELECT key FROM usage WHERE session_pk = ? AND canonical = 1",
            (pk,),
        )
        if self.fts:
            store.execute(
                "DELETE FROM entries_text "
                "WHERE rowid IN (SELECT id FROM entries WHERE session_pk = ?)",
                (pk,),
            )
        store.execute("DELETE FROM entries WHERE session_pk = ?", (pk,))
        store.execute("DELETE FROM usage WHERE session_pk = ?", (pk,))
        store.execute("DELETE FROM usage_buckets WHERE session_pk = ?", (pk,))
        store.execute("DELETE FROM session_models WHERE session_pk = ?", (pk,))
        store.execute(
            "DELETE FROM line_errors WHERE file_id IN (SELECT id FROM files WHERE session_pk = ?)",
            (pk,),
        )
        store.execute(
            """
            UPDATE sessions SET facts = '{}', title = '', first_ts = 0, last_ts = 0,
                user_prompts = 0, requests = 0, shared_requests = 0, input = 0, output = 0,
                cache_write_5m = 0, cache_write_1h = 0, cache_read = 0, cost = 0, unpriced = 0,
                web_search = 0, web_fetch = 0, bad_lines = 0, bytes = 0, cwd = '', project = '',
                project_path = '', project_source = '', git_remote = ''
            WHERE id = ?
            """,
            (pk,),
        )
        # Copies of the requests this session counted become undecided again, so that
        # the next decision counts one of them; they stop being "shared" meanwhile.
        shared = store.query(
            "SELECT session_pk, COUNT(*) AS n FROM usage "
            "WHERE key IN (SELECT key FROM pending_keys) AND canonical = 0 GROUP BY session_pk"
        )
        store.executemany(
            "UPDATE sessions SET shared_requests = shared_requests - ? WHERE id = ?",
            [(r["n"], r["session_pk"]) for r in shared],
        )
        store.execute(
            "UPDATE usage SET canonical = NULL "
            "WHERE key IN (SELECT key FROM pending_keys) AND canonical = 0"
        )

    def remove_root(self, root_id: int) -> None:
        pks = [
            int(r[0])
            for r in self.store.query("SELECT id FROM sessions WHERE root_id = ?", (root_id,))
        ]
        with self.store.transaction():
            self.store.execute("DELETE FROM pending_keys")
            for pk in pks:
                self._reset(pk)
            self._decide_canonical()
            self.store.execute("DELETE FROM sessions WHERE root_id = ?", (root_id,))
            self.store.execute("DELETE FROM files WHERE root_id = ?", (root_id,))
            self.store.execute("DELETE FROM file_problems WHERE root_id = ?", (root_id,))
            self.store.execute("DELETE FROM roots WHERE id = ?", (root_id,))
        self.problems.forget()

    def clear(self) -> None:
        """Drop everything read (not the roots), for a rebuild from scratch."""
        self._forget_ids()
        with self.store.transaction():
            for table in (
                "entries",
                "usage",
                "usage_buckets",
                "session_models",
                "line_errors",
                "files",
                "sessions",
                "file_problems",
            ):
                self.store.execute(f"DELETE FROM {table}")  # noqa: S608 - constant names
            if self.fts:
                self.store.execute("DELETE FROM entries_text")

    def clear_text(self) -> None:
        """Drop the text pass's results, to build them again."""
        self._forget_ids()
        with self.store.transaction():
            self.store.execute("DELETE FROM entries")
            if self.fts:
                self.store.execute("DELETE FROM entries_text")
            self.store.execute("UPDATE files SET text_offset = 0, text_lines = 0")
            self.store.execute("UPDATE sessions SET facts = json_remove(facts, '$.unknown_fields')")

    # ------------------------------------------------------------------ prices

    def stored_price_version(self) -> str:
        return str(self.store.scalar("SELECT value FROM meta WHERE key = 'price_version'") or "")

    def reprice(self) -> None:
        """Recompute every stored cost with the current table (its version changed)."""
        store = self.store
        price = self.prices.cost
        with store.transaction():
            after: tuple[int, int] = (-1, -(1 << 63))
            while True:
                rows = store.query(
                    "SELECT session_pk, key, model, input, output, cache_write_5m, "
                    "cache_write_1h, cache_read, speed FROM usage "
                    "WHERE (session_pk, key) > (?, ?) ORDER BY session_pk, key LIMIT 20000",
                    after,
                )
                if not rows:
                    break
                after = (rows[-1]["session_pk"], rows[-1]["key"])
                updates = []
                for r in rows:
                    cost, priced = price(
                        r["model"],
                        r["input"],
                        r["output"],
                        r["cache_write_5m"],
                        r["cache_write_1h"],
                        r["cache_read"],
                        r["speed"],
                    )
                    updates.append((cost, int(priced), r["session_pk"], r["key"]))
                store.executemany(
                    "UPDATE usage SET cost = ?, priced = ? WHERE session_pk = ? AND key = ?",
                    updates,
                )
            store.execute(
                """
                UPDATE session_models SET
                    cost = (SELECT COALESCE(SUM(u.cost), 0) FROM usage u
                            WHERE u.session_pk = session_models.session_pk
                              AND u.model = session_models.model),
                    unpriced = (SELECT COUNT(*) FROM usage u
                                WHERE u.session_pk = session_models.session_pk
                                  AND u.model = session_models.model AND u.priced = 0)
                """
            )
            store.execute(
                """
                UPDATE sessions SET
                    cost = (SELECT COALESCE(SUM(cost), 0) FROM session_models m
                            WHERE m.session_pk = sessions.id),
                    unpriced = (SELECT COALESCE(SUM(unpriced), 0) FROM session_models m
                                WHERE m.session_pk = sessions.id),
                    price_version = ?
                """,
                (self.prices.version,),
            )
            store.execute("DELETE FROM usage_buckets")
            store.execute(
                f"""
                INSERT INTO usage_buckets (session_pk, bucket, model, requests, input, output,
                    cache_write_5m, cache_write_1h, cache_read, cost, unpriced)
                SELECT session_pk, ts / {BUCKET_MS}, model, COUNT(*), SUM(input), SUM(output),
                    SUM(cache_write_5m), SUM(cache_write_1h), SUM(cache_read), SUM(cost),
                    SUM(priced = 0)
                FROM usage WHERE canonical = 1
                GROUP BY session_pk, ts / {BUCKET_MS}, model
                """  # noqa: S608 - constants only
            )
            self.set_price_version()

    def set_price_version(self) -> None:
        self.store.execute(
            "INSERT INTO meta (key, value) VALUES ('price_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (self.prices.version,),
        )

    # ------------------------------------------------------------------ status

    def counts(self) -> dict[str, int]:
        row = self.store.query_one(
            """
            SELECT COUNT(*) AS files, COALESCE(SUM(size), 0) AS bytes,
                COALESCE(SUM(usage_offset), 0) AS indexed,
                COALESCE(SUM(text_offset), 0) AS text_indexed,
                COALESCE(SUM(pending), 0) AS pending,
                COALESCE(SUM(bad_lines), 0) AS bad_lines,
                COALESCE(SUM(missing), 0) AS missing
            FROM files
            """
        )
        sessions = self.store.scalar("SELECT COUNT(*) FROM sessions")
        assert row is not None
        counts = {k: int(row[k]) for k in row.keys()}  # noqa: SIM118 - sqlite3.Row
        counts["sessions"] = int(sessions or 0)
        return counts


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


def _session_common(s: _SessionWork) -> tuple[Any, ...]:
    f = s.facts
    t = s.totals
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
        s.shared,
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


def _session_values(s: _SessionWork, version: str, now: int) -> tuple[Any, ...]:
    return (
        s.pk,
        s.root_id,
        s.root.origin_key,
        s.session_id,
        s.project_dir,
        *_session_common(s),
        version,
        now,
    )


def _session_delta(s: _SessionWork, version: str, now: int) -> tuple[Any, ...]:
    return (*_session_common(s), version, now, s.pk)


def _stored(row: UsageRow, file_id: int, cost: float, priced: int) -> tuple[Any, ...]:
    """A usage row's stored values, `file_id` through `priced`, in the table's order."""
    return (
        file_id,
        row.model,
        row.ts,
        row.input,
        row.output,
        row.cache_write_5m,
        row.cache_write_1h,
        row.cache_read,
        int(row.complete),
        row.speed,
        row.web_search,
        row.web_fetch,
        cost,
        int(priced),
    )


def _bucket(
    buckets: dict[tuple[int, int, str], list[float]],
    pk: int,
    row: UsageRow,
    cost: float,
    priced: int,
    sign: int,
) -> None:
    key = (pk, row.ts // BUCKET_MS, row.model)
    acc = buckets.get(key)
    if acc is None:
        acc = buckets[key] = [0, 0, 0, 0, 0, 0, 0.0, 0]
    acc[0] += sign
    acc[1] += sign * row.input
    acc[2] += sign * row.output
    acc[3] += sign * row.cache_write_5m
    acc[4] += sign * row.cache_write_1h
    acc[5] += sign * row.cache_read
    acc[6] += sign * cost
    acc[7] += sign * int(priced == Priced.UNPRICED)
