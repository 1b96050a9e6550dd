"""karmad as a launchd agent in the user's GUI session (`launchctl bootstrap gui/$UID`)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from karmactl.service import (
    Installed,
    Removed,
    ServiceError,
    State,
    syncthing_dir,
    write_if_changed,
)
from karmactl.service.logfile import tail
from karmactl.service.runner import Completed, available, run
from karmactl.service.units import LAUNCHD_LABEL, LAUNCHD_PATH, launchd_plist, search_path

LOG_FILE_NAME = "karmad.log"
STDERR_FILE_NAME = "launchd-stderr.log"

_FIELD = re.compile(r"^\s*(state|pid|last exit code) = (.*)$", re.MULTILINE)


def default_log_dir(env: Mapping[str, str]) -> Path:
    """Where karmad writes its log file on macOS, by the same rule as karmad.paths."""
    if value := env.get("KARMAD_LOG_DIR"):
        return Path(value).expanduser().absolute()
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    return home / "Library" / "Logs" / "karmad"


class Launchd:
    name = "launchd"

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._env = environ
        home = Path(environ.get("HOME") or os.path.expanduser("~"))
        self.definition = home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
        self.log_dir = default_log_dir(environ)
        self.domain = f"gui/{os.getuid()}"
        self.target = f"{self.domain}/{LAUNCHD_LABEL}"

    def _ctl(self, *args: str) -> Completed:
        return run(["launchctl", *args])

    def _must(self, done: Completed, commands: list[list[str]]) -> None:
        commands.append(done.argv)
        if not done.ok:
            raise ServiceError(done.describe())

    def check_available(self) -> None:
        if not available("launchctl"):
            raise ServiceError(
                "launchctl was not found: launchd agents exist only on macOS. On Linux, "
                "karmactl installs a systemd user service instead (the default there)."
            )
        done = self._ctl("print", self.domain)
        if not done.ok:
            raise ServiceError(
                f"there is no GUI login session for uid {os.getuid()} "
                f"({(done.stderr or done.stdout).strip() or done.returncode}). launchd agents "
                "run in the session of a user logged in at the Mac, not in an ssh-only "
                "session: log in at the Mac once, then run this again."
            )

    def _loaded(self) -> Completed:
        return self._ctl("print", self.target)

    def render(self, program: list[str]) -> bytes:
        found = syncthing_dir(self._env)
        path = search_path([found] if found else [], LAUNCHD_PATH)
        return launchd_plist(program, path=path, stderr_log=str(self.log_dir / STDERR_FILE_NAME))

    def install(self, program: list[str]) -> Installed:
        self.check_available()
        # launchd opens the stderr file but does not create its directory.
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        changed = write_if_changed(self.definition, self.render(program))
        commands: list[list[str]] = []
        loaded = self._loaded()
        commands.append(loaded.argv)
        if loaded.ok and changed:
            # A loaded job keeps its old definition until it is booted out and back in.
            self._must(self._ctl("bootout", self.target), commands)
        if not loaded.ok or changed:
            # `enable` clears a `launchctl disable` that would make bootstrap refuse.
            self._must(self._ctl("enable", self.target), commands)
            self._must(self._ctl("bootstrap", self.domain, str(self.definition)), commands)
        else:
            # Loaded and unchanged: make sure it runs (no -k: a running one is left alone).
            self._must(self._ctl("kickstart", self.target), commands)
        return Installed(self.name, self.definition, program, changed, commands)

    def uninstall(self) -> Removed:
        commands: list[list[str]] = []
        notes: list[str] = []
        present = self.definition.exists()
        if available("launchctl"):
            loaded = self._loaded()
            commands.append(loaded.argv)
            if loaded.ok:
                self._must(self._ctl("bootout", self.target), commands)
        elif present:
            notes.append("launchctl was not found; only the property list was removed")
        if present:
            self.definition.unlink()
        return Removed(self.name, self.definition, present, commands, notes)

    def status(self) -> State:
        self.check_available()
        installed = self.definition.exists()
        done = self._loaded()
        fields: dict[str, str] = {}
        if done.ok:
            for key, value in _FIELD.findall(done.stdout):
                fields.setdefault(key, value.strip())
        pid_text = fields.get("pid", "")
        pid = int(pid_text) if pid_text.isdigit() else None
        state = fields.get("state", "not loaded" if not done.ok else "")
        return State(
            manager=self.name,
            definition=self.definition,
            installed=installed,
            running=state == "running" and pid is not None,
            enabled=done.ok if installed else None,
            pid=pid,
            state=state,
            last_exit=fields.get("last exit code", ""),
            log_hint=str(self.log_dir / LOG_FILE_NAME),
        )

    def restart(self) -> list[str]:
        self.check_available()
        done = self._ctl("kickstart", "-k", self.target)
        if not done.ok:
            raise ServiceError(done.describe())
        return done.argv

    def logs(self, *, lines: int, follow: bool, priority: str | None, as_json: bool) -> int:
        return tail(
            self.log_dir / LOG_FILE_NAME,
            lines=lines,
            follow=follow,
            priority=priority,
            as_json=as_json,
        )
