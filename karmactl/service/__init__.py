"""Installing karmad as a service: systemd user units on Linux, launchd agents on macOS.

Both managers do the same four things (install, uninstall, status, logs) behind the
`Manager` protocol; `cmd_service` only talks to that. Every step is idempotent: an
install run twice leaves one unit, enabled and running, and says nothing changed.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class ServiceError(Exception):
    """A refusal or a failure, worded for the user: what is wrong and what to do."""


@dataclass
class Installed:
    manager: str
    definition: Path
    program: list[str]
    changed: bool
    commands: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Removed:
    manager: str
    definition: Path
    removed: bool
    commands: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class State:
    manager: str
    definition: Path
    installed: bool
    running: bool
    enabled: bool | None = None
    pid: int | None = None
    state: str = ""
    """The manager's own words: `active (running)`, `running`, `inactive (dead)`..."""
    status_text: str = ""
    """The daemon's last STATUS= line, where the manager keeps it (systemd)."""
    last_exit: str = ""
    log_hint: str = ""


class Manager(Protocol):
    name: str
    definition: Path

    def check_available(self) -> None:
        """Raise `ServiceError` explaining why services cannot be installed here."""

    def render(self, program: list[str]) -> bytes:
        """The unit or property list `install` would write."""

    def install(self, program: list[str]) -> Installed: ...

    def uninstall(self) -> Removed: ...

    def status(self) -> State: ...

    def restart(self) -> list[str]: ...

    def logs(self, *, lines: int, follow: bool, priority: str | None, as_json: bool) -> int: ...


def detect(name: str | None = None, environ: Mapping[str, str] | None = None) -> Manager:
    """The manager for this platform, or the one asked for by name."""
    env = os.environ if environ is None else environ
    chosen = name or ("launchd" if sys.platform == "darwin" else "systemd")
    if chosen == "systemd":
        from karmactl.service.systemd import Systemd

        return Systemd(env)
    if chosen == "launchd":
        from karmactl.service.launchd import Launchd

        return Launchd(env)
    raise ServiceError(f"unknown service manager {chosen!r}")


def karmad_program(explicit: str | None = None) -> list[str]:
    """How the service should start karmad: an absolute path, never a PATH lookup.

    The `karmad` script installed beside the interpreter running karmactl is the same
    installation; where there is none (an unusual install), the interpreter runs the
    package itself.
    """
    if explicit:
        path = Path(explicit).expanduser().absolute()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise ServiceError(f"{path} is not an executable file")
        return [str(path)]
    interpreter = Path(os.path.abspath(sys.executable))
    beside = interpreter.parent / "karmad"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    return [str(interpreter), "-m", "karmad"]


def syncthing_dir(environ: Mapping[str, str] | None = None) -> str | None:
    """Where `syncthing` is on our PATH, so that the service's PATH can include it."""
    env = os.environ if environ is None else environ
    found = shutil.which("syncthing", path=env.get("PATH", os.defpath))
    return str(Path(found).parent) if found else None


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace `path` with `data` unless it already holds exactly that."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
