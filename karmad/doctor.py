"""Health checks behind `karmactl doctor`, contributed by every subsystem.

Each subsystem registers its checks when `karmad.app` wires it (see `karmad.checks`): a
check is a function returning findings, each with a status and the fix a user should
apply. Checks may do slow things (a `PRAGMA quick_check`, a REST call to Syncthing), so
they never run inside an RPC handler: `doctor.run` wakes the task in `serve`, which runs
every check concurrently, each under a time limit, and reports through the bus. One check
that hangs or crashes becomes one failed finding; it never hides the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import anyio
from anyio.abc import TaskStatus

from karmad import logs
from karmad.bus import Bus, Clock, utc_now
from karmad.protocol import DoctorCheck, DoctorReport

log = logs.get("karmad.doctor")

Findings = Iterable[DoctorCheck]
AsyncCheck = Callable[[], Awaitable[Findings]]
BlockingCheck = Callable[[], Findings]

DEFAULT_TIMEOUT_S = 15.0


def ok(name: str, message: str) -> DoctorCheck:
    return DoctorCheck(name=name, status="pass", message=message)


def warn(name: str, message: str, fix: str = "") -> DoctorCheck:
    return DoctorCheck(name=name, status="warn", message=message, fix=fix)


def fail(name: str, message: str, fix: str = "") -> DoctorCheck:
    return DoctorCheck(name=name, status="fail", message=message, fix=fix)


SHOWN = 5
"""Items a finding names before it only counts the rest: one line per check stays short."""


def listed(items: list[str], sep: str = "; ") -> str:
    """The first `SHOWN` items, then how many more there are."""
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return sep.join(items[:SHOWN]) + more


def duration(seconds: float) -> str:
    """A span the way a person would say it in a finding: 45 s, 12 min, 5 h, 9 days."""
    whole = max(0, int(seconds))
    if whole < 120:
        return f"{whole} s"
    if whole < 2 * 3600:
        return f"{whole // 60} min"
    if whole < 2 * 86400:
        return f"{whole // 3600} h"
    return f"{whole // 86400} days"


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    check: AsyncCheck
    timeout: float | None


class Doctor:
    def __init__(
        self,
        bus: Bus | None = None,
        clock: Clock = utc_now,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._timeout = timeout
        self._entries: list[_Entry] = []
        self._next_run = 1
        self._queued: int | None = None
        self._running: int | None = None
        self._wake = anyio.Event()
        self._last: DoctorReport | None = None

    # ------------------------------------------------------------------ registration

    def register(self, name: str, check: AsyncCheck, *, timeout: float | None = None) -> None:
        """Add an async check; `name` labels its findings if it crashes or times out."""
        if any(e.name == name for e in self._entries):
            raise KeyError(f"a doctor check named {name!r} is already registered")
        self._entries.append(_Entry(name, check, timeout))

    def register_blocking(
        self, name: str, check: BlockingCheck, *, timeout: float | None = None
    ) -> None:
        """Add a check that blocks (file system, SQLite); it runs in a worker thread."""

        async def in_thread() -> Findings:
            # Abandoned, not awaited, when it overruns: a thread cannot be interrupted.
            return await anyio.to_thread.run_sync(check, abandon_on_cancel=True)

        self.register(name, in_thread, timeout=timeout)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self._entries]

    # ------------------------------------------------------------------ running

    @property
    def last(self) -> DoctorReport | None:
        return self._last

    def request_run(self) -> int:
        """Ask for a run without waiting (RPC handlers call this); returns its id.

        A run already under way is joined: it started moments ago, and a burst of
        `karmactl doctor` calls should not queue up copies of a slow check.
        """
        if self._running is not None:
            return self._running
        if self._queued is None:
            self._queued = self._next_run
            self._next_run += 1
            self._wake.set()
        return self._queued

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            run, self._queued = self._queued, None
            if run is None:
                continue
            self._running = run
            try:
                await self.run(run)
            finally:
                self._running = None

    async def run(self, run: int | None = None) -> DoctorReport:
        """Run every check now and remember the report."""
        if run is None:
            run = self._next_run
            self._next_run += 1
        started = self._clock()
        self._publish("doctor.started", {"run": run, "checks": len(self._entries)})
        results: list[list[DoctorCheck]] = [[] for _ in self._entries]
        async with anyio.create_task_group() as tg:
            for index, entry in enumerate(self._entries):
                tg.start_soon(self._run_one, run, entry, results, index)
        checks = [c for group in results for c in group]
        report = DoctorReport(run=run, started_at=started, finished_at=self._clock(), checks=checks)
        self._last = report
        counts = {s: sum(1 for c in checks if c.status == s) for s in ("pass", "warn", "fail")}
        self._publish("doctor.finished", {"run": run, **counts})
        if counts["fail"]:
            log.warning(
                "doctor_failures",
                run=run,
                failed=[c.name for c in checks if c.status == "fail"],
            )
        return report

    async def _run_one(
        self, run: int, entry: _Entry, results: list[list[DoctorCheck]], index: int
    ) -> None:
        timeout = entry.timeout if entry.timeout is not None else self._timeout
        findings: list[DoctorCheck] = []
        with anyio.move_on_after(timeout) as scope:
            try:
                findings = list(await entry.check())
            except Exception as exc:
                # Isolation is the point: whatever one check trips over is its finding.
                log.exception("doctor_check_crashed", check=entry.name)
                findings = [
                    fail(entry.name, f"the check itself failed: {exc!r}", "see karmad's log")
                ]
        if scope.cancelled_caught:
            findings = [
                fail(
                    entry.name,
                    f"the check did not finish within {timeout:g}s",
                    "see karmad's log; raise doctor.check_timeout_s if the machine is slow",
                )
            ]
        results[index] = findings
        for finding in findings:
            self._publish(
                "doctor.check",
                {"run": run, "name": finding.name, "status": finding.status},
                remember=False,
            )

    def _publish(self, topic: str, data: dict[str, object], *, remember: bool = True) -> None:
        if self._bus is not None:
            self._bus.publish(topic, data, remember=remember)
