"""`share preview`: what would leave this machine, and what redaction would replace."""

from __future__ import annotations

import argparse
import re
import time

from karmactl import cli, render
from karmactl.client import CommandFailed
from karmactl.typed import decode
from karmad.protocol import PreviewStarted, SharePreview

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from karmactl.cli import Context

COMMANDS = ("share",)

_SESSION_ID = re.compile(r"[0-9a-f]{4,8}(-[0-9a-f-]*)?")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    share = sub.add_parser("share", parents=[common], help="what sharing sends")
    verbs = share.add_subparsers(dest="share_command", metavar="ACTION", required=True)
    p = verbs.add_parser(
        "preview",
        parents=[common],
        help="what would be sent and redacted (writes nothing)",
    )
    p.add_argument("target", nargs="?", help="a session id (prefix) or a project")
    p.add_argument("--session", help="a local session id or prefix")
    p.add_argument("--project", help="remote, checkout path, identity or project key")
    p.add_argument(
        "--lines", type=cli.not_negative, default=20, help="redacted lines shown per file"
    )
    p.set_defaults(func=preview)


def preview(ctx: Context) -> int:
    args = ctx.args
    session, project = args.session, args.project
    if args.target and not (session or project):
        if _SESSION_ID.fullmatch(args.target):
            session = args.target
        else:
            project = args.target
    if (session is None) == (project is None):
        raise CommandFailed("give a session or a project", reason="usage", exit=cli.EXIT_USAGE)
    started = ctx.call(
        "share.preview", session=session, project=cli.project_arg(project), max_lines=args.lines
    )
    job = decode(started, PreviewStarted).job
    deadline = time.monotonic() + ctx.timeout
    while True:
        raw = ctx.call("share.previewResult", job=job)
        result = decode(raw, SharePreview)
        if result.state != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if ctx.json:
        render.emit_json(raw)
        return 0 if result.state == "done" else 1
    if result.state != "done":
        raise CommandFailed(f"preview {result.state}: {result.error}", reason="preview_failed")
    print(f"redaction rules version {result.rules_version}; nothing was written\n")
    for s in result.sessions:
        where = ", ".join(s.destinations) or s.reason
        total = sum(s.redactions.values())
        print(f"session {s.session_id}  ({s.project})")
        print(f"  sent to: {where}")
        print(f"  redacted: {total} ({_kinds(s.redactions)})" if total else "  redacted: nothing")
        for f in s.files:
            dropped = f" (+{f.dropped_lines} non-JSON lines not sent)" if f.dropped_lines else ""
            print(f"  {f.path}: {render.size(f.bytes)}, {f.lines} lines{dropped}")
            for line in f.redacted_lines:
                paths = f"  at {', '.join(line.paths)}" if line.paths else ""
                print(f"    line {line.line}: {_kinds(line.kinds)}{paths}")
        print()
    return 0


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} x{n}" if n > 1 else k for k, n in sorted(counts.items()))
