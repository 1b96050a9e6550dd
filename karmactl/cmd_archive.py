"""`archive status`: what karmad keeps of this member's own sessions."""

from __future__ import annotations

import argparse
import sys
import time

from karmactl import render
from karmactl.client import CommandFailed
from karmactl.typed import decode
from karmad.protocol import ArchiveStatus, ArchiveSweep

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from karmactl.cli import Context

COMMANDS = ("archive",)
SHOWN = 20


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    archive = sub.add_parser("archive", parents=[common], help="karmad's archive of own sessions")
    verbs = archive.add_subparsers(dest="archive_command", metavar="ACTION", required=True)
    p = verbs.add_parser(
        "status", parents=[common], help="sessions and bytes kept, which are gone from ~/.claude"
    )
    p.add_argument("--all", action="store_true", help="list every session gone from ~/.claude")
    p.set_defaults(func=status)


def status(ctx: Context) -> int:
    job = decode(ctx.call("archive.sweep"), ArchiveSweep).job
    deadline = time.monotonic() + ctx.timeout
    while True:
        raw = ctx.call("archive.status")
        current = decode(raw, ArchiveStatus)
        if current.job >= job or not current.enabled or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if ctx.json:
        render.emit_json(raw)
        return 0
    if not current.enabled:
        print("the archive is turned off (archive.enabled = false in karmad's config)")
        return 0
    if current.state == "error":
        raise CommandFailed(f"the archive failed: {current.error}", reason="archive_failed")
    _print(current, everything=ctx.args.all)
    return 0


def _print(s: ArchiveStatus, *, everything: bool) -> None:
    covered = "every own transcript is archived"
    if s.uncovered_total:
        covered = f"{s.uncovered_total} transcript(s) NOT archived: see karmad's log"
    elif s.pending:
        covered = f"{covered} ({s.pending} new file(s) on the way)"
    pairs: list[tuple[str, Any]] = [
        ("archive", s.path),
        ("sessions", f"{s.sessions} ({s.files} files, {render.size(s.bytes)})"),
        (
            "disk",
            f"{render.size(s.archive_only_bytes)} of its own ({s.linked_files} linked, "
            f"{s.copied_files} copied, {s.replaced_files} earlier generations)",
        ),
        ("oldest", render.local_time(s.oldest_at, "%Y-%m-%d") or "-"),
    ]
    if s.excluded:
        pairs.append(("excluded", f"{', '.join(s.excluded)} ({s.excluded_files} files not kept)"))
    pairs.append(("coverage", covered))
    render.kv(pairs)
    for rel in s.uncovered[:SHOWN]:
        print(f"  not archived: {rel}")
    gone = s.gone if everything else s.gone[:SHOWN]
    print(f"\ngone from Claude Code's folder: {s.gone_total}")
    if not gone:
        return
    render.table(
        ["ID", "LAST ACTIVE", "SIZE", "DIRECTORY"],
        [
            (g.id, render.local_time(g.last_active), render.size(g.bytes), g.project_dir)
            for g in gone
        ],
        right=(2,),
        fit=render.Fit(shrink={3: 12}),
    )
    if len(gone) < s.gone_total:
        print(f"({len(gone)} of {s.gone_total}; --all for every one)", file=sys.stderr)
    print("\ncontinue one with: karmactl sessions resume ID")
