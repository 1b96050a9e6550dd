"""`doctor`: one pass/warn/fail line for everything a user would otherwise debug by hand.

Some checks run here because they must work while the daemon is down (is it reachable,
does it run the same version, are its socket's permissions right, is the service
installed); the rest run inside the daemon, contributed by each subsystem (see
`karmad/checks/`), and arrive through `doctor.run`.

Exit status: 0 when nothing failed (warnings allowed), 1 when a check failed, 3 when the
daemon could not be reached at all.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from typing import TYPE_CHECKING, Any

from karmactl import render
from karmactl.client import Client, ClientError, DaemonUnreachable, RpcError
from karmactl.service import ServiceError, detect
from karmactl.service.runner import CommandMissing
from karmactl.typed import decode
from karmad.protocol import DoctorReport, DoctorStarted, Hello
from karmad.socket_rule import default_socket

if TYPE_CHECKING:
    from karmactl.cli import Context

Check = dict[str, str]


COMMANDS = ("doctor",)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "doctor",
        parents=[common],
        help="check karmad's health and say how to fix what is wrong",
        description=(
            "Checks the daemon, its socket, the service, the stores, Claude Code's data, "
            "disk space, the session index, Syncthing (reachable, API key, listeners, "
            "profile, folders, pending offers, peers) and team sync. Exit status: 0 "
            "nothing failed, 1 something failed, 3 the daemon could not be reached."
        ),
    )
    p.add_argument(
        "--manager",
        choices=("systemd", "launchd"),
        help="service manager to ask (default: launchd on macOS, systemd elsewhere)",
    )
    p.set_defaults(func=doctor)


def _check(name: str, status: str, message: str, fix: str = "") -> Check:
    return {"name": name, "status": status, "message": message, "fix": fix}


def socket_checks(path: str) -> list[Check]:
    """The socket must be 0600 in a 0700 directory, both ours: the design promises it."""
    try:
        sock = os.lstat(path)
        parent = os.lstat(os.path.dirname(path))
    except FileNotFoundError:
        return []  # "not reachable" already says it
    except OSError as exc:
        return [_check("socket.permissions", "fail", f"cannot examine {path}: {exc.strerror}")]
    problems = []
    uid = os.getuid()
    if not stat.S_ISSOCK(sock.st_mode):
        problems.append(f"{path} is not a socket")
    if sock.st_uid != uid:
        problems.append(f"{path} belongs to uid {sock.st_uid}")
    if sock.st_mode & 0o077:
        problems.append(f"{path} has mode {stat.S_IMODE(sock.st_mode):04o}, not 0600")
    if parent.st_uid != uid:
        problems.append(f"{os.path.dirname(path)} belongs to uid {parent.st_uid}")
    if parent.st_mode & 0o077:
        mode = stat.S_IMODE(parent.st_mode)
        problems.append(f"{os.path.dirname(path)} has mode {mode:04o}, not 0700")
    if problems:
        return [
            _check(
                "socket.permissions",
                "fail",
                "; ".join(problems) + ": other users may reach karmad's control socket",
                f"`chmod 700 {os.path.dirname(path)} && chmod 600 {path}`, or restart karmad "
                "(`karmactl service restart`), which recreates both",
            )
        ]
    return [_check("socket.permissions", "pass", f"{path} is 0600 in a 0700 directory")]


def service_checks(ctx: Context) -> list[Check]:
    name = "service.installed"
    try:
        manager = detect(ctx.args.manager)
        state = manager.status()
    except (ServiceError, CommandMissing) as exc:
        return [
            _check(
                name,
                "warn",
                f"no service manager to run karmad: {str(exc).splitlines()[0]}",
                "karmad then runs only while started by hand; see docs/operations.md",
            )
        ]
    if not state.installed:
        return [
            _check(
                name,
                "warn",
                f"karmad is not installed as a {manager.name} service, so nothing starts it "
                "at login or restarts it after a crash",
                "`karmactl service install`",
            )
        ]
    if not state.running:
        return [
            _check(
                name,
                "fail",
                f"the {manager.name} service is installed but not running ({state.state})",
                "`karmactl service logs` says why; `karmactl service restart` starts it",
            )
        ]
    return [_check(name, "pass", f"running under {manager.name} ({state.state}, pid {state.pid})")]


def daemon_checks(ctx: Context, path: str) -> tuple[list[Check], Client | None]:
    from karmad import __version__
    from karmad.protocol import PROTOCOL_VERSION

    client = Client(path, timeout=ctx.timeout)
    try:
        client.connect()
        hello = decode(client.call("daemon.hello"), Hello)
    except DaemonUnreachable as exc:
        client.close()
        return [
            _check(
                "daemon.reachable",
                "fail",
                f"cannot reach karmad at {path}: {exc.why}",
                "start it: `karmactl service install` (or `karmad` in a terminal); if the "
                "service is installed, `karmactl service logs` says why it stopped",
            )
        ], None
    except ClientError as exc:
        client.close()
        return [_check("daemon.reachable", "fail", f"karmad at {path} misbehaves: {exc}")], None
    checks = [_check("daemon.reachable", "pass", f"karmad answers at {path}")]
    theirs = hello.version
    protocol = hello.protocol
    if protocol != PROTOCOL_VERSION:
        checks.append(
            _check(
                "daemon.version",
                "fail",
                f"karmad speaks protocol {protocol}, karmactl {PROTOCOL_VERSION} "
                f"(karmad {theirs}, karmactl {__version__})",
                "restart karmad after upgrading (`karmactl service restart`) so both are the "
                "same installation",
            )
        )
    elif theirs != __version__:
        checks.append(
            _check(
                "daemon.version",
                "warn",
                f"karmad is {theirs} but karmactl is {__version__}",
                "restart karmad after upgrading: `karmactl service restart`",
            )
        )
    else:
        checks.append(_check("daemon.version", "pass", f"karmad and karmactl are {theirs}"))
    return checks, client


def remote_checks(client: Client) -> list[Check]:
    """Start a daemon-side run and collect its report."""
    try:
        client.call("events.subscribe", {"topics": ["doctor.finished"]})
        run = decode(client.call("doctor.run"), DoctorStarted).run
        for note in client.notifications():
            params = note.get("params") or {}
            data = params.get("data") or {}
            if params.get("topic") == "doctor.finished" and int(data.get("run", 0)) >= run:
                break
        else:
            return [
                _check(
                    "daemon.doctor",
                    "fail",
                    "karmad stopped answering before its checks finished",
                    "see `karmactl service logs`",
                )
            ]
        report = decode(client.call("doctor.report"), DoctorReport)
    except RpcError as exc:
        if exc.reason == "method_not_found":
            return [
                _check(
                    "daemon.doctor",
                    "warn",
                    "this karmad has no daemon-side checks",
                    "restart karmad after upgrading",
                )
            ]
        return [_check("daemon.doctor", "fail", f"karmad refused: {exc.describe()}")]
    except ClientError as exc:
        return [_check("daemon.doctor", "fail", f"lost karmad during the checks: {exc}")]
    return [_check(c.name, c.status, c.message, c.fix) for c in report.checks]


def doctor(ctx: Context) -> int:
    path = ctx.socket or default_socket()
    checks, client = daemon_checks(ctx, path)
    checks += socket_checks(path)
    checks += service_checks(ctx)
    if client is not None:
        try:
            checks += remote_checks(client)
        finally:
            client.close()
    failed = any(c["status"] == "fail" for c in checks)
    if ctx.json:
        render.emit_json({"ok": not failed, "checks": checks})
    else:
        _print(checks)
    if client is None:
        return 3
    return 1 if failed else 0


_LABEL = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}


def _print(checks: list[Check]) -> None:
    width = max(len(c["name"]) for c in checks)
    coloured = render.colour_enabled()
    for c in checks:
        label = _LABEL.get(c["status"], c["status"].upper())
        if coloured:
            label = render.by_state(label)
        print(f"{label}  {c['name'].ljust(width)}  {c['message']}")
        if c["fix"] and c["status"] != "pass":
            print(f"      {''.ljust(width)}  fix: {c['fix']}")
    counts = {s: sum(1 for c in checks if c["status"] == s) for s in ("pass", "warn", "fail")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    print(f"\n{summary}", file=sys.stdout)
