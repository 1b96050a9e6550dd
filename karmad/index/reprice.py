"""Prices of what is indexed: the version they were computed with, and computing them
again when the table (or the user's overrides) changed, without reading transcripts."""

from __future__ import annotations

from karmad.index.accounting import BUCKET_MS
from karmad.index.pricing import PriceTable
from karmad.store import Store


class Repricer:
    def __init__(self, store: Store, prices: PriceTable) -> None:
        self.store = store
        self.prices = prices

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
