"""Syncthing's event stream, turned into karmad bus events and a live snapshot.

One session per connection to Syncthing. A session starts from a full snapshot, then:

- long-polls the default `/rest/events` stream (a filtered stream would be a new
  subscription that misses everything before it) and the disk stream
  `/rest/events/disk`, each with `since`;
- treats a gap in event ids (more than Syncthing's 1000-event buffer was missed) or ids
  going backwards (Syncthing restarted and numbers from 1 again) as lost events, and
  rebuilds the snapshot from scratch;
- refreshes folder figures itself after index and state events (older Syncthing only
  emits `FolderSummary`/`FolderCompletion` while something polls for them), and device
  byte counters periodically (no event carries them); that poll is also the liveness
  check, so a hung Syncthing ends the session within seconds;
- runs the scans other parts of karmad ask for.

Any `SyncthingError` ends the session; the service reconnects and starts a new one.
Raw event payloads are never logged: `ConfigSaved` carries the API key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, TypeVar

import anyio

from karmad import codec, logs
from karmad.bus import Bus, Clock
from karmad.syncthing import ids
from karmad.syncthing.client import SyncthingClient
from karmad.syncthing.errors import Rejected, SyncthingError
from karmad.syncthing.models import (
    ConfigView,
    DeviceConnected,
    DeviceDisconnected,
    DevicePaused,
    DiskChange,
    FolderCompletion,
    FolderErrorsEvent,
    FolderSummary,
    ItemFinished,
    LocalIndexUpdated,
    PendingDevicesChanged,
    PendingFoldersChanged,
    RawEvent,
    RemoteIndexUpdated,
    StateChanged,
    when,
)
from karmad.syncthing.snapshot import FolderState, Snapshot

log = logs.get("karmad.syncthing.events")

T = TypeVar("T")

REFRESH_DELAY_S: Final = 0.1
"""Coalesces the burst of events one change produces into one round of queries."""
LIVENESS_S: Final = 5.0
"""How often connections are polled: fresh byte counters, and a hung Syncthing noticed."""
STATS_EVERY: Final = 6
"""Device statistics (last seen) every this many liveness polls."""
MAX_FILENAMES: Final = 100
RESYNC_CONCURRENCY: Final = 8
SCAN_CHUNK: Final = 100
"""Paths per scan request: Syncthing takes them in the URL, which must stay short."""


class EventStream:
    """The live view of one Syncthing, rebuilt on every (re)connection."""

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        *,
        poll_s: int = 30,
        request_timeout: float = 5.0,
        on_live: Callable[[], None] | None = None,
    ) -> None:
        self._bus = bus
        self._on_live = on_live
        self._clock = clock
        self._poll_s = poll_s
        self._liveness_timeout = request_timeout
        self.snapshot: Snapshot | None = None
        """None until the first resync; replaced whole by each resync."""
        self.live = False
        self.resyncs = 0
        self.last_resync_reason = ""
        self.last_resync_at: datetime | None = None
        self.last_event_id = 0
        self.last_disk_event_id = 0
        self.events_seen = 0
        self.down_reason = "not connected yet"
        self._client: SyncthingClient | None = None
        self._dirty: set[str] = set()
        self._dirty_wake = anyio.Event()
        self._scans: dict[str, set[str] | None] = {}
        """Folder -> paths to scan (None: the whole folder)."""
        self._scan_wake = anyio.Event()
        self._previous_start: datetime | None = None
        self._resync_wanted = ""
        """Set when an event could not be applied: the snapshot can no longer be trusted."""

    # ------------------------------------------------------------------ session

    async def run(self, client: SyncthingClient) -> None:
        """One session; returns never, raises `SyncthingError` (in a group) when it ends."""
        self._client = client
        main_since = await client.latest_event_id()
        disk_since = await client.latest_event_id(disk=True)
        await self.resync(self._connect_reason())
        self.last_event_id, self.last_disk_event_id = main_since, disk_since
        self.live = True
        self._publish("syncthing.stream", {"live": True})
        if self._on_live is not None:
            self._on_live()
        log.info("event_stream_live", since=main_since, disk_since=disk_since)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._poll_main, main_since)
                tg.start_soon(self._poll_disk, disk_since)
                tg.start_soon(self._refresher)
                tg.start_soon(self._liveness)
                tg.start_soon(self._scanner)
        finally:
            self._client = None

    def mark_down(self, reason: str) -> None:
        if self.live:
            log.warning("event_stream_down", reason=reason)
            self._publish("syncthing.stream", {"live": False, "reason": reason})
        self.live = False
        self.down_reason = reason

    def _connect_reason(self) -> str:
        if self.snapshot is None:
            return "connected"
        return "reconnected"

    # ------------------------------------------------------------------ resync

    async def resync(self, reason: str) -> None:
        """Build a fresh snapshot from Syncthing's own answers, then swap it in."""
        client = self._require_client()
        snap = Snapshot()
        snap.apply_status(await client.status())
        if reason == "reconnected" and snap.start_time != self._previous_start:
            reason = "restarted"
        snap.version = (await client.version()).version
        snap.apply_config(await client.folders(), await client.devices(), await client.options())
        snap.apply_connections(await client.connections())
        snap.apply_stats(await client.device_stats())
        snap.apply_pending(await client.pending_devices(), await client.pending_folders())
        limiter = anyio.CapacityLimiter(RESYNC_CONCURRENCY)

        async def one(folder_id: str) -> None:
            async with limiter:
                try:
                    await self._refresh_folder(client, snap, folder_id, publish=False)
                except Rejected as exc:
                    # A paused or just-removed folder: its figures stay unknown for now.
                    log.info("folder_refresh_rejected", folder=folder_id, error=exc.message)

        async with anyio.create_task_group() as tg:
            for folder in snap.managed_folders():
                tg.start_soon(one, folder.config.id)
        snap.synced_at = self._clock()
        self.snapshot = snap
        self._previous_start = snap.start_time
        self.resyncs += 1
        self.last_resync_reason = reason
        self.last_resync_at = snap.synced_at
        log.info(
            "resynced",
            reason=reason,
            devices=len(snap.devices),
            folders=len(snap.folders),
            managed=len(snap.managed_folders()),
        )
        self._publish(
            "syncthing.resynced",
            {
                "reason": reason,
                "devices": len(snap.devices),
                "folders": len(snap.managed_folders()),
                "pending_devices": len(snap.pending_devices),
                "pending_folders": len(snap.pending_folders),
            },
        )

    def _require_client(self) -> SyncthingClient:
        if self._client is None:
            raise SyncthingError("no Syncthing session")
        return self._client

    def _require_snapshot(self) -> Snapshot:
        assert self.snapshot is not None, "a session always starts with a resync"
        return self.snapshot

    # ------------------------------------------------------------------ polling

    async def _poll_main(self, since: int) -> None:
        client = self._require_client()
        while True:
            events = await client.events(since, self._poll_s)
            if not events:
                if await client.latest_event_id() < since:
                    await self.resync("restarted")
                    since = self.last_event_id = await client.latest_event_id()
                continue
            if not _contiguous(since, events):
                reason = "restarted" if events[0].id <= since else "gap"
                log.warning("event_gap", since=since, first=events[0].id, reason=reason)
                await self.resync(reason)
                since = self.last_event_id = events[-1].id
                continue
            for event in events:
                self._handle(event)
            since = self.last_event_id = events[-1].id
            self.events_seen += len(events)
            if self._resync_wanted:
                reason, self._resync_wanted = self._resync_wanted, ""
                await self.resync(reason)

    async def _poll_disk(self, since: int) -> None:
        client = self._require_client()
        while True:
            events = await client.events(since, self._poll_s, disk=True)
            if not events:
                if await client.latest_event_id(disk=True) < since:
                    since = self.last_disk_event_id = 0
                continue
            if not _contiguous(since, events):
                # Lost file changes: whoever follows them must look at the folders again.
                reason = "restarted" if events[0].id <= since else "gap"
                log.warning("disk_event_gap", since=since, first=events[0].id)
                self._publish("syncthing.changes.lost", {"reason": reason})
            for event in events:
                self._handle_disk(event)
            since = self.last_disk_event_id = events[-1].id

    async def _liveness(self) -> None:
        client = self._require_client()
        polls = 0
        while True:
            await anyio.sleep(LIVENESS_S)
            connections = await client.connections(read_timeout=self._liveness_timeout)
            snap = self._require_snapshot()
            snap.apply_connections(connections)
            polls += 1
            if polls % STATS_EVERY == 0:
                snap.apply_stats(await client.device_stats())

    # ------------------------------------------------------------------ folder figures

    def _mark_dirty(self, folder_id: str) -> None:
        snap = self.snapshot
        if snap is not None and folder_id in snap.folders and ids.is_managed(folder_id):
            self._dirty.add(folder_id)
            self._dirty_wake.set()

    async def _refresher(self) -> None:
        client = self._require_client()
        while True:
            await self._dirty_wake.wait()
            await anyio.sleep(REFRESH_DELAY_S)
            self._dirty_wake = anyio.Event()
            dirty, self._dirty = self._dirty, set()
            for folder_id in sorted(dirty):
                try:
                    await self._refresh_folder(client, self._require_snapshot(), folder_id)
                except Rejected as exc:
                    # The folder was removed meanwhile; the next ConfigSaved says so.
                    log.info("folder_refresh_rejected", folder=folder_id, error=str(exc))

    async def _refresh_folder(
        self, client: SyncthingClient, snap: Snapshot, folder_id: str, *, publish: bool = True
    ) -> None:
        folder = snap.folders.get(folder_id)
        if folder is None:
            return
        snap.apply_folder_status(folder_id, await client.folder_status(folder_id))
        if publish:  # else a resync: the reconciler reads the snapshot when it is done
            self._note_local_changes(folder_id, folder)
        if folder.config.paused:
            return  # Syncthing answers nothing more about a paused folder
        devices = [snap.my_id, *(d for d in folder.config.device_ids if d != snap.my_id)]
        for device_id in devices:
            query = "" if device_id == snap.my_id else device_id
            completion = await client.completion(folder_id, query)
            if snap.apply_completion(folder_id, device_id, completion) and publish:
                self._publish(
                    "syncthing.folder.completion",
                    {
                        "folder": folder_id,
                        "device": device_id,
                        "completion": completion.completion,
                        "need_bytes": completion.need_bytes,
                    },
                )
        status = folder.status
        if status is not None and (status.errors or status.pull_errors):
            snap.apply_file_errors(folder_id, (await client.folder_errors(folder_id)).errors)
        else:
            snap.apply_file_errors(folder_id, [])

    # ------------------------------------------------------------------ scans

    def request_scan(self, folder_id: str, paths: list[str] | None) -> None:
        """Queue a scan (of `paths`, or the whole folder when None); merged with others."""
        queued = self._scans.get(folder_id, set())
        if paths is None or (folder_id in self._scans and queued is None):
            self._scans[folder_id] = None
        else:
            self._scans[folder_id] = (queued or set()) | set(paths)
        self._scan_wake.set()

    async def _scanner(self) -> None:
        client = self._require_client()
        while True:
            await self._scan_wake.wait()
            self._scan_wake = anyio.Event()
            scans, self._scans = self._scans, {}
            for folder_id, paths in scans.items():
                try:
                    if paths is None:
                        await client.scan(folder_id)
                    for chunk in _chunks(sorted(paths or ()), SCAN_CHUNK):
                        await client.scan(folder_id, chunk)
                except Rejected as exc:
                    log.warning("scan_rejected", folder=folder_id, error=exc.message)
                    self._publish(
                        "syncthing.scan.failed", {"folder": folder_id, "error": exc.message}
                    )
                except SyncthingError:
                    # Keep the request for the next session, then end this one.
                    self.request_scan(folder_id, None if paths is None else list(paths))
                    raise

    # ------------------------------------------------------------------ event handling

    def _publish(self, topic: str, data: dict[str, Any], *, remember: bool = True) -> None:
        self._bus.publish(topic, data, remember=remember)

    def _decode(self, event: RawEvent, type_: type[T]) -> T | None:
        try:
            return codec.decode_json(bytes(event.data), type_)
        except codec.InvalidData as exc:
            # The payload itself is never logged (ConfigSaved holds the API key).
            log.warning("event_undecodable", type=event.type, id=event.id, error=exc.path)
            self._resync_wanted = "undecodable"
            return None

    def _handle(self, event: RawEvent) -> None:
        handler = self._handlers.get(event.type)
        if handler is not None:
            handler(self, event, when(event.time))

    def _on_device_connected(self, event: RawEvent, time: datetime | None) -> None:
        if (data := self._decode(event, DeviceConnected)) is None:
            return
        self._require_snapshot().device_connected(data, time)
        self._publish(
            "syncthing.device.connected",
            {
                "device": data.id,
                "address": data.addr,
                "type": data.type,
                "client_version": data.client_version,
            },
        )

    def _on_device_disconnected(self, event: RawEvent, time: datetime | None) -> None:
        if (data := self._decode(event, DeviceDisconnected)) is None:
            return
        self._require_snapshot().device_disconnected(data, time)
        self._publish("syncthing.device.disconnected", {"device": data.id, "error": data.error})

    def _on_device_paused(self, event: RawEvent, time: datetime | None) -> None:
        if (data := self._decode(event, DevicePaused)) is not None:
            self._require_snapshot().device_paused(data.device, event.type == "DevicePaused")

    def _on_pending_devices(self, event: RawEvent, time: datetime | None) -> None:
        if (data := self._decode(event, PendingDevicesChanged)) is None:
            return
        self._require_snapshot().pending_devices_changed(data, time)
        self._publish(
            "syncthing.pending.devices",
            {
                "added": [{"device": d.device_id, "name": d.name} for d in data.added or ()],
                "removed": [d.device_id for d in data.removed or ()],
            },
        )

    def _on_pending_folders(self, event: RawEvent, time: datetime | None) -> None:
        if (data := self._decode(event, PendingFoldersChanged)) is None:
            return
        self._require_snapshot().pending_folders_changed(data, time)
        self._publish(
            "syncthing.pending.folders",
            {
                "added": [
                    {"folder": f.folder_id, "device": f.device_id, "label": f.folder_label}
                    for f in data.added or ()
                ],
                "removed": [
                    {"folder": f.folder_id, "device": f.device_id} for f in data.removed or ()
                ],
            },
        )

    def _on_state_changed(self, event: RawEvent, time: datetime | None) -> None:
        if (data := self._decode(event, StateChanged)) is None:
            return
        self._require_snapshot().folder_state_changed(data, time)
        if not ids.is_managed(data.folder):
            return
        self._publish(
            "syncthing.folder.state",
            {"folder": data.folder, "from": data.from_, "to": data.to, "error": data.error},
        )
        if data.to in ("idle", "error"):
            self._mark_dirty(data.folder)

    def _on_folder_summary(self, event: RawEvent, time: datetime | None) -> None:
        if (data := self._decode(event, FolderSummary)) is not None:
            snap = self._require_snapshot()
            snap.apply_folder_status(data.folder, data.summary)
            if (folder := snap.folders.get(data.folder)) is not None:
                self._note_local_changes(data.folder, folder)

    def _note_local_changes(self, folder_id: str, folder: FolderState) -> None:
        """An inbox with local changes stops receiving its owner's updates, and a change
        someone else made in one of our send-only folders reaches peers in place of ours:
        say so, so that reconciliation reverts or overrides it (on every version:
        summaries, or the status read after each index update on versions that send
        summaries only to pollers)."""
        if folder.managed and (items := folder.local_changes):
            self._publish("syncthing.folder.local_changes", {"folder": folder_id, "items": items})
        if folder.managed and (items := folder.foreign_changes):
            self._publish("syncthing.folder.foreign_changes", {"folder": folder_id, "items": items})

    def _on_folder_completion(self, event: RawEvent, time: datetime | None) -> None:
        if (data := self._decode(event, FolderCompletion)) is None:
            return
        if self._require_snapshot().folder_completion(data) and ids.is_managed(data.folder):
            self._publish(
                "syncthing.folder.completion",
                {
                    "folder": data.folder,
                    "device": data.device,
                    "completion": data.completion,
                    "need_bytes": data.need_bytes,
                },
            )

    def _on_folder_errors(self, event: RawEvent, time: datetime | None) -> None:
        if (data := self._decode(event, FolderErrorsEvent)) is None:
            return
        self._require_snapshot().apply_file_errors(data.folder, data.errors)
        if ids.is_managed(data.folder):
            errors = data.errors or []
            self._publish(
                "syncthing.folder.errors",
                {
                    "folder": data.folder,
                    "count": len(errors),
                    "first": errors[0].error if errors else "",
                },
            )

    def _on_local_index(self, event: RawEvent, time: datetime | None) -> None:
        if (data := self._decode(event, LocalIndexUpdated)) is None:
            return
        if ids.is_managed(data.folder):
            names = list(data.filenames or ())
            self._publish(
                "syncthing.index.local",
                {
                    "folder": data.folder,
                    "items": data.items,
                    "filenames": names[:MAX_FILENAMES],
                    "truncated": len(names) > MAX_FILENAMES,
                },
            )
            self._mark_dirty(data.folder)

    def _on_remote_index(self, event: RawEvent, time: datetime | None) -> None:
        if (data := self._decode(event, RemoteIndexUpdated)) is None:
            return
        if ids.is_managed(data.folder):
            self._publish(
                "syncthing.index.remote",
                {"folder": data.folder, "device": data.device, "items": data.items},
            )
            self._mark_dirty(data.folder)

    def _on_item_finished(self, event: RawEvent, time: datetime | None) -> None:
        if (data := self._decode(event, ItemFinished)) is None or not ids.is_managed(data.folder):
            return
        self._publish(
            "syncthing.item.finished",
            {
                "folder": data.folder,
                "item": data.item,
                "type": data.type,
                "action": data.action,
                "error": data.error or "",
            },
        )

    def _on_config_saved(self, event: RawEvent, time: datetime | None) -> None:
        if (data := self._decode(event, ConfigView)) is None:
            return
        snap = self._require_snapshot()
        added, removed = snap.apply_config_view(data)
        for folder_id in added:
            self._mark_dirty(folder_id)
        self._publish(
            "syncthing.config.saved",
            {
                "folders": len(snap.managed_folders()),
                "devices": len(snap.devices),
                "folders_added": sorted(f for f in added if ids.is_managed(f)),
                "folders_removed": sorted(f for f in removed if ids.is_managed(f)),
            },
        )

    _handlers: Final[dict[str, Callable[[EventStream, RawEvent, datetime | None], None]]] = {
        "DeviceConnected": _on_device_connected,
        "DeviceDisconnected": _on_device_disconnected,
        "DevicePaused": _on_device_paused,
        "DeviceResumed": _on_device_paused,
        "PendingDevicesChanged": _on_pending_devices,
        "PendingFoldersChanged": _on_pending_folders,
        "StateChanged": _on_state_changed,
        "FolderSummary": _on_folder_summary,
        "FolderCompletion": _on_folder_completion,
        "FolderErrors": _on_folder_errors,
        "LocalIndexUpdated": _on_local_index,
        "RemoteIndexUpdated": _on_remote_index,
        "ItemFinished": _on_item_finished,
        "ConfigSaved": _on_config_saved,
    }

    def _handle_disk(self, event: RawEvent) -> None:
        if event.type not in ("LocalChangeDetected", "RemoteChangeDetected"):
            return
        data = self._decode(event, DiskChange)
        if data is None or not ids.is_managed(data.folder_ref):
            return
        topic = "syncthing.change.local" if event.type[0] == "L" else "syncthing.change.remote"
        payload = {
            "folder": data.folder_ref,
            "path": data.path,
            "type": data.type,
            "action": data.action,
        }
        if data.modified_by:
            payload["modified_by"] = data.modified_by
        self._publish(topic, payload)


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _contiguous(since: int, events: list[RawEvent]) -> bool:
    """Ids follow `since` one by one (since 0 means "anything is fine")."""
    expected = since + 1 if since else events[0].id
    for event in events:
        if event.id != expected:
            return False
        expected += 1
    return True
