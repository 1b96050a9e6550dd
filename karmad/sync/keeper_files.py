"""The leader's `keys` and `control` files as bytes, and a member's reading of `keys`.

Sealing and signing happen here, at write time, because sealing is randomised: the
planner compares `KeeperFiles.digest`, never the bytes. docs/keeper.md 2.5 and 2.7.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from karmad.keeper import control as kc
from karmad.sync.model import KeeperFiles
from karmad.trust import wrap
from karmad.trust.keys import DeviceKey


def render(
    key: DeviceKey, files: KeeperFiles, keys_seq: int, control_seq: int
) -> tuple[bytes, bytes]:
    """(`keys`, `control`) signed by `key`, with these sequence numbers."""
    sealed = []
    for r in files.recipients:
        if r.sealing_key is not None:
            sealed.append(
                wrap.seal_for_key(
                    r.sealing_key,
                    files.secret,
                    scope=files.folder_id,
                    device=r.device_id,
                    epoch=files.epoch,
                )
            )
        elif r.join_secret is not None:
            sealed.append(
                wrap.seal_for_join(
                    r.join_secret,
                    files.secret,
                    scope=files.folder_id,
                    device=r.device_id,
                    epoch=files.epoch,
                )
            )
    keys = kc.Keys(seq=keys_seq, epoch=files.epoch, sealed=sealed)
    control = msgspec.structs.replace(files.control, seq=control_seq)
    return (
        kc.sign_keys(key, keys, folder=files.folder_id),
        kc.sign_control(key, control, folder=files.folder_id),
    )


@dataclass(frozen=True, slots=True)
class Opened:
    epoch: int
    """The newest epoch the key file announces."""
    secret: bytes | None
    """That epoch's secret, if it was sealed for us and opened."""
    problem: str | None = None

    def __repr__(self) -> str:
        return f"Opened(epoch={self.epoch}, opened={self.secret is not None})"


def open_keys(
    data: bytes,
    *,
    folder: str,
    leader: str,
    me: str,
    sealing_key: wrap.SealingKey | None,
    join_secret: bytes | None,
) -> Opened:
    """The secret the leader sealed for `me` in a `keys` file; raises
    `control.InvalidControl` for a file that is not the leader's."""
    keys = kc.read_keys(data, folder=folder, leader=leader)
    problem = "the key file holds nothing sealed for this device"
    for sealed in keys.sealed:
        if sealed.device != me or sealed.epoch != keys.epoch:
            continue
        try:
            secret = wrap.open_sealed(
                sealed, scope=folder, device=me, join_secret=join_secret, key=sealing_key
            )
        except wrap.CannotOpen as exc:
            problem = str(exc)
            continue
        return Opened(keys.epoch, secret)
    return Opened(keys.epoch, None, problem)
