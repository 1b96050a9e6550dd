"""From (desired, observed) to the actions that make them equal: a pure function.

No I/O, no clock. Applying the returned actions to `observed` and planning again yields
nothing (the property tests check it), so an idle reconcile cycle writes nothing.
Actions come out in an order that is safe to execute: devices before the folders that
reference them, a purge after its inbox's ignore patterns, folder removals before device
removals, state files after their folder.

A device new to Syncthing is added without an address to dial and given its addresses
(`ConnectDevice`) only once its folders, their ignore patterns and our state files are in
place, so that its first connection finds everything it will exchange already there.
Syncthing 1.19 closes a connection that comes up while a folder shared with that device
is still being added (an index for a folder it does not run yet), both sides then redial
at once, and two crossing dials can stall for 20 s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from karmad.paths import managed_folder
from karmad.sync.model import (
    DIAL_LATER,
    Desired,
    DeviceConfig,
    FolderConfig,
    FolderType,
    KeeperFiles,
    Observed,
    Offer,
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
class OverrideOwnFolder:
    """Restore our version of our own send-only folder where another device changed it:
    only its owner writes there, whatever a relay let through."""

    folder_id: str


@dataclass(frozen=True, slots=True)
class WriteState:
    folder_id: str
    team_id: str
    body: StateFile
    digest: str


@dataclass(frozen=True, slots=True)
class WriteKeeperFiles:
    """Seal, sign and write `keys` and `control` in a team's keeper folder (leader)."""

    files: KeeperFiles


@dataclass(frozen=True, slots=True)
class PurgeReceived:
    """Delete what an inbox received for a project the user declined with `--purge`.

    Planned only once the inbox no longer admits the project, and executed only after
    its ignore patterns are in place, so Syncthing never sees the deletion and nothing it
    tracks is touched."""

    folder_id: str
    project_key: str


@dataclass(frozen=True, slots=True)
class DismissOffer:
    """Make Syncthing forget an offer the user dismissed."""

    offer: Offer


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
    | OverrideOwnFolder
    | WriteState
    | WriteKeeperFiles
    | PurgeReceived
    | DismissOffer
    | RemoveFolder
    | RemoveDevice
)


def plan(desired: Desired, observed: Observed, folders_dir: Path) -> list[Action]:
    adds, updates, connects = _devices(desired, observed)
    puts, ignores, reverts = _folders(desired, observed, folders_dir)
    overrides = _overrides(desired, observed)
    return [
        *adds,
        *updates,
        *puts,
        *ignores,
        *reverts,
        *overrides,
        *_states(desired, observed),
        *[
            WriteKeeperFiles(files)
            for fid, files in sorted(desired.keeper_files.items())
            if observed.keeper_digests.get(fid) != files.digest
        ],
        *connects,
        *_purges(desired, observed),
        *[DismissOffer(o) for o in sorted(desired.dismissed) if o in observed.offers],
        *[
            RemoveFolder(fid)
            for fid in sorted(desired.removable_folders)
            if fid in observed.folders and fid not in desired.folders
        ],
        *[
            RemoveDevice(device_id)
            for device_id in sorted(desired.removable_devices)
            if device_id in observed.devices
            and device_id in observed.managed_devices
            and device_id not in desired.devices
        ],
    ]


def _devices(
    desired: Desired, observed: Observed
) -> tuple[list[Action], list[Action], list[Action]]:
    adds: list[Action] = []
    updates: list[Action] = []
    connects: list[Action] = []
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
    return adds, updates, connects


def _folders(
    desired: Desired, observed: Observed, folders_dir: Path
) -> tuple[list[Action], list[Action], list[Action]]:
    puts: list[Action] = []
    ignores: list[Action] = []
    reverts: list[Action] = []
    for fid in sorted(desired.folders):
        want = desired.folders[fid]
        config = FolderConfig(
            folder_id=fid,
            label=want.label,
            path=str(managed_folder(folders_dir, fid)),
            type=want.type,
            devices=want.devices,
            passwords=want.passwords,
        )
        have = observed.folders.get(fid)
        if have is None or (
            have.type != config.type
            or have.devices != config.devices
            or have.passwords != config.passwords
            or have.path != config.path
            or have.label != config.label
        ):
            puts.append(PutFolder(config))
        if observed.ignores.get(fid) != want.ignores:
            ignores.append(SetIgnores(fid, want.ignores))
        if (
            want.type is FolderType.RECEIVEONLY
            and fid in observed.locally_changed
            and have is not None
            and have.type is FolderType.RECEIVEONLY
        ):
            reverts.append(RevertInbox(fid))
    return puts, ignores, reverts


def _overrides(desired: Desired, observed: Observed) -> list[Action]:
    """Only a folder that is ours to send from, in Syncthing as in the plan: overriding
    anything else would push our copy over its owner's."""
    overrides: list[Action] = []
    for fid in sorted(observed.foreign_changes):
        want = desired.folders.get(fid)
        have = observed.folders.get(fid)
        if (
            want is not None
            and want.type is FolderType.SENDONLY
            and have is not None
            and have.type is FolderType.SENDONLY
        ):
            overrides.append(OverrideOwnFolder(fid))
    return overrides


def _states(desired: Desired, observed: Observed) -> list[Action]:
    return [
        WriteState(fid, want.team_id, want.body, want.digest)
        for fid, want in sorted(desired.states.items())
        if observed.state_digests.get(fid) != want.digest
    ]


def _admitted(desired: Desired) -> dict[str, frozenset[str]]:
    return {i.folder_id: i.project_keys for i in desired.inboxes}


def _purges(desired: Desired, observed: Observed) -> list[Action]:
    """What to delete of the received projects whose purge was asked for: only in an
    inbox of that team that no longer admits the project."""
    admitted = _admitted(desired)
    purges: list[Action] = []
    for fid, key in sorted(observed.received):
        folder = desired.folders.get(fid)
        if (
            folder is not None
            and folder.type is FolderType.RECEIVEONLY
            and (folder.team_id, key) in desired.purges
            and key not in admitted.get(fid, frozenset())
        ):
            purges.append(PurgeReceived(fid, key))
    return purges


def purge_settled(desired: Desired, observed: Observed, team_id: str, project_key: str) -> bool:
    """Whether a purge request is carried out: the team's inboxes ignore the project and
    nothing of it is left in them (`observed` as it is after the cycle's actions)."""
    admitted = _admitted(desired)
    for fid, folder in desired.folders.items():
        if folder.team_id != team_id or folder.type is not FolderType.RECEIVEONLY:
            continue
        if project_key in admitted.get(fid, frozenset()):
            return False
        if observed.ignores.get(fid) != folder.ignores or (fid, project_key) in observed.received:
            return False
    return True


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
    foreign = set(observed.foreign_changes)
    offers = set(observed.offers)
    received = set(observed.received)
    keeper_digests = dict(observed.keeper_digests)
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
                foreign.discard(fid)
            folders[fid] = action.folder
        elif isinstance(action, SetIgnores):
            ignores[action.folder_id] = action.patterns
        elif isinstance(action, RevertInbox):
            changed.discard(action.folder_id)
        elif isinstance(action, OverrideOwnFolder):
            foreign.discard(action.folder_id)
        elif isinstance(action, WriteState):
            digests[action.folder_id] = action.digest
        elif isinstance(action, WriteKeeperFiles):
            keeper_digests[action.files.folder_id] = action.files.digest
        elif isinstance(action, PurgeReceived):
            received.discard((action.folder_id, action.project_key))
        elif isinstance(action, DismissOffer):
            offers.discard(action.offer)
        elif isinstance(action, RemoveFolder):
            folders.pop(action.folder_id, None)
            changed.discard(action.folder_id)
            foreign.discard(action.folder_id)
            ignores.pop(action.folder_id, None)
            digests.pop(action.folder_id, None)
            keeper_digests.pop(action.folder_id, None)
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
        foreign_changes=frozenset(foreign),
        offers=frozenset(offers),
        received=frozenset(received),
        keeper_digests=keeper_digests,
    )


__all__ = [
    "Action",
    "AddDevice",
    "ConnectDevice",
    "DismissOffer",
    "FolderType",
    "OverrideOwnFolder",
    "PurgeReceived",
    "PutFolder",
    "RemoveDevice",
    "RemoveFolder",
    "RevertInbox",
    "SetIgnores",
    "UpdateDeviceAddresses",
    "WriteKeeperFiles",
    "WriteState",
    "apply",
    "plan",
    "purge_settled",
]
