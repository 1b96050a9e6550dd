"""The rows the index writer reads and writes, by name, and the ids it hands out.

Rows that go to SQLite in bulk are NamedTuples in their table's column order: named for
whoever reads the code, plain tuples for `executemany`, at no cost on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from karmad import codec
from karmad.index.discovery import FileRef
from karmad.index.usage import UsageRow
from karmad.index.work import ParseResult
from karmad.store import Row, Store


@dataclass(slots=True)
class FileRow:
    """What the index knows of one transcript file (a row of `files`)."""

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


class FileValues(NamedTuple):
    """A `files` row as written after a read (its id goes first or last, by statement)."""

    root_id: int
    session_pk: int | None
    path: str
    project_dir: str
    kind: str
    agent_id: str
    inode: int
    size: int
    mtime_ns: int
    digest: bytes | None
    usage_offset: int
    usage_lines: int
    records: int
    text_offset: int
    text_lines: int
    pending: int | None
    """None keeps the stored value (a text pass alone says nothing about it)."""
    bad_lines: int
    """Added to the stored count."""


FILE_INSERT = (
    "INSERT INTO files (id, root_id, session_pk, path, project_dir, kind, agent_id, "
    "inode, size, mtime_ns, digest, usage_offset, usage_lines, records, text_offset, "
    "text_lines, pending, bad_lines) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
"""Takes `(id, *FileValues)`."""
FILE_UPDATE = (
    "UPDATE files SET root_id = ?, session_pk = ?, path = ?, project_dir = ?, "
    "kind = ?, agent_id = ?, inode = ?, size = ?, mtime_ns = ?, digest = ?, "
    "usage_offset = ?, usage_lines = ?, records = ?, text_offset = ?, "
    "text_lines = ?, pending = COALESCE(?, pending), bad_lines = bad_lines + ?, "
    "missing = 0 WHERE id = ?"
)
"""Takes `(*FileValues, id)`."""


class UsageValues(NamedTuple):
    """A `usage` row: one API request in one session, in the table's column order."""

    session_pk: int
    key: int
    file_id: int
    model: str
    ts: int
    input: int
    output: int
    cache_write_5m: int
    cache_write_1h: int
    cache_read: int
    complete: int
    speed: str
    web_search: int
    web_fetch: int
    cost: float
    priced: int
    canonical: int
    """1: this copy of the request counts in usage summaries; 0: another copy does."""
    copied: int
    """1: every line of it is a copy karmad made for a resume (`karmadCopyOf`)."""


USAGE_INSERT = (
    "INSERT INTO usage (session_pk, key, file_id, model, ts, input, output, "
    "cache_write_5m, cache_write_1h, cache_read, complete, speed, web_search, "
    "web_fetch, cost, priced, canonical, copied) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def usage_values(
    session_pk: int, row: UsageRow, file_id: int, cost: float, priced: int, canonical: int
) -> UsageValues:
    return UsageValues(
        session_pk,
        row.key,
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
        canonical,
        int(row.copied),
    )


class UsageChange(NamedTuple):
    """A stored `usage` row replaced by a better row of the same request (or the same
    row, no longer a copy: a line of it that is not karmad's copy came in)."""

    file_id: int
    model: str
    ts: int
    input: int
    output: int
    cache_write_5m: int
    cache_write_1h: int
    cache_read: int
    complete: int
    speed: str
    web_search: int
    web_fetch: int
    cost: float
    priced: int
    copied: int
    session_pk: int
    key: int


USAGE_UPDATE = (
    "UPDATE usage SET file_id = ?, model = ?, ts = ?, input = ?, output = ?, "
    "cache_write_5m = ?, cache_write_1h = ?, cache_read = ?, complete = ?, "
    "speed = ?, web_search = ?, web_fetch = ?, cost = ?, priced = ?, copied = ? "
    "WHERE session_pk = ? AND key = ?"
)


def usage_row_of(key: int, r: Row) -> UsageRow:
    """A stored `usage` row as the parser's `UsageRow`."""
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
        bool(r["copied"]),
    )


EntryValues = tuple[int, int, int, int, int, int, int, str, int, str, str]
"""An `entries` row, where one conversation line is (for `session.messages`), in the
order of `ENTRY_INSERT`: id, session_pk, file_id, offset, length, line, ts, kind,
sidechain, agent_id, uuid.

A plain tuple, unlike the other rows: there is one per line, nothing reads it back by
name, and SQLite binds exact tuples at about half the cost of a NamedTuple's (90,000
rows: 0.09 s against 0.15 s, plus 0.35 µs to make each)."""


ENTRY_INSERT = (
    "INSERT INTO entries (id, session_pk, file_id, offset, length, line, ts, kind, "
    "sidechain, agent_id, uuid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class LineErrorValues(NamedTuple):
    file_id: int
    offset: int
    line: int
    reason: str
    sample: str
    repaired: int


LINE_ERROR_INSERT = (
    "INSERT OR REPLACE INTO line_errors (file_id, offset, line, reason, sample, "
    "repaired) VALUES (?, ?, ?, ?, ?, ?)"
)


class Ids:
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


def json_list(values: Iterable[Any]) -> str:
    """Values for `IN (SELECT value FROM json_each(?))`: one parameter for any number."""
    return codec.encode_json(list(values)).decode()


def chunks(values: list[Any], size: int = 20000) -> Iterable[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]
