"""Property tests of what a keeper holds (`karmad.keeper.hold`): docs/keeper.md 2.7.

Random served teams each receive a control file that is genuine (signed by the pinned
leader, for this keeper and folder) or not (signed by another key, or for another
folder); the keeper judges each file as its reconciler does and decides its Syncthing
configuration. The properties are checked against independent statements of what the
genuine files say, and the decided actions are applied to a model of Syncthing's
configuration to check that deciding again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from karmad import deviceid
from karmad.domain import folder_id
from karmad.keeper import hold as h
from karmad.keeper.control import Control, ControlFolder, sign_control
from karmad.keeper.plan import HeldKind, keeper_folder_id, neutral_label
from karmad.sync.model import DeviceConfig, FolderConfig, FolderType
from karmad.trust import keys
from tests.support.identities import made_identity

NOW = datetime(2026, 6, 1, tzinfo=UTC)
LEADER = keys.device_key_from_pem(*made_identity("ecdsa-p384"))
OTHER = keys.device_key_from_pem(*made_identity("ed25519"))
KEEPER = deviceid.from_bytes(b"\x07" * 32)
FOLDERS = Path("/srv/keeper/state/folders")
edit = msgspec.structs.replace
"""A changed copy of a control file (msgspec structs), as a leader would write it."""
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

device_ids = (
    st.binary(min_size=32, max_size=32).map(deviceid.from_bytes).filter(lambda d: d != KEEPER)
)
team_ids = st.text("abcdefghijklmnopqrstuvwxyz", min_size=26, max_size=26)


@dataclass(frozen=True)
class Case:
    team: str
    folder: str
    control: Control
    data: bytes
    genuine: bool


def _control(draw: st.DrawFn, team: str, seq: int, members: list[str]) -> Control:
    keeper_folder = keeper_folder_id(team)
    content = []
    for owner in [LEADER.device_id, *members]:
        readers = draw(st.lists(st.sampled_from([LEADER.device_id, *members]), unique=True))
        content.append(
            ControlFolder(
                id=folder_id(team, owner),
                kind=HeldKind.CONTENT,
                devices=sorted(readers),
                generation=draw(st.integers(1, 3)),
                repair=draw(st.integers(0, 2)),
            )
        )
    return Control(
        seq=seq,
        leader=LEADER.device_id,
        keeper=KEEPER,
        epoch=3,
        folders=[
            ControlFolder(
                id=keeper_folder,
                kind=HeldKind.CONTROL,
                devices=sorted([LEADER.device_id, *members]),
            ),
            *content,
        ],
    )


@st.composite
def cases(draw: st.DrawFn) -> list[Case]:
    out = []
    for team in draw(st.lists(team_ids, min_size=1, max_size=3, unique=True)):
        members = draw(st.lists(device_ids, max_size=4, unique=True))
        control = _control(draw, team, draw(st.integers(1, 50)), members)
        folder = keeper_folder_id(team)
        how = draw(st.sampled_from(["genuine", "other-key", "other-folder"]))
        if how == "genuine":
            data = sign_control(LEADER, control, folder=folder)
        elif how == "other-key":
            data = sign_control(OTHER, edit(control, leader=OTHER.device_id), folder=folder)
        else:
            data = sign_control(LEADER, control, folder=keeper_folder_id("another " + team))
        out.append(Case(team, folder, control, data, how == "genuine"))
    return out


def _served(case: Case, applied: Control | None = None) -> h.ServedTeam:
    newer, problem = h.judge(
        applied, case.data, folder=case.folder, leader=LEADER.device_id, keeper=KEEPER
    )
    assert (problem is None) == case.genuine or applied is not None
    return h.ServedTeam(case.folder, LEADER.device_id, ("tcp://192.0.2.1:22000",), applied, newer)


def _apply(
    devices: dict[str, DeviceConfig],
    folders: dict[str, FolderConfig],
    actions: tuple[h.Action, ...],
) -> None:
    """What Syncthing's configuration becomes once the executor did `actions`."""
    for action in actions:
        match action:
            case h.PutDevice():
                devices[action.device.device_id] = action.device
            case h.PutFolder() | h.RecreateFolder():
                folders[action.folder.folder_id] = action.folder
            case h.RemoveFolder():
                del folders[action.folder_id]
            case h.RemoveDevice():
                del devices[action.device_id]


@SETTINGS
@given(cases())
def test_the_keeper_holds_exactly_what_the_genuine_control_files_say(cases: list[Case]) -> None:
    teams = [_served(c) for c in cases]
    decided = h.hold(teams, KEEPER, {}, {}, FOLDERS)

    expected: dict[str, tuple[FolderType, frozenset[str]]] = {}
    for case in cases:
        listed = {f.id: f for f in case.control.folders}
        peers = {LEADER.device_id}
        if case.genuine:
            peers |= set(listed[case.folder].devices)
            for f in case.control.folders:
                if f.kind is HeldKind.CONTENT:
                    expected[f.id] = (FolderType.RECEIVEENCRYPTED, frozenset(f.devices))
        expected[case.folder] = (FolderType.RECEIVEONLY, frozenset(peers))
    assert {fid: (f.type, f.devices - {KEEPER}) for fid, f in decided.folders.items()} == expected
    for fid, folder in decided.folders.items():
        assert KEEPER in folder.devices  # Syncthing lists the folder's own device too
        assert folder.passwords == frozenset()  # K never knows a password
        assert folder.label == neutral_label(fid)
        assert Path(folder.path) == FOLDERS / fid
    # Devices: the leaders and whoever a genuine file lists, never K itself.
    wanted = {d for _, peers in expected.values() for d in peers}
    assert set(decided.devices) == wanted
    assert KEEPER not in decided.devices
    for device_id, device in decided.devices.items():
        assert device.name == f"member {device_id[:7]}"
        leader = device_id == LEADER.device_id
        assert device.addresses == (("tcp://192.0.2.1:22000",) if leader else ("dynamic",))
    # From nothing, every folder is added and every peer's connection reset.
    puts = {a.folder.folder_id: a for a in decided.actions if isinstance(a, h.PutFolder)}
    assert puts.keys() == decided.folders.keys()
    for fid, put in puts.items():
        assert put.new_peers == decided.folders[fid].devices - {KEEPER}
    # And done once, nothing remains to do.
    devices: dict[str, DeviceConfig] = {}
    folders: dict[str, FolderConfig] = {}
    _apply(devices, folders, decided.actions)
    assert h.hold(teams, KEEPER, devices, folders, FOLDERS).actions == ()


@SETTINGS
@given(cases(), st.data())
def test_a_refused_control_file_changes_nothing_the_last_applied_one_holds(
    cases: list[Case], data: st.DataObject
) -> None:
    genuine = [c for c in cases if c.genuine]
    applied = {c.folder: c.control for c in genuine}
    teams = [h.ServedTeam(c.folder, LEADER.device_id, (), applied.get(c.folder)) for c in cases]
    devices: dict[str, DeviceConfig] = {}
    folders: dict[str, FolderConfig] = {}
    _apply(devices, folders, h.hold(teams, KEEPER, devices, folders, FOLDERS).actions)
    # Now every team receives a file that must not be believed: forged, moved, or an
    # older genuine one (a replay).
    judged = []
    for case, team in zip(cases, teams, strict=True):
        # A replay is refused only once something newer was applied.
        kinds = ["forged", "replayed"] if team.applied is not None else ["forged"]
        if data.draw(st.sampled_from(kinds)) == "forged":
            bad = sign_control(
                OTHER, edit(case.control, leader=OTHER.device_id), folder=case.folder
            )
        else:
            bad = sign_control(LEADER, edit(case.control, seq=0), folder=case.folder)
        newer, problem = h.judge(
            team.applied, bad, folder=case.folder, leader=LEADER.device_id, keeper=KEEPER
        )
        assert newer is None and problem is not None
        judged.append(replace(team, newer=newer))
    assert h.hold(judged, KEEPER, devices, folders, FOLDERS).actions == ()


@SETTINGS
@given(cases(), st.lists(device_ids, max_size=3, unique=True), st.data())
def test_devices_and_folders_no_control_file_lists_are_removed(
    cases: list[Case], strangers: list[str], data: st.DataObject
) -> None:
    teams = [_served(c) for c in cases]
    devices: dict[str, DeviceConfig] = {}
    folders: dict[str, FolderConfig] = {}
    _apply(devices, folders, h.hold(teams, KEEPER, devices, folders, FOLDERS).actions)
    # Left over from a team K no longer serves, or a member removed from every team.
    leftover = folder_id("z" * 26, LEADER.device_id)
    folders[leftover] = FolderConfig(
        leftover, "x", str(FOLDERS / leftover), FolderType.RECEIVEENCRYPTED, frozenset({KEEPER})
    )
    for stranger in strangers:
        devices[stranger] = DeviceConfig(stranger, h.device_name(stranger))
    # A device the operator added by hand (not named by karmad) is not karmad's to remove.
    own = data.draw(device_ids.filter(lambda d: d not in devices))
    devices[own] = DeviceConfig(own, "backup-nas")
    # The last team stops listing anything but its keeper folder (a dissolution).
    last = cases[-1]
    if last.genuine:
        only = edit(
            last.control,
            seq=last.control.seq + 1,
            folders=[f for f in last.control.folders if f.kind is HeldKind.CONTROL],
        )
        teams[-1] = replace(teams[-1], applied=teams[-1].control, newer=only)
    decided = h.hold(teams, KEEPER, devices, folders, FOLDERS)
    removed_devices = {a.device_id for a in decided.actions if isinstance(a, h.RemoveDevice)}
    removed_folders = {a.folder_id for a in decided.actions if isinstance(a, h.RemoveFolder)}
    assert removed_devices == {d for d, c in devices.items() if c.name.startswith("member ")} - set(
        decided.devices
    )
    assert own not in removed_devices
    assert set(strangers) - set(decided.devices) <= removed_devices
    assert removed_folders == set(folders) - set(decided.folders)
    assert leftover in removed_folders


@SETTINGS
@given(cases(), st.data())
def test_a_new_password_generation_or_repair_recreates_exactly_those_folders(
    cases: list[Case], data: st.DataObject
) -> None:
    genuine = [c for c in cases if c.genuine]
    teams = [h.ServedTeam(c.folder, LEADER.device_id, (), c.control) for c in genuine]
    devices: dict[str, DeviceConfig] = {}
    folders: dict[str, FolderConfig] = {}
    _apply(devices, folders, h.hold(teams, KEEPER, devices, folders, FOLDERS).actions)
    bumped: set[str] = set()
    newer_teams = []
    for team in teams:
        assert team.applied is not None
        entries = []
        for entry in team.applied.folders:
            bump = data.draw(st.sampled_from(["none", "generation", "repair"]))
            if entry.kind is HeldKind.CONTENT and bump == "generation":
                entry = edit(entry, generation=entry.generation + 1)  # noqa: PLW2901
            elif entry.kind is HeldKind.CONTENT and bump == "repair":
                entry = edit(entry, repair=entry.repair + 1)  # noqa: PLW2901
            else:
                entries.append(entry)
                continue
            bumped.add(entry.id)
            entries.append(entry)
        newer = edit(team.applied, seq=team.applied.seq + 1, epoch=4, folders=entries)
        newer_teams.append(replace(team, newer=newer))
    decided = h.hold(newer_teams, KEEPER, devices, folders, FOLDERS)
    recreated = {a.folder.folder_id for a in decided.actions if isinstance(a, h.RecreateFolder)}
    assert recreated == bumped
    assert [a for a in decided.actions if not isinstance(a, h.RecreateFolder)] == []
    # Once applied, the same control file recreates nothing again.
    settled = [replace(t, applied=t.newer, newer=None) for t in newer_teams]
    _apply(devices, folders, decided.actions)
    assert h.hold(settled, KEEPER, devices, folders, FOLDERS).actions == ()


@SETTINGS
@given(cases(), st.data())
def test_the_keeper_re_creates_only_its_own_damaged_content_folders(
    cases: list[Case], data: st.DataObject
) -> None:
    teams = [_served(c) for c in cases]
    devices: dict[str, DeviceConfig] = {}
    folders: dict[str, FolderConfig] = {}
    _apply(devices, folders, h.hold(teams, KEEPER, devices, folders, FOLDERS).actions)
    unknown = folder_id("y" * 26, LEADER.device_id)
    damaged = data.draw(st.sets(st.sampled_from([*sorted(folders), unknown])))
    decided = h.hold(teams, KEEPER, devices, folders, FOLDERS, dict.fromkeys(damaged, "lost"))
    recreated = {a.folder.folder_id for a in decided.actions if isinstance(a, h.RecreateFolder)}
    content = {f for f, c in folders.items() if c.type is FolderType.RECEIVEENCRYPTED}
    assert recreated == damaged & content
    assert all(isinstance(a, h.RecreateFolder) for a in decided.actions)


def test_a_folder_two_teams_list_is_held_for_the_team_served_first() -> None:
    first, second = "a" * 26, "b" * 26
    shared = folder_id(first, LEADER.device_id)
    intruder = deviceid.from_bytes(b"\x09" * 32)
    member = deviceid.from_bytes(b"\x0a" * 32)

    def control(team: str, readers: list[str]) -> Control:
        return Control(
            seq=1,
            leader=LEADER.device_id,
            keeper=KEEPER,
            epoch=1,
            folders=[
                ControlFolder(id=keeper_folder_id(team), kind=HeldKind.CONTROL, devices=readers),
                ControlFolder(id=shared, kind=HeldKind.CONTENT, devices=readers, generation=1),
            ],
        )

    teams = [
        h.ServedTeam(keeper_folder_id(first), LEADER.device_id, (), control(first, [member])),
        h.ServedTeam(keeper_folder_id(second), LEADER.device_id, (), control(second, [intruder])),
    ]
    decided = h.hold(teams, KEEPER, {}, {}, FOLDERS)
    assert decided.folders[shared].devices == {KEEPER, member}
    assert decided.owners[shared] == keeper_folder_id(first)
    assert decided.conflicts == {keeper_folder_id(second): [shared]}


def test_a_folder_of_the_wrong_type_is_recreated_not_changed_in_place() -> None:
    # Syncthing refuses to change a folder's type to or from receiveencrypted.
    team = "c" * 26
    content = folder_id(team, LEADER.device_id)
    control = Control(
        seq=1,
        leader=LEADER.device_id,
        keeper=KEEPER,
        epoch=1,
        folders=[
            ControlFolder(id=keeper_folder_id(team), kind=HeldKind.CONTROL, devices=[]),
            ControlFolder(
                id=content, kind=HeldKind.CONTENT, devices=[LEADER.device_id], generation=1
            ),
        ],
    )
    served = [h.ServedTeam(keeper_folder_id(team), LEADER.device_id, (), control)]
    wrong = FolderConfig(
        content,
        neutral_label(content),
        str(FOLDERS / content),
        FolderType.SENDRECEIVE,
        frozenset({KEEPER, LEADER.device_id}),
    )
    decided = h.hold(served, KEEPER, {}, {content: wrong}, FOLDERS)
    assert [a for a in decided.actions if isinstance(a, h.RecreateFolder)] == [
        h.RecreateFolder(decided.folders[content], "type sendreceive -> receiveencrypted")
    ]
