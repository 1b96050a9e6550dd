"""The processes of one managed Syncthing, and how to stop them without orphans.

`syncthing serve` is two processes: a monitor (the one karmad starts, in a new session
and process group) and the real Syncthing it spawns in a process group of its own.
Signalling the monitor's group does not reach the real one; the monitor forwards SIGTERM,
but a monitor killed with SIGKILL leaves it running. So the supervisor records the real
process as soon as it exists (in a pid file in the home, which also lets the next karmad
clean up after one that was itself killed), and stops it separately when needed, after
checking that its command line still names our home (a pid may have been recycled).

Zombies count as gone: an orphan's zombie may never be reaped where PID 1 is not an init.
Blocking (reads /proc or runs `ps`): call from a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from karmad.atomic_file import write_atomic

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    zombie: bool


def _use_proc() -> bool:
    return sys.platform == "linux" and _PROC.is_dir()


def _linux_table() -> list[Proc]:
    table = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        # After the parenthesised command name: state, ppid, pgrp, ...
        fields = stat.rsplit(b")", 1)[-1].split()
        if len(fields) < 3:
            continue
        table.append(Proc(int(entry.name), int(fields[1]), int(fields[2]), fields[0] == b"Z"))
    return table


def _ps_table() -> list[Proc]:
    try:
        out = subprocess.run(
            ["ps", "-A", "-o", "pid=,ppid=,pgid=,stat="],
            capture_output=True,
            check=False,
            timeout=10,
        ).stdout.decode()
    except (OSError, subprocess.TimeoutExpired):
        return []
    table = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0].isdigit():
            table.append(Proc(int(parts[0]), int(parts[1]), int(parts[2]), parts[3][0] == "Z"))
    return table


def table() -> list[Proc]:
    return _linux_table() if _use_proc() else _ps_table()


def children(pid: int) -> list[int]:
    return [p.pid for p in table() if p.ppid == pid and not p.zombie]


def group_members(pgid: int) -> list[int]:
    return [p.pid for p in table() if p.pgid == pgid and not p.zombie]


def alive(pid: int) -> bool:
    if _use_proc():
        try:
            stat = (_PROC / str(pid) / "stat").read_bytes()
        except OSError:
            return False
        return stat.rsplit(b")", 1)[-1].split()[0] != b"Z"
    return any(p.pid == pid and not p.zombie for p in _ps_table())


def command_line(pid: int) -> str:
    if _use_proc():
        try:
            raw = (_PROC / str(pid) / "cmdline").read_bytes()
        except OSError:
            return ""
        return raw.replace(b"\0", b" ").decode(errors="replace")
    try:
        return subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            check=False,
            timeout=10,
        ).stdout.decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return ""


def is_syncthing_of(pid: int, home: Path) -> bool:
    """The live process `pid` is a Syncthing serving `home` (not a recycled pid)."""
    if not alive(pid):
        return False
    wanted = f"--home={home}"
    if _use_proc():
        try:
            args = (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return wanted.encode() in args
    line = command_line(pid)
    return f" {wanted} " in f" {line.strip()} "


def syncthings_of(home: Path) -> list[int]:
    """Every live process serving `home`: the monitor and the Syncthing it forked."""
    return [p.pid for p in table() if not p.zombie and is_syncthing_of(p.pid, home)]


def uptime() -> float | None:
    """Seconds since boot, on the clock of `started_after_boot` (Linux only)."""
    if not _use_proc():
        return None
    try:
        return float((_PROC / "uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def started_after_boot(pid: int) -> float | None:
    """When `pid` started, in seconds since boot (Linux only)."""
    if not _use_proc():
        return None
    try:
        stat = (_PROC / str(pid) / "stat").read_bytes()
        ticks = int(stat.rsplit(b")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def send(pid: int, signum: int, *, group: bool = False) -> bool:
    """False when the process (group) no longer exists or is not ours."""
    try:
        if group:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def terminate(pids: list[int], home: Path, grace: float) -> list[int]:
    """SIGTERM, then SIGKILL after `grace` seconds, each pid still a Syncthing of `home`.

    Returns the pids that were signalled.
    """
    targets = [pid for pid in pids if is_syncthing_of(pid, home)]
    for pid in targets:
        send(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(pid) for pid in targets) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in targets:
        if alive(pid):
            send(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while any(alive(pid) for pid in targets) and time.monotonic() < deadline:
        time.sleep(0.05)
    return targets


class PidFile:
    """The pids of the Syncthing processes a karmad started in one home."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, pids: list[int]) -> None:
        write_atomic(self.path, "".join(f"{pid}\n" for pid in pids).encode(), 0o600)

    def read(self) -> list[int]:
        try:
            text = self.path.read_text()
        except (OSError, UnicodeDecodeError):
            return []
        return [int(line) for line in text.split() if line.isdigit()]

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
