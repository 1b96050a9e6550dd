"""Starting over: forgetting what was read from sessions, roots or everything.

A session whose file was rewritten is forgotten and read again; the requests it counted
are handed to the next copy (another session holding the same request) meanwhile, so
summaries stay right. A rebuild clears everything read but the roots.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from karmad.index.accounting import Accounting
from karmad.index.problems import Problems
from karmad.store import Store


class Reset:
    def __init__(
        self,
        store: Store,
        accounting: Accounting,
        problems: Problems,
        forget: Callable[[], None],
        *,
        fts: bool,
    ) -> None:
        self.store = store
        self.accounting = accounting
        self.problems = problems
        self.forget = forget
        """Drop what is cached of the tables (ids handed out, problems): after a rollback
        or a bulk delete."""
        self.fts = fts

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
                self.accounting.decide_canonical()
        except BaseException:
            self.forget()
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
        store.execute("DELETE FROM record_keys WHERE session_pk = ?", (pk,))
        store.execute("DELETE FROM entry_keys WHERE session_pk = ?", (pk,))
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
            self.accounting.decide_canonical()
            self.store.execute("DELETE FROM sessions WHERE root_id = ?", (root_id,))
            self.store.execute("DELETE FROM files WHERE root_id = ?", (root_id,))
            self.store.execute("DELETE FROM file_problems WHERE root_id = ?", (root_id,))
            self.store.execute("DELETE FROM roots WHERE id = ?", (root_id,))
        self.problems.forget()

    def clear(self) -> None:
        """Drop everything read (not the roots), for a rebuild from scratch."""
        self.forget()
        with self.store.transaction():
            for table in (
                "entries",
                "usage",
                "usage_buckets",
                "session_models",
                "line_errors",
                "files",
                "record_keys",
                "entry_keys",
                "sessions",
                "file_problems",
            ):
                self.store.execute(f"DELETE FROM {table}")  # noqa: S608 - constant names
            if self.fts:
                self.store.execute("DELETE FROM entries_text")

    def clear_text(self) -> None:
        """Drop the text pass's results, to build them again. The lines' keys go with
        them (each line is shown once again); the facts' keys stay, as the facts do."""
        self.forget()
        with self.store.transaction():
            self.store.execute("DELETE FROM entries")
            self.store.execute("DELETE FROM entry_keys")
            if self.fts:
                self.store.execute("DELETE FROM entries_text")
            self.store.execute("UPDATE files SET text_offset = 0, text_lines = 0")
            self.store.execute("UPDATE sessions SET facts = json_remove(facts, '$.unknown_fields')")
