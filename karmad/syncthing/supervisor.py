"""Keeping karmad's own Syncthing running.

Before every start the home is prepared (identity, API key, karmad-owned settings) and
any Syncthing a previous, killed karmad left behind is stopped. Syncthing runs in its own
process group with a clean environment. When it dies it is restarted with exponential
backoff; a run that lasted long enough resets the backoff, and a restart Syncthing asked
for (exit status 3) happens at once. A Syncthing that stops answering is restarted too.
On shutdown Syncthing gets SIGTERM, then SIGKILL after a grace period, and so does the
real Syncthing process its monitor started (see `proctree`): no orphan survives karmad.
A karmad that is killed cannot do this, so a guard process (`guard`) kills its
Syncthing the moment karmad's process ends.

States reported: starting, running, restarting, failed (the same problem again and
again, or one a restart cannot fix; retries continue at the longest delay).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Final

import anyio
from anyio.abc import Process

from karmad import logs
from karmad.bus import Clock
from karmad.config import SyncthingConfig
from karmad.syncthing import binary as binary_mod
from karmad.syncthing import home as home_mod
from karmad.syncthing import proctree
from karmad.syncthing.binary import Binary, BinaryError
from karmad.syncthing.compat import EXIT_RESTART, child_env
from karmad.syncthing.errors import AuthFailed, SyncthingError
from karmad.syncthing.guard import Guard
from karmad.syncthing.home import HomeError, HomeSettings, PreparedHome

log = logs.get("karmad.syncthing.supervisor")

STABLE_AFTER_S: Final = 30.0
"""A run this long resets the backoff: it was not a crash loop."""
FAILED_AFTER: Final = 5
"""Consecutive short runs before the state says `failed` rather than `restarting`."""
WATCHDOG_S: Final = 2.0
PID_FILE: Final = "karmad-syncthing.pid"
STDERR_FILE: Final = "syncthing.stderr"
LOG_TAIL_BYTES: Final = 16 << 10


class BinaryGone(Exception):
    pass


@dataclass(frozen=True, slots=True)
class RunInfo:
    pid: int
    started_at: datetime
    prepared: PreparedHome


@dataclass(frozen=True, slots=True)
class Outcome:
    detail: str
    lifetime: float = 0.0
    fatal: bool = False
    """A restart alone will not fix it (the user must act)."""
    restart_requested: bool = False
    state: str = ""
    """Overrides the state reported (`not-installed` when the binary went away)."""


class Supervisor:
    def __init__(
        self,
        binary: Binary,
        settings: HomeSettings,
        config: SyncthingConfig,
        *,
        report: Callable[[str, str], None],
        probe: Callable[[PreparedHome], Awaitable[None]],
        on_running: Callable[[RunInfo], None],
        on_stopped: Callable[[], None],
        unresponsive_for: Callable[[], float],
        clock: Clock,
    ) -> None:
        self.binary = binary
        self.settings = settings
        self._config = config
        self._report = report
        self._probe = probe
        self._on_running = on_running
        self._on_stopped = on_stopped
        self._unresponsive_for = unresponsive_for
        self._clock = clock
        self._pid_file = proctree.PidFile(settings.home / PID_FILE)
        self._guard = Guard(settings.home)
        self._inner: list[int] = []
        self._binary_stamp: tuple[int, int] | None = None
        self.current: RunInfo | None = None
        self.prepared: PreparedHome | None = None
        self.restarts = 0

    async def run(self) -> None:
        try:
            await self._run_forever()
        finally:
            # Syncthing is stopped by now (`_run_once` stops it, shielded, on the way out).
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._guard.release)

    async def _run_forever(self) -> None:
        failures = 0
        while True:
            outcome = await self._run_once()
            self.current = None
            if outcome.restart_requested:
                failures, delay = 0, 0.0
            else:
                failures = 1 if outcome.lifetime >= STABLE_AFTER_S else failures + 1
                delay = min(
                    self._config.restart_delay_s * 2 ** (failures - 1),
                    self._config.restart_delay_max_s,
                )
            self.restarts += 1
            state = outcome.state or (
                "failed" if outcome.fatal or failures >= FAILED_AFTER else "restarting"
            )
            self._report(state, f"{outcome.detail}; restarting in {delay:.1f}s")
            log.warning("syncthing_stopped", state=state, detail=outcome.detail, retry_s=delay)
            await anyio.sleep(delay)

    # ------------------------------------------------------------------ one run

    def _refresh_binary(self) -> None:
        """Notice a Syncthing upgraded (or removed) by the package manager since the last start."""
        path = self.binary.path
        try:
            st = path.stat()
        except FileNotFoundError:
            raise BinaryGone(binary_mod.not_found_detail(str(path))) from None
        stamp = (st.st_mtime_ns, st.st_size)
        if self._binary_stamp is not None and stamp != self._binary_stamp:
            self.binary = binary_mod.probe(path)
            log.info("syncthing_binary_changed", version=str(self.binary.version))
        self._binary_stamp = stamp

    def _prepare(self) -> tuple[PreparedHome, IO[bytes]]:
        """Blocking: clean up leftovers, prepare the home, open the stderr capture."""
        self._refresh_binary()
        home = self.settings.home
        leftovers = proctree.terminate(self._pid_file.read(), home, self._config.stop_timeout_s)
        if leftovers:
            log.warning("stopped_leftover_syncthing", pids=leftovers)
        try:
            self._guard.start()
        except OSError as exc:
            # Without it only a karmad killed outright leaves Syncthing running (until
            # the next start's sweep); not a reason to share nothing.
            log.warning("syncthing_guard_failed", error=str(exc))
        prepared = home_mod.prepare(self.binary, self.settings, now=self._clock)
        if prepared.notes or prepared.changed:
            log.info("syncthing_home", notes=prepared.notes, settings_applied=prepared.changed)
        stderr = (home / STDERR_FILE).open("wb")
        return prepared, stderr

    async def _run_once(self) -> Outcome:
        self._report("starting", "restarting Syncthing" if self.restarts else "starting Syncthing")
        try:
            prepared, stderr = await anyio.to_thread.run_sync(self._prepare)
        except BinaryGone as exc:
            return Outcome(str(exc), fatal=True, state="not-installed")
        except (HomeError, BinaryError) as exc:
            return Outcome(str(exc), fatal=True)
        except OSError as exc:
            return Outcome(f"cannot prepare {self.settings.home}: {exc}", fatal=True)
        self.prepared = prepared
        home = self.settings.home
        command = [
            str(self.binary.path),
            *self.binary.compat.serve_args(home, self.settings.log_file),
        ]
        started = anyio.current_time()
        started_at = self._clock()
        try:
            process = await anyio.open_process(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=child_env(dict(os.environ), prepared.api_key),
                cwd=home,
                start_new_session=True,
            )
        except OSError as exc:
            return Outcome(f"cannot start {self.binary.path}: {exc.strerror or exc}", fatal=True)
        finally:
            stderr.close()
        log.info("syncthing_started", pid=process.pid, version=str(self.binary.version))
        self._inner = []
        try:
            await self._write_pid_file([process.pid])
            return await self._watch(process, prepared, started, started_at)
        finally:
            with anyio.CancelScope(shield=True):
                self._on_stopped()
                await self._stop(process)
                await anyio.to_thread.run_sync(self._pid_file.remove)

    async def _watch(
        self, process: Process, prepared: PreparedHome, started: float, started_at: datetime
    ) -> Outcome:
        deadline = started + self._config.start_timeout_s
        delay = 0.05
        while True:
            if _exited(process):
                return await self._exit_outcome(process, started)
            try:
                await self._probe(prepared)
                break
            except AuthFailed as exc:
                return Outcome(f"Syncthing refused karmad's API key ({exc})", fatal=True)
            except SyncthingError:
                pass
            if anyio.current_time() > deadline:
                return Outcome(
                    f"Syncthing did not answer within {self._config.start_timeout_s:.0f}s",
                    lifetime=anyio.current_time() - started,
                )
            await anyio.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        await self._record_inner(process)
        self.current = RunInfo(pid=process.pid, started_at=started_at, prepared=prepared)
        self._report("running", f"pid {process.pid}, Syncthing {self.binary.version}")
        self._on_running(self.current)
        while True:
            with anyio.move_on_after(WATCHDOG_S):
                await process.wait()
            if _exited(process):
                return await self._exit_outcome(process, started)
            if not self._inner:
                await self._record_inner(process)
            silent = self._unresponsive_for()
            if silent > self._config.start_timeout_s:
                return Outcome(
                    f"Syncthing stopped answering for {silent:.0f}s",
                    lifetime=anyio.current_time() - started,
                )

    async def _record_inner(self, process: Process) -> None:
        """Note the real Syncthing process (the monitor's child) while it is findable."""
        self._inner = await anyio.to_thread.run_sync(proctree.children, process.pid)
        await self._write_pid_file([process.pid, *self._inner])

    async def _write_pid_file(self, pids: list[int]) -> None:
        """Best effort: without it only a karmad killed outright could leave Syncthing behind."""
        try:
            await anyio.to_thread.run_sync(self._pid_file.write, pids)
        except OSError as exc:
            log.warning("pid_file_unwritable", path=str(self._pid_file.path), error=str(exc))

    async def _exit_outcome(self, process: Process, started: float) -> Outcome:
        code = process.returncode
        lifetime = anyio.current_time() - started
        if code == EXIT_RESTART:
            return Outcome("Syncthing asked to be restarted", lifetime, restart_requested=True)
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else -code
            return Outcome(f"Syncthing was killed by {name}", lifetime)
        tail = await anyio.to_thread.run_sync(self._last_log_line)
        why = f": {tail}" if tail else ""
        return Outcome(f"Syncthing exited with status {code}{why}", lifetime)

    def _last_log_line(self) -> str:
        for path in (self.settings.home / STDERR_FILE, self.settings.log_file):
            line = _last_problem(path)
            if line:
                return line
        return ""

    async def _stop(self, process: Process) -> None:
        pid = process.pid
        timeout = self._config.stop_timeout_s
        # Found before the monitor goes: afterwards the real process is an orphan.
        inner = set(self._inner) | set(await anyio.to_thread.run_sync(proctree.children, pid))
        # A stopped (SIGSTOP) Syncthing could not act on SIGTERM: let it run to exit.
        for target in inner:
            proctree.send(target, signal.SIGCONT)
        if process.returncode is None:
            proctree.send(pid, signal.SIGCONT, group=True)
            proctree.send(pid, signal.SIGTERM, group=True)
            with anyio.move_on_after(timeout):
                await process.wait()
            if process.returncode is None:
                log.warning("syncthing_kill", pid=pid, after_s=timeout)
                proctree.send(pid, signal.SIGKILL, group=True)
                await process.wait()
        await process.aclose()
        killed = await anyio.to_thread.run_sync(
            proctree.terminate, sorted(inner), self.settings.home, timeout
        )
        if killed:
            log.warning("stopped_orphaned_syncthing", pids=killed)
        log.info("syncthing_exited", pid=pid, status=process.returncode)


def _exited(process: Process) -> bool:
    return process.returncode is not None


def _last_problem(path: Path) -> str:
    """The last warning or error line of a Syncthing log, else its last line."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL_BYTES))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    lines = [line.strip() for line in lines if line.strip()]
    for line in reversed(lines):
        if any(word in line for word in ("WARNING", "FATAL", "ERROR", "panic", "Failed")):
            return line[:300]
    return lines[-1][:300] if lines else ""
