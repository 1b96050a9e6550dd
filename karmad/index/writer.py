"""Every write to `index.db`, on the indexer's own connection, in its worker thread.

The writer is made of parts, one concept each: `files` (roots, files, refused files),
`batch` (applying a batch of reads in one transaction), `accounting` (usage rows, which
copy of a request counts, the sums kept beside them), `reset` (forgetting what was read),
`reprice` (prices of what is indexed) and `problems` (files that could not be read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from karmad.index.accounting import Accounting
from karmad.index.batch import BatchWriter
from karmad.index.discovery import Root
from karmad.index.files import FileTable
from karmad.index.pricing import PriceTable
from karmad.index.problems import Problems
from karmad.index.reprice import Repricer
from karmad.index.reset import Reset
from karmad.index.rows import FileRow, FileUpdate, Ids
from karmad.store import Store

__all__ = ["FileRow", "FileUpdate", "IndexWriter"]

WRITE_CACHE_KIB: Final = 32 * 1024


class IndexWriter:
    def __init__(self, store: Store, prices: PriceTable, now_ms: Callable[[], int]) -> None:
        self.store = store
        self._prices = prices
        # Request keys are random, so their index is written all over: a page cache that
        # holds it avoids re-reading pages for every batch (SQLite's default is 2 MiB).
        store.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")
        store.execute("PRAGMA temp_store = MEMORY")
        store.execute("CREATE TEMP TABLE IF NOT EXISTS pending_keys (key INTEGER PRIMARY KEY)")
        self.fts = store.scalar("SELECT value FROM meta WHERE key = 'fts'") == "1"
        self._ids = (Ids(store, "sessions"), Ids(store, "files"), Ids(store, "entries"))
        self.problems = Problems(store, now_ms)
        self.files = FileTable(store, now_ms)
        self.accounting = Accounting(store, prices)
        self.batch = BatchWriter(store, prices, self.accounting, self._ids, now_ms, fts=self.fts)
        self.reset = Reset(store, self.accounting, self.problems, self._forget, fts=self.fts)
        self.repricer = Repricer(store, prices)

    @property
    def prices(self) -> PriceTable:
        return self._prices

    @prices.setter
    def prices(self, table: PriceTable) -> None:
        """Another table (the user's overrides changed): every part prices with it."""
        self._prices = table
        self.accounting.prices = table
        self.batch.prices = table
        self.repricer.prices = table

    def _forget(self) -> None:
        for ids in self._ids:
            ids.forget()
        self.problems.forget()

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
                current, stale = self.batch.current(updates)
                touched = self.batch.apply(current, roots) if current else []
                return touched, stale
        except BaseException:
            self._forget()
            raise

    # ------------------------------------------------------------------ starting over

    def reset_sessions(self, session_pks: Iterable[int]) -> None:
        self.reset.reset_sessions(session_pks)

    def remove_root(self, root_id: int) -> None:
        self.reset.remove_root(root_id)

    def clear(self) -> None:
        self.reset.clear()

    def clear_text(self) -> None:
        self.reset.clear_text()

    # ------------------------------------------------------------------ prices

    def stored_price_version(self) -> str:
        return self.repricer.stored_price_version()

    def reprice(self) -> None:
        self.repricer.reprice()

    def set_price_version(self) -> None:
        self.repricer.set_price_version()

    # ------------------------------------------------------------------ status

    def counts(self) -> dict[str, int]:
        return self.files.counts()
