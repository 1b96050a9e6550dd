"""A new pair of devices has one first dialler (two crossing dials can stall for 20 s)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from karmad import deviceid
from karmad.domain import new_team
from karmad.sync.desired import DIAL_LATER, desired
from karmad.sync.ingest import next_deadline
from karmad.sync.model import LocalTeam, Me, Phase, Policy, Role

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
POLICY = Policy(dial_delay=timedelta(seconds=5))
TEAM = "abcdefghijklmnopqrstuvwxyz"
LOW, MID, HIGH = sorted(deviceid.from_bytes(bytes([n]) * 32) for n in (7, 8, 9))
ADDRESS = {LOW: ("tcp://127.0.0.1:1001",), MID: ("tcp://127.0.0.1:1002",)}
ADDRESS[HIGH] = ("tcp://127.0.0.1:1003",)


def leader_view(added_at: datetime) -> LocalTeam:
    record = new_team(TEAM, "core", "lead.m", LOW, NOW - timedelta(days=1), ADDRESS[LOW])
    record = record.add_member("bob.m", HIGH, added_at, ADDRESS[HIGH])
    return LocalTeam(TEAM, "core", Role.LEADER, Phase.MEMBER, LOW, "lead.m", NOW, record)


def addresses(
    me: str, team: LocalTeam, *, at: datetime = NOW, knocking: str = ""
) -> dict[str, tuple[str, ...]]:
    want = desired(
        Me(me, "x.m", ADDRESS[me]),
        (team,),
        {},
        (),
        (),
        at,
        POLICY,
        knocking=frozenset({knocking} - {""}),
    )
    return {d: c.addresses for d, c in want.devices.items()}


def test_the_leader_lets_a_member_it_just_added_dial_first() -> None:
    team = leader_view(added_at=NOW - timedelta(seconds=1))
    assert addresses(LOW, team) == {HIGH: DIAL_LATER}
    # Once the member knocks (it joined before we configured it), we dial back at once.
    assert addresses(LOW, team, knocking=HIGH) == {HIGH: ADDRESS[HIGH]}
    # It never dialled: after the delay the leader dials itself.
    assert addresses(LOW, team, at=NOW + timedelta(seconds=5)) == {HIGH: ADDRESS[HIGH]}
    assert next_deadline((team,), NOW, POLICY) == NOW + timedelta(seconds=4)


def test_an_active_member_is_dialled() -> None:
    team = leader_view(added_at=NOW - timedelta(seconds=1))
    assert team.record is not None
    active = team.record.activate(HIGH, NOW)
    view = LocalTeam(TEAM, "core", Role.LEADER, Phase.MEMBER, LOW, "lead.m", NOW, active)
    assert addresses(LOW, view) == {HIGH: ADDRESS[HIGH]}


def test_between_two_members_the_smaller_device_id_dials_first() -> None:
    record = new_team(TEAM, "core", "lead.m", HIGH, NOW - timedelta(days=1), ADDRESS[HIGH])
    for tag, device in (("a.m", LOW), ("b.m", MID)):
        record = record.add_member(tag, device, NOW - timedelta(seconds=3), ADDRESS[device])
        record = record.activate(device, NOW - timedelta(seconds=2))

    def member_view() -> LocalTeam:
        return LocalTeam(TEAM, "core", Role.MEMBER, Phase.MEMBER, HIGH, "lead.m", NOW, record)

    # Both learn of each other from the same roster; the leader is always dialled.
    assert addresses(LOW, member_view()) == {HIGH: ADDRESS[HIGH], MID: ADDRESS[MID]}
    assert addresses(MID, member_view()) == {HIGH: ADDRESS[HIGH], LOW: DIAL_LATER}
    assert addresses(MID, member_view(), knocking=LOW) == {HIGH: ADDRESS[HIGH], LOW: ADDRESS[LOW]}
    later = NOW + timedelta(seconds=3)
    assert addresses(MID, member_view(), at=later) == {HIGH: ADDRESS[HIGH], LOW: ADDRESS[LOW]}


def test_an_address_to_dial_wins_over_a_held_one_across_teams() -> None:
    """A device in two teams is dialled if either team has it dialled."""
    held = leader_view(added_at=NOW - timedelta(seconds=1))
    other = new_team("bcdefghijklmnopqrstuvwxyza", "other", "lead.m", LOW, NOW, ADDRESS[LOW])
    other = other.add_member("bob.m", HIGH, NOW - timedelta(days=2), ADDRESS[HIGH])
    other = other.activate(HIGH, NOW - timedelta(days=1))
    second = LocalTeam(other.team_id, "other", Role.LEADER, Phase.MEMBER, LOW, "lead.m", NOW, other)
    for teams in ((held, second), (second, held)):
        want = desired(Me(LOW, "lead.m"), teams, {}, (), (), NOW, POLICY)
        assert want.devices[HIGH].addresses == ADDRESS[HIGH]
