"""`service install|uninstall|status|restart|logs`: karmad under systemd or launchd."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

from karmactl import cli, render
from karmactl.client import Client, ClientError
from karmactl.service import Manager, ServiceError, detect, karmad_program
from karmactl.service.runner import CommandMissing
from karmactl.typed import decode
from karmad.protocol import DaemonStatus, Hello

if TYPE_CHECKING:
    from karmactl.cli import Context

LAUNCHD_START_WAIT_S = 15.0
"""launchd returns before the job runs; how long install waits for karmad to answer."""


COMMANDS = ("service",)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    which = argparse.ArgumentParser(add_help=False)
    which.add_argument(
        "--manager",
        choices=("systemd", "launchd"),
        help="service manager (default: launchd on macOS, systemd elsewhere)",
    )
    service = sub.add_parser(
        "service",
        parents=[common],
        help="run karmad as a service (systemd user unit, launchd agent)",
        description="Install karmad as a service that starts at login and restarts on failure.",
    )
    actions = service.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = actions.add_parser(
        "install",
        parents=[common, which],
        help="write the unit or agent, enable and start it (idempotent)",
    )
    p.add_argument(
        "--karmad",
        metavar="PATH",
        help="the karmad executable to run (default: the one installed with karmactl)",
    )
    p.add_argument(
        "--print", action="store_true", help="print what would be written; change nothing"
    )
    p.set_defaults(func=install)

    p = actions.add_parser(
        "uninstall", parents=[common, which], help="stop, disable and remove the service"
    )
    p.set_defaults(func=uninstall)

    p = actions.add_parser(
        "status", parents=[common, which], help="is the service installed and running?"
    )
    p.set_defaults(func=status)

    p = actions.add_parser("restart", parents=[common, which], help="restart the service")
    p.set_defaults(func=restart)

    p = actions.add_parser("logs", parents=[common, which], help="the service's log")
    p.add_argument("-n", "--lines", type=cli.positive, default=50, help="lines shown (default: 50)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument(
        "-p",
        "--priority",
        metavar="PRIORITY",
        help="only this priority and more urgent: err, warning, info, debug or 0-7",
    )
    p.set_defaults(func=logs)


Command = Callable[["Context"], int]


def _reported(fn: Command) -> Command:
    """Service errors are answers for the user, not crashes: print them, exit 1."""

    @wraps(fn)
    def wrapper(ctx: Context) -> int:
        try:
            return fn(ctx)
        except (ServiceError, CommandMissing) as exc:
            print(f"karmactl: {exc}", file=sys.stderr)
            return 1

    return wrapper


def _manager(ctx: Context) -> Manager:
    return detect(getattr(ctx.args, "manager", None))


def _hello(ctx: Context, wait: float = 0.0) -> Hello | None:
    """karmad's hello, retried for up to `wait` seconds; None when it does not answer."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with Client(ctx.socket, timeout=5) as client:
                return decode(client.call("daemon.hello"), Hello)
        except ClientError:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.2)


def _daemon_pid(ctx: Context) -> int | None:
    try:
        with Client(ctx.socket, timeout=5) as client:
            return decode(client.call("daemon.status"), DaemonStatus).pid
    except ClientError:
        return None


def _jsonable(value: Any) -> Any:
    data = asdict(value)
    return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}


def _ran(commands: list[list[str]]) -> None:
    for argv in commands:
        print(f"ran    {' '.join(argv)}")


@_reported
def install(ctx: Context) -> int:
    manager = _manager(ctx)
    program = karmad_program(ctx.args.karmad)
    if ctx.args.print:
        sys.stdout.write(manager.render(program).decode())
        return 0
    # A karmad started by hand holds the locks; the service's would exit at once.
    pid = _daemon_pid(ctx)
    if pid is not None:
        current = manager.status()
        if current.pid != pid:
            raise ServiceError(
                f"karmad is already running outside the service (pid {pid}); stop it with "
                "`karmactl stop`, then run `karmactl service install` again"
            )
    result = manager.install(program)
    wait = LAUNCHD_START_WAIT_S if manager.name == "launchd" else 0.0
    hello = _hello(ctx, wait)
    if ctx.json:
        data = _jsonable(result)
        data["running"] = hello is not None
        data["version"] = hello.version if hello else None
        render.emit_json(data)
    else:
        verb = "wrote " if result.changed else "kept  "
        print(f"{verb} {result.definition}")
        print(f"runs   {' '.join(program)}")
        _ran(result.commands)
        if hello is not None:
            print(f"karmad {hello.version} is running under {manager.name}")
        for note in result.notes:
            print(f"note: {note}")
    if hello is None:
        print(
            f"karmactl: {manager.name} accepted the service but karmad does not answer yet; "
            "`karmactl service status` and `karmactl service logs` show why",
            file=sys.stderr,
        )
    return 0


@_reported
def uninstall(ctx: Context) -> int:
    manager = _manager(ctx)
    result = manager.uninstall()
    if ctx.json:
        render.emit_json(_jsonable(result))
        return 0
    _ran(result.commands)
    if result.removed:
        print(f"removed {result.definition}")
    else:
        print(f"karmad was not installed as a {manager.name} service ({result.definition})")
    for note in result.notes:
        print(f"note: {note}")
    return 0


@_reported
def status(ctx: Context) -> int:
    """Exit status 0 when the service runs, 3 when it does not (as `systemctl status`)."""
    manager = _manager(ctx)
    state = manager.status()
    hello = _hello(ctx) if state.running else None
    if ctx.json:
        data = _jsonable(state)
        data["answers"] = hello is not None
        data["version"] = hello.version if hello else None
        render.emit_json(data)
    else:
        rows: list[tuple[str, Any]] = [
            ("manager", manager.name),
            ("definition", f"{state.definition}{'' if state.installed else ' (not installed)'}"),
        ]
        if state.installed:
            enabled = {True: "yes", False: "no", None: "unknown"}[state.enabled]
            rows.append(("enabled", enabled))
            rows.append(("state", state.state + (f", pid {state.pid}" if state.pid else "")))
            if state.status_text:
                rows.append(("status", state.status_text))
            if state.last_exit:
                rows.append(("last exit", state.last_exit))
            rows.append(("answers", f"karmad {hello.version}" if hello else "no"))
            rows.append(("logs", state.log_hint))
        render.kv(rows)
    return 0 if state.running else 3


@_reported
def restart(ctx: Context) -> int:
    manager = _manager(ctx)
    argv = manager.restart()
    wait = LAUNCHD_START_WAIT_S if manager.name == "launchd" else 0.0
    hello = _hello(ctx, wait)
    if ctx.json:
        render.emit_json({"command": argv, "running": hello is not None})
    else:
        print(f"ran    {' '.join(argv)}")
        if hello is None:
            print("karmactl: karmad does not answer yet; see `karmactl service logs`")
    return 0 if hello is not None else 1


@_reported
def logs(ctx: Context) -> int:
    manager = _manager(ctx)
    try:
        return manager.logs(
            lines=max(ctx.args.lines, 0),
            follow=ctx.args.follow,
            priority=ctx.args.priority,
            as_json=ctx.json,
        )
    except KeyboardInterrupt:
        return 0
