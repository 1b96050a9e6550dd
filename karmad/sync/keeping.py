"""What a team's keeper adds to the desired configuration: a pure function.

docs/keeper.md section 2. Every reader lists the keeper K on each team folder K holds,
with that folder's password of the current epoch, so that K stores it as ciphertext and
serves it to every other reader while its owner is away. The leader also shares the
team's *keeper folder* with K and with every reader: it holds the `control` file (what K
holds, for K) and the `keys` file (the epoch's secret, sealed for each reader).

Labels of every folder of such a team are neutral: Syncthing sends a folder's label to
every device it is shared with, K included.

A member lists K with its passwords only while it holds an epoch and K has not dropped
it (`TeamKeeper.fallback`): a password K no longer follows makes K close the whole
connection, keeper folder included, and the member could never read the new key file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace

from karmad.domain import Team
from karmad.keeper.control import Control, ControlFolder, control_of
from karmad.keeper.epoch import Epoch, folder_password
from karmad.keeper.plan import (
    HeldKind,
    KeeperError,
    KeeperPlan,
    keeper_folder_id,
    neutral_label,
)
from karmad.keeper.plan import plan as keeper_plan
from karmad.sync import statefile
from karmad.sync.model import DesiredFolder, FolderType, KeeperFiles, Recipient, TeamKeeper

KEEPER_NAME = "keeper"
"""How members name the keeper device in their own Syncthing configuration."""


def _digest(control: Control, epoch: int, secret: bytes, recipients: tuple[Recipient, ...]) -> str:
    h = hashlib.sha256()
    for f in control.folders:
        h.update(f"{f.id}\0{f.kind}\0{','.join(f.devices)}\0{f.generation}\0{f.repair}\n".encode())
    h.update(f"{control.leader}\0{control.keeper}\0{control.epoch}\0{control.dissolved}\n".encode())
    h.update(b"%d\0" % epoch + hashlib.sha256(secret).digest())
    for r in recipients:
        h.update(r.device_id.encode() + b"\0")
        h.update(hashlib.sha256(r.sealing_key or b"").digest())
        h.update(hashlib.sha256(r.join_secret or b"").digest())
    return h.hexdigest()


def _listed(folder: DesiredFolder, keeper: str, password: str | None) -> DesiredFolder:
    """`folder` shared with the keeper too (as ciphertext when `password` is set)."""
    passwords = folder.passwords
    if password is not None:
        passwords = frozenset({*passwords, (keeper, password)})
    return replace(folder, devices=folder.devices | {keeper}, passwords=passwords)


def neutralise(folders: dict[str, DesiredFolder], team_id: str) -> None:
    """Every folder of a team with a keeper gets a label that names nothing."""
    for fid, folder in list(folders.items()):
        if folder.team_id == team_id:
            folders[fid] = replace(folder, label=neutral_label(fid))


def epoch_of(keeper: TeamKeeper) -> Epoch | None:
    if keeper.epoch is None or keeper.secret is None:
        return None
    return Epoch(keeper.epoch, keeper.secret, keeper.holders)


def leader(
    folders: dict[str, DesiredFolder],
    me: str,
    record: Team,
    keeper: TeamKeeper,
    sealing_keys: Mapping[str, bytes],
    join_secrets: Mapping[str, bytes],
) -> KeeperFiles | None:
    """Add the keeper to the leader's folders of `record` and return the files to write
    in the keeper folder; None while the epoch is not advanced for this roster (the
    reconciler advances it before computing the desired configuration)."""
    kfid = keeper_folder_id(record.team_id)
    epoch = epoch_of(keeper)
    if keeper.removed_at is not None or epoch is None:
        if keeper.removed_at is None:
            return None
        # Removed: K keeps only the keeper folder, with a control file that holds nothing.
        folders[kfid] = _keeper_folder(kfid, record.team_id, me, frozenset({me, keeper.device_id}))
        control = Control(
            seq=0,
            leader=me,
            keeper=keeper.device_id,
            epoch=max(keeper.epoch or 1, 1),
            folders=[ControlFolder(id=kfid, kind=HeldKind.CONTROL, devices=[])],
        )
        secret = keeper.secret or b""
        return KeeperFiles(
            kfid, record.team_id, control, control.epoch, secret, (), _digest(control, 0, b"", ())
        )
    try:
        kp = keeper_plan(record, keeper.device_id, epoch)
    except KeeperError:
        return None
    if not keeper.fallback:
        _list_on_content(folders, me, kp)
    control_held = kp.held[kfid]
    folders[kfid] = _keeper_folder(kfid, record.team_id, me, control_held.devices | {me})
    folders[kfid] = _listed(folders[kfid], keeper.device_id, None)
    recipients = tuple(
        Recipient(d, sealing_keys.get(d), None if d in sealing_keys else join_secrets.get(d))
        for d in sorted(kp.recipients)
    )
    control = control_of(kp, seq=0)
    return KeeperFiles(
        kfid,
        record.team_id,
        control,
        epoch.number,
        epoch.secret,
        recipients,
        _digest(control, epoch.number, epoch.secret, recipients),
    )


def _list_on_content(folders: dict[str, DesiredFolder], me: str, kp: KeeperPlan) -> None:
    links = kp.links.get(me, {})
    for fid, held in kp.held.items():
        folder = folders.get(fid)
        if folder is None or held.kind is not HeldKind.CONTENT:
            continue
        password = links.get(fid)
        if password is not None:
            folders[fid] = _listed(folder, kp.keeper, password)


def _keeper_folder(fid: str, team_id: str, me: str, devices: frozenset[str]) -> DesiredFolder:
    return DesiredFolder(
        folder_id=fid,
        label=neutral_label(fid),
        type=FolderType.SENDONLY,
        devices=devices,
        ignores=(f"{statefile.TEMP_PREFIX}*",),
        team_id=team_id,
        owner_device=me,
    )


def member(
    folders: dict[str, DesiredFolder],
    me: str,
    team_id: str,
    leader_device: str,
    keeper: TeamKeeper,
) -> None:
    """Add the keeper folder, and the keeper with our passwords on every team folder we
    have that K holds at our epoch, while we are not in fallback."""
    kfid = keeper_folder_id(team_id)
    epoch = epoch_of(keeper)
    generations = None if keeper.generations is None else dict(keeper.generations)
    if epoch is not None and not keeper.fallback:
        for fid, folder in list(folders.items()):
            if folder.team_id != team_id or fid == kfid:
                continue
            if generations is not None and generations.get(fid) != epoch.number:
                continue
            folders[fid] = _listed(folder, keeper.device_id, folder_password(epoch, fid))
    folders[kfid] = DesiredFolder(
        folder_id=kfid,
        label=neutral_label(kfid),
        type=FolderType.RECEIVEONLY,
        devices=frozenset({me, leader_device, keeper.device_id}),
        ignores=(),
        team_id=team_id,
        owner_device=leader_device,
    )
