"""The service manager's notification protocol (sd_notify), spoken directly.

systemd hands a `Type=notify` service a datagram socket in `$NOTIFY_SOCKET`; every
message is one datagram of newline-separated `NAME=value` assignments. That is a few
lines over a socket, so no C library is needed, and it lets the watchdog be fed from the
event loop itself: a loop that stops running stops the pings, and systemd restarts the
daemon. Without `$NOTIFY_SOCKET` (a terminal, launchd, tests) every call is a no-op.

Nothing here may take the daemon down: a failed send is logged and forgotten, because
the daemon's work matters more than the supervisor's view of it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, MutableMapping

import anyio

from karmad import logs
from karmad.bus import Bus, Subscription

log = logs.get("karmad.sdnotify")

ENV_SOCKET = "NOTIFY_SOCKET"
ENV_WATCHDOG_USEC = "WATCHDOG_USEC"
ENV_WATCHDOG_PID = "WATCHDOG_PID"

MAX_STATUS_CHARS = 500
"""A STATUS= line is shown in `systemctl status`; longer text only gets cut there."""

STATUS_SETTLE_S = 1.0
"""A burst of events produces one STATUS= line after this quiet time, not one each."""

STATUS_POLL_S = 30.0
"""Summaries may change without an event (a progress figure); look this often anyway."""


def _address(value: str) -> str | bytes | None:
    """The socket address `$NOTIFY_SOCKET` names, or None for kinds we do not speak.

    `@name` is Linux's abstract namespace (a leading NUL byte on the wire). systemd can
    also name a vsock address for virtual machines; karmad never runs as PID 1 of one.
    """
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + os.fsencode(value[1:])
    return None


def _one_line(text: str) -> str:
    """A value must not contain a newline: it would start a new assignment."""
    flat = " ".join(text.split())
    if len(flat) > MAX_STATUS_CHARS:
        flat = flat[: MAX_STATUS_CHARS - 1] + "…"
    return flat


class Notifier:
    """Sends state changes to the service manager that started us, if any."""

    def __init__(self, address: str | bytes | None, watchdog_usec: int | None = None) -> None:
        self._address = address
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._sock: socket.socket | None = None
        self._failed = False

    @classmethod
    def disabled(cls) -> Notifier:
        return cls(None)

    @classmethod
    def from_environ(
        cls, environ: MutableMapping[str, str] | None = None, *, unset: bool = False
    ) -> Notifier:
        """Read `$NOTIFY_SOCKET` and the watchdog variables.

        With `unset`, remove them from the environment (as sd_notify's
        `unset_environment` does) so that children such as the managed Syncthing do not
        inherit a socket that is not theirs to write to.
        """
        env = os.environ if environ is None else environ
        raw = env.get(ENV_SOCKET, "")
        usec_text = env.get(ENV_WATCHDOG_USEC, "")
        pid_text = env.get(ENV_WATCHDOG_PID, "")
        if unset:
            for name in (ENV_SOCKET, ENV_WATCHDOG_USEC, ENV_WATCHDOG_PID):
                env.pop(name, None)
        address = _address(raw) if raw else None
        if raw and address is None:
            log.warning("notify_socket_unsupported", address=raw)
        watchdog: int | None = None
        try:
            watchdog = int(usec_text) if usec_text else None
        except ValueError:
            log.warning("watchdog_usec_invalid", value=usec_text)
        # The watchdog is meant for one process; a variable inherited by a child of the
        # process systemd started names that other pid.
        if watchdog and pid_text and pid_text != str(os.getpid()):
            watchdog = None
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_timeout(self) -> float | None:
        """Seconds after which systemd declares us hung, when it watches at all."""
        if self._address is None or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 1_000_000

    def send(self, *assignments: str) -> bool:
        """One datagram holding `assignments`; True when it was handed to the kernel."""
        if self._address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never wait on the event loop: a full queue loses this message, and the
                # next one says the same thing again.
                self._sock.setblocking(False)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            if not self._failed:
                log.warning("notify_failed", error=str(exc), message=assignments[0])
                self._failed = True
            return False
        if self._failed:
            log.info("notify_recovered")
            self._failed = False
        return True

    def ready(self) -> bool:
        return self.send("READY=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str = "") -> bool:
        if status:
            return self.send("STOPPING=1", f"STATUS={_one_line(status)}")
        return self.send("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


async def feed_watchdog(notifier: Notifier, watchdog_s: float) -> None:
    """Ping at half the timeout, from the event loop, for as long as the loop runs.

    Being an ordinary task is the point: if anything blocks the loop, this task stops
    too, the pings stop, and systemd restarts a daemon that could not do its work.
    """
    while True:
        notifier.watchdog()
        await anyio.sleep(watchdog_s / 2)


async def report_status(
    notifier: Notifier,
    summary: Callable[[], str],
    bus: Bus,
    *,
    settle: float = STATUS_SETTLE_S,
    poll: float = STATUS_POLL_S,
) -> None:
    """Keep the STATUS= line equal to `summary()`, sending only when it changes.

    Any bus event may change the summary, so one wakes this task; a burst is coalesced
    into one line after `settle` seconds. Idle, it wakes only every `poll` seconds.
    """
    last: str | None = None
    sub = bus.subscribe(buffer=64)
    try:
        while True:
            text = summary()
            if text != last and notifier.status(text):
                last = text
            with anyio.move_on_after(poll):
                try:
                    await sub.receive.receive()
                except anyio.EndOfStream:
                    # Cut off after a burst larger than the buffer: listen again.
                    sub = _resubscribe(bus, sub)
            await anyio.sleep(settle)
            sub = _drain(bus, sub)
    finally:
        _unsubscribe(bus, sub)


def _unsubscribe(bus: Bus, sub: Subscription) -> None:
    bus.unsubscribe(sub)
    sub.receive.close()


def _resubscribe(bus: Bus, sub: Subscription) -> Subscription:
    _unsubscribe(bus, sub)
    return bus.subscribe(buffer=sub.buffer)


def _drain(bus: Bus, sub: Subscription) -> Subscription:
    while True:
        try:
            sub.receive.receive_nowait()
        except anyio.WouldBlock:
            return sub
        except anyio.EndOfStream:
            return _resubscribe(bus, sub)
