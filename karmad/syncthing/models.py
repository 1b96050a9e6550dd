"""Typed shapes of every Syncthing REST payload karmad reads or writes.

Decoding tolerates unknown fields (newer Syncthing versions add them) and missing ones
(older versions lack them), so each field has a default. Strings whose set of values grows
between versions (folder types, states) stay `str` here and are checked where karmad
writes them. Names follow Syncthing's camelCase on the wire.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import msgspec

FolderType = Literal["sendreceive", "sendonly", "receiveonly", "receiveencrypted"]
FOLDER_TYPES: Final = frozenset({"sendreceive", "sendonly", "receiveonly", "receiveencrypted"})

EPOCH_YEAR: Final = 1971
"""Syncthing reports "never" as year 1 or as the Unix epoch; anything earlier is unset."""


def when(value: datetime | None) -> datetime | None:
    """A Syncthing timestamp, or None for its "never" placeholders."""
    if value is None or value.year < EPOCH_YEAR:
        return None
    return value


class _Model(msgspec.Struct, rename="camel", kw_only=True):
    pass


# --------------------------------------------------------------------------- system


class SystemVersion(_Model):
    version: str = ""
    long_version: str = ""
    os: str = ""
    arch: str = ""


class ListenerStatus(_Model):
    error: str | None = None
    lan_addresses: list[str] | None = None
    wan_addresses: list[str] | None = None


class SystemStatus(_Model):
    my_id: str = msgspec.field(default="", name="myID")
    start_time: datetime | None = None
    uptime: int = 0
    connection_service_status: dict[str, ListenerStatus] = msgspec.field(default_factory=dict)
    gui_address_used: str = ""


class ConnectionInfo(_Model):
    at: datetime | None = None
    in_bytes_total: int = 0
    out_bytes_total: int = 0
    started_at: datetime | None = None
    connected: bool = False
    paused: bool = False
    address: str = ""
    client_version: str = ""
    type: str = ""


class ConnectionTotal(_Model):
    in_bytes_total: int = 0
    out_bytes_total: int = 0


class Connections(_Model):
    connections: dict[str, ConnectionInfo] = msgspec.field(default_factory=dict)
    total: ConnectionTotal = msgspec.field(default_factory=ConnectionTotal)


class DeviceStats(_Model):
    last_seen: datetime | None = None
    last_connection_duration_s: float = 0.0


# --------------------------------------------------------------------------- config


class DeviceConfig(_Model):
    device_id: str = msgspec.field(name="deviceID")
    name: str = ""
    addresses: list[str] = msgspec.field(default_factory=lambda: ["dynamic"])
    compression: str = "metadata"
    introducer: bool = False
    skip_introduction_removals: bool = False
    introduced_by: str = ""
    paused: bool = False
    allowed_networks: list[str] = msgspec.field(default_factory=list)
    auto_accept_folders: bool = False
    max_send_kbps: int = 0
    max_recv_kbps: int = 0
    max_request_kib: int = msgspec.field(default=0, name="maxRequestKiB")
    untrusted: bool = False
    remote_gui_port: int = msgspec.field(default=0, name="remoteGUIPort")


class FolderDevice(_Model):
    device_id: str = msgspec.field(name="deviceID")
    introduced_by: str = ""
    encryption_password: str = ""


class FolderConfig(_Model):
    """A folder as karmad configures it; fields it never sets keep Syncthing's defaults."""

    id: str
    path: str
    type: str = "sendreceive"
    label: str = ""
    filesystem_type: str = "basic"
    devices: list[FolderDevice] = msgspec.field(default_factory=list)
    rescan_interval_s: int = 3600
    fs_watcher_enabled: bool = True
    fs_watcher_delay_s: int | float = 10
    ignore_perms: bool = False
    auto_normalize: bool = True
    paused: bool = False
    ignore_delete: bool = False
    max_conflicts: int = 10
    marker_name: str = ".stfolder"

    @property
    def device_ids(self) -> list[str]:
        return [d.device_id for d in self.devices]


class OptionsConfig(_Model):
    listen_addresses: list[str] = msgspec.field(default_factory=list)
    global_announce_enabled: bool = True
    local_announce_enabled: bool = True
    relays_enabled: bool = True
    nat_enabled: bool = True
    start_browser: bool = True
    ur_accepted: int = 0
    auto_upgrade_interval_h: int = 12
    crash_reporting_enabled: bool = True


class ConfigView(_Model):
    """The parts of a whole configuration karmad reads (from `ConfigSaved` events).

    The GUI section is deliberately absent: it holds the API key and password hash, and
    a field that is never decoded can never be logged by mistake.
    """

    version: int = 0
    folders: list[FolderConfig] = msgspec.field(default_factory=list)
    devices: list[DeviceConfig] = msgspec.field(default_factory=list)
    options: OptionsConfig = msgspec.field(default_factory=OptionsConfig)


# --------------------------------------------------------------------------- cluster


class PendingDevice(_Model):
    time: datetime | None = None
    name: str = ""
    address: str = ""


class PendingFolderOffer(_Model):
    time: datetime | None = None
    label: str = ""
    receive_encrypted: bool = False
    remote_encrypted: bool = False


class PendingFolder(_Model):
    offered_by: dict[str, PendingFolderOffer] = msgspec.field(default_factory=dict)


# --------------------------------------------------------------------------- db


class FolderStatus(_Model):
    """`/rest/db/status`, also the `summary` of `FolderSummary` events."""

    state: str = ""
    state_changed: datetime | None = None
    error: str = ""
    errors: int = 0
    pull_errors: int = 0
    global_bytes: int = 0
    global_files: int = 0
    global_directories: int = 0
    global_deleted: int = 0
    local_bytes: int = 0
    local_files: int = 0
    local_directories: int = 0
    local_deleted: int = 0
    need_bytes: int = 0
    need_files: int = 0
    need_deletes: int = 0
    need_total_items: int = 0
    in_sync_bytes: int = 0
    in_sync_files: int = 0
    receive_only_changed_files: int = 0
    receive_only_changed_deletes: int = 0
    receive_only_total_items: int = 0
    sequence: int = 0
    ignore_patterns: bool = False

    @property
    def needed(self) -> int:
        """Items this device lacks the global version of (1.19 lacks the total, hence
        the sum)."""
        return self.need_total_items or (self.need_files + self.need_deletes)

    @property
    def local_changes(self) -> int:
        """Items changed locally in a receive-only folder: they stop the owner's newer
        versions from arriving until reverted (1.19 lacks the total, hence the sum)."""
        return self.receive_only_total_items or (
            self.receive_only_changed_files + self.receive_only_changed_deletes
        )


class Completion(_Model):
    completion: float = 100.0
    global_bytes: int = 0
    global_items: int = 0
    need_bytes: int = 0
    need_items: int = 0
    need_deletes: int = 0
    sequence: int = 0
    remote_state: str = ""
    """1.20+: `valid`, `paused`, `notSharing`, `unknown`."""


class FileError(_Model):
    path: str = ""
    error: str = ""


class FolderErrors(_Model):
    folder: str = ""
    errors: list[FileError] | None = None


class Ignores(_Model):
    ignore: list[str] | None = None
    expanded: list[str] | None = None


class Ping(_Model):
    ping: str = ""


class Health(_Model):
    status: str = ""


# --------------------------------------------------------------------------- events


class RawEvent(_Model):
    """One event as it arrives; `data` is decoded per type only when karmad needs it."""

    id: int
    global_id: int = msgspec.field(default=0, name="globalID")
    time: datetime | None = None
    type: str = ""
    data: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))


class DeviceConnected(_Model):
    id: str
    addr: str = ""
    type: str = ""
    client_name: str = ""
    client_version: str = ""
    device_name: str = ""


class DeviceDisconnected(_Model):
    id: str
    error: str = ""


class DevicePaused(_Model):
    device: str


class PendingDeviceAdded(_Model):
    device_id: str = msgspec.field(name="deviceID")
    name: str = ""
    address: str = ""


class PendingDeviceRemoved(_Model):
    device_id: str = msgspec.field(name="deviceID")


class PendingDevicesChanged(_Model):
    added: list[PendingDeviceAdded] | None = None
    removed: list[PendingDeviceRemoved] | None = None


class PendingFolderAdded(_Model):
    folder_id: str = msgspec.field(name="folderID")
    device_id: str = msgspec.field(name="deviceID")
    folder_label: str = ""
    receive_encrypted: bool = False
    remote_encrypted: bool = False


class PendingFolderRemoved(_Model):
    folder_id: str = msgspec.field(name="folderID")
    device_id: str = msgspec.field(default="", name="deviceID")
    """Empty when the folder is no longer pending from any device."""


class PendingFoldersChanged(_Model):
    added: list[PendingFolderAdded] | None = None
    removed: list[PendingFolderRemoved] | None = None


class StateChanged(_Model):
    folder: str
    from_: str = msgspec.field(default="", name="from")
    to: str = ""
    error: str = ""
    duration: float = 0.0


class FolderSummary(_Model):
    folder: str
    summary: FolderStatus = msgspec.field(default_factory=FolderStatus)


class FolderCompletion(_Model):
    folder: str
    device: str = ""
    completion: float = 100.0
    global_bytes: int = 0
    global_items: int = 0
    need_bytes: int = 0
    need_items: int = 0
    need_deletes: int = 0
    sequence: int = 0
    remote_state: str = ""


class FolderErrorsEvent(_Model):
    folder: str
    errors: list[FileError] | None = None


class FolderPaused(_Model):
    id: str
    label: str = ""


class LocalIndexUpdated(_Model):
    folder: str
    items: int = 0
    filenames: list[str] | None = None
    sequence: int = 0


class RemoteIndexUpdated(_Model):
    folder: str
    device: str = ""
    items: int = 0
    sequence: int = 0


class ItemFinished(_Model):
    folder: str
    item: str = ""
    type: str = ""
    action: str = ""
    error: str | None = None


class DiskChange(_Model):
    """`LocalChangeDetected` / `RemoteChangeDetected` from the disk event stream."""

    folder: str = ""
    folder_id: str = msgspec.field(default="", name="folderID")
    label: str = ""
    path: str = ""
    type: str = ""
    action: str = ""
    modified_by: str = ""

    @property
    def folder_ref(self) -> str:
        return self.folder or self.folder_id


# --------------------------------------------------------------------------- patches


class _Patch(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """A PATCH body: only the fields that are set are sent, so nothing else changes."""


class FolderPatch(_Patch):
    label: str | None = None
    type: str | None = None
    devices: list[FolderDevice] | None = None
    """Replaces the whole device list (PATCH replaces arrays)."""
    paused: bool | None = None
    rescan_interval_s: int | None = None
    fs_watcher_enabled: bool | None = None
    fs_watcher_delay_s: int | float | None = None
    ignore_delete: bool | None = None


class DevicePatch(_Patch):
    name: str | None = None
    addresses: list[str] | None = None
    paused: bool | None = None


class OptionsPatch(_Patch):
    listen_addresses: list[str] | None = None
    global_announce_enabled: bool | None = None
    local_announce_enabled: bool | None = None
    relays_enabled: bool | None = None
    nat_enabled: bool | None = None
