"""The only code that changes Syncthing's configuration or karmad's team folders.

Actions are executed in the planner's order. Failures are isolated: a failing action is
recorded with a backoff and the rest still run; a failed batch is retried one item at a
time so one bad folder never blocks the others. Bulk changes go out as one config write
where Syncthing allows it (folders as an array; devices as one list).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import anyio
import msgspec

from karmad import codec, logs
from karmad.bus import Clock
from karmad.keeper.control import CONTROL_NAME, KEYS_NAME
from karmad.paths import managed_folder, project_dir
from karmad.store import Store
from karmad.sync import integritystore, keeper_files, keeperstore, statefile, teamstore
from karmad.sync import plan as p
from karmad.sync.model import TeamKeeper
from karmad.sync.port import ActionFailed, SyncthingPort, SyncthingUnavailable
from karmad.trust.keys import DeviceKey, TrustError

log = logs.get("karmad.sync")

BACKOFF_START = timedelta(seconds=2)
BACKOFF_MAX = timedelta(minutes=10)


def action_key(action: p.Action) -> str:
    """What an action acts on: failures and backoff are kept per key."""
    match action:
        case p.AddDevice():
            return f"device:{action.device.device_id}"
        case p.UpdateDeviceAddresses() | p.ConnectDevice() | p.RemoveDevice():
            return f"device:{action.device_id}"
        case p.PutFolder():
            return f"folder:{action.folder.folder_id}"
        case p.RemoveFolder():
            return f"folder:{action.folder_id}"
        case p.SetIgnores():
            return f"ignores:{action.folder_id}"
        case p.RevertInbox():
            return f"revert:{action.folder_id}"
        case p.OverrideOwnFolder():
            return f"override:{action.folder_id}"
        case p.PurgeReceived():
            return f"purge:{action.folder_id}:{action.project_key}"
        case p.DismissOffer():
            return f"offer:{action.offer.device_id}:{action.offer.folder_id}"
        case p.WriteState():
            return f"state:{action.folder_id}"
        case p.WriteKeeperFiles():
            return f"keeper-files:{action.files.folder_id}"


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


Signer = Callable[[], DeviceKey]
"""Our Syncthing device key; raises `TrustError` saying why there is none."""

UNSIGNED = "unsigned:"
"""Prefixes the published digest of a state file written without a signature, so that
it is written again, signed, once the key is there (`Reconciler._published`)."""


class Executor:
    def __init__(
        self,
        port: SyncthingPort,
        store: Store,
        folders_dir: Path,
        clock: Clock,
        signer: Signer | None = None,
    ) -> None:
        self._port = port
        self._store = store
        self._folders_dir = folders_dir
        self._clock = clock
        self._signer = signer
        self.failures: dict[str, Failure] = {}
        self.keeper_written: dict[str, str] = {}
        """`KeeperFiles.digest` last written per keeper folder (rewritten once after a
        restart: the sequence numbers grow, so nothing is lost by it)."""

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

        await self._batch(outcome, _only(due, p.AddDevice), self._add_devices)
        await self._each(outcome, due, p.UpdateDeviceAddresses)
        await self._batch(outcome, _only(due, p.PutFolder), self._put_folders)
        await self._each(
            outcome,
            due,
            p.SetIgnores,
            p.RevertInbox,
            p.OverrideOwnFolder,
            p.WriteState,
            p.WriteKeeperFiles,
        )
        # Last of all for a new device: its folders, ignores and our state are there.
        await self._each(outcome, due, p.ConnectDevice)
        await self._each(outcome, due, p.PurgeReceived, p.DismissOffer)
        await self._each(outcome, due, p.RemoveFolder, p.RemoveDevice)
        return outcome

    async def _each(self, outcome: Outcome, due: list[p.Action], *kinds: type) -> None:
        """The due actions of these kinds, one at a time, in the planner's order."""
        for action in due:
            if not isinstance(action, kinds):
                continue
            if self._blocked(action, outcome):
                outcome.skipped.append(action)
                continue
            await self._one(outcome, action, self._effect(action))

    def _blocked(self, action: p.Action, outcome: Outcome) -> bool:
        """A purge waits while its inbox's ignore patterns are failing: deleting what
        Syncthing still admits would look like a local change to it. A device that could
        not be added is not given addresses: both are planned again next cycle."""
        match action:
            case p.PurgeReceived():
                return f"ignores:{action.folder_id}" in self.failures
            case p.ConnectDevice():
                return any(
                    isinstance(failed, p.AddDevice) and failed.device.device_id == action.device_id
                    for failed, _ in outcome.failed
                )
            case _:
                return False

    def _effect(self, action: p.Action) -> Callable[[], Awaitable[None]]:
        """What one action does, alone."""
        port = self._port
        match action:
            case p.AddDevice():
                return partial(self._add_devices, [action])
            case p.PutFolder():
                return partial(self._put_folders, [action])
            case p.UpdateDeviceAddresses() | p.ConnectDevice():
                return partial(port.set_device_addresses, action.device_id, action.addresses)
            case p.SetIgnores():
                return partial(port.set_ignores, action.folder_id, action.patterns)
            case p.RevertInbox():
                return partial(port.revert, action.folder_id)
            case p.OverrideOwnFolder():
                return partial(port.override, action.folder_id)
            case p.WriteState():
                return partial(self._write_state, action)
            case p.WriteKeeperFiles():
                return partial(self._write_keeper_files, action)
            case p.PurgeReceived():
                return partial(self._purge, action)
            case p.DismissOffer() if action.offer.folder_id:
                offer = action.offer
                return partial(port.dismiss_pending_folder, offer.folder_id, offer.device_id)
            case p.DismissOffer():
                return partial(port.dismiss_pending_device, action.offer.device_id)
            case p.RemoveFolder():
                return partial(port.remove_folder, action.folder_id)
            case p.RemoveDevice():
                return partial(self._remove_device, action)

    async def _batch(
        self,
        outcome: Outcome,
        batch: list[p.Action],
        run: Callable[[list[p.Action]], Awaitable[None]],
    ) -> None:
        if not batch:
            return
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
        key = self._state_key(action.team_id)
        directory = managed_folder(self._folders_dir, action.folder_id)
        # Readers never believe a lower seq again: after a store restored from a backup,
        # go on from the file we last published, not from the store's older count.
        on_disk = await anyio.to_thread.run_sync(_published_seq, directory)
        seq = max(team.seq, on_disk) + 1
        body = msgspec.structs.replace(action.body, seq=seq, written_at=self._clock())
        data = (
            statefile.encode(body)
            if key is None
            else statefile.encode_signed(body, key, action.folder_id)
        )
        await anyio.to_thread.run_sync(_write_state, directory, data)
        published = action.digest if key is not None else UNSIGNED + action.digest
        teamstore.set_published(self._store, action.team_id, seq, published)
        with contextlib.suppress(ActionFailed):
            # Scanning now makes the change leave at once; the watcher would catch it anyway.
            await self._port.scan(action.folder_id, [statefile.STATE_NAME])

    def can_sign(self) -> bool:
        """Whether a state file written now would be signed (the key may come late)."""
        if self._signer is None:
            return False
        try:
            self._signer()
        except TrustError:
            return False
        return True

    def _state_key(self, team_id: str) -> DeviceKey | None:
        """The key to sign our state file with. Without one the file goes out unsigned,
        as a karmad from before signatures wrote it, except in a team whose readers
        require signatures (it has or had a keeper): there they would refuse it."""
        problem = "no Syncthing device key"
        if self._signer is not None:
            try:
                return self._signer()
            except TrustError as exc:
                problem = str(exc)
        if integritystore.signatures_required(self._store, team_id):
            raise ActionFailed(
                f"cannot sign the state file, and this team requires signed state files: {problem}"
            )
        return None

    async def _write_keeper_files(self, action: p.WriteKeeperFiles) -> None:
        """`keys` before `control`: K acts on `control`, members read `keys`; a member
        that sees a new epoch in `control`'s wake must find its secret already there."""
        files = action.files
        if self._signer is None:
            raise ActionFailed("this karmad cannot sign: no Syncthing device key")
        try:
            key = self._signer()
        except TrustError as exc:
            raise ActionFailed(f"cannot sign the keeper files: {exc}") from None
        current = keeperstore.keeper(self._store, files.team_id)
        if current is None:
            return
        keys_seq, control_seq = current.keys_seq + 1, current.control_seq + 1
        keys_data, control_data = keeper_files.render(key, files, keys_seq, control_seq)
        directory = managed_folder(self._folders_dir, files.folder_id)
        await anyio.to_thread.run_sync(
            _write_files, directory, ((KEYS_NAME, keys_data), (CONTROL_NAME, control_data))
        )
        keeperstore.put(self._store, _with_seqs(current, keys_seq, control_seq))
        self.keeper_written[files.folder_id] = files.digest
        with contextlib.suppress(ActionFailed):
            await self._port.scan(files.folder_id, [KEYS_NAME, CONTROL_NAME])

    async def _purge(self, action: p.PurgeReceived) -> None:
        inbox = managed_folder(self._folders_dir, action.folder_id)
        target = project_dir(self._folders_dir, action.folder_id, action.project_key)
        await anyio.to_thread.run_sync(_remove_received, inbox, target)

    def failure_summaries(self, now: datetime) -> list[tuple[Failure, float]]:
        return [
            (f, max(0.0, math.ceil((f.retry_at - now).total_seconds())))
            for f in sorted(self.failures.values(), key=lambda f: f.key)
        ]


def _prepare_folder_dir(path: Path) -> None:
    """Create the folder's directory (and Syncthing's marker) before Syncthing sees it."""
    path.mkdir(parents=True, exist_ok=True)
    (path / ".stfolder").mkdir(exist_ok=True)


def _published_seq(directory: Path) -> int:
    """The `seq` of the state file in our own folder (0 if none or unreadable)."""
    path = directory / statefile.STATE_NAME
    try:
        data = path.read_bytes()[: statefile.MAX_STATE_BYTES + 1]
        payload = data.split(b"\n", 1)[0]
        return max(0, int(codec.decode_json(payload, _Seq).seq))
    except (OSError, codec.InvalidData, ValueError):
        return 0


class _Seq(msgspec.Struct):
    seq: int = 0


def _write_state(directory: Path, data: bytes) -> None:
    _prepare_folder_dir(directory)
    statefile.write_atomic(directory, statefile.STATE_NAME, data)


def _write_files(directory: Path, files: tuple[tuple[str, bytes], ...]) -> None:
    _prepare_folder_dir(directory)
    for name, data in files:
        statefile.write_atomic(directory, name, data)


def _with_seqs(k: TeamKeeper, keys_seq: int, control_seq: int) -> TeamKeeper:
    return replace(k, keys_seq=keys_seq, control_seq=control_seq)


def _remove_received(inbox: Path, target: Path) -> None:
    """Delete a received project's directory, and nothing outside the inbox: the owner's
    Syncthing decides what is in there, links included."""
    if not os.path.lexists(target):
        return
    if target.is_symlink() or not target.resolve().is_relative_to(inbox.resolve()):
        raise OSError(f"{target} leads outside its inbox; not deleted")
    shutil.rmtree(target)


def _only(actions: list[p.Action], kind: type) -> list[p.Action]:
    return [a for a in actions if isinstance(a, kind)]


__all__ = ["Executor", "Failure", "Outcome", "SyncthingUnavailable", "action_key"]
