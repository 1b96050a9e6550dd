"""The systemd unit and the launchd property list, rendered from one place.

`karmactl service install` renders them with the absolute path of the installed karmad;
`systemd/karmad.service` and `launchd/org.karmad.karmad.plist` in the source tree are the
same renderings for a packaged karmad (a test keeps them equal), so what a distribution
ships and what a pip user gets can never drift apart.
"""

from __future__ import annotations

import plistlib
import re
from collections.abc import Sequence

UNIT_NAME = "karmad.service"
LAUNCHD_LABEL = "org.karmad.karmad"

WATCHDOG_S = 30
"""systemd restarts karmad when its event loop has not run for this long."""

STOP_TIMEOUT_S = 30
"""Time for a clean stop (Syncthing included) before the service manager kills."""

RESTART_DELAY_S = 5
THROTTLE_S = 10

SYSTEMD_DEFAULT_PATH = (
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
)
"""What systemd's user manager usually gives services (it varies; this is the base)."""

LAUNCHD_DEFAULT_PATH = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")
"""launchd gives agents only this: Homebrew's bin directories are not on it."""

MACOS_EXTRA_PATH = ("/opt/homebrew/bin", "/usr/local/bin")

LAUNCHD_PATH = (*MACOS_EXTRA_PATH, *LAUNCHD_DEFAULT_PATH)
"""An agent's PATH before the directory Syncthing was found in is added."""

_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


_REFUSED_IN_EXECUTABLE = frozenset("\"'\\")


def systemd_quote(word: str, *, executable: bool = False) -> str:
    """One ExecStart= word, quoted and escaped as systemd.service(5) parses it.

    `%` starts a specifier and is doubled everywhere; `$` starts a variable in the
    arguments only (the executable is not expanded), so it is doubled there; anything
    else unusual goes in double quotes with C-style escapes.
    """
    escaped = word.replace("%", "%%")
    if not executable:
        escaped = escaped.replace("$", "$$")
    if escaped and _PLAIN.fullmatch(word):
        return escaped
    escaped = escaped.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _environment_value(assignment: str) -> str:
    """An Environment= assignment; only specifiers are expanded there, not `$`."""
    escaped = assignment.replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def systemd_unit(program: Sequence[str], *, path: Sequence[str] = ()) -> str:
    """The user unit; `path`, when given, becomes the service's PATH.

    `path` carries the directories where karmad and Syncthing were found at install time,
    since the user manager's PATH is not the login shell's (~/.local/bin is often absent).
    """
    refused = _REFUSED_IN_EXECUTABLE.intersection(program[0])
    if refused:
        # systemd rejects such executable names outright ("special characters").
        raise ValueError(
            f"systemd cannot run {program[0]}: its path contains {''.join(sorted(refused))}"
        )
    exec_start = " ".join(systemd_quote(w, executable=i == 0) for i, w in enumerate(program))
    environment = ""
    if path:
        environment = f"Environment={_environment_value('PATH=' + ':'.join(path))}\n"
    return f"""\
# karmad as a systemd user service.
#
# `karmactl service install` writes this file with the path of the installed karmad and
# enables it; distribution packages install it in /usr/lib/systemd/user/. Manage it with
# `systemctl --user start|stop|status karmad`; logs: `journalctl --user -u karmad`.

[Unit]
Description=karmad: share Claude Code sessions through Syncthing
Documentation=man:karmad(1) man:karmactl(1)

[Service]
# karmad says READY=1 once its store is open, its socket listens and its managed
# Syncthing is up (or known to be absent), and feeds the watchdog from its event loop:
# a loop stuck for WatchdogSec gets the daemon restarted.
Type=notify
NotifyAccess=main
{environment}ExecStart={exec_start}
SyslogIdentifier=karmad
Restart=on-failure
RestartSec={RESTART_DELAY_S}s
WatchdogSec={WATCHDOG_S}s
TimeoutStopSec={STOP_TIMEOUT_S}s
# karmad stops its own Syncthing child cleanly; only stragglers get SIGKILL.
KillMode=mixed
RuntimeDirectory=karmad
RuntimeDirectoryMode=0700
UMask=0077

# Hardening that works in user units. AF_NETLINK stays allowed because the managed
# Syncthing lists network interfaces through it for local discovery.
NoNewPrivileges=yes
LockPersonality=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK

[Install]
WantedBy=default.target
"""


def launchd_plist(
    program: Sequence[str],
    *,
    path: Sequence[str] = LAUNCHD_PATH,
    stderr_log: str | None = None,
) -> bytes:
    """The agent's property list.

    karmad writes and rotates its own log file (`--log-file`, under ~/Library/Logs/karmad)
    because launchd only appends to files forever. `stderr_log` catches what happens
    before karmad's logging starts (a broken installation), which is little.
    """
    plist: dict[str, object] = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": [*program, "--log-file"],
        "RunAtLoad": True,
        # Restart after a crash or an error exit, not after a clean `karmactl stop`.
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": THROTTLE_S,
        "ExitTimeOut": STOP_TIMEOUT_S,
        "EnvironmentVariables": {"PATH": ":".join(path)},
    }
    if stderr_log is not None:
        plist["StandardOutPath"] = stderr_log
        plist["StandardErrorPath"] = stderr_log
    return plistlib.dumps(plist, sort_keys=False)


def search_path(dirs: Sequence[str], base: Sequence[str]) -> list[str]:
    """`dirs` first (where karmad and Syncthing were found), then `base`, no repeats."""
    seen: list[str] = []
    for d in [*dirs, *base]:
        if d and d not in seen:
            seen.append(d)
    return seen
