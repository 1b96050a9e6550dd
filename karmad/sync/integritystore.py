"""What a reader keeps so that forged or replayed state files are not believed
(`signed_teams`, `state_seqs` in the state store; docs/keeper.md 2.3).

- *Signatures required*, per team, once the team has a keeper or its leader's file names
  one. Never cleared: what was forged through the keeper stays in the folders after the
  keeper is gone.
- *The highest `seq`* of a teammate's state file believed, per folder. The owner's
  sequence number only grows, and a device cannot rejoin a team it left (so a folder's
  owner never starts again from 0): anything lower is a replay.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from karmad.store import Store


def signed_teams(store: Store) -> frozenset[str]:
    return frozenset(r["team_id"] for r in store.query("SELECT team_id FROM signed_teams"))


def require_signatures(store: Store, team_ids: Iterable[str], now: datetime) -> frozenset[str]:
    """Mark teams as requiring signatures; returns those that were not marked before."""
    new = frozenset(team_ids) - signed_teams(store)
    for team_id in sorted(new):
        store.execute(
            "INSERT OR IGNORE INTO signed_teams (team_id, since) VALUES (?, ?)",
            (team_id, now.isoformat()),
        )
    return new


def signatures_required(store: Store, team_id: str) -> bool:
    row = store.query_one("SELECT 1 FROM signed_teams WHERE team_id = ?", (team_id,))
    return row is not None


def state_seqs(store: Store) -> dict[str, int]:
    """Folder id -> the highest `seq` of its state file believed so far."""
    return {r["folder_id"]: r["seq"] for r in store.query("SELECT folder_id, seq FROM state_seqs")}


def raise_state_seqs(store: Store, seqs: dict[str, int], now: datetime) -> None:
    """Keep each folder's highest `seq` (never lowered)."""
    for folder, seq in sorted(seqs.items()):
        store.execute(
            "INSERT INTO state_seqs (folder_id, seq, seen_at) VALUES (?, ?, ?)"
            " ON CONFLICT(folder_id) DO UPDATE SET seq = excluded.seq,"
            " seen_at = excluded.seen_at WHERE excluded.seq > state_seqs.seq",
            (folder, seq, now.isoformat()),
        )
