"""The one place where karmactl runs the service manager's commands.

Every `systemctl`, `launchctl`, `loginctl` and `journalctl` goes through `run`, looked up
on PATH like a shell would, so tests can put recording stand-ins first on PATH and see
exactly what would have been run (the process boundary, nothing mocked inside).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass


class CommandMissing(Exception):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"`{name}` was not found on PATH")


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        said = (self.stderr or self.stdout).strip()
        return f"`{' '.join(self.argv)}` exited with {self.returncode}" + (
            f": {said}" if said else ""
        )


def available(name: str) -> bool:
    return shutil.which(name) is not None


def run(argv: Sequence[str], *, capture: bool = True, timeout: float | None = 120) -> Completed:
    """Run a command and wait; `capture=False` lets it use our terminal (logs -f)."""
    executable = shutil.which(argv[0])
    if executable is None:
        raise CommandMissing(argv[0])
    done = subprocess.run(
        [executable, *argv[1:]],
        stdin=subprocess.DEVNULL,
        capture_output=capture,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Completed(
        list(argv), done.returncode, done.stdout if capture else "", done.stderr if capture else ""
    )
