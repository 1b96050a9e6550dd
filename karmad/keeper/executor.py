"""The only code that changes a keeper's Syncthing configuration and folders.

It does what `karmad.keeper.hold` decided, in an order that works with Syncthing's
encrypted folders: devices first, then folders (re-created ones deleted, wiped and added
again), then one pause and resume of every peer that has a folder new to it on this
keeper (Syncthing #8278: without it nothing flows on the live connection), and removals
last. A failing action is recorded and the others still run; the next cycle decides
again from what Syncthing then has.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import anyio

from karmad import logs
from karmad.keeper import hold as h
from karmad.paths import managed_folder
from karmad.sync.model import DeviceConfig, FolderConfig
from karmad.sync.port import ActionFailed
from karmad.syncthing.models import FolderStatus

log = logs.get("karmad.keeper")


class KeeperPort(Protocol):
    """What the keeper needs of Syncthing (`karmad.syncthing.port.ServicePort`)."""

    def device_id(self) -> str | None: ...

    def advertised_addresses(self) -> tuple[str, ...]: ...

    def folder_status(self, folder_id: str) -> FolderStatus | None: ...

    def folder_error(self, folder_id: str) -> str: ...

    async def read_config(self) -> tuple[dict[str, DeviceConfig], dict[str, FolderConfig]]: ...

    async def add_devices(self, devices: Sequence[DeviceConfig]) -> None: ...

    async def put_folders(self, folders: Sequence[FolderConfig]) -> None: ...

    async def remove_folder(self, folder_id: str) -> None: ...

    async def remove_device(self, device_id: str) -> None: ...

    async def reset_connection(self, device_id: str) -> None: ...


@dataclass
class Outcome:
    done: list[h.Action] = field(default_factory=list)
    failed: list[tuple[h.Action, str]] = field(default_factory=list)
    reset: list[str] = field(default_factory=list)
    """Peers whose connection was paused and resumed."""

    def failed_folders(self) -> set[str]:
        out = set()
        for action, _ in self.failed:
            match action:
                case h.PutFolder() | h.RecreateFolder():
                    out.add(action.folder.folder_id)
                case h.RemoveFolder():
                    out.add(action.folder_id)
                case _:
                    pass
        return out


def _prepare(path: Path) -> None:
    """The folder's directory and Syncthing's marker, before Syncthing sees the folder
    (a missing marker is what the keeper's own check reads as a wiped folder)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / ".stfolder").mkdir(exist_ok=True)


class KeeperExecutor:
    def __init__(self, port: KeeperPort, folders_dir: Path) -> None:
        self._port = port
        self._folders_dir = folders_dir

    async def execute(self, actions: Sequence[h.Action]) -> Outcome:
        """Raises `SyncthingUnavailable` if Syncthing goes away midway."""
        outcome = Outcome()
        devices = [a for a in actions if isinstance(a, h.PutDevice)]
        if devices:
            await self._run(outcome, devices, self._port.add_devices([a.device for a in devices]))
        reset: set[str] = set()
        for action in actions:
            match action:
                case h.PutFolder():
                    if await self._run(outcome, [action], self._put(action.folder)):
                        reset |= action.new_peers
                case h.RecreateFolder():
                    if await self._run(outcome, [action], self._recreate(action)):
                        reset |= action.folder.devices
                case _:
                    pass
        me = self._port.device_id()
        for device in sorted(reset - {me}):
            try:
                await self._port.reset_connection(device)
            except ActionFailed as exc:
                # Not fatal: the connection resets sooner or later on its own.
                log.warning("keeper_reset_failed", device=device[:7], error=str(exc))
            else:
                outcome.reset.append(device)
        for action in actions:
            match action:
                case h.RemoveFolder():
                    await self._run(outcome, [action], self._remove(action.folder_id))
                case h.RemoveDevice():
                    await self._run(outcome, [action], self._port.remove_device(action.device_id))
                case _:
                    pass
        return outcome

    async def _run(
        self, outcome: Outcome, actions: Sequence[h.Action], work: Awaitable[None]
    ) -> bool:
        try:
            await work
        except ActionFailed as exc:
            error = str(exc)
        except OSError as exc:
            error = exc.strerror or str(exc)
        else:
            outcome.done.extend(actions)
            return True
        for action in actions:
            outcome.failed.append((action, error))
            log.warning("keeper_action_failed", action=type(action).__name__, error=error)
        return False

    def _dir(self, folder_id: str) -> Path:
        path = managed_folder(self._folders_dir, folder_id)
        if path.parent != self._folders_dir:  # managed_folder guarantees it; say so here
            raise OSError(f"refusing to touch {path}: not in karmad's folders directory")
        return path

    async def _put(self, folder: FolderConfig) -> None:
        path = self._dir(folder.folder_id)
        await anyio.to_thread.run_sync(_prepare, path)
        await self._port.put_folders([folder])

    async def _wipe(self, folder_id: str) -> None:
        path = self._dir(folder_id)
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(path, ignore_errors=True))

    async def _recreate(self, action: h.RecreateFolder) -> None:
        fid = action.folder.folder_id
        log.info("keeper_recreate", folder=fid, reason=action.reason)
        await self._port.remove_folder(fid)
        # Syncthing keeps the files and the password token of a removed folder: without
        # the wipe the folder would stay bound to the old password.
        await self._wipe(fid)
        await self._put(action.folder)

    async def _remove(self, folder_id: str) -> None:
        await self._port.remove_folder(folder_id)
        # Ciphertext of a team K no longer serves is of no use to anyone here.
        await self._wipe(folder_id)
