"""Stopping the managed Syncthing the moment karmad dies, however it dies.

A karmad killed with SIGKILL cannot stop its children, and a Syncthing left running
goes on sending what it finds in the outboxes, a line the killed karmad left
half-written included. So the supervisor starts one small guard process beside karmad.
The guard holds the read end of a pipe whose only write end belongs to karmad: the
kernel closes it when karmad's process ends, whatever ends it, and the guard reads
end-of-file at once. Before a normal exit karmad stops Syncthing itself and writes
`release`; end-of-file without it means karmad was killed or crashed, and the guard
kills (SIGKILL, so that nothing more is sent) every process serving karmad's Syncthing
home that started before that moment: the monitor and the real Syncthing it forked,
found by their command line as `proctree` finds them, whether or not karmad had yet
recorded their pids.

Not PR_SET_PDEATHSIG: it fires when the *thread* that forked the child ends (trio
starts processes from worker threads), only on Linux, and reaches only the monitor.
The pid file and the start-up sweep (`supervisor`) stay as a second line, for a guard
that was itself killed.

Run as `python -m karmad.syncthing.guard FD HOME`; the standard library and `proctree`
only, so it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

RELEASE: Final = b"release\n"
GIVE_UP_S: Final = 5.0


def main(argv: list[str]) -> int:
    from karmad.syncthing import proctree

    fd, home = int(argv[1]), Path(argv[2])
    # Signals meant for karmad's terminal or session are not for the guard: it stops
    # when karmad's end of the pipe closes, and not before.
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    said = b""
    while chunk := os.read(fd, 64):
        said = (said + chunk)[-len(RELEASE) :]
    if said == RELEASE:
        return 0
    # A Syncthing that started after this moment is a new karmad's (it may start as
    # soon as the killed one's lock is free): not ours to kill.
    died = proctree.uptime()

    def ours() -> list[int]:
        return [
            pid
            for pid in proctree.syncthings_of(home)
            if died is None
            or (started := proctree.started_after_boot(pid)) is None
            or started <= died
        ]

    # Again until none is left: a monitor may fork the real Syncthing between the look
    # and the kill (once the monitor is dead, nothing forks any more).
    deadline = time.monotonic() + GIVE_UP_S
    while (targets := ours()) and time.monotonic() < deadline:
        for pid in targets:
            proctree.send(pid, signal.SIGKILL)
        time.sleep(0.02)
    return 0


class Guard:
    """karmad's end: the pipe, and the guard process (blocking calls; worker thread)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._write: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start a guard (again, if one died); raises OSError if it cannot be."""
        if self.alive():
            return
        self.close()
        read, write = os.pipe()  # neither end inherited by anything but `pass_fds`
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-S", "-m", __name__, str(read), str(self.home)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(read,),
                env=_guard_env(),
                cwd="/",
                start_new_session=True,
            )
        except BaseException:
            os.close(write)
            raise
        finally:
            os.close(read)
        self._write = write

    def release(self, timeout: float = 5.0) -> None:
        """Syncthing is stopped: let the guard go without killing anything."""
        if self._write is not None:
            with contextlib.suppress(OSError):  # the guard is gone already
                os.write(self._write, RELEASE)
        self.close(timeout)

    def close(self, timeout: float = 5.0) -> None:
        if self._write is not None:
            os.close(self._write)
            self._write = None
        if self._process is not None:
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


def _guard_env() -> dict[str, str]:
    """karmad's own import path, so the guard imports exactly this karmad; nothing of
    site's start-up (`-S`), which would only cost time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
