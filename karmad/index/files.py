"""What the index knows of roots and files: where each transcript was read up to, which
received files were refused, which are gone, and the totals `index.status` shows."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from karmad.index.discovery import Root
from karmad.index.rows import FileRow
from karmad.store import Store


class FileTable:
    """The `roots`, `files` and `rejected` tables, on the indexer's write connection."""

    def __init__(self, store: Store, now_ms: Callable[[], int]) -> None:
        self.store = store
        self._now_ms = now_ms

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

    def of_root(self, root_id: int) -> dict[str, FileRow]:
        rows = self.store.query("SELECT * FROM files WHERE root_id = ?", (root_id,))
        return {r["path"]: FileRow.of(r) for r in rows}

    def get(self, path: str) -> FileRow | None:
        row = self.store.query_one("SELECT * FROM files WHERE path = ?", (path,))
        return None if row is None else FileRow.of(row)

    def of_session(self, session_pk: int) -> list[FileRow]:
        rows = self.store.query("SELECT * FROM files WHERE session_pk = ?", (session_pk,))
        return [FileRow.of(r) for r in rows]

    def behind_on_text(self, limit: int, after: int = 0) -> list[FileRow]:
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
        row = self.get(path)
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

    def move(self, moves: Iterable[tuple[int, str]]) -> None:
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
