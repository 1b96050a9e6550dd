"""What reconciliation needs from Syncthing, stated as a narrow interface.

The Syncthing subsystem implements it on top of its REST client and event snapshot; the
reconciler and executor depend on nothing else of it. Every method raises
`SyncthingUnavailable` (a plain exception of this module) when Syncthing cannot be used
right now, so the reconciler can wait instead of failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from karmad.sync.model import DeviceConfig, FolderConfig, PendingDevice, PendingFolder


class SyncthingUnavailable(Exception):
    pass


class ActionFailed(Exception):
    """Syncthing refused or failed one change; the message is Syncthing's own."""


class SyncthingPort(Protocol):
    def device_id(self) -> str | None:
        """Our device ID, once known (the member's identity)."""

    def advertised_addresses(self) -> tuple[str, ...]:
        """Addresses teammates should dial, when discovery cannot find us (else empty)."""

    def pending_devices(self) -> tuple[PendingDevice, ...]: ...

    def pending_folders(self) -> tuple[PendingFolder, ...]: ...

    def connected(self, device_id: str) -> bool | None: ...

    def last_seen(self, device_id: str) -> datetime | None:
        """When Syncthing last had a connection to the device (None: never, or unknown)."""
        ...

    def peer_completion(self, folder_id: str, device_id: str) -> tuple[float, int] | None:
        """The device's completion of a folder and the bytes it still needs, as Syncthing
        last reported them."""
        ...

    def locally_changed(self) -> frozenset[str]:
        """Our receive-only folders with local changes, as last reported."""

    def foreign_changes(self) -> frozenset[str]:
        """Our send-only folders where another device's changes wait, as last reported."""

    async def read_config(self) -> tuple[dict[str, DeviceConfig], dict[str, FolderConfig]]:
        """Configured devices (ourselves excluded) and `karma-` folders: one read."""

    async def read_ignores(self, folder_id: str) -> tuple[str, ...]: ...

    async def add_devices(self, devices: Sequence[DeviceConfig]) -> None: ...

    async def set_device_addresses(self, device_id: str, addresses: Sequence[str]) -> None: ...

    async def put_folders(self, folders: Sequence[FolderConfig]) -> None: ...

    async def set_ignores(self, folder_id: str, patterns: Sequence[str]) -> None: ...

    async def remove_folder(self, folder_id: str) -> None: ...

    async def remove_device(self, device_id: str) -> None: ...

    async def scan(self, folder_id: str, paths: Sequence[str] = ()) -> None: ...

    async def revert(self, folder_id: str) -> None: ...

    async def override(self, folder_id: str) -> None: ...

    async def dismiss_pending_device(self, device_id: str) -> None: ...

    async def dismiss_pending_folder(self, folder_id: str, device_id: str) -> None: ...
