"""From (desired, observed) to the actions that make them equal: a pure function.

No I/O, no clock. Applying the returned actions to `observed` and planning again yields
nothing (the property tests check it), so an idle reconcile cycle writes nothing.
Actions come out in an order that is safe to execute: devices before the folders that
reference them, folder removals before device removals, state files after their folder.

A device new to Syncthing is added without an address to dial and given its addresses
(`ConnectDevice`) only once its folders, their ignore patterns and our state files are in
place, so that its first connection finds everything it will exchange already there.
Syncthing 1.19 closes a connection that comes up while a folder shared with that device
is still being added (an index for a folder it does not run yet), both sides then redial
at once, and two crossing dials can stall for 20 s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from karmad.domain import is_folder_id
from karmad.sync.model import (
    DIAL_LATER,
    Desired,
    DeviceConfig,
    FolderConfig,
    FolderType,
    Observed,
)
from karmad.sync.statefile import StateFile


@dataclass(frozen=True, slots=True)
class AddDevice:
    device: DeviceConfig


@dataclass(frozen=True, slots=True)
class UpdateDeviceAddresses:
    device_id: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConnectDevice:
    """Give a device added in the same plan its addresses: Syncthing dials it at once."""

    device_id: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PutFolder:
    folder: FolderConfig


@dataclass(frozen=True, slots=True)
class SetIgnores:
    folder_id: str
    patterns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RevertInbox:
    """Discard local changes in an inbox so that it equals its owner's folder again."""

    folder_id: str


@dataclass(frozen=True, slots=True)
class WriteState:
    folder_id: str
    team_id: str
    body: StateFile
    digest: str


@dataclass(frozen=True, slots=True)
class RemoveFolder:
    folder_id: str


@dataclass(frozen=True, slots=True)
class RemoveDevice:
    device_id: str


Action = (
    AddDevice
    | UpdateDeviceAddresses
    | ConnectDevice
    | PutFolder
    | SetIgnores
    | RevertInbox
    | WriteState
    | RemoveFolder
    | RemoveDevice
)


def folder_path(folders_dir: str, folder_id: str) -> str:
    """The only way a folder id becomes a path: validated against a strict pattern first."""
    if not is_folder_id(folder_id):
        raise ValueError(f"refusing to make a path from folder id {folder_id!r}")
    return str(PurePosixPath(folders_dir) / folder_id)


def plan(desired: Desired, observed: Observed, folders_dir: str) -> list[Action]:
    adds: list[Action] = []
    updates: list[Action] = []
    puts: list[Action] = []
    ignores: list[Action] = []
    reverts: list[Action] = []
    states: list[Action] = []
    connects: list[Action] = []
    folder_removals: list[Action] = []
    device_removals: list[Action] = []

    for device_id in sorted(desired.devices):
        want = desired.devices[device_id]
        have = observed.devices.get(device_id)
        if have is None:
            if want.addresses == DIAL_LATER:
                adds.append(AddDevice(want))
            else:
                adds.append(AddDevice(replace(want, addresses=DIAL_LATER)))
                connects.append(ConnectDevice(device_id, want.addresses))
        elif (
            device_id in observed.managed_devices
            and want.addresses != DIAL_LATER
            and set(want.addresses) != set(have.addresses)
        ):
            updates.append(UpdateDeviceAddresses(device_id, want.addresses))

    for fid in sorted(desired.folders):
        want_folder = desired.folders[fid]
        config = FolderConfig(
            folder_id=fid,
            label=want_folder.label,
            path=folder_path(folders_dir, fid),
            type=want_folder.type,
            devices=want_folder.devices,
        )
        have_folder = observed.folders.get(fid)
        if have_folder is None or (
            have_folder.type != config.type
            or have_folder.devices != config.devices
            or have_folder.path != config.path
            or have_folder.label != config.label
        ):
            puts.append(PutFolder(config))
        if observed.ignores.get(fid) != want_folder.ignores:
            ignores.append(SetIgnores(fid, want_folder.ignores))
        if (
            want_folder.type is FolderType.RECEIVEONLY
            and fid in observed.locally_changed
            and have_folder is not None
            and have_folder.type is FolderType.RECEIVEONLY
        ):
            reverts.append(RevertInbox(fid))

    for fid in sorted(desired.states):
        want_state = desired.states[fid]
        if observed.state_digests.get(fid) != want_state.digest:
            states.append(WriteState(fid, want_state.team_id, want_state.body, want_state.digest))

    for fid in sorted(desired.removable_folders):
        if fid in observed.folders and fid not in desired.folders:
            folder_removals.append(RemoveFolder(fid))

    for device_id in sorted(desired.removable_devices):
        if (
            device_id in observed.devices
            and device_id in observed.managed_devices
            and device_id not in desired.devices
        ):
            device_removals.append(RemoveDevice(device_id))

    return [
        *adds,
        *updates,
        *puts,
        *ignores,
        *reverts,
        *states,
        *connects,
        *folder_removals,
        *device_removals,
    ]


def apply(observed: Observed, actions: list[Action]) -> Observed:
    """What Syncthing (and our caches) look like after the actions succeed.

    The executor's contract, as a pure model: used by the property tests, and by the
    reconciler to predict the next observation without reading it back.
    """
    devices = dict(observed.devices)
    folders = dict(observed.folders)
    ignores = dict(observed.ignores)
    digests = dict(observed.state_digests)
    managed = set(observed.managed_devices)
    changed = set(observed.locally_changed)
    for action in actions:
        if isinstance(action, AddDevice):
            devices[action.device.device_id] = action.device
            managed.add(action.device.device_id)
        elif isinstance(action, UpdateDeviceAddresses | ConnectDevice):
            devices[action.device_id] = replace(
                devices[action.device_id], addresses=action.addresses
            )
        elif isinstance(action, PutFolder):
            fid = action.folder.folder_id
            previous = folders.get(fid)
            if previous is None or previous.type != action.folder.type:
                changed.discard(fid)  # a report about another kind of folder: wait for anew
            folders[fid] = action.folder
        elif isinstance(action, SetIgnores):
            ignores[action.folder_id] = action.patterns
        elif isinstance(action, RevertInbox):
            changed.discard(action.folder_id)
        elif isinstance(action, WriteState):
            digests[action.folder_id] = action.digest
        elif isinstance(action, RemoveFolder):
            folders.pop(action.folder_id, None)
            changed.discard(action.folder_id)
            ignores.pop(action.folder_id, None)
            digests.pop(action.folder_id, None)
        elif isinstance(action, RemoveDevice):
            devices.pop(action.device_id, None)
            managed.discard(action.device_id)
            for fid, folder in list(folders.items()):
                if action.device_id in folder.devices:
                    folders[fid] = replace(folder, devices=folder.devices - {action.device_id})
    return Observed(
        devices=devices,
        folders=folders,
        ignores=ignores,
        state_digests=digests,
        managed_devices=frozenset(managed),
        locally_changed=frozenset(changed),
    )


__all__ = [
    "Action",
    "AddDevice",
    "ConnectDevice",
    "FolderType",
    "PutFolder",
    "RemoveDevice",
    "RemoveFolder",
    "RevertInbox",
    "SetIgnores",
    "UpdateDeviceAddresses",
    "WriteState",
    "apply",
    "folder_path",
    "plan",
]
