"""Files the index could not read or parse, and when to try them again.

One file never stops the index: a transcript that cannot be opened (permissions, an I/O
error), is not a regular file (a named pipe, a socket, a device) or made the parser fail
is recorded here with the reason, and everything else is indexed. Problems that may go
away by themselves (*transient*: permissions fixed, a disk that recovers) are tried again
with a growing delay until the file is read; the others when the file changes. A file
that is read successfully, or disappears, is no longer a problem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from karmad.store import Row, Store

RETRY_FIRST_MS: Final = 1000
RETRY_MAX_MS: Final = 60_000
"""Transient problems are tried again after 1 s, 2 s, 4 s… at most a minute apart (a
change the watcher sees is tried at once, whatever the delay)."""

Stat = tuple[int, int, int]
"""(inode, size, mtime_ns)"""


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    root_id: int
    session_id: str
    reason: str
    transient: bool
    attempts: int
    since: int
    at: int
    retry_at: int
    """Milliseconds since the epoch; 0 for a problem that waits for the file to change."""
    stat: Stat

    @classmethod
    def of(cls, r: Row) -> Problem:
        return cls(
            r["path"],
            r["root_id"],
            r["session_id"],
            r["reason"],
            bool(r["transient"]),
            r["attempts"],
            r["since"],
            r["at"],
            r["retry_at"],
            (r["inode"], r["size"], r["mtime_ns"]),
        )


def retry_delay_ms(attempts: int) -> int:
    return min(RETRY_FIRST_MS << min(max(attempts - 1, 0), 16), RETRY_MAX_MS)


class Problems:
    """The `file_problems` table, written on the indexer's connection (its worker thread).

    Every problem is also held in memory: there are few, and the scan asks about every
    file it sees.
    """

    def __init__(self, store: Store, now_ms: Callable[[], int]) -> None:
        self._store = store
        self._now_ms = now_ms
        self._known: dict[str, Problem] | None = None

    @property
    def known(self) -> dict[str, Problem]:
        if self._known is None:
            self._known = {
                r["path"]: Problem.of(r) for r in self._store.query("SELECT * FROM file_problems")
            }
        return self._known

    def get(self, path: str) -> Problem | None:
        return self.known.get(path)

    def waits_for_change(self, path: str, stat: Stat) -> bool:
        """True for a file with a lasting problem that has not changed since."""
        problem = self.known.get(path)
        return problem is not None and not problem.transient and problem.stat == stat

    def record(
        self,
        root_id: int,
        path: str,
        session_id: str,
        reason: str,
        *,
        transient: bool,
        stat: Stat = (0, 0, 0),
    ) -> Problem:
        now = self._now_ms()
        old = self.known.get(path)
        attempts = old.attempts + 1 if old is not None and old.reason == reason else 1
        problem = Problem(
            path,
            root_id,
            session_id,
            reason,
            transient,
            attempts,
            old.since if old is not None else now,
            now,
            now + retry_delay_ms(attempts) if transient else 0,
            stat,
        )
        with self._store.transaction():
            self._store.execute(
                "INSERT OR REPLACE INTO file_problems (path, root_id, session_id, reason, "
                "transient, attempts, since, at, retry_at, inode, size, mtime_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    path,
                    root_id,
                    session_id,
                    reason,
                    int(transient),
                    attempts,
                    problem.since,
                    now,
                    problem.retry_at,
                    *stat,
                ),
            )
        self.known[path] = problem
        return problem

    def clear(self, paths: Iterable[str]) -> None:
        """These files were read (or are gone): no longer problems."""
        known = self.known
        gone = [(p,) for p in paths if p in known]
        if not gone:
            return
        with self._store.transaction():
            self._store.executemany("DELETE FROM file_problems WHERE path = ?", gone)
        for (path,) in gone:
            del known[path]

    def due(self) -> list[str]:
        """Transient problems whose time to try again has come."""
        now = self._now_ms()
        return sorted(p.path for p in self.known.values() if p.transient and p.retry_at <= now)

    def next_retry(self) -> int | None:
        """When the next transient problem is due (ms since the epoch), if any."""
        times = [p.retry_at for p in self.known.values() if p.transient]
        return min(times) if times else None

    def forget(self) -> None:
        """Reload from the table (after a rollback or a bulk delete)."""
        self._known = None
