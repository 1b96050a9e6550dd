"""Usage accounting: which rows of a batch are new or better, which copy of each request
counts, and the sums kept beside them (per session, per model, per 15-minute slot).

Session figures are maintained by adding deltas (never by re-summing a session), so an
append costs the same however long the session already is. Which copy of a request is
*counted* in usage summaries (`usage.canonical`) is decided in set-based SQL per batch:
of each (message.id, requestId) across all sessions and origins, a row that is not a copy
karmad made for a resume (`usage.copied`) before one that is, then the earliest, then the
session indexed first (docs/index.md, the copy rule), so a forked or resumed session, or
one received from two devices, never counts the same request twice. The three places that
rank copies (`_choose_counted` twice, `decide_canonical`) use that same order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from karmad.index.pricing import Priced, PriceTable
from karmad.index.rows import (
    USAGE_UPDATE,
    UsageChange,
    UsageValues,
    chunks,
    json_list,
    usage_row_of,
    usage_values,
)
from karmad.index.usage import UsageRow, better, kept
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
ADD_SUMS: Final = ", ".join(f"{c} = {c} + excluded.{c}" for c in SUM_COLUMNS)
"""Upsert of usage sums: add the new figures to what is stored."""

Buckets = dict[tuple[int, int, str], list[float]]
"""(session, slot, model) -> the SUM_COLUMNS deltas of a batch."""


@dataclass(slots=True)
class Totals:
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
class SessionUsage:
    """One session's usage in a batch: its best row per request, and what they change."""

    pk: int
    fresh: bool
    """Created by this batch: its figures are summed in SQL once its rows are inserted."""
    rows: dict[int, tuple[UsageRow, int]] = field(default_factory=dict)
    """request key -> (best row, file id)"""
    totals: Totals = field(default_factory=Totals)
    models: dict[str, Totals] = field(default_factory=dict)
    shared: int = 0
    """Requests of this batch that count in another session."""
    negative: bool = False
    """Some model's figures went down (a row was replaced): drop emptied model rows."""

    def take(self, rows: dict[int, UsageRow], file_id: int) -> None:
        """The rows one read found; per request, the better of what the batch has."""
        held_rows = self.rows
        for key, row in rows.items():
            held = held_rows.get(key)
            if held is None or kept(row, held[0])[1]:
                held_rows[key] = (row, file_id)

    def count(self, row: UsageRow, cost: float, priced: int, sign: int, requests: int) -> None:
        self.totals.add(row, cost, priced, sign, requests)
        model = self.models.get(row.model)
        if model is None:
            model = self.models[row.model] = Totals()
        model.add(row, cost, priced, sign, requests)
        if sign < 0:
            self.negative = True


@dataclass(slots=True)
class Decision:
    """What a batch writes to `usage`."""

    inserts: list[UsageValues]
    updates: list[UsageChange]
    demoted: list[tuple[int, int]]
    """(session, key) of stored rows that no longer count: a copy of the request from
    earlier came in."""
    buckets: Buckets


def bucket(buckets: Buckets, pk: int, row: UsageRow, cost: float, priced: int, sign: int) -> None:
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


def _change(
    row: UsageRow, file_id: int, cost: float, priced: int, copied: bool, pk: int, key: int
) -> UsageChange:
    return UsageChange(
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
        int(copied),
        pk,
        key,
    )


class Accounting:
    def __init__(self, store: Store, prices: PriceTable) -> None:
        self.store = store
        self.prices = prices

    def decide(self, sessions: Iterable[SessionUsage]) -> Decision:
        """Which rows are new, which replace stored ones, and which copy of each counts.

        Sessions created in this batch are accounted for in SQL after their rows are
        inserted (`aggregate_fresh`); only stored sessions are updated by deltas here.
        """
        price = self.prices.cost
        buckets: Buckets = {}
        inserts: list[UsageValues] = []
        inserted: list[UsageRow] = []  # the row of each insert
        updates: list[UsageChange] = []
        first: dict[int, int] = {}
        clashes: dict[int, list[int]] = {}
        owners: dict[int, SessionUsage] = {}
        for session in sessions:
            if not session.rows:
                continue
            owners[session.pk] = session
            stored = self._stored(session)
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
                    inserts.append(usage_values(pk, row, file_id, cost, priced, 1))
                    inserted.append(row)
                    held = first.setdefault(key, index)
                    if held != index:
                        clashes.setdefault(key, [held]).append(index)
                    if not fresh:
                        session.count(row, cost, priced, 1, 1)
                    continue
                previous = usage_row_of(key, old)
                if not better(row, previous):
                    if previous.copied and not row.copied:  # a copy, and now the original
                        updates.append(
                            _change(
                                previous, old["file_id"], old["cost"], old["priced"], False, pk, key
                            )
                        )
                    continue
                copied = row.copied and previous.copied
                updates.append(_change(row, file_id, cost, priced, copied, pk, key))
                session.count(row, cost, priced, 1, 0)
                session.count(previous, old["cost"], old["priced"], -1, 0)
                if old["canonical"] == 1:
                    bucket(buckets, pk, previous, old["cost"], old["priced"], -1)
                    bucket(buckets, pk, row, cost, priced, 1)
        demoted = self._choose_counted(inserts, first, clashes, owners, buckets)
        for values, row in zip(inserts, inserted, strict=True):
            if values.canonical == 1 and not owners[values.session_pk].fresh:
                bucket(buckets, values.session_pk, row, values.cost, values.priced, 1)
        return Decision(inserts, updates, demoted, buckets)

    def _stored(self, session: SessionUsage) -> dict[int, Row]:
        """The stored rows of the requests a stored session's batch holds, by key."""
        stored: dict[int, Row] = {}
        if not session.fresh:
            for part in chunks(list(session.rows)):
                for r in self.store.query(
                    "SELECT * FROM usage WHERE session_pk = ? "
                    "AND key IN (SELECT value FROM json_each(?))",
                    (session.pk, json_list(part)),
                ):
                    stored[r["key"]] = r
        return stored

    def _choose_counted(
        self,
        inserts: list[UsageValues],
        first: dict[int, int],
        clashes: dict[int, list[int]],
        owners: dict[int, SessionUsage],
        buckets: Buckets,
    ) -> list[tuple[int, int]]:
        """Which copy counts of each request inserted: the first by the copy rule (not
        karmad's copy, then time, then session) among the batch's copies (`first`,
        `clashes`: indexes into `inserts`) and the one counted so far. Marks the others
        in `inserts`; returns the stored rows that stop counting."""
        # The copy of each new request that is counted so far (in another session), if any.
        counted: dict[int, Row] = {}
        for part in chunks(list(first)):
            for r in self.store.query(
                "SELECT * FROM usage WHERE canonical = 1 "
                "AND key IN (SELECT value FROM json_each(?))",
                (json_list(part),),
            ):
                counted[r["key"]] = r
        demoted: list[tuple[int, int]] = []
        for key in clashes.keys() | counted.keys():
            group = sorted(
                clashes.get(key, [first[key]]),
                key=lambda i: (inserts[i].copied, inserts[i].ts, inserts[i].session_pk),
            )
            for index in group[1:]:
                inserts[index] = inserts[index]._replace(canonical=0)
            winner = inserts[group[0]]
            old = counted.get(key)
            if old is not None and (old["copied"], old["ts"], old["session_pk"]) <= (
                winner.copied,
                winner.ts,
                winner.session_pk,
            ):
                inserts[group[0]] = winner._replace(canonical=0)
            elif old is not None:
                demoted.append((old["session_pk"], key))
                bucket(
                    buckets,
                    old["session_pk"],
                    usage_row_of(key, old),
                    old["cost"],
                    old["priced"],
                    -1,
                )
            for index in group:
                if inserts[index].canonical == 0:
                    owners[inserts[index].session_pk].shared += 1
        return demoted

    def write_changes(self, decision: Decision) -> None:
        """Stored rows replaced by better ones, and stored rows that stopped counting."""
        store = self.store
        if decision.updates:
            store.executemany(USAGE_UPDATE, decision.updates)
        if decision.demoted:
            store.executemany(
                "UPDATE usage SET canonical = 0 WHERE session_pk = ? AND key = ?",
                decision.demoted,
            )

    def aggregate_fresh(self, sessions: list[SessionUsage]) -> None:
        """Totals, per-model figures and usage slots of sessions created in this batch,
        summed by SQLite from the rows just inserted."""
        if not sessions:
            return
        pks = json_list(s.pk for s in sessions)
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
            ON CONFLICT (session_pk, bucket, model) DO UPDATE SET {ADD_SUMS}
            """,  # noqa: S608 - constants only
            (pks,),
        )

    def write_models(self, sessions: Iterable[SessionUsage]) -> None:
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
                ON CONFLICT (session_pk, model) DO UPDATE SET {ADD_SUMS}
                """,  # noqa: S608 - constants only
                rows,
            )
        if emptied:
            self.store.executemany(
                "DELETE FROM session_models WHERE session_pk = ? AND requests <= 0", emptied
            )

    def add_buckets(self, buckets: Buckets) -> None:
        rows = [(*k, *v) for k, v in buckets.items()]
        self.store.executemany(
            f"""
            INSERT INTO usage_buckets (session_pk, bucket, model, requests, input, output,
                cache_write_5m, cache_write_1h, cache_read, cost, unpriced)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (session_pk, bucket, model) DO UPDATE SET {ADD_SUMS}
            """,  # noqa: S608 - constants only
            rows,
        )

    def drop_empty_buckets(self, session_pks: Iterable[int]) -> None:
        self.store.executemany(
            "DELETE FROM usage_buckets WHERE session_pk = ? AND requests <= 0",
            [(pk,) for pk in set(session_pks)],
        )

    def decide_canonical(self) -> None:
        """After a reset: which copy of each request in `pending_keys` counts now.

        Rows still undecided (NULL) and the current canonical rows of the same keys are
        ranked by the copy rule (copied, ts, session), as in `_choose_counted`; codes
        used only inside this transaction: 2 newly counted, -2 newly not counted, -1 no
        longer counted.
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
                    ORDER BY w.copied, w.ts, w.session_pk LIMIT 1)
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
                ON CONFLICT (session_pk, bucket, model) DO UPDATE SET {ADD_SUMS}
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
            self.drop_empty_buckets(r["session_pk"] for r in shared)
        store.execute(
            "UPDATE usage SET canonical = CASE canonical WHEN 2 THEN 1 WHEN 1 THEN 1 ELSE 0 END "
            "WHERE key IN (SELECT key FROM pending_keys) AND canonical IN (2, -1, -2)"
        )
        store.execute("DELETE FROM pending_keys")
