"""Property tests of reconciliation: the invariants of design.md section 4."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from karmad import deviceid
from karmad.domain import (
    Direction,
    Member,
    MemberState,
    Phase,
    Subscription,
    SubscriptionState,
    Team,
    TeamState,
    folder_id,
    new_team,
)
from karmad.sync.desired import desired
from karmad.sync.model import (
    DIAL_LATER,
    Desired,
    DeviceConfig,
    FolderConfig,
    FolderType,
    LocalTeam,
    Me,
    Observed,
    Offer,
    Policy,
    Role,
)
from karmad.sync.plan import (
    AddDevice,
    ConnectDevice,
    DismissOffer,
    OverrideOwnFolder,
    PurgeReceived,
    PutFolder,
    RevertInbox,
    SetIgnores,
    WriteState,
    apply,
    plan,
    purge_settled,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
POLICY = Policy(removal_grace=timedelta(days=14), ack_linger=timedelta(seconds=30))
FOLDERS = Path("/state/folders")

device_ids = st.binary(min_size=32, max_size=32).map(deviceid.from_bytes)
team_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567", min_size=26, max_size=26)
project_keys = st.sampled_from(
    ["p-aaaaaaaaaaaaaaaa", "p-bbbbbbbbbbbbbbbb", "p-cccccccccccccccc", "p-dddddddddddddddd"]
)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[Me, tuple[LocalTeam, ...], Observed]:
    me = Me(draw(device_ids), "me.host", ("tcp://127.0.0.1:22000",))
    others = draw(st.lists(device_ids, min_size=1, max_size=6, unique=True))
    others = [d for d in others if d != me.device_id] or [deviceid.from_bytes(b"\x01" * 32)]
    teams: list[LocalTeam] = []
    for n, team_id in enumerate(draw(st.lists(team_ids, min_size=1, max_size=3, unique=True))):
        role = draw(st.sampled_from(list(Role)))
        leader = me.device_id if role is Role.LEADER else draw(st.sampled_from(others))
        leader_tag = "me.host" if role is Role.LEADER else "lead.box"
        team = new_team(team_id, f"team {n}", leader_tag, leader, NOW - timedelta(days=30))
        members = list(team.members)
        for i, dev in enumerate(others):
            if dev == leader or not draw(st.booleans()):
                continue
            member_state = draw(st.sampled_from(list(MemberState)))
            changed = NOW - timedelta(days=draw(st.integers(0, 30)))
            members.append(Member(f"u{i}.m", dev, member_state, changed, changed))
        if role is Role.MEMBER:
            my_state = draw(st.sampled_from([MemberState.ADDED, MemberState.ACTIVE]))
            members.append(Member("me.host", me.device_id, my_state, NOW, NOW))
        keys = draw(st.lists(project_keys, unique=True, max_size=3))
        for key in keys:
            team = team.share(f"github.com/o/{key}", key, NOW)
        team_state = draw(st.sampled_from(list(TeamState)))
        team = Team(
            team_id=team.team_id,
            name=team.name,
            leader_tag=leader_tag,
            leader_device=leader,
            state=team_state,
            created_at=team.created_at,
            members=tuple(members),
            projects=team.projects,
            dissolved_at=NOW - timedelta(days=draw(st.integers(0, 30)))
            if team_state is TeamState.DISSOLVED
            else None,
        )
        subs = tuple(
            Subscription(
                team_id,
                p.key,
                draw(st.sampled_from(list(SubscriptionState))),
                draw(st.sampled_from(list(Direction))),
                NOW,
            )
            for p in team.projects
            if draw(st.booleans())
        )
        phase = Phase.MEMBER if role is Role.LEADER else draw(st.sampled_from(list(Phase)))
        acks = tuple(
            (m.device_id, NOW - timedelta(seconds=draw(st.integers(0, 120))))
            for m in members
            if draw(st.booleans())
        )
        teams.append(
            LocalTeam(
                team_id=team_id,
                name=team.name,
                role=role,
                phase=phase,
                leader_device=leader,
                leader_tag=leader_tag,
                phase_since=NOW - timedelta(days=draw(st.integers(0, 30))),
                record=team if (role is Role.LEADER or draw(st.booleans())) else None,
                subscriptions=subs,
                acks=acks,
            )
        )
    # Whatever Syncthing has now: some random karma folders and devices.
    observed_devices = {
        d: DeviceConfig(d, "x", ("dynamic",)) for d in others if draw(st.booleans())
    }
    managed = frozenset(d for d in observed_devices if draw(st.booleans()))
    observed_folders = {}
    for local in teams:
        for dev in [me.device_id, *others]:
            if draw(st.integers(0, 3)) == 0:
                fid = folder_id(local.team_id, dev)
                kind = draw(st.sampled_from(list(FolderType)))
                devs = frozenset(draw(st.lists(st.sampled_from(others), max_size=3)))
                observed_folders[fid] = FolderConfig(fid, "old", f"{FOLDERS}/{fid}", kind, devs)
    local_changes = frozenset(f for f in observed_folders if draw(st.integers(0, 3)) == 0)
    # Syncthing reports items needed in any kind of folder; some are not in its config.
    strays = [folder_id(t.team_id, d) for t in teams for d in others]
    foreign = frozenset(f for f in [*observed_folders, *strays] if draw(st.integers(0, 2)) == 0)
    observed = Observed(
        devices=observed_devices,
        folders=observed_folders,
        managed_devices=managed,
        locally_changed=local_changes,
        foreign_changes=foreign,
    )
    return me, tuple(teams), observed


def _desired(me: Me, teams: tuple[LocalTeam, ...], observed: Observed) -> Desired:
    return desired(
        me,
        teams,
        {},
        (),
        (),
        NOW,
        POLICY,
        managed_devices=observed.managed_devices,
        present_folders=frozenset(observed.folders),
    )


def _entitled(me: Me, team: LocalTeam, device: str) -> bool:
    """Independent statement of who may hold a team's folders: the roster's members,
    never anyone outside it, never a removed member past its delivery window."""
    record = team.record
    if device == me.device_id:
        return True
    if record is None:
        return device == team.leader_device
    member = record.member(device)
    if member is None:
        return False
    if member.state is MemberState.REMOVED:
        ack = team.ack_time(device)
        lingered = ack is not None and NOW - ack >= POLICY.ack_linger
        return (
            team.role is Role.LEADER
            and not lingered
            and NOW - member.changed_at < POLICY.removal_grace
        )
    return True


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenario())
def test_nobody_is_in_a_folder_they_are_not_entitled_to(
    case: tuple[Me, tuple[LocalTeam, ...], Observed],
) -> None:
    me, teams, observed = case
    want = _desired(me, teams, observed)
    by_id = {t.team_id: t for t in teams}
    for folder in want.folders.values():
        team = by_id[folder.team_id]
        for device in folder.devices:
            assert _entitled(me, team, device), (folder.folder_id, device)
        if folder.type is FolderType.RECEIVEONLY:
            # An inbox is shared with its owner alone (and us).
            assert folder.devices == {folder.owner_device, me.device_id}
            assert folder.folder_id == folder_id(folder.team_id, folder.owner_device)
        else:
            assert folder.type is FolderType.SENDONLY
            assert folder.folder_id == folder_id(folder.team_id, me.device_id)


@SETTINGS
@given(scenario())
def test_everyone_entitled_is_present(case: tuple[Me, tuple[LocalTeam, ...], Observed]) -> None:
    me, teams, observed = case
    want = _desired(me, teams, observed)
    for team in teams:
        record = team.record
        if record is None or team.phase is not Phase.MEMBER or record.state is not TeamState.ACTIVE:
            continue
        if team.role is Role.MEMBER and record.member(me.device_id) is None:
            continue
        own = want.folders[folder_id(team.team_id, me.device_id)]
        for member in record.active_members:
            if member.device_id == me.device_id:
                continue
            assert member.device_id in own.devices
            assert folder_id(team.team_id, member.device_id) in want.folders
            assert member.device_id in want.devices


@SETTINGS
@given(scenario())
def test_nothing_is_received_for_a_project_not_accepted(
    case: tuple[Me, tuple[LocalTeam, ...], Observed],
) -> None:
    me, teams, observed = case
    want = _desired(me, teams, observed)
    by_id = {t.team_id: t for t in teams}
    for folder in want.folders.values():
        if folder.type is not FolderType.RECEIVEONLY:
            continue
        assert folder.ignores[-1] == "*"
        team = by_id[folder.team_id]
        admitted = {
            p.removeprefix("!/projects/") for p in folder.ignores if p.startswith("!/projects/")
        }
        for key in admitted:
            sub = team.subscription(key)
            assert sub is not None and sub.state is SubscriptionState.ACCEPTED
            assert sub.direction.receives
            assert team.record is not None and team.record.state is TeamState.ACTIVE
        others = [p for p in folder.ignores[:-1] if not p.startswith("!/projects/")]
        assert others == ["!/state"]


@SETTINGS
@given(scenario())
def test_applying_a_plan_then_planning_again_yields_nothing(
    case: tuple[Me, tuple[LocalTeam, ...], Observed],
) -> None:
    me, teams, observed = case
    want = _desired(me, teams, observed)
    actions = plan(want, observed, FOLDERS)
    after = apply(observed, actions)
    again = _desired(me, teams, after)
    assert plan(again, after, FOLDERS) == []


@SETTINGS
@given(scenario())
def test_never_removes_a_device_karmad_did_not_add(
    case: tuple[Me, tuple[LocalTeam, ...], Observed],
) -> None:
    me, teams, observed = case
    actions = plan(_desired(me, teams, observed), observed, FOLDERS)
    for action in actions:
        device = getattr(action, "device_id", None)
        if type(action).__name__ == "RemoveDevice":
            assert device in observed.managed_devices


@SETTINGS
@given(scenario())
def test_only_inboxes_with_local_changes_are_reverted(
    case: tuple[Me, tuple[LocalTeam, ...], Observed],
) -> None:
    """Reverting discards what is in a folder: never one of ours we send from, never a
    folder Syncthing does not have as receive-only yet."""
    me, teams, observed = case
    want = _desired(me, teams, observed)
    reverted = {a.folder_id for a in plan(want, observed, FOLDERS) if isinstance(a, RevertInbox)}
    for fid in reverted:
        assert fid in observed.locally_changed
        assert want.folders[fid].type is FolderType.RECEIVEONLY
        assert observed.folders[fid].type is FolderType.RECEIVEONLY
    for fid in observed.locally_changed:
        wanted = want.folders.get(fid)
        if (
            wanted is not None
            and wanted.type is FolderType.RECEIVEONLY
            and observed.folders[fid].type is FolderType.RECEIVEONLY
        ):
            assert fid in reverted


@SETTINGS
@given(scenario())
def test_only_own_sendonly_folders_are_overridden(
    case: tuple[Me, tuple[LocalTeam, ...], Observed],
) -> None:
    """Overriding pushes our copy over everyone's: only a folder we own and send from,
    in the plan and in Syncthing, and every such folder others changed."""
    me, teams, observed = case
    want = _desired(me, teams, observed)
    actions = plan(want, observed, FOLDERS)
    overridden = [a.folder_id for a in actions if isinstance(a, OverrideOwnFolder)]
    assert len(overridden) == len(set(overridden))
    own = {folder_id(t.team_id, me.device_id) for t in teams}
    for fid in overridden:
        assert fid in own
        assert fid in observed.foreign_changes
        assert want.folders[fid].type is FolderType.SENDONLY
        assert want.folders[fid].owner_device == me.device_id
        assert observed.folders[fid].type is FolderType.SENDONLY
    for fid in observed.foreign_changes:
        wanted = want.folders.get(fid)
        have = observed.folders.get(fid)
        if (
            wanted is not None
            and wanted.type is FolderType.SENDONLY
            and have is not None
            and have.type is FolderType.SENDONLY
        ):
            assert fid in overridden
    # After the override nothing is planned again for it.
    after = apply(observed, actions)
    assert not after.foreign_changes & set(overridden)


@SETTINGS
@given(scenario())
def test_a_new_device_is_dialled_only_once_everything_it_shares_is_in_place(
    case: tuple[Me, tuple[LocalTeam, ...], Observed],
) -> None:
    """Added without an address, then given its addresses after every folder shared with
    it, every ignore pattern and every state file: its first connection never meets a
    folder being added (Syncthing 1.19 closes such a connection)."""
    me, teams, observed = case
    want = _desired(me, teams, observed)
    actions = plan(want, observed, FOLDERS)
    added = {a.device.device_id: i for i, a in enumerate(actions) if isinstance(a, AddDevice)}
    connects = {a.device_id: i for i, a in enumerate(actions) if isinstance(a, ConnectDevice)}
    for device, at in added.items():
        assert actions[at].device.addresses == DIAL_LATER  # type: ignore[union-attr]
        if want.devices[device].addresses == DIAL_LATER:
            assert device not in connects
            continue
        connect = connects[device]
        assert actions[connect] == ConnectDevice(device, want.devices[device].addresses)
        for i, action in enumerate(actions):
            if isinstance(action, SetIgnores | WriteState) or (
                isinstance(action, PutFolder) and device in action.folder.devices
            ):
                assert i < connect, (action, actions[connect])
    assert set(connects) <= set(added)


# ----------------------------------------------------------------- requests: purge, dismiss

Requests = tuple[frozenset[Offer], frozenset[tuple[str, str]]]


@st.composite
def with_requests(
    draw: st.DrawFn,
) -> tuple[Me, tuple[LocalTeam, ...], Observed, Requests]:
    """A scenario plus what the user asked for: offers to dismiss, projects to purge,
    and what Syncthing has pending and the inboxes hold of those projects."""
    me, teams, observed = draw(scenario())
    devices = sorted({me.device_id, *observed.devices} | {t.leader_device for t in teams})
    offers = frozenset(
        Offer(draw(st.sampled_from(devices)), draw(st.sampled_from(["", "shared-evil", fid])))
        for fid in draw(st.lists(st.sampled_from(sorted(observed.folders) or [""]), max_size=4))
    )
    dismissed = frozenset(
        draw(st.lists(st.sampled_from(sorted(offers)), max_size=3)) if offers else []
    )
    purges = frozenset(
        (t.team_id, key)
        for t in teams
        for key in draw(st.lists(project_keys, unique=True, max_size=2))
    )
    received = frozenset(
        (fid, key) for fid in observed.folders for _, key in purges if draw(st.booleans())
    )
    observed = replace(observed, offers=offers, received=received)
    return me, teams, observed, (dismissed, purges)


def _desired_with(
    me: Me, teams: tuple[LocalTeam, ...], observed: Observed, requests: Requests
) -> Desired:
    dismissed, purges = requests
    return replace(_desired(me, teams, observed), dismissed=dismissed, purges=purges)


@SETTINGS
@given(with_requests())
def test_a_purge_deletes_only_what_no_inbox_admits_and_only_once_ignored(
    case: tuple[Me, tuple[LocalTeam, ...], Observed, Requests],
) -> None:
    me, teams, observed, requests = case
    want = _desired_with(me, teams, observed, requests)
    actions = plan(want, observed, FOLDERS)
    admitted = {i.folder_id: i.project_keys for i in want.inboxes}
    for n, action in enumerate(actions):
        if not isinstance(action, PurgeReceived):
            continue
        folder = want.folders[action.folder_id]
        assert folder.type is FolderType.RECEIVEONLY
        assert (folder.team_id, action.project_key) in want.purges
        assert action.project_key not in admitted.get(action.folder_id, frozenset())
        assert (action.folder_id, action.project_key) in observed.received
        # Its inbox's ignore patterns are set first, or were already.
        ignores = [
            i
            for i, a in enumerate(actions)
            if isinstance(a, SetIgnores) and a.folder_id == folder.folder_id
        ]
        assert all(i < n for i in ignores)
        assert ignores or observed.ignores.get(action.folder_id) == folder.ignores


@SETTINGS
@given(with_requests())
def test_only_offers_asked_for_and_still_pending_are_dismissed(
    case: tuple[Me, tuple[LocalTeam, ...], Observed, Requests],
) -> None:
    me, teams, observed, requests = case
    want = _desired_with(me, teams, observed, requests)
    dismissed = {a.offer for a in plan(want, observed, FOLDERS) if isinstance(a, DismissOffer)}
    assert dismissed == want.dismissed & observed.offers


@SETTINGS
@given(with_requests())
def test_requests_are_carried_out_once(
    case: tuple[Me, tuple[LocalTeam, ...], Observed, Requests],
) -> None:
    """After applying a plan, nothing is left to purge or dismiss, and every purge request
    is settled unless the project is still admitted somewhere in its team."""
    me, teams, observed, requests = case
    want = _desired_with(me, teams, observed, requests)
    after = apply(observed, plan(want, observed, FOLDERS))
    again = _desired_with(me, teams, after, requests)
    assert plan(again, after, FOLDERS) == []
    admitted = {(i.team_id, key) for i in again.inboxes for key in i.project_keys}
    for team_id, key in again.purges:
        settled = purge_settled(again, after, team_id, key)
        assert settled == ((team_id, key) not in admitted), (team_id, key)
