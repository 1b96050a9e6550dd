"""Reading and writing a team's keeper in the state store (`team_keepers`, `keeper_joins`).

The only module that knows how they are laid out; callers get `TeamKeeper` values. The
secrets kept here decrypt the team's folders on the keeper, so they stay in the store
(0600, like everything precious) and never appear in a log line or an RPC answer.
"""

from __future__ import annotations

import json
from datetime import datetime

from karmad import codes
from karmad.store import Row, Store
from karmad.sync.model import TeamKeeper
from karmad.trust.wrap import new_join_secret


def _keeper(row: Row) -> TeamKeeper:
    removed = row["removed_at"]
    return TeamKeeper(
        team_id=row["team_id"],
        device_id=row["keeper_device"],
        addresses=tuple(json.loads(row["keeper_addresses"])),
        added_at=datetime.fromisoformat(row["added_at"]),
        epoch=row["epoch"],
        secret=row["secret"],
        holders=frozenset(json.loads(row["holders"])),
        current_epoch=row["current_epoch"],
        join_secret=row["join_secret"],
        removed_at=None if removed is None else datetime.fromisoformat(removed),
        control_seq=row["control_seq"],
        keys_seq=row["keys_seq"],
    )


def keepers(store: Store) -> dict[str, TeamKeeper]:
    return {r["team_id"]: _keeper(r) for r in store.query("SELECT * FROM team_keepers")}


def keeper(store: Store, team_id: str) -> TeamKeeper | None:
    row = store.query_one("SELECT * FROM team_keepers WHERE team_id = ?", (team_id,))
    return None if row is None else _keeper(row)


def put(store: Store, k: TeamKeeper) -> None:
    store.execute(
        "INSERT INTO team_keepers (team_id, keeper_device, keeper_addresses, added_at, epoch,"
        " secret, holders, current_epoch, control_seq, keys_seq, join_secret, removed_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(team_id) DO UPDATE SET keeper_device = excluded.keeper_device,"
        " keeper_addresses = excluded.keeper_addresses, added_at = excluded.added_at,"
        " epoch = excluded.epoch, secret = excluded.secret, holders = excluded.holders,"
        " current_epoch = excluded.current_epoch, control_seq = excluded.control_seq,"
        " keys_seq = excluded.keys_seq, join_secret = excluded.join_secret,"
        " removed_at = excluded.removed_at",
        (
            k.team_id,
            k.device_id,
            json.dumps(list(k.addresses)),
            k.added_at.isoformat(),
            k.epoch,
            k.secret,
            json.dumps(sorted(k.holders)),
            k.current_epoch,
            k.control_seq,
            k.keys_seq,
            k.join_secret,
            None if k.removed_at is None else k.removed_at.isoformat(),
        ),
    )


def delete(store: Store, team_id: str) -> None:
    store.execute("DELETE FROM team_keepers WHERE team_id = ?", (team_id,))
    store.execute("DELETE FROM keeper_joins WHERE team_id = ?", (team_id,))


def join_secrets(store: Store, team_id: str) -> dict[str, bytes]:
    """Leader: the join secret of each invite to this team not yet sealed to a key."""
    rows = store.query(
        "SELECT device_id, join_secret FROM keeper_joins WHERE team_id = ?", (team_id,)
    )
    return {r["device_id"]: r["join_secret"] for r in rows}


def put_join_secret(store: Store, team_id: str, device_id: str, secret: bytes) -> None:
    store.execute(
        "INSERT INTO keeper_joins (team_id, device_id, join_secret) VALUES (?, ?, ?)"
        " ON CONFLICT(team_id, device_id) DO UPDATE SET join_secret = excluded.join_secret",
        (team_id, device_id, secret),
    )


def forget_join_secret(store: Store, team_id: str, device_id: str) -> None:
    store.execute(
        "DELETE FROM keeper_joins WHERE team_id = ? AND device_id = ?", (team_id, device_id)
    )


def invite_keeper(store: Store, team_id: str, device_id: str) -> codes.InviteKeeper | None:
    """What an invite for `device_id` says of the team's keeper: with it, the new member
    can join through the keeper while the leader is away (docs/keeper.md 2.5). The same
    join secret is given again if the invite is."""
    k = keeper(store, team_id)
    if k is None or k.removed_at is not None:
        return None
    secret = join_secrets(store, team_id).get(device_id)
    if secret is None:
        secret = new_join_secret()
        put_join_secret(store, team_id, device_id, secret)
    return codes.InviteKeeper(k.device_id, k.addresses, secret)
