"""The Syncthing subsystem of the daemon: managed, external or off.

Started with `await tg.start(service.run)`; it reports started once Syncthing answers
and the first snapshot is built, or once it is known to be absent, unreachable or
failing (so daemon readiness never waits for a Syncthing that will not come). It keeps
`health["syncthing"]` current and gives RPC handlers and other subsystems:

- `stream.snapshot` (read-only, never a call to Syncthing) via `require_snapshot()`,
- `request_scan()` to have paths scanned now rather than after the watcher delay,
- `client` for subsystems that change Syncthing's configuration,
- `keys.current()`: the device key this member signs with, once it is known to be the
  key of the Syncthing karmad drives (else None, and `keys.problem` says why).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import anyio
from anyio.abc import TaskStatus

from karmad import logs
from karmad.bus import Bus, Clock, utc_now
from karmad.config import SyncthingConfig
from karmad.errors import KarmadError, invalid_argument, not_found
from karmad.health import Health
from karmad.paths import Paths
from karmad.protocol import ErrorCode
from karmad.syncthing import binary as binary_mod
from karmad.syncthing import discover, ids, validation
from karmad.syncthing.addresses import Endpoint
from karmad.syncthing.binary import Binary, BinaryError
from karmad.syncthing.client import SyncthingClient
from karmad.syncthing.compat import Compat, Unsupported, Version
from karmad.syncthing.devicekey import DeviceKeys, KeySource
from karmad.syncthing.errors import AuthFailed, Rejected, SyncthingError
from karmad.syncthing.events import EventStream
from karmad.syncthing.home import HomeSettings, PreparedHome
from karmad.syncthing.snapshot import Snapshot
from karmad.syncthing.supervisor import RunInfo, Supervisor

log = logs.get("karmad.syncthing")

SUBSYSTEM: Final = "syncthing"
BINARY_RECHECK_S: Final = 30.0
"""How often a karmad without Syncthing looks again (the user may install it meanwhile)."""
SESSION_RETRY_S: Final = 0.5
SESSION_RETRY_MAX_S: Final = 10.0
MAX_SCAN_PATHS: Final = 1000

SETTLED_STATES: Final = frozenset(
    {"running", "restarting", "failed", "not-installed", "unreachable", "off"}
)


@dataclass(frozen=True, slots=True)
class Attachment:
    """The Syncthing karmad currently talks to."""

    endpoint: Endpoint
    source: str
    home: Path | None
    version: Version | None = None
    long_version: str = ""


class _Readiness:
    def __init__(self, task_status: TaskStatus[None]) -> None:
        self._task_status = task_status
        self._done = False

    def signal(self) -> None:
        if not self._done:
            self._done = True
            self._task_status.started()


class SyncthingService:
    def __init__(
        self,
        paths: Paths,
        config: SyncthingConfig,
        bus: Bus,
        health: Health,
        *,
        clock: Clock = utc_now,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.paths = paths
        self.config = config
        self.mode = config.mode
        self._bus = bus
        self._health = health
        self._clock = clock
        self._environ = dict(os.environ if environ is None else environ)
        self._settled = anyio.Event()
        self.stream = EventStream(
            bus,
            clock,
            poll_s=config.event_poll_s,
            request_timeout=config.connect_timeout_s,
            on_live=self._on_live,
        )
        self.state = "starting"
        self.detail = ""
        self.binary: Binary | None = None
        self.supervisor: Supervisor | None = None
        self.attachment: Attachment | None = None
        self.client: SyncthingClient | None = None
        self._client_key = ""
        self._up = anyio.Event()
        self._session_ended = anyio.Event()
        self._down_since: float | None = None
        self.auth_error = ""
        """Why Syncthing last refused karmad's API key; empty once a request is accepted.

        Kept apart from `detail` so `karmactl doctor` can tell a wrong key (fix the key)
        from a Syncthing that is not there (start it), whatever the state says."""
        self.keys = DeviceKeys(self._key_source, health)
        """The device key this member signs with (docs/keeper.md, 2.3)."""

    # ------------------------------------------------------------------ state

    def _set(self, state: str, detail: str = "") -> None:
        if (state, detail) != (self.state, self.detail):
            log.info("syncthing_state", state=state, detail=detail)
        self.state, self.detail = state, detail
        self._health.set(SUBSYSTEM, state, detail)
        if state in SETTLED_STATES and state != "running":
            self._settled.set()

    def _on_live(self) -> None:
        self._settled.set()
        # Syncthing's device ID is known (again): say at once whether this member signs.
        self.keys.current()

    def _key_source(self) -> KeySource:
        if self.mode == "off":
            return KeySource(None, "", "syncthing.mode is off")
        snap = self.stream.snapshot
        reported = snap.my_id if snap is not None else ""
        if not reported:
            return KeySource(None, "", f"Syncthing's device ID is not known yet ({self.state})")
        if self.mode == "managed":
            return KeySource(self.paths.syncthing_home, reported)
        attachment = self.attachment
        if attachment is not None and attachment.home is None:
            return KeySource(
                None,
                reported,
                f"the Syncthing at {attachment.endpoint} is given by address and API key "
                "alone: karmad does not know its home, where its device key is (set "
                "syncthing.home)",
            )
        return KeySource(attachment.home if attachment else None, reported, "no Syncthing home")

    @property
    def live(self) -> bool:
        return self.stream.live and self.stream.snapshot is not None

    @property
    def device_id(self) -> str:
        snap = self.stream.snapshot
        if snap is not None and snap.my_id:
            return snap.my_id
        prepared = self.supervisor.prepared if self.supervisor else None
        return prepared.device_id if prepared else ""

    @property
    def prepared(self) -> PreparedHome | None:
        return self.supervisor.prepared if self.supervisor else None

    @property
    def running(self) -> RunInfo | None:
        return self.supervisor.current if self.supervisor else None

    # ------------------------------------------------------------------ run

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        ready = _Readiness(task_status)
        try:
            if self.mode == "off":
                self._set("off", "syncthing.mode is off: sessions are indexed, not shared")
                self.keys.current()
                ready.signal()
                await anyio.sleep_forever()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._sessions)
                if self.mode == "managed":
                    tg.start_soon(self._run_managed)
                else:
                    tg.start_soon(self._run_external)
                with anyio.move_on_after(self.config.start_timeout_s + 5):
                    await self._settled.wait()
                ready.signal()
        finally:
            with anyio.CancelScope(shield=True):
                self.stream.mark_down("karmad is stopping")
                if self.client is not None:
                    await self.client.aclose()
                    self.client = None

    async def _client_for(
        self, endpoint: Endpoint, api_key: str, target: discover.Target | None = None
    ) -> SyncthingClient:
        current = self.client
        if current is not None and (current.endpoint, self._client_key) == (endpoint, api_key):
            return current
        if current is not None:
            await current.aclose()
        self.client = SyncthingClient(
            endpoint,
            api_key,
            connect_timeout=self.config.connect_timeout_s,
            request_timeout=self.config.request_timeout_s,
            scan_timeout=self.config.scan_timeout_s,
            tls=target.tls_context() if target is not None else None,
        )
        self._client_key = api_key
        return self.client

    async def _sessions(self) -> None:
        """Run event-stream sessions whenever Syncthing is up; reconnect when one ends."""
        delay = SESSION_RETRY_S
        while True:
            await self._up.wait()
            client = self.client
            if client is None:
                await anyio.sleep(delay)
                continue
            started = anyio.current_time()
            try:
                await self.stream.run(client)
            except* SyncthingError as group:
                self._session_failed(_first(group), expected=True)
            except* Exception as group:
                self._session_failed(_first(group), expected=False)
            self._session_ended.set()
            lasted = anyio.current_time() - started
            delay = (
                SESSION_RETRY_S
                if lasted > SESSION_RETRY_MAX_S
                else min(delay * 2, SESSION_RETRY_MAX_S)
            )
            await anyio.sleep(delay)

    def _session_failed(self, exc: BaseException, *, expected: bool) -> None:
        if isinstance(exc, AuthFailed):
            self.auth_error = str(exc)
        if not expected:
            log.error("event_stream_failed", error=repr(exc), exc_info=exc)
        was_live = self.stream.live
        self.stream.mark_down(str(exc) or type(exc).__name__)
        if was_live or self._down_since is None:
            self._down_since = anyio.current_time()

    def _unresponsive_for(self) -> float:
        if self.live or self._down_since is None:
            return 0.0
        return anyio.current_time() - self._down_since

    # ------------------------------------------------------------------ managed

    async def _find_binary(self) -> Binary:
        while True:
            path = binary_mod.locate(self.config.binary, self._environ)
            if path is None:
                self._set("not-installed", binary_mod.not_found_detail(self.config.binary))
                await anyio.sleep(BINARY_RECHECK_S)
                continue
            try:
                return await anyio.to_thread.run_sync(binary_mod.probe, path)
            except BinaryError as exc:
                self._set("failed", str(exc))
                await anyio.sleep(BINARY_RECHECK_S)

    async def _run_managed(self) -> None:
        self.binary = binary = await self._find_binary()
        log.info("syncthing_binary", path=str(binary.path), version=str(binary.version))
        settings = HomeSettings(
            home=self.paths.syncthing_home,
            api_key_file=self.paths.syncthing_api_key,
            gui_socket=self.paths.syncthing_gui_socket,
            gui_address=self.config.gui_address,
            profile=self.config.profile,
            listen_addresses=tuple(self.config.listen_addresses),
        )
        self.supervisor = Supervisor(
            binary,
            settings,
            self.config,
            report=self._set,
            probe=self._probe,
            on_running=self._on_running,
            on_stopped=self._on_stopped,
            unresponsive_for=self._unresponsive_for,
            clock=self._clock,
        )
        await self.supervisor.run()

    async def _probe(self, prepared: PreparedHome) -> None:
        client = await self._client_for(prepared.endpoint, prepared.api_key)
        assert self.supervisor is not None
        try:
            await client.healthy(self.supervisor.binary.compat)
        except AuthFailed as exc:
            self.auth_error = str(exc)
            raise

    def _on_running(self, run: RunInfo) -> None:
        assert self.supervisor is not None
        self.binary = self.supervisor.binary
        self.attachment = Attachment(
            endpoint=run.prepared.endpoint,
            source="managed",
            home=run.prepared.home,
            version=self.binary.version,
            long_version=self.binary.long_version,
        )
        self._down_since = anyio.current_time()
        self.auth_error = ""
        self._up.set()

    def _on_stopped(self) -> None:
        self._up = anyio.Event()
        self.stream.mark_down("Syncthing is not running")

    # ------------------------------------------------------------------ external

    async def _run_external(self) -> None:
        delay = self.config.restart_delay_s
        while True:
            # A retry after a failure stays `unreachable`, with the reason: flipping to
            # `connecting` on every attempt would hide why it failed.
            if self.state != "unreachable":
                self._set("connecting", "looking for Syncthing")
            try:
                targets, problems = await anyio.to_thread.run_sync(
                    discover.targets, self.config, self._environ
                )
            except ValueError as exc:
                targets, problems = [], [str(exc)]
            attached = None
            for target in targets:
                try:
                    attached = await self._attach(target)
                    break
                except AuthFailed as exc:
                    self.auth_error = str(exc)
                    problems.append(f"{target.source}: {exc}")
                except SyncthingError as exc:
                    problems.append(f"{target.source}: {exc}")
                except (ValueError, Unsupported) as exc:
                    problems.append(f"{target.source}: {exc}")
            if attached is None:
                detail = "; ".join(problems)
                self._set("unreachable", f"{detail}; retrying in {delay:.0f}s")
                await anyio.sleep(delay)
                delay = min(delay * 2, self.config.restart_delay_max_s)
                continue
            delay = self.config.restart_delay_s
            self.attachment = attached
            self.auth_error = ""
            self._set(
                "running",
                f"attached to Syncthing {attached.version} at {attached.endpoint} "
                f"({attached.source})",
            )
            self._session_ended = anyio.Event()
            self._down_since = anyio.current_time()
            self._up.set()
            await self._session_ended.wait()
            self._up = anyio.Event()

    async def _attach(self, target: discover.Target) -> Attachment:
        client = await self._client_for(target.endpoint, target.api_key, target)
        version = await client.version()
        parsed = Version.parse(version.version)
        Compat.for_version(parsed)
        return Attachment(
            endpoint=target.endpoint,
            source=target.source,
            home=target.home,
            version=parsed,
            long_version=version.long_version,
        )

    # ------------------------------------------------------------------ for handlers

    def require_snapshot(self) -> Snapshot:
        """The live snapshot, or the error that says why there is none."""
        if self.mode == "off":
            raise KarmadError(ErrorCode.SYNCTHING_UNAVAILABLE, self.detail)
        if self.state == "not-installed":
            raise KarmadError(ErrorCode.SYNCTHING_NOT_INSTALLED, self.detail)
        snap = self.stream.snapshot
        if not self.live or snap is None:
            why = self.detail or self.stream.down_reason
            raise KarmadError(
                ErrorCode.SYNCTHING_UNAVAILABLE, f"Syncthing is {self.state}: {why}".strip()
            )
        return snap

    def request_scan(self, folder_id: str | None, paths: list[str]) -> tuple[list[str], list[str]]:
        """Queue a scan of one managed folder (or of all): the folders and paths queued."""
        snap = self.require_snapshot()
        if len(paths) > MAX_SCAN_PATHS:
            raise invalid_argument(f"at most {MAX_SCAN_PATHS} paths per request", field="paths")
        try:
            checked = sorted({validation.sub_path(p) for p in paths})
        except Rejected as exc:
            raise invalid_argument(exc.message, field="paths") from None
        if folder_id is None:
            if checked:
                raise invalid_argument("paths need a folder", field="paths")
            folders = [f.config.id for f in snap.managed_folders()]
        else:
            if not ids.is_managed(folder_id) or folder_id not in snap.folders:
                raise not_found("karmad-managed folder", folder_id)
            folders = [folder_id]
        for fid in folders:
            self.stream.request_scan(fid, checked or None)
        return folders, checked

    @property
    def started_at(self) -> datetime | None:
        run = self.running
        return run.started_at if run else None


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
