"""Reading and writing the team tables of the state store.

The only module that knows how identity, teams, subscriptions, acknowledgements,
trusted leaders, managed devices and sync events are laid out in SQLite. Callers get
domain values (`LocalTeam`, `Subscription`, `SyncEvent`), never rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from karmad import codec
from karmad.domain import (
    INITIAL_PHASES,
    Direction,
    DomainError,
    EventKind,
    Phase,
    Subscription,
    SubscriptionState,
    SyncEvent,
    Team,
    check_phase,
)
from karmad.store import Row, Store
from karmad.sync import ingest
from karmad.sync.model import LocalTeam, Role, TrustedLeader
from karmad.sync.statefile import WireTeam, team_from_wire, team_to_wire


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    machine_tag: str
    created_at: datetime

    @property
    def member_tag(self) -> str:
        return f"{self.user_id}.{self.machine_tag}"


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# --------------------------------------------------------------------------- identity


def get_identity(store: Store) -> Identity | None:
    row = store.query_one("SELECT user_id, machine_tag, created_at FROM identity WHERE id = 1")
    if row is None:
        return None
    created = _dt(row["created_at"])
    assert created is not None
    return Identity(row["user_id"], row["machine_tag"], created)


def set_identity(store: Store, identity: Identity) -> None:
    store.execute(
        "INSERT INTO identity (id, user_id, machine_tag, created_at) VALUES (1, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET user_id = excluded.user_id",
        (identity.user_id, identity.machine_tag, _ts(identity.created_at)),
    )


# --------------------------------------------------------------------------- teams


def _encode_record(record: Team | None) -> bytes | None:
    return None if record is None else codec.encode_json(team_to_wire(record))


def _decode_record(data: bytes | None) -> Team | None:
    if data is None:
        return None
    return team_from_wire(codec.decode_json(data, WireTeam))


def _team(store: Store, row: Row) -> LocalTeam:
    team_id = row["team_id"]
    since = _dt(row["phase_since"])
    assert since is not None
    return LocalTeam(
        team_id=team_id,
        name=row["name"],
        role=Role(row["role"]),
        phase=Phase(row["phase"]),
        leader_device=row["leader_device"],
        leader_tag=row["leader_tag"],
        phase_since=since,
        record=_decode_record(row["record"]),
        record_seq=row["record_seq"],
        subscriptions=tuple(subscriptions(store, team_id)),
        acks=tuple(
            (r["device_id"], datetime.fromisoformat(r["seen_at"]))
            for r in store.query(
                "SELECT device_id, seen_at FROM acks WHERE team_id = ? ORDER BY device_id",
                (team_id,),
            )
        ),
        seq=row["state_seq"],
        leader_addresses=tuple(json.loads(row["leader_addresses"])),
    )


def teams(store: Store, *, include_gone: bool = False) -> list[LocalTeam]:
    rows = store.query("SELECT * FROM teams ORDER BY created_at, team_id")
    result = [_team(store, r) for r in rows]
    if not include_gone:
        result = [t for t in result if t.phase is not Phase.GONE]
    return result


def team(store: Store, team_id: str) -> LocalTeam | None:
    row = store.query_one("SELECT * FROM teams WHERE team_id = ?", (team_id,))
    return None if row is None else _team(store, row)


def insert_team(store: Store, team: LocalTeam, now: datetime) -> None:
    if team.phase not in INITIAL_PHASES:
        raise DomainError("invalid_transition", f"a team is not recorded {team.phase.value}")
    store.execute(
        "INSERT INTO teams (team_id, name, role, phase, phase_since, leader_device, leader_tag, "
        "leader_addresses, record, record_seq, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            team.team_id,
            team.name,
            team.role.value,
            team.phase.value,
            _ts(team.phase_since),
            team.leader_device,
            team.leader_tag,
            json.dumps(list(team.leader_addresses)),
            _encode_record(team.record),
            team.record_seq,
            _ts(now),
        ),
    )


def set_record(store: Store, team_id: str, record: Team, record_seq: int = -1) -> None:
    store.execute(
        "UPDATE teams SET record = ?, record_seq = max(record_seq, ?), name = ? WHERE team_id = ?",
        (_encode_record(record), record_seq, record.name, team_id),
    )


def set_phase(store: Store, team_id: str, phase: Phase, since: datetime) -> None:
    """Every change of phase comes here, and only a declared one is made (a transaction
    around it keeps the read and the write together)."""
    current = store.scalar("SELECT phase FROM teams WHERE team_id = ?", (team_id,))
    if current is None:
        raise DomainError("not_found", f"no team {team_id}")
    check_phase(Phase(current), phase)
    store.execute(
        "UPDATE teams SET phase = ?, phase_since = ? WHERE team_id = ? AND phase != ?",
        (phase.value, _ts(since), team_id, phase.value),
    )


def record_ack(store: Store, team_id: str, device_id: str, when: datetime) -> None:
    store.execute(
        "INSERT OR IGNORE INTO acks (team_id, device_id, seen_at) VALUES (?, ?, ?)",
        (team_id, device_id, _ts(when)),
    )


def set_published(store: Store, team_id: str, seq: int, digest: str) -> None:
    store.execute(
        "UPDATE teams SET state_seq = ?, state_digest = ? WHERE team_id = ?",
        (seq, digest, team_id),
    )


def published_digests(store: Store) -> dict[str, str]:
    """team_id -> digest of the state body we last published."""
    return {
        r["team_id"]: r["state_digest"]
        for r in store.query(
            "SELECT team_id, state_digest FROM teams WHERE state_digest IS NOT NULL"
        )
    }


# --------------------------------------------------------------------------- subscriptions


def subscriptions(store: Store, team_id: str) -> list[Subscription]:
    return [
        Subscription(
            team_id=r["team_id"],
            project_key=r["project_key"],
            state=SubscriptionState(r["state"]),
            direction=Direction(r["direction"]),
            changed_at=_dt(r["changed_at"]),
        )
        for r in store.query(
            "SELECT * FROM subscriptions WHERE team_id = ? ORDER BY project_key", (team_id,)
        )
    ]


def put_subscription(store: Store, sub: Subscription) -> None:
    store.execute(
        "INSERT INTO subscriptions (team_id, project_key, state, direction, changed_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT(team_id, project_key) DO UPDATE SET "
        "state = excluded.state, direction = excluded.direction, changed_at = excluded.changed_at",
        (sub.team_id, sub.project_key, sub.state.value, sub.direction.value, _ts(sub.changed_at)),
    )


# --------------------------------------------------------------------------- devices


def trusted_leaders(store: Store) -> list[TrustedLeader]:
    return [
        TrustedLeader(r["device_id"], r["member_tag"], datetime.fromisoformat(r["accepted_at"]))
        for r in store.query("SELECT * FROM trusted_leaders ORDER BY accepted_at")
    ]


def trust_leader(store: Store, leader: TrustedLeader) -> None:
    store.execute(
        "INSERT OR REPLACE INTO trusted_leaders (device_id, member_tag, accepted_at) "
        "VALUES (?, ?, ?)",
        (leader.device_id, leader.member_tag, _ts(leader.accepted_at)),
    )


def forget_leader(store: Store, device_id: str) -> None:
    store.execute("DELETE FROM trusted_leaders WHERE device_id = ?", (device_id,))


def managed_devices(store: Store) -> frozenset[str]:
    return frozenset(r["device_id"] for r in store.query("SELECT device_id FROM managed_devices"))


def managed_devices_added(store: Store) -> dict[str, datetime]:
    """When karmad added each device it manages (how long a silent peer has been silent)."""
    added: dict[str, datetime] = {}
    for row in store.query("SELECT device_id, added_at FROM managed_devices"):
        when = _dt(row["added_at"])
        if when is not None:
            added[row["device_id"]] = when
    return added


def add_managed_device(store: Store, device_id: str, when: datetime) -> None:
    store.execute(
        "INSERT OR IGNORE INTO managed_devices (device_id, added_at) VALUES (?, ?)",
        (device_id, _ts(when)),
    )


def remove_managed_device(store: Store, device_id: str) -> None:
    store.execute("DELETE FROM managed_devices WHERE device_id = ?", (device_id,))


# --------------------------------------------------------------------------- events


def append_event(store: Store, event: SyncEvent) -> int:
    return store.insert(
        "INSERT INTO sync_events (time, kind, team_id, member_tag, device_id, project_key, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            _ts(event.time),
            event.kind.value,
            event.team_id,
            event.member_tag,
            event.device_id,
            event.project_key,
            json.dumps(event.detail, sort_keys=True),
        ),
    )


def events(
    store: Store, *, team_id: str | None = None, limit: int = 100, before: int | None = None
) -> list[tuple[int, SyncEvent]]:
    clauses, params = [], []
    if team_id is not None:
        clauses.append("team_id = ?")
        params.append(team_id)
    if before is not None:
        clauses.append("id < ?")
        params.append(str(before))
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = store.query(
        f"SELECT * FROM sync_events {where} ORDER BY id DESC LIMIT ?",  # noqa: S608 - fixed clauses
        (*params, limit),
    )
    result = []
    for r in rows:
        when = datetime.fromisoformat(r["time"])
        result.append(
            (
                r["id"],
                SyncEvent(
                    EventKind(r["kind"]),
                    when,
                    r["team_id"],
                    r["member_tag"],
                    r["device_id"],
                    r["project_key"],
                    json.loads(r["detail"]),
                ),
            )
        )
    return result


# --------------------------------------------------------------------------- ingest


def apply_changes(store: Store, changes: list[ingest.Change], now: datetime) -> list[SyncEvent]:
    """Apply what `ingest` decided, in the caller's transaction; returns the audit events."""
    audit: list[SyncEvent] = []
    for change in changes:
        if isinstance(change, ingest.SetRecord):
            set_record(store, change.team_id, change.record, change.record_seq)
        elif isinstance(change, ingest.SetPhase):
            set_phase(store, change.team_id, change.phase, change.since)
        elif isinstance(change, ingest.RecordAck):
            record_ack(store, change.team_id, change.device_id, change.time)
        elif isinstance(change, ingest.OfferSubscription):
            put_subscription(
                store, Subscription(change.team_id, change.project_key, changed_at=now)
            )
        elif isinstance(change, ingest.JoinTeam):
            if team(store, change.team_id) is None:
                leader = (change.leader_device, change.leader_tag)
                joining = LocalTeam.joining(
                    change.team_id,
                    change.name,
                    leader,
                    now,
                    record=change.record,
                    record_seq=change.record_seq,
                )
                insert_team(store, joining, now)
                audit.append(
                    SyncEvent(
                        EventKind.OFFER_ACCEPTED,
                        now,
                        change.team_id,
                        change.leader_tag,
                        change.leader_device,
                        detail={"via": "accepted leader device"},
                    )
                )
        else:
            audit.append(change.event)
    for event in audit:
        append_event(store, event)
    return audit
