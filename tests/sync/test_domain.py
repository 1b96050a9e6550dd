"""The rules of teams, members, projects and subscriptions: every transition."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from karmad import deviceid
from karmad.domain import (
    MEMBER_TRANSITIONS,
    SUBSCRIPTION_TRANSITIONS,
    Direction,
    DomainError,
    Member,
    MemberState,
    Subscription,
    SubscriptionState,
    TeamState,
    folder_id,
    machine_tag_from_hostname,
    member_tag,
    new_team,
    project_key,
    validate_team_name,
    validate_user_id,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
A = deviceid.from_bytes(b"a" * 32)
B = deviceid.from_bytes(b"b" * 32)
C = deviceid.from_bytes(b"c" * 32)
TEAM_ID = "abcdefghijklmnopqrstuvwxya"


@pytest.mark.parametrize(
    ("current", "target"), list(itertools.product(SubscriptionState, SubscriptionState))
)
def test_every_subscription_transition(
    current: SubscriptionState, target: SubscriptionState
) -> None:
    sub = Subscription(TEAM_ID, "p-aaaaaaaaaaaaaaaa", current)
    if current is target:
        assert sub.to(target, NOW) is sub  # asking twice is a calm no-op
    elif (current, target) in SUBSCRIPTION_TRANSITIONS:
        assert sub.to(target, NOW).state is target
    else:
        with pytest.raises(DomainError) as info:
            sub.to(target, NOW)
        assert info.value.reason == "invalid_transition"


def test_design_subscription_transitions_exactly() -> None:
    o, a, p, d = (SubscriptionState(s) for s in ("offered", "accepted", "paused", "declined"))
    assert {(o, a), (a, p), (p, a), (o, d), (a, d), (p, d), (d, o)} == SUBSCRIPTION_TRANSITIONS


@pytest.mark.parametrize(("current", "target"), list(itertools.product(MemberState, MemberState)))
def test_every_member_transition(current: MemberState, target: MemberState) -> None:
    member = Member("u1.m", B, current, NOW, NOW)
    if (current, target) in MEMBER_TRANSITIONS:
        assert member.to(target, NOW).state is target
    else:
        with pytest.raises(DomainError):
            member.to(target, NOW)


def test_direction_changes_only_while_accepted() -> None:
    sub = Subscription(TEAM_ID, "p-aaaaaaaaaaaaaaaa")
    with pytest.raises(DomainError):
        sub.with_direction(Direction.SEND, NOW)
    accepted = sub.accept(Direction.RECEIVE, NOW)
    assert accepted.receives and not accepted.sends
    both = accepted.with_direction(Direction.BOTH, NOW)
    assert both.sends and both.receives
    paused = both.to(SubscriptionState.PAUSED, NOW)
    assert not paused.sends and not paused.receives
    with pytest.raises(DomainError):
        paused.with_direction(Direction.SEND, NOW)


def test_repeats_are_calm_and_a_different_accept_says_what_to_do() -> None:
    accepted = Subscription(TEAM_ID, "p-aaaaaaaaaaaaaaaa").accept(Direction.BOTH, NOW)
    assert accepted.accept(Direction.BOTH, NOW) is accepted
    assert accepted.resume(NOW) is accepted
    assert accepted.with_direction(Direction.BOTH, NOW) is accepted
    with pytest.raises(DomainError) as info:
        accepted.accept(Direction.SEND, NOW)
    assert info.value.reason == "invalid_transition"
    assert "sub direction" in info.value.detail


def test_team_lifecycle() -> None:
    team = new_team(TEAM_ID, "  Core   team ", "lead.box", A, NOW)
    assert team.name == "Core team"
    assert team.active_members[0].device_id == A
    team = team.add_member("bob.lap", B, NOW)
    assert team.add_member("bob.lap", B, NOW) is team  # idempotent
    with pytest.raises(DomainError) as info:
        team.add_member("bob.lap", C, NOW)  # same member tag, another device
    assert info.value.reason == "conflict"
    with pytest.raises(DomainError):
        team.add_member("carol.x", B, NOW)  # same device, other tag
    team = team.activate(B, NOW)
    assert {m.device_id for m in team.active_members} == {A, B}
    with pytest.raises(DomainError):
        team.remove_member(A, NOW)  # the leader cannot remove itself
    team = team.remove_member(B, NOW)
    assert team.member(B).state is MemberState.REMOVED  # type: ignore[union-attr]
    with pytest.raises(DomainError) as info:
        team.add_member("bob.lap", B, NOW)
    assert info.value.reason == "invalid_transition"
    team = team.share("github.com/o/r", "o/r", NOW)
    key = project_key("github.com/o/r")
    assert team.project(key) is not None
    assert team.share("github.com/o/r", "o/r", NOW) is team
    team = team.unshare(key, NOW)
    assert not team.shared_projects
    team = team.share("github.com/o/r", "o/r", NOW)
    assert team.shared_projects
    dissolved = team.dissolve(NOW)
    assert dissolved.state is TeamState.DISSOLVED
    with pytest.raises(DomainError):
        dissolved.add_member("dan.x", C, NOW)
    with pytest.raises(DomainError):
        dissolved.share("github.com/o/s", "o/s", NOW)


@pytest.mark.parametrize("name", ["ab", "alice", "a-b_c", "x" * 32, "0day"])
def test_valid_user_ids(name: str) -> None:
    assert validate_user_id(name) == name


@pytest.mark.parametrize("name", ["a", "Alice", "al ice", "x" * 33, "-ab", "a.b", "", "é"])
def test_invalid_user_ids(name: str) -> None:
    with pytest.raises(DomainError) as info:
        validate_user_id(name)
    assert info.value.field == "user"


@pytest.mark.parametrize(
    ("hostname", "tag"),
    [
        ("laptop", "laptop"),
        ("Pete's MacBook Pro.local", "pete-s-macbook-pro"),
        ("ÉCOLE-01.example.org", "ecole-01"),
        ("---", "machine"),
        ("a" * 80, "a" * 32),
    ],
)
def test_machine_tag_from_hostname(hostname: str, tag: str) -> None:
    assert machine_tag_from_hostname(hostname) == tag
    member_tag("alice", tag)  # always valid


def test_team_names() -> None:
    with pytest.raises(DomainError):
        validate_team_name("   ")
    with pytest.raises(DomainError):
        validate_team_name("a\x07b")
    with pytest.raises(DomainError):
        validate_team_name("x" * 65)


def test_derived_ids_are_stable_and_unambiguous() -> None:
    assert folder_id(TEAM_ID, A) == folder_id(TEAM_ID, A)
    assert folder_id(TEAM_ID, A) != folder_id(TEAM_ID, B)
    assert project_key("github.com/org/team-repo") != project_key("github.com/org-team/repo")
    assert folder_id(TEAM_ID, A).startswith("karma-") and len(folder_id(TEAM_ID, A)) == 32
