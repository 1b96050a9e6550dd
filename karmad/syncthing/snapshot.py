"""What karmad knows about Syncthing right now, kept in memory by the event stream.

RPC handlers read this and never call Syncthing (handlers must not block). It is built
whole by a resync (`build`) and then kept current by events, each applied by one method.
The methods only update data: no I/O, no clock of their own (times come from the events).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from karmad.syncthing import ids
from karmad.syncthing.models import (
    Completion,
    ConfigView,
    Connections,
    DeviceConfig,
    DeviceConnected,
    DeviceDisconnected,
    DeviceStats,
    FileError,
    FolderCompletion,
    FolderConfig,
    FolderStatus,
    ListenerStatus,
    OptionsConfig,
    PendingDevice,
    PendingDevicesChanged,
    PendingFolder,
    PendingFolderOffer,
    PendingFoldersChanged,
    StateChanged,
    SystemStatus,
    when,
)

MAX_FILE_ERRORS = 100
"""Per folder; a folder with thousands of failing files keeps its count, not every path."""


@dataclass
class DeviceState:
    config: DeviceConfig
    connected: bool = False
    paused: bool = False
    address: str = ""
    connection_type: str = ""
    client_version: str = ""
    in_bytes: int = 0
    out_bytes: int = 0
    connected_since: datetime | None = None
    last_seen: datetime | None = None


@dataclass
class FolderState:
    config: FolderConfig
    state: str = "unknown"
    state_since: datetime | None = None
    error: str = ""
    status: FolderStatus | None = None
    completion: dict[str, Completion] = field(default_factory=dict)
    """Per device ID, this device's own included (how complete each one is)."""
    file_errors: list[FileError] = field(default_factory=list)

    @property
    def managed(self) -> bool:
        return ids.is_managed(self.config.id)

    @property
    def local_changes(self) -> int:
        """Items changed here in a receive-only folder (0 for other kinds): they keep the
        owner's newer versions out until reverted."""
        if self.config.type != "receiveonly" or self.status is None:
            return 0
        return self.status.local_changes

    @property
    def foreign_changes(self) -> int:
        """Items another device changed in a send-only folder (0 for other kinds).
        Syncthing never pulls them here, but peers that take changes from that device
        (a team's keeper relays them) hold them instead of ours until overridden."""
        if self.config.type != "sendonly" or self.status is None:
            return 0
        return self.status.needed


@dataclass
class Snapshot:
    my_id: str = ""
    version: str = ""
    start_time: datetime | None = None
    listeners: dict[str, ListenerStatus] = field(default_factory=dict)
    options: OptionsConfig = field(default_factory=OptionsConfig)
    devices: dict[str, DeviceState] = field(default_factory=dict)
    """Configured devices other than this one."""
    folders: dict[str, FolderState] = field(default_factory=dict)
    pending_devices: dict[str, PendingDevice] = field(default_factory=dict)
    pending_folders: dict[str, dict[str, PendingFolderOffer]] = field(default_factory=dict)
    """Folder ID -> offering device ID -> offer."""
    synced_at: datetime | None = None

    # ------------------------------------------------------------------ whole parts

    def apply_status(self, status: SystemStatus) -> None:
        self.my_id = status.my_id
        self.start_time = when(status.start_time)
        self.listeners = dict(status.connection_service_status)

    def apply_config(
        self, folders: list[FolderConfig], devices: list[DeviceConfig], options: OptionsConfig
    ) -> tuple[set[str], set[str]]:
        """Replace the configured folders and devices, keeping what is known of each.

        Returns the folder IDs added and removed, so their details can be fetched.
        """
        self.options = options
        old_devices = self.devices
        self.devices = {}
        for device in devices:
            if device.device_id == self.my_id:
                continue
            state = old_devices.get(device.device_id) or DeviceState(config=device)
            state.config = device
            state.paused = device.paused
            self.devices[device.device_id] = state
        old_folders = self.folders
        self.folders = {}
        for folder in folders:
            fstate = old_folders.get(folder.id) or FolderState(config=folder)
            fstate.config = folder
            known = set(folder.device_ids)
            fstate.completion = {d: c for d, c in fstate.completion.items() if d in known}
            self.folders[folder.id] = fstate
        return set(self.folders) - set(old_folders), set(old_folders) - set(self.folders)

    def apply_config_view(self, view: ConfigView) -> tuple[set[str], set[str]]:
        return self.apply_config(view.folders, view.devices, view.options)

    def apply_connections(self, connections: Connections) -> None:
        for device_id, info in connections.connections.items():
            state = self.devices.get(device_id)
            if state is None:
                continue
            state.connected = info.connected
            state.paused = info.paused
            state.address = info.address if info.connected else ""
            state.connection_type = info.type if info.connected else ""
            state.client_version = info.client_version or state.client_version
            state.in_bytes = info.in_bytes_total
            state.out_bytes = info.out_bytes_total
            state.connected_since = when(info.started_at) if info.connected else None

    def apply_stats(self, stats: dict[str, DeviceStats]) -> None:
        for device_id, stat in stats.items():
            state = self.devices.get(device_id)
            if state is not None:
                seen = when(stat.last_seen)
                if seen is not None and (state.last_seen is None or seen > state.last_seen):
                    state.last_seen = seen

    def apply_pending(
        self, devices: dict[str, PendingDevice], folders: dict[str, PendingFolder]
    ) -> None:
        self.pending_devices = dict(devices)
        self.pending_folders = {
            folder_id: dict(p.offered_by) for folder_id, p in folders.items() if p.offered_by
        }

    def apply_folder_status(self, folder_id: str, status: FolderStatus) -> None:
        folder = self.folders.get(folder_id)
        if folder is None:
            return
        folder.status = status
        if status.state:
            folder.state = status.state
            folder.state_since = when(status.state_changed) or folder.state_since
            folder.error = status.error if status.state == "error" else ""

    def apply_completion(self, folder_id: str, device_id: str, completion: Completion) -> bool:
        """True when the figure changed (worth telling subscribers)."""
        folder = self.folders.get(folder_id)
        if folder is None:
            return False
        old = folder.completion.get(device_id)
        folder.completion[device_id] = completion
        return old is None or (old.completion, old.need_bytes) != (
            completion.completion,
            completion.need_bytes,
        )

    def apply_file_errors(self, folder_id: str, errors: list[FileError] | None) -> None:
        folder = self.folders.get(folder_id)
        if folder is not None:
            folder.file_errors = list(errors or [])[:MAX_FILE_ERRORS]

    # ------------------------------------------------------------------ events

    def device_connected(self, event: DeviceConnected, time: datetime | None) -> None:
        state = self.devices.get(event.id)
        if state is None:
            return
        state.connected = True
        state.address = event.addr
        state.connection_type = event.type
        state.client_version = event.client_version or state.client_version
        state.connected_since = time
        state.last_seen = time or state.last_seen

    def device_disconnected(self, event: DeviceDisconnected, time: datetime | None) -> None:
        state = self.devices.get(event.id)
        if state is None:
            return
        state.connected = False
        state.address = ""
        state.connection_type = ""
        state.connected_since = None
        state.last_seen = time or state.last_seen

    def device_paused(self, device_id: str, paused: bool) -> None:
        state = self.devices.get(device_id)
        if state is not None:
            state.paused = paused

    def pending_devices_changed(self, event: PendingDevicesChanged, time: datetime | None) -> None:
        for added in event.added or ():
            self.pending_devices[added.device_id] = PendingDevice(
                time=time, name=added.name, address=added.address
            )
        for removed in event.removed or ():
            self.pending_devices.pop(removed.device_id, None)

    def pending_folders_changed(self, event: PendingFoldersChanged, time: datetime | None) -> None:
        for added in event.added or ():
            offers = self.pending_folders.setdefault(added.folder_id, {})
            offers[added.device_id] = PendingFolderOffer(
                time=time,
                label=added.folder_label,
                receive_encrypted=added.receive_encrypted,
                remote_encrypted=added.remote_encrypted,
            )
        for removed in event.removed or ():
            current = self.pending_folders.get(removed.folder_id)
            if current is None:
                continue
            offers = current
            if removed.device_id:
                offers.pop(removed.device_id, None)
            else:
                offers.clear()
            if not offers:
                del self.pending_folders[removed.folder_id]

    def folder_state_changed(self, event: StateChanged, time: datetime | None) -> None:
        folder = self.folders.get(event.folder)
        if folder is None:
            return
        folder.state = event.to
        folder.state_since = time
        folder.error = event.error if event.to == "error" else ""

    def folder_completion(self, event: FolderCompletion) -> bool:
        completion = Completion(
            completion=event.completion,
            global_bytes=event.global_bytes,
            global_items=event.global_items,
            need_bytes=event.need_bytes,
            need_items=event.need_items,
            need_deletes=event.need_deletes,
            sequence=event.sequence,
            remote_state=event.remote_state,
        )
        return self.apply_completion(event.folder, event.device, completion)

    # ------------------------------------------------------------------ reading

    def managed_folders(self) -> list[FolderState]:
        return [f for f in self.folders.values() if f.managed]
