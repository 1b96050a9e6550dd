"""Property tests of the keeper plan: the invariants of docs/keeper.md.

A team evolves by random roster changes (members added, joining, removed; sometimes the
team is dissolved); after each change the epoch is advanced and the keeper planned
again, as the leader's reconciler will. The properties are checked against independent
statements of who may read what, and against the reconciler's own `desired()` for the
leader's view.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from karmad import codec, deviceid
from karmad.domain import MemberState, Phase, Team, TeamState, folder_id, new_team
from karmad.keeper import epoch as epochs
from karmad.keeper.control import control_of
from karmad.keeper.epoch import Epoch, advance, folder_password
from karmad.keeper.plan import (
    HeldKind,
    KeeperError,
    KeeperPlan,
    keeper_folder_id,
    plan,
    report_folder_id,
)
from karmad.sync.desired import desired
from karmad.sync.model import LocalTeam, Me, Policy, Role

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TEAM_ID = "abcdefghijklmnopqrstuvwxyz"
TEAM_NAME = "Falcon Skunkworks"
LEADER_TAG = "lead9.hq0"
PROJECT = "github.com/acme0/falcon9-secret"
"""Names with characters that never occur in device or folder IDs (base32 has no 0, 1,
8, 9 or dots), so finding one in what the keeper sees cannot be a coincidence."""

device_ids = st.binary(min_size=32, max_size=32).map(deviceid.from_bytes)


@dataclass(frozen=True)
class Step:
    team: Team
    epoch: Epoch
    plan: KeeperPlan
    removed_now: frozenset[str]
    """Devices removed by the change that led to this step."""


@st.composite
def histories(draw: st.DrawFn) -> tuple[str, list[Step]]:
    leader, keeper = draw(st.lists(device_ids, min_size=2, max_size=2, unique=True))
    team = new_team(TEAM_ID, TEAM_NAME, LEADER_TAG, leader, NOW - timedelta(days=9))
    team = team.share(PROJECT, "acme0/falcon9-secret", NOW - timedelta(days=9))
    epoch = advance(None, team, os.urandom(32))
    steps = [Step(team, epoch, plan(team, keeper, epoch), frozenset())]
    used = {leader, keeper}
    at = NOW - timedelta(days=8)
    for n in range(draw(st.integers(1, 12))):
        at += timedelta(hours=1)
        current = [m for m in team.members if m.state is not MemberState.REMOVED]
        added = [m for m in current if m.state is MemberState.ADDED]
        removable = [m for m in current if m.device_id != leader]
        choices = ["add"] + (["join"] if added else []) + (["remove"] if removable else [])
        choices += ["dissolve"] if n > 2 else []
        op = draw(st.sampled_from(choices))
        before = {m.device_id for m in current}
        if op == "add":
            device = draw(device_ids.filter(lambda d: d not in used))
            used.add(device)
            team = team.add_member(f"member{n}9.laptop0", device, at)
        elif op == "join":
            team = team.activate(draw(st.sampled_from(added)).device_id, at)
        elif op == "remove":
            team = team.remove_member(draw(st.sampled_from(removable)).device_id, at)
        else:
            team = team.dissolve(at)
        epoch = advance(epoch, team, os.urandom(32))
        after = {m.device_id for m in team.members if m.state is not MemberState.REMOVED}
        steps.append(Step(team, epoch, plan(team, keeper, epoch), frozenset(before - after)))
        if team.state is TeamState.DISSOLVED:
            break
    return keeper, steps


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _readers(team: Team) -> set[str]:
    return {m.device_id for m in team.members if m.state is not MemberState.REMOVED}


@SETTINGS
@given(histories())
def test_the_keeper_holds_exactly_the_team_folders_it_is_entitled_to(
    case: tuple[str, list[Step]],
) -> None:
    keeper, steps = case
    for step in steps:
        team, held = step.team, step.plan.held
        content = {fid for fid, f in held.items() if f.kind is HeldKind.CONTENT}
        others = set(held) - content
        if team.state is TeamState.DISSOLVED:
            assert content == set()
            assert others == {keeper_folder_id(TEAM_ID)}
        else:
            assert content == {folder_id(TEAM_ID, d) for d in _readers(team)}
            assert others == {keeper_folder_id(TEAM_ID), report_folder_id(TEAM_ID)}
        # Never chained: no folder K holds is shared with K itself or any non-member.
        for folder in held.values():
            assert keeper not in folder.devices
            assert folder.devices <= _readers(team)


@SETTINGS
@given(histories())
def test_no_member_receives_through_the_keeper_what_it_would_not_receive_directly(
    case: tuple[str, list[Step]],
) -> None:
    _, steps = case
    for step in steps:
        team = step.team
        readers = _readers(team)
        for fid, folder in step.plan.held.items():
            if folder.kind is HeldKind.CONTENT:
                # A member's folder, offered only to devices of the same roster.
                owner = next(d for d in readers if folder_id(TEAM_ID, d) == fid)
                assert owner in folder.devices
            for device in folder.devices:
                assert device in readers
                assert fid in step.plan.links[device]
        for device, links in step.plan.links.items():
            assert device in readers
            assert set(links) <= set(step.plan.held)
            assert all(device in step.plan.held[fid].devices for fid in links)
        if team.state is TeamState.ACTIVE:
            _matches_the_leaders_direct_shares(step)


def _matches_the_leaders_direct_shares(step: Step) -> None:
    """The leader's reconciler decides what the leader shares directly; through K it
    shares its own folder with no device outside that, and receives (has an inbox of)
    every folder K relays to it."""
    team = step.team
    leader = team.leader_device
    local = LocalTeam(
        team_id=TEAM_ID,
        name=TEAM_NAME,
        role=Role.LEADER,
        phase=Phase.MEMBER,
        leader_device=leader,
        leader_tag=LEADER_TAG,
        phase_since=NOW,
        record=team,
    )
    direct = desired(Me(leader, LEADER_TAG), (local,), {}, (), (), NOW, Policy())
    own = folder_id(TEAM_ID, leader)
    assert step.plan.held[own].devices <= direct.folders[own].devices
    for fid in step.plan.links[leader]:
        if step.plan.held[fid].kind is HeldKind.CONTENT:
            assert fid in direct.folders


@SETTINGS
@given(histories())
def test_after_removal_nothing_new_reaches_the_removed_device(
    case: tuple[str, list[Step]],
) -> None:
    _, steps = case
    known: dict[str, set[str]] = {}  # device -> every password it was ever given
    epochs_held: dict[str, int] = {}
    removed: set[str] = set()
    for step in steps:
        removed |= step.removed_now
        for device in removed:
            assert device not in step.plan.links
            assert device not in step.plan.recipients
            assert all(device not in f.devices for f in step.plan.held.values())
            assert device not in step.epoch.holders
            # Whatever it kept, it cannot read anything encrypted from now on.
            assert step.epoch.number > epochs_held[device]
            current = {p for links in step.plan.links.values() for p in links.values() if p}
            assert not current & known[device]
        for device, links in step.plan.links.items():
            known.setdefault(device, set()).update(p for p in links.values() if p)
            epochs_held[device] = step.epoch.number


@SETTINGS
@given(histories())
def test_the_epoch_changes_exactly_when_a_holder_is_removed(
    case: tuple[str, list[Step]],
) -> None:
    _, steps = case
    for before, after in itertools.pairwise(steps):
        if after.removed_now:
            assert after.epoch.number == before.epoch.number + 1
            assert after.epoch.secret != before.epoch.secret
        else:
            assert after.epoch.number == before.epoch.number
            assert after.epoch.secret == before.epoch.secret
        assert after.plan.recipients == _readers(after.team) - {after.team.leader_device}


@SETTINGS
@given(histories())
def test_every_member_lists_the_keeper_with_the_same_password_for_a_folder(
    case: tuple[str, list[Step]],
) -> None:
    keeper, steps = case
    for step in steps:
        seen: set[str] = set()
        for fid, folder in step.plan.held.items():
            passwords = {step.plan.links[d][fid] for d in folder.devices}
            if folder.kind is HeldKind.CONTENT:
                assert passwords == {folder_password(step.epoch, fid)}
                assert folder.generation == step.epoch.number
                (password,) = passwords
                assert password is not None and len(password) == 52
                assert password not in seen
                seen.add(password)
            else:
                # The keeper reads these itself: plaintext, and never team content.
                assert passwords <= {None}
        assert keeper not in step.plan.links


@SETTINGS
@given(histories())
def test_nothing_the_keeper_sees_names_the_team_its_members_or_projects(
    case: tuple[str, list[Step]],
) -> None:
    _, steps = case
    for step in steps:
        control = codec.encode_json(control_of(step.plan, seq=1)).decode()
        labels = " ".join(f.label for f in step.plan.held.values())
        names = {TEAM_NAME, TEAM_ID, PROJECT, "acme0", "falcon9", "Falcon"}
        names |= {m.member_tag for m in step.team.members}
        names |= {m.user_id for m in step.team.members}
        for text in (control, labels):
            for name in names:
                assert name not in text, name


def test_the_keeper_cannot_be_a_device_of_the_roster() -> None:
    leader, member = (deviceid.from_bytes(bytes([n]) * 32) for n in (1, 2))
    team = new_team(TEAM_ID, TEAM_NAME, LEADER_TAG, leader, NOW).add_member("m.x", member, NOW)
    epoch = advance(None, team, os.urandom(32))
    for device in (leader, member):
        with pytest.raises(KeeperError, match="roster"):
            plan(team, device, epoch)
    removed = team.remove_member(member, NOW)
    with pytest.raises(KeeperError, match="roster"):
        plan(removed, member, advance(epoch, removed, os.urandom(32)))


def test_a_stale_epoch_is_refused() -> None:
    leader, member, keeper = (deviceid.from_bytes(bytes([n]) * 32) for n in (1, 2, 3))
    team = new_team(TEAM_ID, TEAM_NAME, LEADER_TAG, leader, NOW).add_member("m.x", member, NOW)
    epoch = advance(None, team, os.urandom(32))
    with pytest.raises(KeeperError, match="rotate"):
        plan(team.remove_member(member, NOW), keeper, epoch)
    joined = team.add_member("n.y", deviceid.from_bytes(b"\x04" * 32), NOW)
    with pytest.raises(KeeperError, match="not advanced"):
        plan(joined, keeper, epoch)
    with pytest.raises(ValueError, match="fresh"):
        advance(epoch, team.remove_member(member, NOW), epoch.secret)
    with pytest.raises(ValueError, match="bytes"):
        advance(epoch, team, b"short")
    assert "secret" not in repr(epoch) and epoch.secret.hex() not in repr(epoch)
    assert epochs.needs_rotation(epoch, team.remove_member(member, NOW))
