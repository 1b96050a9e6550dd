"""SQLite access: the one seam where sqlite3's exceptions become karmad's.

A `Store` is one connection to one database file with a numbered schema. The daemon keeps
two: the precious state store (identity, teams, subscriptions, audit) and the derived
session index (rebuildable from transcripts), so that heavy index writes never make a
control-plane write wait. Each connection is used by one thread at a time; the indexer
opens its own.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

Row: TypeAlias = sqlite3.Row
SqlParams: TypeAlias = Sequence[Any] | dict[str, Any]

# Result codes from sqlite3.h: primary code is the low byte of the extended code.
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_CONSTRAINT = 19
_SQLITE_NOTADB = 26


class StoreError(Exception):
    """Anything that went wrong inside SQLite, with the file it concerns."""


class StoreBusy(StoreError):
    pass


class StoreFull(StoreError):
    """The disk (or quota) is full; the transaction was rolled back and nothing was lost."""


class StoreCorrupt(StoreError):
    pass


class StoreConstraint(StoreError):
    """A uniqueness or foreign-key rule refused the change."""


class StoreTooNew(StoreError):
    """The file was written by a newer karmad; refusing protects it from a downgrade."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    apply: str | Callable[[sqlite3.Connection], None]
    """SQL script, or a function for migrations that need to compute something."""


@dataclass(frozen=True, slots=True)
class Schema:
    name: str
    migrations: tuple[Migration, ...]

    def __post_init__(self) -> None:
        versions = [m.version for m in self.migrations]
        if versions != list(range(1, len(versions) + 1)):
            raise ValueError(f"{self.name}: migrations must be numbered 1..n, got {versions}")

    @property
    def latest(self) -> int:
        return len(self.migrations)


def _translate(exc: sqlite3.Error, path: Path) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    message = f"{path}: {exc}"
    if primary == _SQLITE_FULL:
        return StoreFull(message)
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return StoreCorrupt(message)
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return StoreBusy(message)
    if primary == _SQLITE_CONSTRAINT or isinstance(exc, sqlite3.IntegrityError):
        return StoreConstraint(message)
    return StoreError(message)


class Store:
    """One connection with explicit transactions (the sqlite3 module's implicit ones off)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, schema: Schema) -> None:
        self._conn = conn
        self.path = path
        self.schema = schema
        self._depth = 0

    @contextmanager
    def _translating(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    @classmethod
    def open(
        cls,
        path: Path,
        schema: Schema,
        *,
        busy_timeout_ms: int = 5000,
        check_same_thread: bool = True,
        migrate: bool = True,
    ) -> Store:
        if str(path) != ":memory:":
            _make_private(path)
        try:
            conn = sqlite3.connect(
                path,
                isolation_level=None,
                check_same_thread=check_same_thread,
                cached_statements=256,
            )
        except sqlite3.Error as exc:
            raise _translate(exc, path) from exc
        conn.row_factory = sqlite3.Row
        store = cls(conn, path, schema)
        try:
            with store._translating():
                conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal" and str(path) != ":memory:":
                    raise StoreError(f"{path}: cannot enable WAL (journal_mode={mode})")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                if migrate:
                    store._migrate()
        except BaseException:
            conn.close()
            raise
        return store

    # ------------------------------------------------------------------ schema

    @property
    def schema_version(self) -> int:
        with self._translating():
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > self.schema.latest:
            raise StoreTooNew(
                f"{self.path}: schema version {current} is newer than this karmad knows "
                f"({self.schema.latest}); upgrade karmad or move the file away"
            )
        for migration in self.schema.migrations[current:]:
            with self.transaction():
                if isinstance(migration.apply, str):
                    for statement in _split_sql(migration.apply):
                        self._conn.execute(statement)
                else:
                    migration.apply(self._conn)
                # PRAGMA does not take parameters; the value is an int we control.
                self._conn.execute(f"PRAGMA user_version = {int(migration.version)}")

    # ------------------------------------------------------------------ access

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """All-or-nothing; nested calls join the outer transaction.

        BEGIN IMMEDIATE takes the write lock up front so a transaction never fails
        half-way through on a lock upgrade.
        """
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        with self._translating():
            self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            if self._conn.in_transaction:
                with self._translating():
                    self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            with self._translating():
                self._conn.execute("COMMIT")
        except StoreError:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def execute(self, sql: str, params: SqlParams = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        with self._translating():
            return self._conn.execute(sql, params).rowcount

    def insert(self, sql: str, params: SqlParams = ()) -> int:
        """Run an INSERT; returns the new rowid."""
        with self._translating():
            rowid = self._conn.execute(sql, params).lastrowid
        return int(rowid or 0)

    def executemany(self, sql: str, rows: Iterable[SqlParams]) -> None:
        with self._translating():
            self._conn.executemany(sql, rows)

    def query(self, sql: str, params: SqlParams = ()) -> list[Row]:
        with self._translating():
            return self._conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: SqlParams = ()) -> Row | None:
        with self._translating():
            row: Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def scalar(self, sql: str, params: SqlParams = ()) -> Any:
        row = self.query_one(sql, params)
        return None if row is None else row[0]

    def quick_check(self) -> list[str]:
        """Problems SQLite finds in the file; empty when healthy."""
        rows = self.query("PRAGMA quick_check")
        problems = [str(r[0]) for r in rows]
        return [] if problems == ["ok"] else problems

    def checkpoint(self) -> None:
        with self._translating():
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._translating():
            self._conn.close()


SIDE_FILES = ("-wal", "-shm", "-journal")


def _make_private(path: Path) -> None:
    """The database and its side files readable by this user only.

    SQLite creates a database 0644 (less the umask) and gives its `-wal` and `-shm`
    the database's mode, so creating the file 0600 first makes all of them private;
    files an older karmad created are taken back from group and others.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"{path}: cannot create: {exc.strerror or exc}") from None
    else:
        os.close(fd)
    for name in (path.name, *(path.name + suffix for suffix in SIDE_FILES)):
        target = path.with_name(name)
        try:
            st = target.stat()
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077 and st.st_uid == os.getuid():
                os.chmod(target, stat.S_IMODE(st.st_mode) & 0o700)
        except OSError:
            continue  # absent, or not ours: SQLite says what is wrong when it opens it


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements so each runs inside our transaction.

    `executescript` would COMMIT first; `sqlite3.complete_statement` tells where a
    statement really ends (semicolons inside triggers and strings are handled).
    """
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buffer.strip()[:80]}")
    return statements


@dataclass(frozen=True, slots=True)
class Inspection:
    schema_version: int
    problems: list[str]
    """What `PRAGMA quick_check` found; empty when the file is sound."""


def inspect(path: Path, *, max_problems: int = 10) -> Inspection:
    """Check a database file through a fresh, read-only connection.

    A separate connection reads what is on disk, as the next start would, rather than
    pages the daemon's own connection may still hold; read-only, so that a health check
    can never be the thing that writes to a damaged file. Raises `StoreError` (often
    `StoreCorrupt`) when the file cannot even be read that far.
    """
    uri = path.absolute().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            rows = conn.execute(f"PRAGMA quick_check({int(max_problems)})").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise _translate(exc, path) from exc
    problems = [str(r[0]) for r in rows]
    return Inspection(version, [] if problems == ["ok"] else problems)
