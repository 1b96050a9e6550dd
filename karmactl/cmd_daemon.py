"""`status`, `hello`, `events`, `stop`: the daemon itself."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from karmactl import render

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from karmactl.cli import Context


COMMANDS = ("status", "hello", "events", "stop")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("status", parents=[common], help="what the daemon is doing")
    p.set_defaults(func=status)

    p = sub.add_parser("hello", parents=[common], help="protocol and daemon version")
    p.set_defaults(func=hello)

    p = sub.add_parser("events", parents=[common], help="recent daemon events; --follow streams")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    p.add_argument("-t", "--topic", action="append", default=[], help="topic prefix (repeatable)")
    p.add_argument("-n", "--lines", type=int, default=20, help="recent events shown first")
    p.add_argument("--count", type=int, default=0, help="exit after this many new events")
    p.set_defaults(func=events)

    p = sub.add_parser("stop", parents=[common], help="stop the daemon")
    p.add_argument("--no-wait", action="store_true", help="do not wait for it to exit")
    p.set_defaults(func=stop)


def status(ctx: Context) -> int:
    result = ctx.call("daemon.status")
    if ctx.json:
        render.emit_json(result)
        return 0
    render.kv(
        [
            ("karmad", f"{result['version']} (protocol {result['protocol']})"),
            ("pid", result["pid"]),
            ("uptime", render.duration(float(result["uptime_s"]))),
            ("backend", result["backend"]),
            ("socket", result["paths"]["socket"]),
            ("state", result["paths"]["state_dir"]),
            ("store", f"schema {result['store']['schema_version']}"),
        ]
    )
    subsystems = result.get("subsystems") or {}
    if subsystems:
        print()
        render.table(
            ["SUBSYSTEM", "STATE", "DETAIL"],
            [(name, s["state"], s.get("detail", "")) for name, s in sorted(subsystems.items())],
        )
    return 0


def hello(ctx: Context) -> int:
    result = ctx.call("daemon.hello")
    if ctx.json:
        render.emit_json(result)
        return 0
    from karmad import __version__

    caps = ", ".join(result.get("capabilities", []))
    print(f"karmad {result['version']}, protocol {result['protocol']}, capabilities: {caps}")
    if result["version"] != __version__:
        print(f"note: karmactl is {__version__}; versions differ", file=sys.stderr)
    return 0


def _print_event(ctx: Context, event: dict[str, Any]) -> None:
    if ctx.json:
        print(json.dumps(event, separators=(",", ":")), flush=True)
        return
    data = " ".join(f"{k}={v}" for k, v in event.get("data", {}).items())
    print(f"{event['time']}  {event['seq']:>6}  {event['topic']}  {data}".rstrip(), flush=True)


def events(ctx: Context) -> int:
    topics: list[str] = ctx.args.topic
    recent = ctx.call("events.recent", topics=topics, limit=ctx.args.lines)
    last_seq = 0
    for event in recent["events"]:
        _print_event(ctx, event)
        last_seq = event["seq"]
    if not ctx.args.follow:
        return 0
    ctx.client.set_timeout(None)
    ctx.call("events.subscribe", topics=topics, since=last_seq)
    seen = 0
    for note in ctx.client.notifications():
        if note.get("method") == "events.overflow":
            print("karmactl: fell behind the daemon's event stream; reconnect", file=sys.stderr)
            return 1
        if note.get("method") != "event":
            continue
        _print_event(ctx, note["params"])
        seen += 1
        if ctx.args.count and seen >= ctx.args.count:
            return 0
    print("karmactl: the daemon closed the event stream", file=sys.stderr)
    return 1


def stop(ctx: Context) -> int:
    status = ctx.call("daemon.status")
    ctx.call("daemon.shutdown")
    pid = int(status["pid"])
    if not ctx.args.no_wait:
        deadline = time.monotonic() + ctx.timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            print(f"karmactl: karmad (pid {pid}) is still stopping", file=sys.stderr)
            return 1
    if ctx.json:
        render.emit_json({"stopped": True, "pid": pid})
    else:
        print(f"karmad (pid {pid}) stopped")
    return 0


def _alive(pid: int) -> bool:
    """True while the process exists and has not exited (a zombie has exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # state is the field after the parenthesised command name
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
