"""`status`, `hello`, `events`, `stop`: the daemon itself."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from karmactl import cli, render
from karmactl.client import RpcError

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from karmactl.cli import Context
    from karmad.protocol import Event


COMMANDS = ("status", "hello", "events", "stop")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "status",
        parents=[common],
        help="who you are, teams, peers, what arrived last and what waits for you",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="also the daemon's paths and subsystems"
    )
    p.set_defaults(func=status)

    p = sub.add_parser("hello", parents=[common], help="protocol and daemon version")
    p.set_defaults(func=hello)

    p = sub.add_parser("events", parents=[common], help="recent daemon events; --follow streams")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    p.add_argument("-t", "--topic", action="append", default=[], help="topic prefix (repeatable)")
    p.add_argument(
        "-n", "--lines", type=cli.not_negative, default=20, help="recent events shown first"
    )
    p.add_argument(
        "--count", type=cli.not_negative, default=0, help="exit after this many new events"
    )
    p.set_defaults(func=events)

    p = sub.add_parser("stop", parents=[common], help="stop the daemon")
    p.add_argument("--no-wait", action="store_true", help="do not wait for it to exit")
    p.set_defaults(func=stop)


def status(ctx: Context) -> int:
    try:
        result = ctx.call("daemon.overview")
    except RpcError as exc:
        if exc.reason != "method_not_found":
            raise
        result = ctx.call("daemon.status")  # a daemon older than this karmactl
    if ctx.json:
        render.emit_json(result)
        return 0
    up = render.duration(float(result["uptime_s"]))
    print(
        f"karmad {result['version']} (protocol {result['protocol']}), up {up}, "
        f"pid {result['pid']}, {result['backend']}"
    )
    if "keeper" in (result.get("subsystems") or {}):
        # A keeper has no identity, teams or index of its own.
        pairs = [("mode", "keeper: holds the teams it serves (karmactl keeper status)")]
    else:
        pairs = _overview(result) if "identity" in result else []
    if pairs:
        render.kv(pairs)
    waiting = result.get("attention") or []
    if waiting:
        print("\nwaiting for you:")
        width = render.width()
        for item in waiting:
            print(_wrap(f"  - {item['message']}", width, "    "))
            if item.get("fix"):
                print(f"      {item['fix']}")
    if ctx.args.verbose or "identity" not in result:
        _details(result)
    return 0


def _overview(r: dict[str, Any]) -> list[tuple[str, Any]]:
    me = r["identity"]
    pairs: list[tuple[str, Any]] = []
    if me.get("initialised"):
        device = (me.get("device_id") or "").split("-", 1)[0]
        pairs.append(("you", me["member_tag"] + (f"  (device {device})" if device else "")))
    else:
        pairs.append(("you", "no user name yet"))
    teams = r.get("teams") or []
    for n, t in enumerate(teams):
        counts = f"{_plural(t['members'], 'member')}, {_plural(t['projects'], 'project')}"
        pairs.append(
            ("teams" if n == 0 else "", f"{t['name']}: {t['role']}, {t['state']}, {counts}")
        )
    if not teams:
        pairs.append(("teams", "none"))
    peers = r.get("peers") or []
    # datetime costs more to import than the whole RPC: only when there is a time to show.
    now = _now() if peers or r.get("last_received") else None
    for n, p in enumerate(peers):
        if p["connected"]:
            seen = "online"
        elif p.get("last_seen"):
            seen = f"offline, last seen {_ago(p['last_seen'], now)}"
        elif p["connected"] is None:
            seen = "unknown (Syncthing not running)"
        else:
            seen = "offline, never seen"
        pairs.append(
            ("peers" if n == 0 else "", f"{p['member_tag']}  {seen}  ({', '.join(p['teams'])})")
        )
    last = r.get("last_received")
    if last:
        when = f", active {_ago(last['active_at'], now)}" if last.get("active_at") else ""
        title = f' "{render.clip(last["title"], 40)}"' if last.get("title") else ""
        pairs.append(("received", f"{last['member'] or '?'}: {last['session'][:8]}{title}{when}"))
    elif teams:
        pairs.append(("received", "nothing yet"))
    index = r.get("index")
    if index:
        lag = f", {render.duration(index['lag_s'])} behind" if index["lag_s"] >= 1 else ""
        detail = f" ({index['detail']})" if index.get("detail") else ""
        pairs.append(
            ("index", f"{index['state']}{detail}, {_plural(index['sessions'], 'session')}{lag}")
        )
    return pairs


def _details(r: dict[str, Any]) -> None:
    print()
    render.kv(
        [
            ("pid", r["pid"]),
            ("uptime", render.duration(float(r["uptime_s"]))),
            ("backend", r["backend"]),
            ("socket", r["paths"]["socket"]),
            ("state", r["paths"]["state_dir"]),
            ("store", f"schema {r['store']['schema_version']}"),
        ]
    )
    subsystems = r.get("subsystems") or {}
    if subsystems:
        print()
        render.table(
            ["SUBSYSTEM", "STATE", "DETAIL"],
            [(name, s["state"], s.get("detail", "")) for name, s in sorted(subsystems.items())],
            fit=render.Fit(shrink={2: 20}),
            colours={1: render.by_state},
        )


def _wrap(text: str, width: int | None, indent: str) -> str:
    """`text` folded to the terminal's width; whole when output is not a terminal."""
    if width is None or len(text) <= width:
        return text
    import textwrap

    return textwrap.fill(text, width, subsequent_indent=indent, break_on_hyphens=False)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _ago(iso: str, now: Any) -> str:
    """How long ago, to the unit a person cares about: 5m, 3h, 2d."""
    from datetime import datetime

    seconds = (now - datetime.fromisoformat(iso)).total_seconds()
    if seconds < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "just now"


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


def _print_event(ctx: Context, sent: Any, event: Event) -> None:
    """One event a line: `sent` (as it came) with `--json`, else its fields."""
    if ctx.json:
        print(json.dumps(sent, separators=(",", ":")), flush=True)
        return
    from karmactl.typed import wire_time

    data = " ".join(f"{k}={v}" for k, v in event.data.items())
    print(f"{wire_time(event.time)}  {event.seq:>6}  {event.topic}  {data}".rstrip(), flush=True)


def events(ctx: Context) -> int:
    # Not on the fast path of `status` and `hello`, which share this module.
    from karmactl.typed import as_sent, decode
    from karmad.protocol import Event, RecentEvents

    topics: list[str] = ctx.args.topic
    raw = ctx.call("events.recent", topics=topics, limit=ctx.args.lines)
    last_seq = 0
    for sent, event in as_sent(raw, "events", decode(raw, RecentEvents).events):
        _print_event(ctx, sent, event)
        last_seq = event.seq
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
        sent = note["params"]
        _print_event(ctx, sent, decode(sent, Event))
        seen += 1
        if ctx.args.count and seen >= ctx.args.count:
            return 0
    print("karmactl: the daemon closed the event stream", file=sys.stderr)
    return 1


def stop(ctx: Context) -> int:
    from karmactl.typed import decode
    from karmad.protocol import DaemonStatus

    pid = decode(ctx.call("daemon.status"), DaemonStatus).pid
    ctx.call("daemon.shutdown")
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
