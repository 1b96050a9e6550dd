"""The leader's two signed files in a team's keeper folder: `control` and `keys`.

`control` is for the keeper, which reads it in plaintext: the folders to hold, the device
IDs to share each with, the password generation of each, the leader's and the keeper's
device IDs, and whether the team is dissolved. Nothing else: no team ID, team name,
member tag, project, address or label, so K learns the team's shape and nothing of what
it is about.

`keys` is for members: the current epoch's secret sealed for each reader
(`karmad.trust.wrap`). K can read it too and learns device IDs and an epoch number.

Both are signed by the leader (`karmad.trust.signed`), bound to the keeper folder and
their names, and carry a sequence number that readers never let go backwards.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from karmad import codec, deviceid
from karmad.domain import is_folder_id
from karmad.keeper.plan import HeldFolder, HeldKind, KeeperPlan, neutral_label
from karmad.trust import signed
from karmad.trust.keys import BadSignature, DeviceKey
from karmad.trust.wrap import Sealed

FORMAT = 1
CONTROL_NAME = "control"
KEYS_NAME = "keys"
MAX_BYTES = 1 << 20
CONTROL_KIND = "keeper-control"
KEYS_KIND = "keeper-keys"


class InvalidControl(ValueError):
    """A control or key file that must not be acted on; the message says why."""


class _Wire(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Unknown fields are tolerated: a newer leader may add some."""


class ControlFolder(_Wire, kw_only=True):
    id: str
    kind: HeldKind
    devices: list[str]
    generation: int = 0
    repair: int = 0
    """Grows when members report that K serves corrupt data of this folder (errors K
    cannot see itself): K then re-creates the folder and refills it."""


class Control(_Wire, kw_only=True):
    format: int = FORMAT
    seq: int
    leader: str
    keeper: str
    epoch: int
    dissolved: bool = False
    folders: list[ControlFolder] = msgspec.field(default_factory=list)


class Keys(_Wire, kw_only=True):
    format: int = FORMAT
    seq: int
    epoch: int
    sealed: list[Sealed] = msgspec.field(default_factory=list)


def control_of(plan: KeeperPlan, seq: int, repairs: Mapping[str, int] | None = None) -> Control:
    """The control file for `plan`; `repairs` are the leader's repair counters per folder
    (kept by the leader, not derived from the roster)."""
    repairs = repairs or {}
    return Control(
        seq=seq,
        leader=plan.leader,
        keeper=plan.keeper,
        epoch=plan.epoch,
        dissolved=plan.dissolved,
        folders=[
            ControlFolder(
                id=f.folder_id,
                kind=f.kind,
                devices=sorted(f.devices),
                generation=f.generation,
                repair=repairs.get(f.folder_id, 0),
            )
            for f in sorted(plan.held.values(), key=lambda f: f.folder_id)
        ],
    )


def held_of(control: Control) -> dict[str, HeldFolder]:
    """What the keeper must hold, from a validated control file."""
    return {
        f.id: HeldFolder(f.id, f.kind, frozenset(f.devices), f.generation, neutral_label(f.id))
        for f in control.folders
    }


def sign_control(key: DeviceKey, control: Control, *, folder: str) -> bytes:
    return signed.sign(
        key, codec.encode_json(control), kind=CONTROL_KIND, folder=folder, path=CONTROL_NAME
    )


def sign_keys(key: DeviceKey, keys: Keys, *, folder: str) -> bytes:
    return signed.sign(key, codec.encode_json(keys), kind=KEYS_KIND, folder=folder, path=KEYS_NAME)


def _check_device(value: str, what: str) -> None:
    try:
        canonical = deviceid.parse(value)
    except deviceid.InvalidDeviceId as exc:
        raise InvalidControl(f"{what}: {exc}") from None
    if canonical != value:
        raise InvalidControl(f"{what}: device id not in canonical form")


def _payload(data: bytes, *, kind: str, folder: str, path: str, leader: str) -> bytes:
    if len(data) > MAX_BYTES:
        raise InvalidControl(f"larger than {MAX_BYTES} bytes")
    try:
        return signed.verify_file(data, kind=kind, folder=folder, path=path, owner=leader)
    except BadSignature as exc:
        raise InvalidControl(f"not signed by the leader: {exc}") from None


def read_control(data: bytes, *, folder: str, leader: str, keeper: str) -> Control:
    """Verify and validate a control file that arrived in keeper folder `folder`.

    `leader` and `keeper` come from the reader's own records (the keeper pinned the
    leader's device ID when its operator consented), never from the file.
    """
    payload = _payload(data, kind=CONTROL_KIND, folder=folder, path=CONTROL_NAME, leader=leader)
    try:
        control = codec.decode_json(payload, Control)
    except codec.InvalidData as exc:
        raise InvalidControl(f"not a valid control file: {exc}") from None
    if control.format != FORMAT:
        raise InvalidControl(f"unsupported control format {control.format}")
    if control.leader != leader or control.keeper != keeper:
        raise InvalidControl("written for another leader or keeper")
    if control.seq < 0 or control.epoch < 1:
        raise InvalidControl("negative sequence number or epoch")
    seen: set[str] = set()
    controls = []
    for entry in control.folders:
        if not is_folder_id(entry.id) or entry.id in seen:
            raise InvalidControl("a folder id is malformed or listed twice")
        seen.add(entry.id)
        if entry.generation < 0 or entry.generation > control.epoch:
            raise InvalidControl("a folder's password generation is not a past epoch")
        if entry.repair < 0:
            raise InvalidControl("a negative repair counter")
        for device in entry.devices:
            _check_device(device, "device")
            if device == keeper:
                raise InvalidControl("the keeper is listed as a member of a folder")
        if entry.kind is HeldKind.CONTROL:
            controls.append(entry.id)
    if controls != [folder]:
        raise InvalidControl("the control file does not describe the folder it came in")
    return control


def read_keys(data: bytes, *, folder: str, leader: str) -> Keys:
    payload = _payload(data, kind=KEYS_KIND, folder=folder, path=KEYS_NAME, leader=leader)
    try:
        keys = codec.decode_json(payload, Keys)
    except codec.InvalidData as exc:
        raise InvalidControl(f"not a valid key file: {exc}") from None
    if keys.format != FORMAT:
        raise InvalidControl(f"unsupported key file format {keys.format}")
    if keys.seq < 0 or keys.epoch < 1:
        raise InvalidControl("negative sequence number or epoch")
    return keys
