"""A new pair of devices has one first dialler (two crossing dials can stall for 20 s)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from karmad import deviceid
from karmad.domain import Phase, Team, new_team
from karmad.sync.desired import desired
from karmad.sync.ingest import next_deadline
from karmad.sync.model import DIAL_LATER, LocalTeam, Me, Policy, Role

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


def test_between_two_members_the_older_one_dials_the_newcomer() -> None:
    """The newcomer learns of the older member from its first roster; the older member
    learns of it only once the leader saw it join. The older one dials, whichever has
    the smaller device ID, so the first dial finds the other side ready."""
    record = new_team(TEAM, "core", "lead.m", MID, NOW - timedelta(days=1), ADDRESS[MID])
    record = record.add_member("old.m", HIGH, NOW - timedelta(days=1), ADDRESS[HIGH])
    record = record.activate(HIGH, NOW - timedelta(hours=1))
    record = record.add_member("new.m", LOW, NOW - timedelta(seconds=2), ADDRESS[LOW])

    def member_view(roster: Team) -> LocalTeam:
        return LocalTeam(TEAM, "core", Role.MEMBER, Phase.MEMBER, MID, "lead.m", NOW, roster)

    # The newcomer, not active yet, has the older member held; the leader it dials.
    joining = member_view(record)
    assert addresses(LOW, joining) == {MID: ADDRESS[MID], HIGH: DIAL_LATER}
    # The leader has seen it join: the older member now knows of it and dials.
    active = record.activate(LOW, NOW - timedelta(seconds=1))
    assert addresses(HIGH, member_view(active)) == {MID: ADDRESS[MID], LOW: ADDRESS[LOW]}
    # The newcomer's view of the same roster agrees: it still leaves the first dial.
    assert addresses(LOW, member_view(active)) == {MID: ADDRESS[MID], HIGH: DIAL_LATER}
    # Unless the older one is already knocking, or it never dialled within the delay.
    knocked = addresses(LOW, member_view(active), knocking=HIGH)
    assert knocked == {MID: ADDRESS[MID], HIGH: ADDRESS[HIGH]}
    later = NOW + timedelta(seconds=5)
    assert addresses(LOW, member_view(active), at=later) == {MID: ADDRESS[MID], HIGH: ADDRESS[HIGH]}


def test_two_members_activated_at_once_agree_by_device_id() -> None:
    record = new_team(TEAM, "core", "lead.m", HIGH, NOW - timedelta(days=1), ADDRESS[HIGH])
    for tag, device in (("a.m", LOW), ("b.m", MID)):
        record = record.add_member(tag, device, NOW - timedelta(seconds=3), ADDRESS[device])
        record = record.activate(device, NOW - timedelta(seconds=2))
    view = LocalTeam(TEAM, "core", Role.MEMBER, Phase.MEMBER, HIGH, "lead.m", NOW, record)
    assert addresses(LOW, view) == {HIGH: ADDRESS[HIGH], MID: ADDRESS[MID]}
    assert addresses(MID, view) == {HIGH: ADDRESS[HIGH], LOW: DIAL_LATER}


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
