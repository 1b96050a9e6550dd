"""Nothing a peer supplies can stop reconciliation: fuzzed offers, labels and state files.

A teammate's device (buggy or compromised) controls the folder ids and labels it offers
and every byte of the `state` file in its own folder. Each example writes such a file,
reads it the way the reconciler does, applies what `ingest` makes of it to a real state
store, and plans from the result with the offers pending: nothing may raise, nothing
planned may lie outside karmad's folders, and planning again after applying is empty.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from karmad import deviceid
from karmad.domain import (
    MemberState,
    Phase,
    ProjectState,
    SubscriptionState,
    Team,
    TeamState,
    folder_id,
    is_folder_id,
    new_team,
    project_key,
)
from karmad.state_schema import STATE_SCHEMA
from karmad.store import Store
from karmad.sync import statefile, teamstore
from karmad.sync.desired import desired
from karmad.sync.ingest import ingest, next_deadline
from karmad.sync.model import (
    LocalTeam,
    Me,
    Observed,
    PeerState,
    PendingFolder,
    Policy,
    Role,
    TrustedLeader,
)
from karmad.sync.plan import PutFolder, apply, plan
from tests.support.phases import record_team

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
POLICY = Policy()
TEAM = "abcdefghijklmnopqrstuvwxyz"
LEADER = deviceid.from_bytes(b"L" * 32)
ME = deviceid.from_bytes(b"M" * 32)
OTHER = deviceid.from_bytes(b"O" * 32)
TAGS = {LEADER: "lead.box", ME: "me.host", OTHER: "other.box"}

hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", "../../etc", "acme-backup", "karma-", "/", "karma-../x", "a" * 300, "\x00", "é"]
    ),
)
some_device = st.one_of(
    st.sampled_from([LEADER, ME, OTHER]),
    st.binary(min_size=32, max_size=32).map(deviceid.from_bytes),
    hostile_text,
)
some_tag = st.one_of(st.sampled_from(list(TAGS.values())), hostile_text)
any_time = st.builds(
    lambda moment, zone: moment.replace(tzinfo=zone).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.sampled_from([None, UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12))]),
)
some_time = st.one_of(
    st.sampled_from([(NOW - timedelta(days=d)).isoformat() for d in (0, 1, 20)]),
    st.sampled_from(["2026-05-31T12:00:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]),
    any_time,
)
"""Mostly recent, often odd: no time zone, the first or the last representable day."""
some_seq = st.integers(0, 10) | st.integers(-(2**70), 2**70)


def mostly(valid: Any, hostile: st.SearchStrategy[Any] = hostile_text) -> st.SearchStrategy[Any]:
    """Well-formed nine times in ten, so that examples get past validation into the
    decisions, where a value that is valid but odd (a time, a number) could hurt."""
    good = valid if isinstance(valid, st.SearchStrategy) else st.just(valid)
    return st.sampled_from([good] * 9 + [hostile]).flatmap(lambda chosen: chosen)


some_identity = st.one_of(st.sampled_from(["github.com/o/a", "github.com/o/b"]), hostile_text)


@st.composite
def project_doc(draw: st.DrawFn) -> dict[str, Any]:
    identity = draw(some_identity)
    return {
        "key": draw(mostly(project_key(identity))),
        "identity": identity,
        "label": draw(hostile_text),
        "state": draw(mostly(st.sampled_from(list(ProjectState)), st.just("gone"))),
        "shared_at": draw(some_time),
        "include_todos": draw(st.booleans()),
    }


@st.composite
def member_doc(draw: st.DrawFn, device: str | None = None) -> dict[str, Any]:
    dev = device or draw(mostly(st.sampled_from([LEADER, ME, OTHER]), some_device))
    return {
        "member_tag": draw(mostly(TAGS.get(dev, "x.y"), some_tag)),
        "device_id": dev,
        "state": draw(mostly(st.sampled_from(list(MemberState)), st.just("banned"))),
        "added_at": draw(some_time),
        "changed_at": draw(some_time),
        "addresses": draw(st.lists(hostile_text, max_size=2)),
        "ack_seen": draw(st.booleans()),
    }


@st.composite
def state_doc(draw: st.DrawFn, owner: str) -> dict[str, Any]:
    """A state file as `owner` might publish it: mostly well-formed, hostile in places.
    Mostly, only the leader's carries a team record (anyone else's is refused for it)."""
    team = None
    if draw(mostly(owner == LEADER, st.just(owner != LEADER))):
        members = [draw(member_doc(owner))]
        members += draw(st.lists(member_doc(), max_size=1))
        if draw(st.booleans()):
            members.append(draw(member_doc(ME)))
        team = {
            "team_id": draw(mostly(TEAM)),
            "name": draw(mostly("core")),
            "leader_tag": draw(mostly(TAGS.get(owner, "x.y"), some_tag)),
            "leader_device": draw(mostly(owner, some_device)),
            "state": draw(mostly(st.sampled_from(list(TeamState)), st.just("paused"))),
            "created_at": draw(some_time),
            "dissolved_at": draw(st.one_of(st.none(), some_time)),
            "members": members,
            "projects": draw(st.lists(project_doc(), max_size=1)),
        }
    return {
        "format": draw(mostly(1, st.just(2))),
        "team_id": draw(mostly(TEAM)),
        "owner_tag": draw(mostly(TAGS.get(owner, "x.y"), some_tag)),
        "owner_device": draw(mostly(owner, some_device)),
        "seq": draw(mostly(st.integers(0, 10), some_seq)),
        "written_at": draw(some_time),
        "addresses": draw(st.lists(hostile_text, max_size=1)),
        "subscriptions": [
            {
                "project_key": draw(mostly(project_key("github.com/o/a"))),
                "state": draw(st.sampled_from(list(SubscriptionState))),
                "direction": "both",
                "changed_at": draw(some_time),
            }
            for _ in range(draw(st.integers(0, 1)))
        ],
        "left": draw(st.booleans()),
        "ack_removed": draw(st.booleans()),
        "ack_dissolved": draw(st.booleans()),
        "team": team,
    }


@st.composite
def offers(draw: st.DrawFn) -> tuple[PendingFolder, ...]:
    ids = st.one_of(hostile_text, st.just(folder_id(TEAM, LEADER)), st.just(folder_id(TEAM, OTHER)))
    return tuple(
        PendingFolder(draw(ids), draw(some_device), draw(hostile_text), NOW)
        for _ in range(draw(st.integers(0, 3)))
    )


def _read(root: Path, owner: str, leader: str, doc: dict[str, Any]) -> PeerState:
    """As the reconciler reads a peer's state: the real file, the real validation."""
    fid = folder_id(TEAM, owner)
    directory = root / fid
    directory.mkdir(parents=True, exist_ok=True)
    data = json.dumps(doc).encode()
    statefile.write_atomic(directory, statefile.STATE_NAME, data)
    path = directory / statefile.STATE_NAME
    try:
        state = statefile.read(path, folder=fid, owner_device=owner, leader_device=leader)
    except statefile.InvalidState as exc:
        return PeerState(fid, owner, None, str(exc), statefile.digest(data))
    return PeerState(fid, owner, state, None, statefile.digest(data))


def _our_record(role: Role, other_state: MemberState) -> Team:
    record = new_team(TEAM, "core", TAGS[LEADER], LEADER, NOW - timedelta(days=3))
    for device in (ME, OTHER):
        record = record.add_member(TAGS[device], device, NOW - timedelta(days=2))
        record = record.activate(device, NOW - timedelta(days=1))
    if other_state is MemberState.REMOVED:
        record = record.remove_member(OTHER, NOW - timedelta(hours=1))
    return record


def _cycle(
    store: Store,
    me: Me,
    peers: dict[str, PeerState],
    trusted: tuple[TrustedLeader, ...],
    pending: tuple[PendingFolder, ...],
    now: datetime,
) -> None:
    """One reconcile cycle's decisions, in the reconciler's order, on a real store."""
    teams = tuple(teamstore.teams(store))
    changes = ingest(me, teams, peers, trusted, now, POLICY)
    with store.transaction():
        teamstore.apply_changes(store, changes, now)
    teams = tuple(teamstore.teams(store))
    next_deadline(teams, now, POLICY)
    folders = Path("/state/folders")
    want = desired(me, teams, peers, trusted, pending, now, POLICY)
    actions = plan(want, Observed(), folders)
    for action in actions:
        if isinstance(action, PutFolder):
            assert is_folder_id(action.folder.folder_id)
            assert Path(action.folder.path).parent == folders
    after = apply(Observed(), actions)
    again = desired(me, teams, peers, trusted, pending, now, POLICY)
    assert plan(again, after, folders) == []


SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(
    role=st.sampled_from([Role.MEMBER, Role.LEADER, None]),
    phase=st.sampled_from(list(Phase)),
    other_state=st.sampled_from([MemberState.ACTIVE, MemberState.REMOVED]),
    known_record=st.booleans(),
    leader_doc=state_doc(LEADER),
    other_doc=state_doc(OTHER),
    pending=offers(),
)
def test_no_peer_input_stops_a_cycle(
    role: Role | None,
    phase: Phase,
    other_state: MemberState,
    known_record: bool,
    leader_doc: dict[str, Any],
    other_doc: dict[str, Any],
    pending: tuple[PendingFolder, ...],
) -> None:
    """`role` None: no team yet, the leader's device accepted by the user (trusted)."""
    me = Me(LEADER if role is Role.LEADER else ME, "x.m", ("tcp://127.0.0.1:22000",))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = Store.open(root / "karmad.db", STATE_SCHEMA)
        try:
            trusted: tuple[TrustedLeader, ...] = ()
            if role is None:
                trusted = (TrustedLeader(LEADER, "device.lead", NOW),)
            else:
                record = _our_record(role, other_state)
                local = LocalTeam(
                    team_id=TEAM,
                    name="core",
                    role=role,
                    phase=Phase.MEMBER if role is Role.LEADER else phase,
                    leader_device=LEADER,
                    leader_tag=TAGS[LEADER],
                    phase_since=NOW - timedelta(days=1),
                    record=record if role is Role.LEADER or known_record else None,
                )
                record_team(store, local, NOW)
            peers = {
                p.folder_id: p
                for p in (
                    _read(root / "folders", LEADER, LEADER, leader_doc),
                    _read(root / "folders", OTHER, LEADER, other_doc),
                )
                if p.owner_device != me.device_id
            }
            for now in (NOW, NOW + timedelta(days=15)):
                _cycle(store, me, peers, trusted, pending, now)
        finally:
            store.close()
