"""What a keeper holds: a pure function from the teams it serves to its Syncthing config.

Inputs are only what the keeper may trust: per served team the leader it pinned when its
operator consented (`karmactl keeper serve`) with the addresses from that code, and the
control files that verified against that leader (the one applied, and a newer one if one
arrived). Out come the devices and folders K must have and the actions that get there.
No I/O: the executor (`karmad.keeper.executor`) does what this decides.

- Devices: every leader, and every device a control file lists, named `member <first 7
  characters of its ID>` (K never learns a name, and its config must not invent one); a
  leader is dialled at the addresses of its code, everyone else is `dynamic`.
- The keeper folder of each team: `receiveonly`, plaintext, shared with the leader and
  the devices its CONTROL entry lists.
- Each CONTENT folder: `receiveencrypted`, shared with exactly the devices listed. K
  sets no password: Syncthing binds the folder to the password of the first peer that
  sends it data, which is why a new password generation (or a repair the leader asks
  for) makes K re-create the folder empty.
- REPORT folders are not held yet: this version writes no report.
- Every `karma-` folder and every `member …` device no served team needs is removed.

One folder claimed by two served teams is held for the team served first only: a leader
must not be able to widen who receives another team's ciphertext by listing its folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from karmad.keeper.control import Control, ControlFolder, InvalidControl, read_control
from karmad.keeper.plan import HeldKind, neutral_label
from karmad.paths import managed_folder
from karmad.sync.model import DeviceConfig, FolderConfig, FolderType

DEVICE_NAME_PREFIX = "member "
"""Every device a keeper adds carries this name; only such devices are ever removed."""


def device_name(device_id: str) -> str:
    return f"{DEVICE_NAME_PREFIX}{device_id[:7]}"


@dataclass(frozen=True, slots=True)
class ServedTeam:
    folder_id: str
    """The team's keeper folder."""
    leader: str
    leader_addresses: tuple[str, ...]
    applied: Control | None
    """The control file in effect (what K was last made to hold)."""
    newer: Control | None = None
    """A control file that verified and is newer than `applied`: it takes effect now."""

    @property
    def control(self) -> Control | None:
        return self.newer if self.newer is not None else self.applied


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class PutDevice:
    device: DeviceConfig


@dataclass(frozen=True, slots=True)
class PutFolder:
    folder: FolderConfig
    new_peers: frozenset[str]
    """Peers the folder is newly shared with: paused and resumed after the change, or
    they send nothing on the live connection (Syncthing #8278)."""


@dataclass(frozen=True, slots=True)
class RecreateFolder:
    """Delete the folder, wipe its directory, add it again; then reset every peer's
    connection. For a new password generation, a repair, or a type Syncthing cannot
    change in place."""

    folder: FolderConfig
    reason: str


@dataclass(frozen=True, slots=True)
class RemoveFolder:
    folder_id: str


@dataclass(frozen=True, slots=True)
class RemoveDevice:
    device_id: str


Action = PutDevice | PutFolder | RecreateFolder | RemoveFolder | RemoveDevice


@dataclass(frozen=True, slots=True)
class Hold:
    devices: dict[str, DeviceConfig]
    folders: dict[str, FolderConfig]
    owners: dict[str, str]
    """Folder ID -> the keeper folder of the team it is held for."""
    actions: tuple[Action, ...]
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    """Keeper folder -> folder IDs its control lists that another team already holds."""


def judge(
    applied: Control | None, data: bytes | None, *, folder: str, leader: str, keeper: str
) -> tuple[Control | None, str | None]:
    """What to make of the control file `data` found in keeper folder `folder`: (a newer
    control to apply now, or None; the problem to record, or None).

    `leader` is the device pinned when the operator consented, `keeper` this keeper's
    own ID: both from the keeper's records, never from the file. Only a file that
    verifies and is newer than `applied` is ever returned.
    """
    if data is None:
        return None, None
    try:
        control = read_control(data, folder=folder, leader=leader, keeper=keeper)
    except InvalidControl as exc:
        return None, f"control file refused: {exc}"
    if applied is None or control.seq > applied.seq:
        return control, None
    if control == applied:
        return None, None
    return None, (
        f"control file refused: sequence number {control.seq} is not newer than the "
        f"{applied.seq} applied"
    )


def _listed(control: Control | None) -> Iterable[ControlFolder]:
    if control is None:
        return ()
    return (f for f in control.folders if f.kind is not HeldKind.REPORT)


def _folder(
    fid: str, kind: FolderType, peers: Iterable[str], me: str, folders_dir: Path
) -> FolderConfig:
    return FolderConfig(
        folder_id=fid,
        label=neutral_label(fid),
        path=str(managed_folder(folders_dir, fid)),
        type=kind,
        devices=frozenset(peers) | {me},
    )


def _counters(control: Control | None, fid: str) -> tuple[int, int] | None:
    for f in _listed(control):
        if f.id == fid and f.kind is HeldKind.CONTENT:
            return f.generation, f.repair
    return None


def hold(
    teams: Sequence[ServedTeam],
    me: str,
    devices: Mapping[str, DeviceConfig],
    folders: Mapping[str, FolderConfig],
    folders_dir: Path,
    repairs: Mapping[str, str] | None = None,
) -> Hold:
    """K's desired configuration and the actions from `devices`/`folders` (what Syncthing
    has now: every device but K, every `karma-` folder) to it. `teams` in the order they
    were served (the first claim on a folder wins); `repairs`: content folders K found
    damaged itself (`karmad.keeper.damage`), with why, to re-create."""
    want_folders: dict[str, FolderConfig] = {}
    owners: dict[str, str] = {}
    recreate: dict[str, str] = {}
    conflicts: dict[str, list[str]] = {}
    addresses: dict[str, tuple[str, ...]] = {}
    # Keeper folders first: a content entry of one team can never take another's.
    for team in teams:
        owners[team.folder_id] = team.folder_id
        addresses[team.leader] = team.leader_addresses
    for team in teams:
        control = team.control
        entry = next(
            (f for f in _listed(control) if f.kind is HeldKind.CONTROL), None
        )  # read_control guarantees it names this team's keeper folder
        peers = {team.leader, *(entry.devices if entry else ())}
        want_folders[team.folder_id] = _folder(
            team.folder_id, FolderType.RECEIVEONLY, peers, me, folders_dir
        )
        for f in _listed(control):
            if f.kind is not HeldKind.CONTENT:
                continue
            if owners.get(f.id, team.folder_id) != team.folder_id:
                conflicts.setdefault(team.folder_id, []).append(f.id)
                continue
            owners[f.id] = team.folder_id
            want_folders[f.id] = _folder(
                f.id, FolderType.RECEIVEENCRYPTED, f.devices, me, folders_dir
            )
            before = _counters(team.applied, f.id)
            if team.newer is not None and before is not None:
                if f.generation > before[0]:
                    recreate[f.id] = f"password generation {before[0]} -> {f.generation}"
                elif f.repair > before[1]:
                    recreate[f.id] = f"repair {before[1]} -> {f.repair}"

    for fid, reason in (repairs or {}).items():
        if fid in want_folders and want_folders[fid].type is FolderType.RECEIVEENCRYPTED:
            recreate.setdefault(fid, f"lost data: {reason}")

    want_devices: dict[str, DeviceConfig] = {}
    for folder in want_folders.values():
        for device in sorted(folder.devices - {me}):
            want_devices[device] = DeviceConfig(
                device, device_name(device), addresses.get(device) or ("dynamic",)
            )

    actions: list[Action] = []
    for device_id, config in sorted(want_devices.items()):
        if devices.get(device_id) != config:
            actions.append(PutDevice(config))
    for fid, folder in sorted(want_folders.items()):
        have = folders.get(fid)
        if have is not None and have.type != folder.type:
            recreate.setdefault(fid, f"type {have.type.value} -> {folder.type.value}")
        if have is not None and fid in recreate:
            actions.append(RecreateFolder(folder, recreate[fid]))
        elif have is None or _differs(have, folder):
            shared = frozenset[str]() if have is None else have.devices
            actions.append(PutFolder(folder, folder.devices - shared - {me}))
    actions.extend(RemoveFolder(fid) for fid in sorted(folders.keys() - want_folders.keys()))
    actions.extend(
        RemoveDevice(device_id)
        for device_id, have in sorted(devices.items())
        if device_id not in want_devices and have.name.startswith(DEVICE_NAME_PREFIX)
    )
    return Hold(want_devices, want_folders, owners, tuple(actions), conflicts)


def _differs(have: FolderConfig, want: FolderConfig) -> bool:
    return (
        have.devices != want.devices
        or have.path != want.path
        or have.label != want.label
        or bool(have.passwords)
    )
