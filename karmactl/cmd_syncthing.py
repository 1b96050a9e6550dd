"""`syncthing status|rescan`, `devices`, `folders`, `pending`: the sharing engine."""

from __future__ import annotations

import argparse

from karmactl import cli, render
from karmactl.typed import decode
from karmad.protocol import DeviceList, FolderList, PendingList, RescanQueued, SyncthingStatus

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any

    from karmactl.cli import Context


COMMANDS = ("syncthing", "devices", "folders", "pending")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("syncthing", parents=[common], help="the Syncthing karmad drives")
    st = p.add_subparsers(dest="syncthing_command", metavar="COMMAND", required=True)
    s = st.add_parser("status", parents=[common], help="mode, state, version, device ID")
    s.set_defaults(func=status)
    s = st.add_parser("rescan", parents=[common], help="scan a managed folder (or all) now")
    s.add_argument("folder", nargs="?", help="folder ID (default: every managed folder)")
    s.add_argument("paths", nargs="*", help="paths inside the folder (default: all of it)")
    s.set_defaults(func=rescan)

    p = sub.add_parser(
        "devices", parents=[common, cli.wide_option()], help="configured devices and connections"
    )
    p.set_defaults(func=devices)
    p = sub.add_parser(
        "folders", parents=[common, cli.wide_option()], help="karmad-managed Syncthing folders"
    )
    p.set_defaults(func=folders)
    p = sub.add_parser(
        "pending", parents=[common, cli.wide_option()], help="devices and folders offered to us"
    )
    p.set_defaults(func=pending)
    pe = p.add_subparsers(dest="pending_command", metavar="ACTION")
    s = pe.add_parser(
        "ls", parents=[common, cli.wide_option()], help="offers waiting for you (the default)"
    )
    s.set_defaults(func=pending)
    s = pe.add_parser(
        "accept", parents=[common], help="accept a device as a team leader, or its folder offer"
    )
    target = s.add_mutually_exclusive_group(required=True)
    target.add_argument("--device", help="device ID of the offering leader")
    target.add_argument("--folder", help="folder ID it offered")
    s.set_defaults(func=pending_accept)
    s = pe.add_parser("dismiss", parents=[common], help="dismiss an offer")
    target = s.add_mutually_exclusive_group(required=True)
    target.add_argument("--device", help="device ID")
    target.add_argument("--folder", help="folder ID")
    s.set_defaults(func=pending_dismiss)


def _short(device_id: str) -> str:
    return device_id.split("-", 1)[0]


def _when(value: datetime | None) -> str:
    return render.local_time(value, "%Y-%m-%d %H:%M:%S") or "-"


def status(ctx: Context) -> int:
    raw = ctx.call("syncthing.status")
    if ctx.json:
        render.emit_json(raw)
        return 0
    result = decode(raw, SyncthingStatus)
    stream = result.stream
    rows: list[tuple[str, Any]] = [("mode", result.mode), ("state", result.state)]
    if result.detail:
        rows.append(("detail", result.detail))
    if result.version:
        rows.append(("version", result.version))
    if result.device_id:
        rows.append(("device ID", result.device_id))
    if result.profile:
        rows.append(("profile", result.profile))
    if result.api_address:
        rows.append(("REST API", result.api_address))
    if result.listen_addresses:
        rows.append(("listening", ", ".join(result.listen_addresses)))
    for listener in result.listeners:
        if listener.error:
            rows.append(("listener error", f"{listener.address}: {listener.error}"))
    if result.pid:
        rows.append(("pid", f"{result.pid} (restarts: {result.restarts})"))
    if result.home:
        rows.append(("home", result.home))
    live = "live" if stream.live else f"down ({stream.down_reason or '-'})"
    rows.append(
        ("events", f"{live}; resyncs {stream.resyncs} ({stream.last_resync_reason or '-'})")
    )
    render.kv(rows)
    return 0


def rescan(ctx: Context) -> int:
    raw = ctx.call("syncthing.rescan", folder=ctx.args.folder, paths=ctx.args.paths)
    if ctx.json:
        render.emit_json(raw)
        return 0
    result = decode(raw, RescanQueued)
    what = ", ".join(result.paths) if result.paths else "everything"
    folders = ", ".join(result.folders) or "no managed folders"
    print(f"scan queued: {what} in {folders}")
    return 0


def devices(ctx: Context) -> int:
    raw = ctx.call("device.list")
    if ctx.json:
        render.emit_json(raw)
        return 0
    rows = []
    for d in decode(raw, DeviceList).devices:
        if d.paused:
            state = "paused"
        elif d.connected:
            state = f"connected {d.address}"
        else:
            state = "disconnected"
        rows.append(
            (
                _short(d.device_id),
                d.name or "-",
                state,
                _when(d.last_seen),
                render.size(d.in_bytes),
                render.size(d.out_bytes),
                len(d.folders),
            )
        )
    if not rows:
        print("no devices configured")
        return 0
    render.table(
        ["DEVICE", "NAME", "STATE", "LAST SEEN", "IN", "OUT", "FOLDERS"],
        rows,
        right=(4, 5, 6),
        fit=render.Fit(shrink={2: 12, 1: 12}, drop=(6, 4, 5)),
        colours={2: render.by_state},
    )
    return 0


def folders(ctx: Context) -> int:
    raw = ctx.call("folder.list")
    if ctx.json:
        render.emit_json(raw)
        return 0
    rows = []
    for f in decode(raw, FolderList).folders:
        # The least complete device sharing it: what "is everything delivered" depends on.
        worst = min((c.completion for c in f.completion), default=100.0)
        state = f.state + (f": {f.error}" if f.error else "")
        if f.pull_errors:
            state += f" ({f.pull_errors} errors)"
        rows.append(
            (
                f.folder_id,
                f.type,
                state,
                f"{worst:.0f}%",
                f.local_files,
                render.size(f.local_bytes),
                len(f.devices),
            )
        )
    if not rows:
        print("no karmad-managed folders")
        return 0
    render.table(
        ["FOLDER", "TYPE", "STATE", "SYNCED", "FILES", "SIZE", "DEVICES"],
        rows,
        right=(3, 4, 5, 6),
        fit=render.Fit(shrink={2: 12, 0: 20}, drop=(6, 4, 1)),
        colours={2: render.by_state},
    )
    return 0


def pending(ctx: Context) -> int:
    raw = ctx.call("pending.list")
    if ctx.json:
        render.emit_json(raw)
        return 0
    result = decode(raw, PendingList)
    if not result.devices and not result.folders:
        print("nothing pending")
        return 0
    if result.devices:
        # Not the name a device gives itself (anyone can claim any name): its ID, and what
        # our own records (an invite, a roster) call it. Check the ID with its owner.
        render.table(
            ["DEVICE", "KNOWN AS", "ADDRESS", "SINCE"],
            [
                (
                    d.device_id,
                    f"{d.known_as} ({d.known_from})" if d.known_as else "unknown",
                    d.address or "-",
                    _when(d.time),
                )
                for d in result.devices
            ],
            fit=render.Fit(shrink={2: 16, 1: 12}, drop=(3,)),
        )
    if result.folders:
        if result.devices:
            print()
        render.table(
            ["FOLDER", "LABEL", "OFFERED BY", "SINCE"],
            [
                (f.folder_id, o.label or "-", o.known_as or _short(o.device_id), _when(o.time))
                for f in result.folders
                for o in f.offered_by
            ],
            fit=render.Fit(shrink={1: 12, 0: 20}, drop=(3,)),
        )
    return 0


def pending_accept(ctx: Context) -> int:
    result = ctx.call("pending.accept", device=ctx.args.device, folder=ctx.args.folder)
    if ctx.json:
        render.emit_json(result)
    else:
        print("Accepted: teams this device leads and that list you will be joined.")
    return 0


def pending_dismiss(ctx: Context) -> int:
    result = ctx.call("pending.dismiss", device=ctx.args.device, folder=ctx.args.folder)
    if ctx.json:
        render.emit_json(result)
    else:
        print("Dismissed.")
    return 0
