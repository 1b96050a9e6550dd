"""The indexing engine in-process, on a real SQLite file, for tests of its rules."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from karmad.config import IndexConfig, PricesConfig
from karmad.index.discovery import Root
from karmad.index.engine import Engine, Progress
from karmad.index.pricing import load_table
from karmad.index.queries import IndexQueries
from karmad.index.schema import INDEX_SCHEMA
from karmad.index.writer import IndexWriter
from karmad.protocol import SessionDetail, SessionGetParams
from karmad.store import Row, Store


class LocalIndex:
    def __init__(
        self,
        db: Path,
        roots: list[Root],
        *,
        config: IndexConfig | None = None,
        prices: PricesConfig | None = None,
        full_text: bool = True,
        pool_min_bytes: int | None = None,
    ) -> None:
        self.store = Store.open(db, INDEX_SCHEMA, check_same_thread=False)
        self.writer = IndexWriter(self.store, load_table(prices), lambda: int(time.time() * 1000))
        self.progress: list[Progress] = []
        self.rejected: list[tuple[str, str]] = []
        self.stop_when: Callable[[], bool] = lambda: False
        """What karmad's shutdown flag would say; the engine asks between batches."""
        self.engine = Engine(
            self.writer,
            config or IndexConfig(parse_processes=0),
            full_text=full_text,
            on_progress=self.progress.append,
            on_sessions=lambda pks: None,
            should_stop=self._stopping,
            take_changed=set,
            on_rejected=lambda path, reason, root: self.rejected.append((path, reason)),
        )
        if pool_min_bytes is not None:
            self.engine.pool_min_bytes = pool_min_bytes
        for root in roots:
            self.engine.add_root(root)
        self.reader = IndexQueries(Store.open(db, INDEX_SCHEMA))

    def _stopping(self) -> bool:
        return self.stop_when()

    def scan(self) -> None:
        self.engine.scan()

    def process(self, *paths: Path) -> None:
        self.engine.process([str(p) for p in paths])

    def session(self, session_id: str, origin: str = "local") -> Row:
        row = self.store.query_one(
            "SELECT * FROM sessions WHERE session_id = ? AND origin_key = ?", (session_id, origin)
        )
        assert row is not None, f"no session {session_id} ({origin})"
        return row

    def scan_progress(self) -> Progress:
        """The last progress report of the aggregates pass."""
        return [p for p in self.progress if p.phase == "scan"][-1]

    def detail(self, session_id: str) -> SessionDetail:
        return self.reader.get_session(SessionGetParams(id=session_id))

    def tokens(self, session_id: str, origin: str = "local") -> dict[str, Any]:
        row = self.session(session_id, origin)
        keys = ("requests", "input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
        return {k: row[k] for k in keys} | {"cost": round(row["cost"], 9)}

    def usage_total(self) -> dict[str, float]:
        row = self.store.query_one(
            "SELECT SUM(requests) AS requests, SUM(input) AS input, SUM(output) AS output, "
            "SUM(cache_write_5m) AS cache_write_5m, SUM(cache_write_1h) AS cache_write_1h, "
            "SUM(cache_read) AS cache_read, SUM(cost) AS cost FROM usage_buckets"
        )
        assert row is not None
        return {k: (row[k] or 0) for k in row.keys()}  # noqa: SIM118

    def close(self) -> None:
        self.reader.store.close()
        self.store.close()


def same_tokens(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Every count of two `session.get` answers equal; the cost too, up to the last bit
    of a float sum, whose order follows the order the session's files were read in."""
    counts = {k: v for k, v in a["tokens"].items() if k != "cost"}
    return counts == {k: v for k, v in b["tokens"].items() if k != "cost"} and a["tokens"][
        "cost"
    ] == pytest.approx(b["tokens"]["cost"], rel=1e-12, abs=1e-15)
