"""What karmad may send to Syncthing, checked before it is sent.

Syncthing validates little: a folder without a path is stored as `~` and scanned, an
unknown folder type silently becomes `sendreceive`, a DELETE of an unknown ID succeeds.
So every object is checked here and refused with `Rejected(status=None)` instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import PurePosixPath

import msgspec

from karmad.deviceid import InvalidDeviceId
from karmad.deviceid import parse as parse_device_id
from karmad.syncthing import addresses, ids
from karmad.syncthing.errors import Rejected
from karmad.syncthing.models import (
    FOLDER_TYPES,
    DeviceConfig,
    DevicePatch,
    FolderConfig,
    FolderDevice,
    FolderPatch,
    OptionsPatch,
)

MAX_LABEL = 256
COMPRESSION = frozenset({"metadata", "always", "never"})


def _refuse(message: str) -> Rejected:
    return Rejected(message, status=None)


def folder_id(value: str) -> str:
    try:
        return ids.check_folder_id(value)
    except ValueError as exc:
        raise _refuse(str(exc)) from None


def offered_folder_id(value: str) -> str:
    """A folder ID exactly as Syncthing reported a peer's offer of it, to dismiss the offer.

    A peer may offer any ID (`../../etc` too). It is only ever sent back as a query
    parameter, never used as a path or in a URL path, so any non-empty ID can be
    dismissed; refusing the odd ones would leave them pending for ever.
    """
    if not value:
        raise _refuse("an empty folder ID")
    return value


def device_id(value: str) -> str:
    """The canonical form; Syncthing compares IDs as strings in its config."""
    try:
        return parse_device_id(value)
    except InvalidDeviceId as exc:
        raise _refuse(str(exc)) from None


def _text(value: str, what: str) -> str:
    if len(value) > MAX_LABEL or any(ord(c) < 32 for c in value):
        raise _refuse(f"{what}: at most {MAX_LABEL} characters, no control characters")
    return value


def folder_path(value: str) -> str:
    if not value or "\0" in value or not os.path.isabs(value):
        raise _refuse(f"folder path {value[:200]!r} must be absolute")
    if os.path.normpath(value) != value or value == "/":
        raise _refuse(f"folder path {value[:200]!r} must be normalised and not the root")
    return value


def sub_path(value: str) -> str:
    """A path inside a folder, as `POST /rest/db/scan?sub=` takes it."""
    if not value or "\0" in value or value.startswith("/") or "\\" in value:
        raise _refuse(f"scan path {value[:200]!r} must be relative, with '/' separators")
    parts = PurePosixPath(value).parts
    if any(p in ("..", ".") for p in value.split("/")) or not parts:
        raise _refuse(f"scan path {value[:200]!r} must not contain '.' or '..'")
    return str(PurePosixPath(*parts))


def _folder_type(value: str) -> str:
    if value not in FOLDER_TYPES:
        raise _refuse(f"folder type {value[:40]!r}: one of {', '.join(sorted(FOLDER_TYPES))}")
    return value


def _folder_devices(devices: Iterable[FolderDevice]) -> list[FolderDevice]:
    seen: set[str] = set()
    out = []
    for d in devices:
        canonical = device_id(d.device_id)
        if canonical in seen:
            raise _refuse(f"device {canonical} is listed twice")
        seen.add(canonical)
        _text(d.encryption_password, "encryption password")
        out.append(
            FolderDevice(
                device_id=canonical,
                introduced_by=d.introduced_by,
                encryption_password=d.encryption_password,
            )
        )
    return out


def folder(value: FolderConfig) -> FolderConfig:
    folder_id(value.id)
    folder_path(value.path)
    _folder_type(value.type)
    _text(value.label, "folder label")
    if value.filesystem_type != "basic":
        raise _refuse("karmad only configures folders on the basic filesystem")
    if value.rescan_interval_s < 0 or value.fs_watcher_delay_s <= 0:
        raise _refuse("rescan interval must be >= 0 and the watcher delay > 0")
    if value.marker_name != ".stfolder":
        raise _refuse("karmad keeps Syncthing's folder marker `.stfolder`")
    return msgspec.structs.replace(value, devices=_folder_devices(value.devices))


def folder_patch(value: FolderPatch) -> FolderPatch:
    if value.type is not None:
        _folder_type(value.type)
    if value.label is not None:
        _text(value.label, "folder label")
    if value.devices is not None:
        value = msgspec.structs.replace(value, devices=_folder_devices(value.devices))
    if value.rescan_interval_s is not None and value.rescan_interval_s < 0:
        raise _refuse("rescan interval must be >= 0")
    if value.fs_watcher_delay_s is not None and value.fs_watcher_delay_s <= 0:
        raise _refuse("the watcher delay must be > 0")
    return value


def _device_addresses(values: list[str]) -> list[str]:
    if not values:
        raise _refuse("a device needs at least one address (`dynamic` to discover it)")
    for address in values:
        try:
            addresses.check_listen_address(address)
        except ValueError as exc:
            raise _refuse(str(exc)) from None
    return values


def device(value: DeviceConfig) -> DeviceConfig:
    value = msgspec.structs.replace(value, device_id=device_id(value.device_id))
    _text(value.name, "device name")
    _device_addresses(value.addresses)
    if value.compression not in COMPRESSION:
        raise _refuse(f"compression {value.compression!r}: one of {sorted(COMPRESSION)}")
    # Introducers add devices and folders on their own (and make pending devices appear
    # on every peer); karmad's trust model needs every device and folder to be decided
    # by its own reconciler, so these are refused at the seam, whoever asks.
    if value.introducer or value.auto_accept_folders:
        raise _refuse("karmad never configures introducers or auto-accepted folders")
    return value


def device_patch(value: DevicePatch) -> DevicePatch:
    if value.name is not None:
        _text(value.name, "device name")
    if value.addresses is not None:
        _device_addresses(value.addresses)
    return value


def options_patch(value: OptionsPatch) -> OptionsPatch:
    if value.listen_addresses is not None:
        if not value.listen_addresses:
            raise _refuse("at least one listen address is required")
        for address in value.listen_addresses:
            try:
                addresses.check_listen_address(address)
            except ValueError as exc:
                raise _refuse(str(exc)) from None
    return value
