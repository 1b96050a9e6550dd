"""A member's phase in a team changes only as `PHASE_TRANSITIONS` declares.

Every change goes through `teamstore.set_phase`, which refuses an undeclared one; the
decisions that change phases (`ingest`, from what the leader and teammates publish)
never ask for one, whatever the scenario.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from karmad import deviceid
from karmad.domain import (
    DEPARTING,
    INITIAL_PHASES,
    PHASE_TRANSITIONS,
    DomainError,
    MemberState,
    Phase,
    TeamState,
    folder_id,
    new_team,
)
from karmad.state_schema import STATE_SCHEMA
from karmad.store import Store
from karmad.sync import statefile, teamstore
from karmad.sync.ingest import SetPhase, ingest
from karmad.sync.model import LocalTeam, Me, Observed, PeerState, Role
from tests.support.phases import record_team
from tests.sync.test_plan_properties import NOW, POLICY, SETTINGS, scenario

TEAM = "abcdefghijklmnopqrstuvwxyz"
LEADER = deviceid.from_bytes(b"L" * 32)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(tmp_path / "karmad.db", STATE_SCHEMA)
    yield store
    store.close()


def _joining() -> LocalTeam:
    return LocalTeam(TEAM, "core", Role.MEMBER, Phase.JOINING, LEADER, "lead.box", NOW)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(Phase, Phase)))
def test_every_phase_change(store: Store, current: Phase, target: Phase) -> None:
    record_team(store, replace(_joining(), phase=current), NOW)
    later = NOW + timedelta(minutes=1)
    if current is target or (current, target) in PHASE_TRANSITIONS:
        teamstore.set_phase(store, TEAM, target, later)
        assert _phase(store) is target
        return
    with pytest.raises(DomainError) as caught:
        teamstore.set_phase(store, TEAM, target, later)
    assert caught.value.reason == "invalid_transition"
    assert _phase(store) is current


@pytest.mark.parametrize("phase", list(Phase))
def test_a_team_is_recorded_joining_or_as_its_leader(store: Store, phase: Phase) -> None:
    team = LocalTeam(TEAM, "core", Role.MEMBER, phase, LEADER, "lead.box", NOW)
    if phase in INITIAL_PHASES:
        teamstore.insert_team(store, team, NOW)
        assert _phase(store) is phase
    else:
        with pytest.raises(DomainError):
            teamstore.insert_team(store, team, NOW)


def test_gone_is_final_and_departing_never_returns() -> None:
    assert not [t for c, t in PHASE_TRANSITIONS if c is Phase.GONE]
    assert not [
        t for c, t in PHASE_TRANSITIONS if c in DEPARTING and t not in DEPARTING | {Phase.GONE}
    ]


def _phase(store: Store) -> Phase:
    team = teamstore.team(store, TEAM)
    assert team is not None
    return team.phase


# --------------------------------------------------------------------------- ingest


@st.composite
def published(draw: st.DrawFn, me: Me, teams: tuple[LocalTeam, ...]) -> dict[str, PeerState]:
    """What each team's leader (and, to a leader, each member) has published: a state
    file the reader accepts, with the roster, team state and flags varied."""
    peers: dict[str, PeerState] = {}
    for team in teams:
        if team.role is Role.MEMBER:
            record = new_team(team.team_id, "core", team.leader_tag, team.leader_device, NOW)
            if draw(st.booleans()):
                record = record.add_member(me.member_tag, me.device_id, NOW)
                mine = draw(st.sampled_from(list(MemberState)))
                if mine is not MemberState.ADDED:
                    record = record.activate(me.device_id, NOW)
                if mine is MemberState.REMOVED:
                    record = record.remove_member(me.device_id, NOW)
            if draw(st.booleans()):
                record = record.dissolve(NOW)
            acked = frozenset(draw(st.sets(st.just(me.device_id))))
            state = statefile.StateFile(
                team_id=team.team_id,
                owner_tag=team.leader_tag,
                owner_device=team.leader_device,
                seq=draw(st.integers(0, 5)),
                written_at=NOW,
                team=statefile.team_to_wire(record, acked),
            )
            owner = team.leader_device
        elif team.record is not None and len(team.record.members) > 1:
            owner = draw(st.sampled_from([m.device_id for m in team.record.members[1:]]))
            member = team.record.member(owner)
            assert member is not None
            state = statefile.StateFile(
                team_id=team.team_id,
                owner_tag=member.member_tag,
                owner_device=owner,
                seq=1,
                written_at=NOW,
                left=draw(st.booleans()),
                ack_removed=draw(st.booleans()),
                ack_dissolved=draw(st.booleans()),
            )
        else:
            continue
        fid = folder_id(team.team_id, owner)
        valid = statefile.validate(state, folder=fid, owner_device=owner)
        peers[fid] = PeerState(fid, owner, valid)
    return peers


@SETTINGS
@given(data=st.data(), case=scenario())
def test_ingest_asks_only_for_declared_phase_changes(
    data: st.DataObject, case: tuple[Me, tuple[LocalTeam, ...], Observed]
) -> None:
    me, teams, _ = case
    peers = data.draw(published(me, teams))
    for now in (NOW, NOW + POLICY.removal_grace):
        phases = {t.team_id: t.phase for t in teams}
        for change in ingest(me, teams, peers, (), now, POLICY):
            if isinstance(change, SetPhase):
                current = phases[change.team_id]
                assert (current, change.phase) in PHASE_TRANSITIONS, (current, change.phase)
                phases[change.team_id] = change.phase


def test_a_record_cannot_bring_back_a_dissolved_team() -> None:
    """A leader's newer record showing the team active again, with us removed: we stay
    dissolved (that would be an undeclared change), and still tear down in time."""
    me = Me(deviceid.from_bytes(b"M" * 32), "me.host")
    team = LocalTeam(TEAM, "core", Role.MEMBER, Phase.DISSOLVED, LEADER, "lead.box", NOW)
    record = new_team(TEAM, "core", "lead.box", LEADER, NOW).add_member(
        "me.host", me.device_id, NOW
    )
    record = record.remove_member(me.device_id, NOW)
    assert record.state is TeamState.ACTIVE
    fid = folder_id(TEAM, LEADER)
    state = statefile.StateFile(
        team_id=TEAM,
        owner_tag="lead.box",
        owner_device=LEADER,
        seq=3,
        written_at=NOW,
        team=statefile.team_to_wire(record),
    )
    peers = {fid: PeerState(fid, LEADER, state)}
    changes = ingest(me, (team,), peers, (), NOW + timedelta(seconds=1), POLICY)
    assert not [c for c in changes if isinstance(c, SetPhase)]
    later = ingest(me, (team,), peers, (), NOW + POLICY.removal_grace, POLICY)
    assert [c.phase for c in later if isinstance(c, SetPhase)] == [Phase.GONE]
