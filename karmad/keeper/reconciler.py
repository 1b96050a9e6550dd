"""The keeper's loop: read each served team's control file, decide (pure), act, record.

Woken when a served keeper folder receives a file (the leader's new `control`), when
Syncthing's configuration or stream changes, right after `keeper.serve`, and by a sweep
every `[keeper] sweep_interval_s`.

A control file takes effect only if it verifies against the leader pinned for its team,
names this keeper and its own folder, and has a higher `seq` than the one applied; it is
recorded as applied once what it asks for has been done (so a crash or a failed action
in between makes the next cycle do it again). Anything else is recorded as the team's
`problem`, and the control file applied before stays in effect, also across restarts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import anyio

from karmad import logs
from karmad.bus import Bus, Clock, Subscription
from karmad.health import Health
from karmad.keeper import servedstore
from karmad.keeper.control import CONTROL_NAME, MAX_BYTES
from karmad.keeper.damage import damage, due_repairs
from karmad.keeper.executor import KeeperExecutor, KeeperPort, Outcome
from karmad.keeper.hold import Hold, PutFolder, RecreateFolder, ServedTeam, hold, judge
from karmad.paths import managed_folder
from karmad.store import Store, StoreError
from karmad.sync.model import FolderType
from karmad.sync.port import SyncthingUnavailable

log = logs.get("karmad.keeper")

MARKER = ".stfolder"
"""Syncthing's folder marker: gone means the directory was wiped or is not mounted."""

WAKE_TOPICS = (
    "syncthing.item.finished",
    "syncthing.index.local",
    "syncthing.config.saved",
    "syncthing.stream",
    "syncthing.resynced",
)
"""A file finished in a served keeper folder (the leader's new control file), or our
view of Syncthing changed."""
_FILE_TOPICS = frozenset({"syncthing.item.finished", "syncthing.index.local"})


@dataclass
class KeeperState:
    state: str = "starting"
    cycles: int = 0
    last_cycle_at: datetime | None = None
    last_cycle_ms: float | None = None
    hold: Hold | None = None
    failures: list[str] = field(default_factory=list)


def _read_file(path: Path) -> bytes | None:
    try:
        with path.open("rb") as f:
            return f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None


def _has_marker(path: Path) -> bool:
    return (path / MARKER).is_dir()


class KeeperReconciler:
    def __init__(
        self,
        store: Store,
        port: KeeperPort,
        folders_dir: Path,
        bus: Bus,
        health: Health,
        clock: Clock,
        *,
        sweep_interval: float = 60.0,
        debounce: float = 0.05,
    ) -> None:
        self._store = store
        self._port = port
        self._folders_dir = folders_dir
        self._bus = bus
        self._health = health
        self._clock = clock
        self._sweep = sweep_interval
        self._debounce = debounce
        self._wake = anyio.Event()
        self._cycle_done = anyio.Event()
        self.executor = KeeperExecutor(port, folders_dir)
        self.status = KeeperState()
        self._recreated: dict[str, datetime] = {}
        """When each folder was last re-created (in memory: after a restart a damaged
        folder may be repaired once more straight away)."""
        self._touched: dict[str, datetime] = {}
        """When each folder was last added, changed or re-created."""

    def wake(self) -> None:
        self._wake.set()

    async def wait_cycle(self) -> None:
        await self._cycle_done.wait()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        sub = self._bus.subscribe(WAKE_TOPICS, buffer=1000)
        self.wake()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._forward_events, sub)
            task_status.started()
            while True:
                with anyio.move_on_after(self._sweep):
                    await self._wake.wait()
                await anyio.sleep(self._debounce)
                self._wake = anyio.Event()
                await self.cycle()

    async def _forward_events(self, sub: Subscription) -> None:
        while True:
            async with sub.receive:
                async for event in sub.receive:
                    if event.topic in _FILE_TOPICS and not self._served(event.data.get("folder")):
                        continue
                    self.wake()
            self.wake()
            sub = self._bus.subscribe(WAKE_TOPICS, buffer=1000)

    def _served(self, folder: object) -> bool:
        return isinstance(folder, str) and servedstore.get(self._store, folder) is not None

    # ------------------------------------------------------------------ cycle

    async def cycle(self) -> Outcome | None:
        t0 = time.perf_counter()
        started = self._clock()
        me = self._port.device_id()
        try:
            if me is None:
                self._set_state("waiting", "Syncthing has not reported its device ID yet")
                return None
            outcome = await self._cycle(me)
        except SyncthingUnavailable as exc:
            self._set_state("waiting", f"Syncthing unavailable: {exc}")
            return None
        except (OSError, StoreError) as exc:
            log.error("keeper_cycle_failed", error=str(exc))
            self._set_state("error", str(exc))
            return None
        except Exception as exc:  # a bug here must not take the daemon down
            log.exception("keeper_cycle_crashed")
            self._set_state("error", f"{type(exc).__name__}: {exc}")
            return None
        finally:
            self._cycle_done.set()
            self._cycle_done = anyio.Event()
        self.status.cycles += 1
        self.status.last_cycle_at = started
        self.status.last_cycle_ms = round((time.perf_counter() - t0) * 1000, 2)
        self.status.failures = [f"{type(a).__name__}: {e}" for a, e in outcome.failed]
        if outcome.failed:
            self._set_state("degraded", f"{len(outcome.failed)} action(s) failing")
        else:
            self._set_state("idle")
        return outcome

    def _set_state(self, state: str, detail: str = "") -> None:
        self.status.state = state
        self._health.set("keeper", state, detail)

    async def _cycle(self, me: str) -> Outcome:
        rows = sorted(servedstore.served(self._store), key=lambda r: (r.accepted_at, r.folder_id))
        teams = []
        problems: dict[str, str | None] = {}
        for row in rows:
            data = await anyio.to_thread.run_sync(
                _read_file, managed_folder(self._folders_dir, row.folder_id) / CONTROL_NAME
            )
            newer, problem = judge(
                row.control, data, folder=row.folder_id, leader=row.leader_device, keeper=me
            )
            problems[row.folder_id] = problem
            if problem is not None and problem != row.problem:
                log.warning("keeper_control_refused", folder=row.folder_id, reason=problem)
                self._bus.publish(
                    "keeper.control.refused", {"folder": row.folder_id, "reason": problem}
                )
            teams.append(
                ServedTeam(
                    row.folder_id, row.leader_device, row.leader_addresses, row.control, newer
                )
            )
        devices, folders = await self._port.read_config()
        now = self._clock()
        damaged = {}
        for fid, folder in folders.items():
            if folder.type is not FolderType.RECEIVEENCRYPTED:
                continue
            marker = await anyio.to_thread.run_sync(_has_marker, Path(folder.path))
            status, error = self._port.folder_status(fid), self._port.folder_error(fid)
            if reason := damage(status, error, marker=marker):
                damaged[fid] = reason
        repairs = due_repairs(damaged, self._recreated, self._touched, now)
        decided = hold(teams, me, devices, folders, self._folders_dir, repairs)
        self.status.hold = decided
        outcome = await self.executor.execute(decided.actions)
        for action in outcome.done:
            if isinstance(action, PutFolder):
                self._touched[action.folder.folder_id] = now
            if not isinstance(action, RecreateFolder):
                continue
            fid = action.folder.folder_id
            # Whatever the reason: a folder just re-created is empty while it refills,
            # which must not count as lost data before the interval has passed.
            self._recreated[fid] = self._touched[fid] = now
            if fid in repairs:
                log.warning("keeper_repaired", folder=fid, reason=repairs[fid])
                self._bus.publish("keeper.repaired", {"folder": fid, "reason": repairs[fid]})
        failed = outcome.failed_folders()
        for team in teams:
            problem = problems[team.folder_id]
            if clash := decided.conflicts.get(team.folder_id):
                problem = f"folder(s) already held for another team: {', '.join(clash)}"
            if team.newer is not None:
                mine = {f for f, owner in decided.owners.items() if owner == team.folder_id}
                if not mine & failed:
                    servedstore.apply_control(self._store, team.folder_id, team.newer)
                    applied = {
                        "folder": team.folder_id,
                        "seq": team.newer.seq,
                        "epoch": team.newer.epoch,
                    }
                    log.info("keeper_control_applied", **applied)
                    self._bus.publish("keeper.control.applied", applied)
            servedstore.set_problem(self._store, team.folder_id, problem)
        return outcome
