"""`sessions resume ID`: continue a session with Claude Code in a local checkout.

A verb of `sessions` (added by `cmd_sessions`), kept here because it acts rather than
shows: karmad writes the transcript, this waits for it and prints what to run.
"""

from __future__ import annotations

import time

from karmactl import render
from karmactl.client import CommandFailed
from karmactl.typed import decode
from karmad.protocol import SessionResume

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from karmactl.cli import Context


def add_verb(verbs: Any, common: argparse.ArgumentParser) -> None:
    p = verbs.add_parser(
        "resume",
        parents=[common],
        help="continue a session (own, archived, a teammate's) with Claude Code here",
    )
    p.add_argument("id", help="session id or an unambiguous prefix")
    p.add_argument("--checkout", help="the local checkout to continue in (default: found)")
    p.add_argument("--origin", help="which copy (local, remote:<device>)")
    p.set_defaults(func=resume)


def resume(ctx: Context) -> int:
    a = ctx.args
    raw = ctx.call("session.resume", id=a.id, checkout=a.checkout, origin=a.origin)
    answer = decode(raw, SessionResume)
    deadline = time.monotonic() + ctx.timeout
    while answer.state == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
        raw = ctx.call("session.resumeResult", job=answer.job)
        answer = decode(raw, SessionResume)
    if ctx.json:
        render.emit_json(raw)
        return 0 if answer.state == "done" else 1
    if answer.state == "running":
        raise CommandFailed(f"still writing {answer.path}; try again shortly", reason="running")
    if answer.state == "failed":
        raise CommandFailed(answer.error, reason=answer.reason or "failed")
    print(_headline(answer))
    print(f"  session {answer.session_id}")
    print(f"  {answer.path}")
    print()
    print(answer.command)
    return 0


def _headline(answer: SessionResume) -> str:
    whose = f"{answer.member}'s session" if answer.member else "session"
    source = f"{whose} {answer.origin_session}"
    if answer.outcome == "materialised":
        return f"{source}: written for Claude Code ({render.size(answer.bytes)})"
    if answer.outcome == "restored":
        return f"{source}: put back from karmad's archive"
    return f"{source}: {answer.message}"
