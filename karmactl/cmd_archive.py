"""`archive status`: what karmad keeps of this member's own sessions."""

from __future__ import annotations

import argparse
import sys
import time

from karmactl import render

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from karmactl.cli import Context

COMMANDS = ("archive",)
GONE_SHOWN = 20


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    archive = sub.add_parser("archive", parents=[common], help="karmad's archive of own sessions")
    verbs = archive.add_subparsers(dest="archive_command", metavar="ACTION", required=True)
    p = verbs.add_parser(
        "status", parents=[common], help="sessions and bytes kept, which are gone from ~/.claude"
    )
    p.add_argument("--all", action="store_true", help="list every session gone from ~/.claude")
    p.set_defaults(func=status)


def status(ctx: Context) -> int:
    job = ctx.call("archive.sweep")["job"]
    deadline = time.monotonic() + ctx.timeout
    while True:
        current = ctx.call("archive.status")
        if current["job"] >= job or not current["enabled"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if ctx.json:
        render.emit_json(current)
        return 0
    if not current["enabled"]:
        print("the archive is turned off (archive.enabled = false in karmad's config)")
        return 0
    if current["state"] == "error":
        print(f"karmactl: the archive failed: {current['error']}", file=sys.stderr)
        return 1
    _print(current, everything=ctx.args.all)
    return 0


def _print(s: dict[str, Any], *, everything: bool) -> None:
    oldest = render.local_time(s.get("oldest_at"), "%Y-%m-%d") or "-"
    print(f"archive     {s['path']}")
    print(f"sessions    {s['sessions']} ({s['files']} files, {render.size(s['bytes'])})")
    print(
        f"disk        {render.size(s['archive_only_bytes'])} of its own "
        f"({s['linked_files']} linked, {s['copied_files']} copied, "
        f"{s['replaced_files']} earlier generations)"
    )
    print(f"oldest      {oldest}")
    if s["excluded"]:
        print(f"excluded    {', '.join(s['excluded'])} ({s['excluded_files']} files not kept)")
    covered = "every own transcript is archived"
    if s["uncovered_total"]:
        covered = f"{s['uncovered_total']} transcript(s) NOT archived: see karmad's log"
    elif s["pending"]:
        covered = f"{covered} ({s['pending']} new file(s) on the way)"
    print(f"coverage    {covered}")
    for rel in s["uncovered"][:GONE_SHOWN]:
        print(f"  not archived: {rel}")
    gone = s["gone"] if everything else s["gone"][:GONE_SHOWN]
    print(f"\ngone from Claude Code's folder: {s['gone_total']}")
    if gone:
        render.table(
            ["ID", "LAST ACTIVE", "SIZE", "DIRECTORY"],
            [
                (
                    g["id"],
                    render.local_time(g.get("last_active")),
                    render.size(g["bytes"]),
                    render.clip(g["project_dir"], 50),
                )
                for g in gone
            ],
            right=(2,),
        )
        if len(gone) < s["gone_total"]:
            print(f"({len(gone)} of {s['gone_total']}; --all for every one)", file=sys.stderr)
        print("\ncontinue one with: karmactl sessions resume ID")
