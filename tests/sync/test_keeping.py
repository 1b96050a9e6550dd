"""What a team's keeper adds to every member's desired configuration (docs/keeper.md 2.2).

Properties over random roster histories: the leader and every member list the keeper on
exactly the readers' team folders, each with the same password; the keeper folder is
shared with the readers; nothing reaches a removed device through the keeper; the
signed files verify and open for the readers only; labels name nothing.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from karmad import deviceid
from karmad.domain import MemberState, Phase, Team, folder_id, new_team
from karmad.keeper import control as kc
from karmad.keeper.epoch import SECRET_BYTES, advance, folder_password, readers
from karmad.keeper.plan import HeldKind, keeper_folder_id
from karmad.sync import keeper_files
from karmad.sync.desired import desired
from karmad.sync.model import (
    Desired,
    LocalTeam,
    Me,
    PeerState,
    Policy,
    Role,
    TeamKeeper,
)
from karmad.sync.statefile import StateFile
from karmad.trust import wrap
from karmad.trust.keys import device_key_from_pem
from tests.support.identities import made_identity

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TEAM = "abcdefghijklmnopqrstuvwxyz"
NAME = "secretteam"
LEADER_KEY = device_key_from_pem(*made_identity("ecdsa-p384"))
LEADER = LEADER_KEY.device_id
KEEPER = deviceid.from_bytes(b"\xee" * 32)
POOL = [deviceid.from_bytes(bytes([n]) * 32) for n in range(1, 7)]
SEALING = {d: wrap.SealingKey.generate() for d in POOL}


def _roster(actions: list[tuple[int, str]]) -> Team:
    record = new_team(TEAM, NAME, "lead.m", LEADER, NOW - timedelta(days=2))
    at = NOW - timedelta(days=1)
    for n, action in actions:
        device = POOL[n]
        at += timedelta(minutes=1)
        member = record.member(device)
        if action == "add" and member is None:
            record = record.add_member(f"user{n}.m", device, at)
        elif action == "activate" and member is not None and member.state is MemberState.ADDED:
            record = record.activate(device, at)
        elif action == "remove" and member is not None and member.state is not MemberState.REMOVED:
            record = record.remove_member(device, at)
    return record


rosters = st.lists(
    st.tuples(st.integers(0, len(POOL) - 1), st.sampled_from(["add", "activate", "remove"])),
    max_size=14,
).map(_roster)


def _state(device: str, record: Team | None = None) -> PeerState:
    body = StateFile(
        team_id=TEAM,
        owner_tag="x.m",
        owner_device=device,
        seq=1,
        written_at=NOW,
        sealing_key=base64.b64encode(SEALING[device].public_bytes()).decode()
        if device in SEALING
        else None,
    )
    return PeerState(folder_id(TEAM, device), device, body)


def _leader_keeper(record: Team) -> TeamKeeper:
    epoch = advance(None, record, b"\x01" * SECRET_BYTES)
    return TeamKeeper(
        TEAM, KEEPER, ("tcp://192.0.2.9:22000",), NOW, epoch.number, epoch.secret, epoch.holders
    )


def _leader_view(record: Team, keeper: TeamKeeper, peers: dict[str, PeerState]) -> Desired:
    team = LocalTeam(TEAM, NAME, Role.LEADER, Phase.MEMBER, LEADER, "lead.m", NOW, record)
    return desired(
        Me(LEADER, "lead.m"), (team,), peers, (), (), NOW, Policy(), keepers={TEAM: keeper}
    )


def _member_view(device: str, record: Team, keeper: TeamKeeper) -> Desired:
    team = LocalTeam(TEAM, NAME, Role.MEMBER, Phase.MEMBER, LEADER, "lead.m", NOW, record)
    mine = replace(keeper, holders=frozenset(), join_secret=None)
    return desired(Me(device, "m.m"), (team,), {}, (), (), NOW, Policy(), keepers={TEAM: mine})


def _k_passwords(want: Desired) -> dict[str, str]:
    return {
        fid: password
        for fid, folder in want.folders.items()
        for device, password in folder.passwords
        if device == KEEPER
    }


@settings(max_examples=60, deadline=None)
@given(rosters)
def test_everyone_lists_the_keeper_on_the_readers_folders_with_one_password(record: Team) -> None:
    keeper = _leader_keeper(record)
    entitled = readers(record)
    peers = {folder_id(TEAM, d): _state(d) for d in entitled if d != LEADER}
    lead = _leader_view(record, keeper, peers)
    content = {folder_id(TEAM, d) for d in entitled}
    on_leader = _k_passwords(lead)
    assert set(on_leader) == content & set(lead.folders)
    epoch = advance(None, record, b"\x01" * SECRET_BYTES)
    for fid, password in on_leader.items():
        assert password == folder_password(epoch, fid)
    kfid = keeper_folder_id(TEAM)
    assert lead.folders[kfid].devices == entitled | {KEEPER}
    assert not lead.folders[kfid].passwords
    for fid, folder in lead.folders.items():
        assert NAME not in folder.label and "user" not in folder.label
        if KEEPER in folder.devices:
            assert fid in content | {kfid}
    for device in entitled - {LEADER}:
        mine = _member_view(device, record, keeper)
        theirs = _k_passwords(mine)
        # A member lists K on its own folder and its inboxes, all readers' folders,
        # always with the leader's password for that folder.
        assert set(theirs) <= content
        assert all(theirs[f] == on_leader.get(f, theirs[f]) for f in theirs)
        assert mine.folders[kfid].devices == {device, LEADER, KEEPER}


@settings(max_examples=60, deadline=None)
@given(rosters)
def test_the_files_verify_and_open_for_readers_only(record: Team) -> None:
    keeper = _leader_keeper(record)
    entitled = readers(record)
    joiner = next((d for d in entitled if d != LEADER), None)
    peers = {folder_id(TEAM, d): _state(d) for d in entitled if d not in {LEADER, joiner}}
    joins = {joiner: b"j" * 16} if joiner is not None else {}
    team = LocalTeam(TEAM, NAME, Role.LEADER, Phase.MEMBER, LEADER, "lead.m", NOW, record)
    want = desired(
        Me(LEADER, "lead.m"),
        (team,),
        peers,
        (),
        (),
        NOW,
        Policy(),
        keepers={TEAM: keeper},
        join_secrets={TEAM: joins},
    )
    kfid = keeper_folder_id(TEAM)
    files = want.keeper_files[kfid]
    keys_data, control_data = keeper_files.render(LEADER_KEY, files, 3, 4)
    control = kc.read_control(control_data, folder=kfid, leader=LEADER, keeper=KEEPER)
    assert control.seq == 4
    held = {f.id: f for f in control.folders}
    assert {f for f, h in held.items() if h.kind is HeldKind.CONTENT} == {
        folder_id(TEAM, d) for d in entitled
    }
    for folder in control.folders:
        assert set(folder.devices) == entitled
    assert NAME.encode() not in control_data and b"user" not in control_data
    for device in POOL:
        opened = keeper_files.open_keys(
            keys_data,
            folder=kfid,
            leader=LEADER,
            me=device,
            sealing_key=SEALING[device],
            join_secret=b"j" * 16 if device == joiner else None,
        )
        if device in entitled:
            assert opened.secret == keeper.secret, device
        else:
            assert opened.secret is None
    # The same inputs give the same digest: nothing is rewritten while nothing changes.
    again = desired(
        Me(LEADER, "lead.m"),
        (team,),
        peers,
        (),
        (),
        NOW,
        Policy(),
        keepers={TEAM: keeper},
        join_secrets={TEAM: joins},
    )
    assert again.keeper_files[kfid].digest == files.digest


def test_a_member_without_the_epoch_or_dropped_lists_the_keeper_on_its_folder_only() -> None:
    record = _roster([(0, "add"), (0, "activate")])
    keeper = _leader_keeper(record)
    member = POOL[0]
    for mine in (
        replace(keeper, epoch=None, secret=None),
        replace(keeper, fallback=True),
    ):
        team = LocalTeam(TEAM, NAME, Role.MEMBER, Phase.MEMBER, LEADER, "lead.m", NOW, record)
        want = desired(Me(member, "m.m"), (team,), {}, (), (), NOW, Policy(), keepers={TEAM: mine})
        with_k = {fid for fid, f in want.folders.items() if KEEPER in f.devices}
        assert with_k == {keeper_folder_id(TEAM)}
        assert not _k_passwords(want)


def test_a_removal_rotates_and_the_removed_device_is_in_nothing_the_keeper_holds() -> None:
    record = _roster([(0, "add"), (0, "activate"), (1, "add"), (1, "activate")])
    keeper = _leader_keeper(record)
    removed = record.remove_member(POOL[1], NOW)
    epoch = advance(advance(None, record, b"\x01" * SECRET_BYTES), removed, b"\x02" * SECRET_BYTES)
    assert epoch.number == 2
    rotated = replace(keeper, epoch=epoch.number, secret=epoch.secret, holders=epoch.holders)
    peers = {folder_id(TEAM, POOL[0]): _state(POOL[0])}
    want = _leader_view(removed, rotated, peers)
    kfid = keeper_folder_id(TEAM)
    assert POOL[1] not in want.folders[kfid].devices
    files = want.keeper_files[kfid]
    assert POOL[1] not in {r.device_id for r in files.recipients}
    assert all(POOL[1] not in f.devices for f in files.control.folders)
    assert all(f.generation == 2 for f in files.control.folders if f.kind is HeldKind.CONTENT)
    # A removed keeper: K keeps only the keeper folder, with a control file holding nothing.
    gone = _leader_view(removed, replace(rotated, removed_at=NOW), peers)
    assert {fid for fid, f in gone.folders.items() if KEEPER in f.devices} == {kfid}
    assert gone.folders[kfid].devices == {LEADER, KEEPER}
    assert [f.devices for f in gone.keeper_files[kfid].control.folders] == [[]]


def test_a_member_lists_the_keeper_only_where_it_holds_the_generation_the_control_names() -> None:
    """A folder K has not re-created yet (or one it holds under a newer password) is left
    unlisted: a password K does not follow there would drop the whole connection, and
    an old one could bind a re-created folder to it."""
    record = _roster([(0, "add"), (0, "activate")])
    keeper = replace(_leader_keeper(record), holders=frozenset())
    member = POOL[0]
    mine, leaders = folder_id(TEAM, member), folder_id(TEAM, LEADER)
    team = LocalTeam(TEAM, NAME, Role.MEMBER, Phase.MEMBER, LEADER, "lead.m", NOW, record)
    for generations, listed in (
        (None, {mine, leaders}),
        (((mine, 1), (leaders, 2)), {mine}),
        (((mine, 2), (leaders, 2)), set()),
        ((), set()),
    ):
        k = replace(keeper, generations=generations)
        want = desired(Me(member, "m.m"), (team,), {}, (), (), NOW, Policy(), keepers={TEAM: k})
        assert set(_k_passwords(want)) == listed, generations


def test_a_settling_leader_shares_only_the_keeper_folder_with_the_keeper() -> None:
    record = _roster([(0, "add"), (0, "activate")])
    keeper = replace(_leader_keeper(record), fallback=True)
    want = _leader_view(record, keeper, {})
    assert not _k_passwords(want)
    assert {fid for fid, f in want.folders.items() if KEEPER in f.devices} == {
        keeper_folder_id(TEAM)
    }
    assert keeper_folder_id(TEAM) in want.keeper_files
