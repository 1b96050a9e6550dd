"""The reconciler's view of Syncthing (`karmad.sync.port.SyncthingPort`), implemented here.

Reads come from the live snapshot where a stale answer is harmless (our device ID,
pending offers, connection states) and from one `GET /rest/config` per cycle where the
planner needs the truth. Changes are single-object PUT/DELETEs, folders batched as one
array. Syncthing's own exception tree is translated to the port's two exceptions here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from urllib.parse import urlsplit

from karmad.domain import is_folder_id
from karmad.sync import model
from karmad.sync.port import ActionFailed, SyncthingUnavailable
from karmad.syncthing.client import SyncthingClient
from karmad.syncthing.errors import AuthFailed, Rejected, SyncthingError, Unreachable
from karmad.syncthing.models import (
    DeviceConfig,
    DevicePatch,
    FolderConfig,
    FolderDevice,
    FolderStatus,
)
from karmad.syncthing.service import SyncthingService

FOLDER_DEFAULTS = {"rescan_interval_s": 3600, "fs_watcher_enabled": True, "fs_watcher_delay_s": 1}
"""Managed folders: karmad asks for scans right after writing; the watcher (short delay)
and the hourly rescan are safety nets."""


def _specific(address: str) -> bool:
    """An address a peer can dial: not `dynamic`, not a wildcard host."""
    try:
        host = urlsplit(address).hostname
    except ValueError:
        return False
    if not host:
        return False
    try:
        return not ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return True


class ServicePort:
    def __init__(self, service: SyncthingService) -> None:
        self._service = service

    # ------------------------------------------------------------------ snapshot reads

    def device_id(self) -> str | None:
        return self._service.device_id or None

    def advertised_addresses(self) -> tuple[str, ...]:
        """Explicit addresses only when discovery is off (lan-only, loopback profiles)."""
        if self._service.mode == "managed" and self._service.config.profile == "internet":
            return ()
        prepared = self._service.prepared
        candidates: list[str] = list(prepared.listen_addresses) if prepared else []
        snap = self._service.stream.snapshot
        if not candidates and snap is not None:
            candidates = list(snap.options.listen_addresses)
        result = [a for a in candidates if _specific(a)]
        if snap is not None and len(result) < len(candidates):
            for listener in snap.listeners.values():
                result.extend(a for a in listener.lan_addresses or () if _specific(a))
        return tuple(dict.fromkeys(result))

    def pending_devices(self) -> tuple[model.PendingDevice, ...]:
        snap = self._service.stream.snapshot
        if snap is None:
            return ()
        return tuple(
            model.PendingDevice(device_id, p.name, p.address, p.time)
            for device_id, p in sorted(snap.pending_devices.items())
        )

    def pending_folders(self) -> tuple[model.PendingFolder, ...]:
        snap = self._service.stream.snapshot
        if snap is None:
            return ()
        return tuple(
            model.PendingFolder(folder_id, device_id, offer.label, offer.time)
            for folder_id, offers in sorted(snap.pending_folders.items())
            for device_id, offer in sorted(offers.items())
        )

    def connected(self, device_id: str) -> bool | None:
        snap = self._service.stream.snapshot
        if snap is None:
            return None
        device = snap.devices.get(device_id)
        return None if device is None else device.connected

    def last_seen(self, device_id: str) -> datetime | None:
        snap = self._service.stream.snapshot
        device = None if snap is None else snap.devices.get(device_id)
        if device is None:
            return None
        return datetime.now(UTC) if device.connected else device.last_seen

    def peer_completion(self, folder_id: str, device_id: str) -> tuple[float, int] | None:
        snap = self._service.stream.snapshot
        folder = None if snap is None else snap.folders.get(folder_id)
        completion = None if folder is None else folder.completion.get(device_id)
        if completion is None:
            return None
        return completion.completion, completion.need_bytes

    def locally_changed(self) -> frozenset[str]:
        snap = self._service.stream.snapshot
        if snap is None:
            return frozenset()
        return frozenset(
            folder_id
            for folder_id, folder in snap.folders.items()
            if is_folder_id(folder_id) and folder.local_changes > 0
        )

    def foreign_changes(self) -> frozenset[str]:
        snap = self._service.stream.snapshot
        if snap is None:
            return frozenset()
        return frozenset(
            folder_id
            for folder_id, folder in snap.folders.items()
            if is_folder_id(folder_id) and folder.foreign_changes > 0
        )

    # ------------------------------------------------------------------ calls

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[SyncthingClient]:
        client = self._service.client
        if client is None or not self._service.live:
            raise SyncthingUnavailable(self._service.detail or self._service.state)
        try:
            yield client
        except (Unreachable, AuthFailed) as exc:
            raise SyncthingUnavailable(str(exc)) from None
        except Rejected as exc:
            raise ActionFailed(exc.message) from None
        except SyncthingError as exc:
            raise ActionFailed(str(exc)) from None

    async def read_config(
        self,
    ) -> tuple[dict[str, model.DeviceConfig], dict[str, model.FolderConfig]]:
        me = self.device_id()
        async with self._client() as client:
            view = await client.config_view()
        devices = {
            d.device_id: model.DeviceConfig(d.device_id, d.name, tuple(d.addresses))
            for d in view.devices
            if d.device_id != me
        }
        folders: dict[str, model.FolderConfig] = {}
        for f in view.folders:
            if not is_folder_id(f.id):
                continue
            try:
                kind = model.FolderType(f.type)
            except ValueError:
                kind = model.FolderType.SENDRECEIVE
            folders[f.id] = model.FolderConfig(
                folder_id=f.id,
                label=f.label,
                path=f.path,
                type=kind,
                devices=frozenset(d.device_id for d in f.devices),
                passwords=frozenset(
                    (d.device_id, d.encryption_password) for d in f.devices if d.encryption_password
                ),
            )
        return devices, folders

    async def read_ignores(self, folder_id: str) -> tuple[str, ...]:
        async with self._client() as client:
            ignores = await client.ignores(folder_id)
        return tuple(ignores.ignore or ())

    async def add_devices(self, devices: Sequence[model.DeviceConfig]) -> None:
        async with self._client() as client:
            for d in devices:
                await client.put_device(
                    DeviceConfig(device_id=d.device_id, name=d.name, addresses=list(d.addresses))
                )

    async def set_device_addresses(self, device_id: str, addresses: Sequence[str]) -> None:
        async with self._client() as client:
            await client.patch_device(device_id, DevicePatch(addresses=list(addresses)))

    async def put_folders(self, folders: Sequence[model.FolderConfig]) -> None:
        configs = []
        for f in folders:
            passwords = dict(f.passwords)
            configs.append(
                FolderConfig(
                    id=f.folder_id,
                    label=f.label,
                    path=f.path,
                    type=f.type.value,
                    devices=[
                        FolderDevice(device_id=d, encryption_password=passwords.get(d, ""))
                        for d in sorted(f.devices)
                    ],
                    **FOLDER_DEFAULTS,  # type: ignore[arg-type]
                )
            )
        async with self._client() as client:
            await client.put_folders(configs)

    async def set_ignores(self, folder_id: str, patterns: Sequence[str]) -> None:
        async with self._client() as client:
            await client.set_ignores(folder_id, list(patterns))

    async def remove_folder(self, folder_id: str) -> None:
        async with self._client() as client:
            await client.remove_folder(folder_id)

    async def remove_device(self, device_id: str) -> None:
        async with self._client() as client:
            await client.remove_device(device_id)

    async def reset_connection(self, device_id: str) -> None:
        """Pause and resume a device: a folder accepted on a live connection receives
        nothing until the connection is reset (Syncthing #8278, docs/keeper.md)."""
        async with self._client() as client:
            await client.pause_device(device_id)
            await client.resume_device(device_id)

    def folder_status(self, folder_id: str) -> FolderStatus | None:
        """The folder's last status from the live snapshot (None: not known yet)."""
        snap = self._service.stream.snapshot
        folder = None if snap is None else snap.folders.get(folder_id)
        return None if folder is None else folder.status

    def folder_error(self, folder_id: str) -> str:
        snap = self._service.stream.snapshot
        folder = None if snap is None else snap.folders.get(folder_id)
        if folder is None:
            return ""
        return folder.error or (folder.status.error if folder.status else "")

    async def scan(self, folder_id: str, paths: Sequence[str] = ()) -> None:
        # Queued on the event-stream task, which batches scans; never waits here.
        self._service.stream.request_scan(folder_id, list(paths) or None)

    async def revert(self, folder_id: str) -> None:
        async with self._client() as client:
            await client.revert(folder_id)

    async def override(self, folder_id: str) -> None:
        async with self._client() as client:
            await client.override(folder_id)

    async def dismiss_pending_device(self, device_id: str) -> None:
        async with self._client() as client:
            await client.dismiss_pending_device(device_id)

    async def dismiss_pending_folder(self, folder_id: str, device_id: str) -> None:
        async with self._client() as client:
            await client.dismiss_pending_folder(folder_id, device_id)
