"""What the replicated state files mean for our own records: a pure function.

`ingest` reads teammates' validated state files and returns the changes this machine
must make to its store — the leader activating a member who published, a member
adopting a newer roster from its leader, acknowledgements, teardown once a removal has
been delivered. It never writes; the reconciler applies the changes in one transaction.
Only the leader's file is believed for roster, projects and removals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from karmad.domain import (
    DEPARTING,
    ENDED,
    LISTED,
    DomainError,
    EventKind,
    Member,
    MemberState,
    Phase,
    SubscriptionState,
    SyncEvent,
    Team,
    TeamState,
    can_change_phase,
    folder_id,
)
from karmad.sync.model import LocalTeam, Me, PeerState, Policy, Role, TrustedLeader
from karmad.sync.statefile import StateFile, WireMember, team_from_wire

# --------------------------------------------------------------------------- changes


@dataclass(frozen=True, slots=True)
class SetRecord:
    team_id: str
    record: Team
    record_seq: int = -1


@dataclass(frozen=True, slots=True)
class SetPhase:
    team_id: str
    phase: Phase
    since: datetime


@dataclass(frozen=True, slots=True)
class RecordAck:
    team_id: str
    device_id: str
    time: datetime


@dataclass(frozen=True, slots=True)
class OfferSubscription:
    team_id: str
    project_key: str


@dataclass(frozen=True, slots=True)
class JoinTeam:
    """A trusted leader's folder revealed a team that lists us: we are joining it."""

    team_id: str
    name: str
    leader_device: str
    leader_tag: str
    record: Team
    record_seq: int


@dataclass(frozen=True, slots=True)
class Audit:
    event: SyncEvent


Change = SetRecord | SetPhase | RecordAck | OfferSubscription | JoinTeam | Audit


# --------------------------------------------------------------------------- helpers


def _peer(peers: dict[str, PeerState], team_id: str, device: str) -> StateFile | None:
    peer = peers.get(folder_id(team_id, device))
    if peer is None or peer.state is None or peer.state.team_id != team_id:
        return None
    return peer.state


def _wire_member(state: StateFile | None, device: str) -> WireMember | None:
    if state is None or state.team is None:
        return None
    return next((m for m in state.team.members if m.device_id == device), None)


def _lingered(ack: datetime | None, now: datetime, policy: Policy) -> bool:
    return ack is not None and now - ack >= policy.ack_linger


def delivery_pending(
    team: LocalTeam, device: str, since: datetime, now: datetime, policy: Policy
) -> bool:
    """Leader side: must `device` still receive our folder to learn its removal/dissolution?"""
    if _lingered(team.ack_time(device), now, policy):
        return False
    return now - since < policy.removal_grace


# --------------------------------------------------------------------------- leader


def _left(team: LocalTeam, member: Member, now: datetime) -> Audit:
    """The leader records that a member said it left."""
    return _audit(
        EventKind.MEMBER_REMOVED, now, team, member.member_tag, member.device_id, reason="left"
    )


def _ingest_leader(
    me: Me, team: LocalTeam, peers: dict[str, PeerState], now: datetime, policy: Policy
) -> list[Change]:
    assert team.record is not None
    record = team.record
    changes: list[Change] = []
    acked = {d for d, _ in team.acks}
    for member in record.members:
        if member.device_id == me.device_id:
            continue
        state = _peer(peers, team.team_id, member.device_id)
        if state is None:
            continue
        try:
            if member.state is MemberState.ADDED and record.state is TeamState.ACTIVE:
                if state.left:
                    record = record.remove_member(member.device_id, now)
                    changes.append(_left(team, member, now))
                    changes.append(RecordAck(team.team_id, member.device_id, now))
                    continue
                record = record.activate(member.device_id, now)
                changes.append(
                    _audit(
                        EventKind.MEMBER_ACTIVATED, now, team, member.member_tag, member.device_id
                    )
                )
            elif member.state is MemberState.ACTIVE and state.left:
                if record.state is TeamState.ACTIVE:
                    record = record.remove_member(member.device_id, now)
                    changes.append(_left(team, member, now))
                if member.device_id not in acked:
                    changes.append(RecordAck(team.team_id, member.device_id, now))
            elif member.device_id not in acked and (
                (member.state is MemberState.REMOVED and state.ack_removed)
                or (record.state is TeamState.DISSOLVED and state.ack_dissolved)
            ):
                changes.append(RecordAck(team.team_id, member.device_id, now))
        except DomainError:
            continue
    if record != team.record:
        changes.insert(0, SetRecord(team.team_id, record))
    if record.state is TeamState.DISSOLVED and team.phase is not Phase.GONE:
        since = record.dissolved_at or team.phase_since
        waiting = [
            m
            for m in record.members
            if m.device_id != me.device_id
            and m.state is not MemberState.REMOVED
            and delivery_pending(team, m.device_id, since, now, policy)
        ]
        if not waiting:
            changes.append(SetPhase(team.team_id, Phase.GONE, now))
            changes.append(_audit(EventKind.TEAM_CLEANED_UP, now, team))
    return changes


# --------------------------------------------------------------------------- member


def _ingest_member(
    me: Me, team: LocalTeam, peers: dict[str, PeerState], now: datetime, policy: Policy
) -> list[Change]:
    changes: list[Change] = []
    leader_state = _peer(peers, team.team_id, team.leader_device)
    record, record_seq = team.record, team.record_seq
    if (
        leader_state is not None
        and leader_state.team is not None
        and leader_state.seq > team.record_seq
    ):
        record, record_seq = team_from_wire(leader_state.team), leader_state.seq
        changes.append(SetRecord(team.team_id, record, record_seq))
    if record is None:
        if team.phase is not Phase.JOINING and now - team.phase_since >= policy.removal_grace:
            changes.append(SetPhase(team.team_id, Phase.GONE, now))
        return changes
    mine = record.member(me.device_id)
    phase = team.phase
    # What the leader's record says of us, as far as the phase machine allows it (a
    # record cannot, say, bring back a team we saw dissolved).
    if record.state is TeamState.DISSOLVED:
        target, event = Phase.DISSOLVED, _audit(EventKind.TEAM_DISSOLVED, now, team)
    elif mine is not None and mine.state is MemberState.REMOVED:
        kind = EventKind.TEAM_LEFT if phase is Phase.LEAVING else EventKind.MEMBER_REMOVED
        target, event = Phase.REMOVED, _audit(kind, now, team, me.member_tag, me.device_id)
    elif mine is not None:
        target = Phase.MEMBER
        event = _audit(EventKind.TEAM_JOINED, now, team, me.member_tag, me.device_id)
    else:
        target, event = phase, None
    if event is not None and can_change_phase(phase, target):
        phase = target
        changes += [SetPhase(team.team_id, phase, now), event]

    if phase in LISTED and record.state is TeamState.ACTIVE:
        for project in record.shared_projects:
            if team.subscription(project.key) is None:
                changes.append(OfferSubscription(team.team_id, project.key))

    if phase in ENDED:
        own = _wire_member(leader_state, me.device_id)
        acknowledged = own is not None and own.ack_seen
        since = team.phase_since if phase is team.phase else now
        if acknowledged or now - since >= policy.removal_grace:
            changes.append(SetPhase(team.team_id, Phase.GONE, now))
            changes.append(_audit(EventKind.TEAM_CLEANED_UP, now, team))
    return changes


# --------------------------------------------------------------------------- trusted leaders


def _ingest_trusted(
    me: Me,
    trusted: tuple[TrustedLeader, ...],
    teams: dict[str, LocalTeam],
    peers: dict[str, PeerState],
    now: datetime,
) -> list[Change]:
    """Folders offered by a leader the user accepted: join the teams that list us."""
    changes: list[Change] = []
    devices = {t.device_id for t in trusted}
    for peer in peers.values():
        state = peer.state
        if peer.owner_device not in devices or state is None or state.team is None:
            continue
        if state.team_id in teams:
            continue
        record = team_from_wire(state.team)
        mine = record.member(me.device_id)
        if (
            mine is None
            or mine.state is MemberState.REMOVED
            or record.state is not TeamState.ACTIVE
        ):
            continue
        changes.append(
            JoinTeam(
                team_id=record.team_id,
                name=record.name,
                leader_device=record.leader_device,
                leader_tag=record.leader_tag,
                record=record,
                record_seq=state.seq,
            )
        )
    return changes


def _audit(
    kind: EventKind,
    now: datetime,
    team: LocalTeam,
    member_tag: str | None = None,
    device_id: str | None = None,
    **detail: str,
) -> Audit:
    return Audit(SyncEvent(kind, now, team.team_id, member_tag, device_id, None, dict(detail)))


def ingest(
    me: Me,
    teams: tuple[LocalTeam, ...],
    peers: dict[str, PeerState],
    trusted: tuple[TrustedLeader, ...],
    now: datetime,
    policy: Policy,
) -> list[Change]:
    """The store changes implied by what teammates have published. Pure."""
    changes: list[Change] = []
    by_id = {t.team_id: t for t in teams}
    for team in teams:
        if team.phase is Phase.GONE:
            continue
        if team.role is Role.LEADER and team.record is not None:
            changes.extend(_ingest_leader(me, team, peers, now, policy))
        elif team.role is Role.MEMBER:
            changes.extend(_ingest_member(me, team, peers, now, policy))
    changes.extend(_ingest_trusted(me, trusted, by_id, peers, now))
    return changes


def next_deadline(teams: tuple[LocalTeam, ...], now: datetime, policy: Policy) -> datetime | None:
    """The next moment a decision changes by the clock alone (a linger or grace period
    running out), so the reconciler can wake then instead of at the next sweep."""
    moments: list[datetime] = []
    for team in teams:
        if team.phase is Phase.GONE:
            continue
        moments += [t + policy.ack_linger for _, t in team.acks]
        if team.phase in DEPARTING:
            moments.append(team.phase_since + policy.removal_grace)
        record = team.record
        if record is not None:
            # A device held back from dialling first starts dialling then.
            moments += [
                m.changed_at + delay
                for m in record.members
                if m.state is not MemberState.REMOVED
                for delay in (policy.dial_delay, policy.pair_dial_delay)
            ]
        if team.role is Role.LEADER and record is not None:
            moments += [
                m.changed_at + policy.removal_grace
                for m in record.members
                if m.state is MemberState.REMOVED
            ]
            if record.dissolved_at is not None:
                moments.append(record.dissolved_at + policy.removal_grace)
    future = [m for m in moments if m > now]
    return min(future) if future else None


def subscription_states(team: LocalTeam) -> dict[str, SubscriptionState]:
    return {s.project_key: s.state for s in team.subscriptions}
