"""A stand-in for systemd's end of the notify socket: a real datagram socket and a thread.

It records every datagram with its arrival time, which is what systemd itself acts on,
so tests can check order and spacing of READY/STATUS/WATCHDOG/STOPPING messages sent
by a real karmad process or by the notifier in-process.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Datagram:
    at: float
    """time.monotonic() when it arrived."""
    text: str

    @property
    def fields(self) -> dict[str, str]:
        return dict(line.split("=", 1) for line in self.text.splitlines() if "=" in line)


class NotifyListener:
    def __init__(self, address: Path | str) -> None:
        """`address` is a path, or `@name` for Linux's abstract namespace."""
        self.address = str(address)
        bind_to: str | bytes = self.address
        if self.address.startswith("@"):
            bind_to = b"\0" + os.fsencode(self.address[1:])
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(bind_to)
        self._sock.settimeout(0.1)
        self._received: list[Datagram] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self._received.append(Datagram(time.monotonic(), data.decode()))
                self._cond.notify_all()

    @property
    def messages(self) -> list[Datagram]:
        with self._cond:
            return list(self._received)

    def wait_for(
        self, predicate: Callable[[Datagram], bool], timeout: float = 20.0, *, after: int = 0
    ) -> Datagram:
        """The first datagram from index `after` on that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self._received[after:]:
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no matching notify message within {timeout}s; got "
                        f"{[m.text for m in self._received]}"
                    )
                self._cond.wait(remaining)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        if not self.address.startswith("@"):
            Path(self.address).unlink(missing_ok=True)

    def __enter__(self) -> NotifyListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
