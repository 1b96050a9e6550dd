"""karmad as a systemd user service (`systemctl --user`)."""

from __future__ import annotations

import os
import pwd
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
from karmactl.service.runner import CommandMissing, Completed, available, run
from karmactl.service.units import SYSTEMD_DEFAULT_PATH, UNIT_NAME, search_path, systemd_unit

_SHOW = (
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "MainPID",
    "StatusText",
    "ExecMainStatus",
    "NRestarts",
    "FragmentPath",
)


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _config_home(env: Mapping[str, str]) -> Path:
    value = env.get("XDG_CONFIG_HOME")
    if value and os.path.isabs(value):
        return Path(value)
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".config"


def linger_note(user: str) -> str:
    return (
        "karmad runs while you are logged in and stops with your last session. To keep it "
        "running without a login session (a server, a machine you reach over ssh) and "
        f"start it at boot, enable lingering once: `sudo loginctl enable-linger {user}`"
    )


class Systemd:
    name = "systemd"

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._env = environ
        self.unit_dir = _config_home(environ) / "systemd" / "user"
        self.definition = self.unit_dir / UNIT_NAME

    def _ctl(self, *args: str) -> Completed:
        return run(["systemctl", "--user", *args])

    def _must(self, done: Completed, commands: list[list[str]]) -> None:
        commands.append(done.argv)
        if not done.ok:
            raise ServiceError(done.describe())

    # ------------------------------------------------------------------ availability

    def check_available(self) -> None:
        if not available("systemctl"):
            raise ServiceError(
                "systemctl was not found: this system does not run systemd, so karmad cannot "
                "be installed as a systemd service here. Run `karmad` in the foreground (for "
                "example inside tmux) or under the supervisor your system uses; "
                "docs/operations.md says what it needs."
            )
        done = self._ctl("show-environment")
        if done.ok:
            return
        said = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        lines = [f"cannot reach your systemd user instance ({said})."]
        if not Path("/run/systemd/system").is_dir():
            lines.append(
                "This machine was not booted with systemd; containers usually are not. "
                "Run `karmad` in the foreground there (it needs no service manager)."
            )
        lines.append(
            "A user instance runs for users who are logged in: log in directly rather than "
            "through `su` or `sudo` (so that $XDG_RUNTIME_DIR and the session bus exist), or "
            f"let it start at boot with `sudo loginctl enable-linger {_user_name()}`."
        )
        raise ServiceError("\n".join(lines))

    # ------------------------------------------------------------------ install

    def render(self, program: list[str]) -> bytes:
        extra = [d for d in (syncthing_dir(self._env),) if d and d not in SYSTEMD_DEFAULT_PATH]
        path = search_path(extra, SYSTEMD_DEFAULT_PATH) if extra else []
        try:
            return systemd_unit(program, path=path).encode()
        except ValueError as exc:
            raise ServiceError(
                f"{exc}; install karmad under a plainer path, or name another with --karmad"
            ) from None

    def install(self, program: list[str]) -> Installed:
        self.check_available()
        changed = write_if_changed(self.definition, self.render(program))
        commands: list[list[str]] = []
        self._must(self._ctl("daemon-reload"), commands)
        active = self._ctl("is-active", "--quiet", UNIT_NAME)
        commands.append(active.argv)
        self._must(self._ctl("enable", "--now", UNIT_NAME), commands)
        if changed and active.ok:
            # `enable --now` leaves a running service alone; the new unit needs a restart.
            self._must(self._ctl("restart", UNIT_NAME), commands)
        result = Installed(self.name, self.definition, program, changed, commands)
        if self._linger() is not True:
            result.notes.append(linger_note(_user_name()))
        return result

    def _linger(self) -> bool | None:
        try:
            done = run(["loginctl", "show-user", _user_name(), "--property=Linger", "--value"])
        except CommandMissing:
            return None
        if not done.ok:
            return None
        return done.stdout.strip() == "yes"

    # ------------------------------------------------------------------ uninstall

    def uninstall(self) -> Removed:
        commands: list[list[str]] = []
        notes: list[str] = []
        present = self.definition.exists()
        try:
            self.check_available()
        except ServiceError as exc:
            if not present:
                raise
            notes.append(f"could not tell systemd: {exc}")
        else:
            if present:
                self._must(self._ctl("disable", "--now", UNIT_NAME), commands)
        if present:
            self.definition.unlink()
            if not notes:
                self._must(self._ctl("daemon-reload"), commands)
                # Forget a failed state so `systemctl --user` stops listing it.
                commands.append(self._ctl("reset-failed", UNIT_NAME).argv)
        elif not notes:
            state = self._show()
            if state.get("LoadState") == "loaded":
                notes.append(
                    f"karmad.service is installed elsewhere ({state.get('FragmentPath')}), "
                    "probably by a package; remove it with the package manager or disable it "
                    "with `systemctl --user disable --now karmad`"
                )
        return Removed(self.name, self.definition, present, commands, notes)

    # ------------------------------------------------------------------ status

    def _show(self) -> dict[str, str]:
        done = self._ctl("show", UNIT_NAME, "--property=" + ",".join(_SHOW))
        if not done.ok:
            raise ServiceError(done.describe())
        values: dict[str, str] = {}
        for line in done.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key] = value
        return values

    def status(self) -> State:
        self.check_available()
        v = self._show()
        installed = v.get("LoadState") == "loaded"
        fragment = v.get("FragmentPath") or ""
        pid = int(v.get("MainPID") or 0) or None
        active = v.get("ActiveState", "")
        sub = v.get("SubState", "")
        return State(
            manager=self.name,
            definition=Path(fragment) if fragment else self.definition,
            installed=installed,
            running=active in ("active", "reloading") and pid is not None,
            enabled=v.get("UnitFileState") in ("enabled", "enabled-runtime", "linked")
            if installed
            else None,
            pid=pid,
            state=f"{active} ({sub})" if sub else active,
            status_text=v.get("StatusText", ""),
            last_exit=v.get("ExecMainStatus", ""),
            log_hint="journalctl --user -u karmad",
        )

    def restart(self) -> list[str]:
        self.check_available()
        done = self._ctl("restart", UNIT_NAME)
        if not done.ok:
            raise ServiceError(done.describe())
        return done.argv

    # ------------------------------------------------------------------ logs

    def logs(self, *, lines: int, follow: bool, priority: str | None, as_json: bool) -> int:
        argv = ["journalctl", "--user", "-u", UNIT_NAME, "-n", str(lines)]
        if follow:
            argv.append("-f")
        if priority:
            argv += ["-p", priority]
        if as_json:
            argv += ["-o", "json"]
        try:
            return run(argv, capture=False, timeout=None).returncode
        except CommandMissing:
            raise ServiceError(
                "journalctl was not found: karmad's service logs are in systemd's journal"
            ) from None
