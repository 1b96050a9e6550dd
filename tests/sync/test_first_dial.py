"""A new pair of devices has one first dialler (two crossing dials can stall for 20 s)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

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
    me: str, team: LocalTeam, *, at: datetime = NOW, knocking: str = "", policy: Policy = POLICY
) -> dict[str, tuple[str, ...]]:
    want = desired(
        Me(me, "x.m", ADDRESS[me]),
        (team,),
        {},
        (),
        (),
        at,
        policy,
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
    later = NOW + POLICY.pair_dial_delay
    assert addresses(LOW, member_view(active), at=later) == {MID: ADDRESS[MID], HIGH: ADDRESS[HIGH]}


def test_a_newcomer_waits_for_an_older_member_that_hears_of_it_late() -> None:
    """On a slow, lossy link the older member hears of the newcomer 4 to 6 s after the
    leader activated it (more with Syncthing 1.29): the newcomer must not dial first
    meanwhile, or its dial is refused and both sides' redials cross."""
    policy = Policy()
    record = new_team(TEAM, "core", "lead.m", MID, NOW - timedelta(days=1), ADDRESS[MID])
    record = record.add_member("old.m", HIGH, NOW - timedelta(days=1), ADDRESS[HIGH])
    record = record.activate(HIGH, NOW - timedelta(hours=1))
    record = record.add_member("new.m", LOW, NOW - timedelta(seconds=2), ADDRESS[LOW])
    record = record.activate(LOW, NOW)
    view = LocalTeam(TEAM, "core", Role.MEMBER, Phase.MEMBER, MID, "lead.m", NOW, record)
    for late in (0, 5, 6, 10, 20):
        at = NOW + timedelta(seconds=late)
        assert addresses(LOW, view, at=at, policy=policy)[HIGH] == DIAL_LATER, late
        assert addresses(HIGH, view, at=at, policy=policy)[LOW] == ADDRESS[LOW], late
    # The older member never dialled (an address it cannot reach): the newcomer dials.
    later = NOW + policy.pair_dial_delay
    assert addresses(LOW, view, at=later, policy=policy)[HIGH] == ADDRESS[HIGH]
    # The reconciler wakes for that moment instead of waiting for its sweep.
    assert next_deadline((view,), NOW + timedelta(seconds=6), policy) == later


@given(
    old_at=st.integers(min_value=-100, max_value=100),
    new_at=st.integers(min_value=-100, max_value=100),
    at=st.integers(min_value=-100, max_value=200),
)
def test_only_one_of_two_members_dials_first(old_at: int, new_at: int, at: int) -> None:
    """Whenever two members were activated, and from whichever side the roster is read,
    until the later activation is `pair_dial_delay` old exactly one of them dials."""
    policy = Policy()
    record = new_team(TEAM, "core", "lead.m", MID, NOW - timedelta(days=1), ADDRESS[MID])
    for tag, device, when in (("a.m", LOW, old_at), ("b.m", HIGH, new_at)):
        moment = NOW + timedelta(seconds=when)
        record = record.add_member(tag, device, moment - timedelta(seconds=1), ADDRESS[device])
        record = record.activate(device, moment)
    view = LocalTeam(TEAM, "core", Role.MEMBER, Phase.MEMBER, MID, "lead.m", NOW, record)
    now = NOW + timedelta(seconds=at)
    dials = [
        addresses(me, view, at=now, policy=policy)[peer] != DIAL_LATER
        for me, peer in ((LOW, HIGH), (HIGH, LOW))
    ]
    since = NOW + timedelta(seconds=max(old_at, new_at))
    assert sum(dials) == (1 if now < since + policy.pair_dial_delay else 2)


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
