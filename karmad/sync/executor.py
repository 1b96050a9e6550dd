"""The only code that changes Syncthing's configuration (and writes our state files).

Actions are executed in the planner's order. Failures are isolated: a failing action is
recorded with a backoff and the rest still run; a failed batch is retried one item at a
time so one bad folder never blocks the others. Bulk changes go out as one config write
where Syncthing allows it (folders as an array; devices as one list).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import anyio
import msgspec

from karmad import logs
from karmad.bus import Clock
from karmad.store import Store
from karmad.sync import plan as p
from karmad.sync import statefile, teamstore
from karmad.sync.port import ActionFailed, SyncthingPort, SyncthingUnavailable

log = logs.get("karmad.sync")

BACKOFF_START = timedelta(seconds=2)
BACKOFF_MAX = timedelta(minutes=10)


def action_key(action: p.Action) -> str:
    if isinstance(action, p.AddDevice):
        return f"device:{action.device.device_id}"
    if isinstance(action, p.UpdateDeviceAddresses | p.ConnectDevice | p.RemoveDevice):
        return f"device:{action.device_id}"
    if isinstance(action, p.PutFolder):
        return f"folder:{action.folder.folder_id}"
    if isinstance(action, p.RemoveFolder):
        return f"folder:{action.folder_id}"
    if isinstance(action, p.SetIgnores):
        return f"ignores:{action.folder_id}"
    if isinstance(action, p.RevertInbox):
        return f"revert:{action.folder_id}"
    return f"state:{action.folder_id}"


@dataclass
class Failure:
    key: str
    action: str
    error: str
    attempts: int
    retry_at: datetime


@dataclass
class Outcome:
    done: list[p.Action] = field(default_factory=list)
    failed: list[tuple[p.Action, str]] = field(default_factory=list)
    skipped: list[p.Action] = field(default_factory=list)
    """Still backing off from an earlier failure."""


class Executor:
    def __init__(self, port: SyncthingPort, store: Store, folders_dir: Path, clock: Clock) -> None:
        self._port = port
        self._store = store
        self._folders_dir = folders_dir
        self._clock = clock
        self.failures: dict[str, Failure] = {}

    def _due(self, action: p.Action, now: datetime) -> bool:
        failure = self.failures.get(action_key(action))
        return failure is None or failure.retry_at <= now

    def _failed(self, outcome: Outcome, action: p.Action, error: str, now: datetime) -> None:
        key = action_key(action)
        previous = self.failures.get(key)
        attempts = 1 if previous is None else previous.attempts + 1
        delay = min(BACKOFF_START * (2 ** (attempts - 1)), BACKOFF_MAX)
        self.failures[key] = Failure(key, type(action).__name__, error, attempts, now + delay)
        outcome.failed.append((action, error))
        log.warning(
            "sync_action_failed",
            action=type(action).__name__,
            key=key,
            error=error,
            attempts=attempts,
        )

    def _succeeded(self, outcome: Outcome, action: p.Action) -> None:
        self.failures.pop(action_key(action), None)
        outcome.done.append(action)

    async def _one(
        self, outcome: Outcome, action: p.Action, run: Callable[[], Awaitable[None]]
    ) -> None:
        try:
            await run()
        except ActionFailed as exc:
            self._failed(outcome, action, str(exc), self._clock())
        except OSError as exc:
            self._failed(outcome, action, f"{exc.strerror or exc}", self._clock())
        else:
            self._succeeded(outcome, action)

    async def execute(self, actions: list[p.Action]) -> Outcome:
        """Run what is due; raises `SyncthingUnavailable` if Syncthing goes away midway."""
        outcome = Outcome()
        now = self._clock()
        due: list[p.Action] = []
        for action in actions:
            (due if self._due(action, now) else outcome.skipped).append(action)

        adds = [a for a in due if isinstance(a, p.AddDevice)]
        if adds:
            await self._batch(outcome, adds, self._add_devices)
        for action in due:
            if isinstance(action, p.UpdateDeviceAddresses):
                run = partial(self._port.set_device_addresses, action.device_id, action.addresses)
                await self._one(outcome, action, run)
        puts = [a for a in due if isinstance(a, p.PutFolder)]
        if puts:
            await self._batch(outcome, puts, self._put_folders)
        for action in due:
            if isinstance(action, p.SetIgnores):
                run = partial(self._port.set_ignores, action.folder_id, action.patterns)
                await self._one(outcome, action, run)
            elif isinstance(action, p.RevertInbox):
                await self._one(outcome, action, partial(self._port.revert, action.folder_id))
            elif isinstance(action, p.WriteState):
                await self._one(outcome, action, partial(self._write_state, action))
        not_added = {a.device.device_id for a, _ in outcome.failed if isinstance(a, p.AddDevice)}
        for action in due:
            # Last of all for a new device: its folders, ignores and our state are there.
            if isinstance(action, p.ConnectDevice):
                if action.device_id in not_added:
                    outcome.skipped.append(action)  # planned again with its AddDevice
                    continue
                run = partial(self._port.set_device_addresses, action.device_id, action.addresses)
                await self._one(outcome, action, run)
        for action in due:
            if isinstance(action, p.RemoveFolder):
                await self._one(
                    outcome, action, partial(self._port.remove_folder, action.folder_id)
                )
            elif isinstance(action, p.RemoveDevice):
                await self._one(outcome, action, partial(self._remove_device, action))
        return outcome

    async def _batch(
        self,
        outcome: Outcome,
        actions: list[p.AddDevice] | list[p.PutFolder],
        run: Callable[[list[p.Action]], Awaitable[None]],
    ) -> None:
        batch: list[p.Action] = list(actions)
        try:
            await run(batch)
        except (ActionFailed, OSError):
            # Find the culprit(s): one at a time, so the others still get through.
            for action in batch:
                await self._one(outcome, action, partial(run, [action]))
            return
        for action in batch:
            self._succeeded(outcome, action)

    async def _add_devices(self, actions: list[p.Action]) -> None:
        devices = [a.device for a in actions if isinstance(a, p.AddDevice)]
        await self._port.add_devices(devices)
        now = self._clock()
        with self._store.transaction():
            for device in devices:
                teamstore.add_managed_device(self._store, device.device_id, now)

    async def _put_folders(self, actions: list[p.Action]) -> None:
        folders = [a.folder for a in actions if isinstance(a, p.PutFolder)]
        for folder in folders:
            await anyio.to_thread.run_sync(_prepare_folder_dir, Path(folder.path))
        await self._port.put_folders(folders)

    async def _remove_device(self, action: p.RemoveDevice) -> None:
        await self._port.remove_device(action.device_id)
        teamstore.remove_managed_device(self._store, action.device_id)

    async def _write_state(self, action: p.WriteState) -> None:
        team = teamstore.team(self._store, action.team_id)
        if team is None:
            return
        seq = team.seq + 1
        body = msgspec.structs.replace(action.body, seq=seq, written_at=self._clock())
        directory = Path(p.folder_path(str(self._folders_dir), action.folder_id))
        await anyio.to_thread.run_sync(_write_state, directory, statefile.encode(body))
        teamstore.set_published(self._store, action.team_id, seq, action.digest)
        with contextlib.suppress(ActionFailed):
            # Scanning now makes the change leave at once; the watcher would catch it anyway.
            await self._port.scan(action.folder_id, [statefile.STATE_NAME])

    def failure_summaries(self, now: datetime) -> list[tuple[Failure, float]]:
        return [
            (f, max(0.0, math.ceil((f.retry_at - now).total_seconds())))
            for f in sorted(self.failures.values(), key=lambda f: f.key)
        ]


def _prepare_folder_dir(path: Path) -> None:
    """Create the folder's directory (and Syncthing's marker) before Syncthing sees it."""
    path.mkdir(parents=True, exist_ok=True)
    (path / ".stfolder").mkdir(exist_ok=True)


def _write_state(directory: Path, data: bytes) -> None:
    _prepare_folder_dir(directory)
    statefile.write_atomic(directory, statefile.STATE_NAME, data)


__all__ = ["Executor", "Failure", "Outcome", "SyncthingUnavailable", "action_key"]
