"""`index status|rebuild`: the session index itself."""

from __future__ import annotations

import argparse
import sys

from karmactl import cli, render
from karmactl.typed import decode
from karmad.protocol import IndexProgress, IndexRebuild, IndexStatus

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from karmactl.cli import Context

BUSY = ("starting", "scanning", "indexing text", "repricing")


COMMANDS = ("index",)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    index = sub.add_parser("index", parents=[common], help="the session index")
    verbs = index.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser(
        "status", parents=[common, cli.wide_option()], help="files, bytes, lag, errors, progress"
    )
    p.add_argument("-f", "--follow", action="store_true", help="show progress until it is idle")
    p.set_defaults(func=status)

    p = verbs.add_parser("rebuild", parents=[common], help="read every transcript again")
    p.add_argument("--text-only", action="store_true", help="only the full-text index")
    p.add_argument("--wait", action="store_true", help="show progress until it is done")
    p.set_defaults(func=rebuild)


def _print_status(s: IndexStatus) -> None:
    pairs: list[tuple[str, Any]] = [
        ("state", s.state + (f" ({s.detail})" if s.detail else "")),
        ("sessions", s.sessions),
        ("files", f"{s.files} ({render.size(s.bytes)})"),
        ("indexed", render.size(s.indexed_bytes)),
        ("search index", render.size(s.text_indexed_bytes) if s.full_text else "off"),
        ("pending", render.size(s.pending_bytes)),
        ("lag", render.duration(s.lag_s)),
        ("skipped lines", s.bad_lines),
        ("missing files", s.missing_files),
        ("watching", "yes" if s.watching else "no"),
        ("prices", s.price_version),
    ]
    scan = s.last_scan
    if scan:
        pairs.append(
            (
                "last scan",
                f"{render.local_time(scan.started_at, '%Y-%m-%d %H:%M:%S')}, "
                f"{scan.files} files, {render.size(scan.bytes)} in "
                f"{render.duration(scan.seconds)}",
            )
        )
    if s.problem_files:
        pairs.append(("unreadable files", s.problem_files))
    if s.error:
        pairs.append(("error", s.error))
    if s.rejected:
        newest = s.rejected[0]
        who = f" from {newest.member}" if newest.member else ""
        pairs.append(
            (
                "refused",
                f"{len(s.rejected)} received files; the newest{who}: "
                f"{newest.path.rsplit('/', 1)[-1]}: {newest.reason}",
            )
        )
    render.kv(pairs)
    if s.problems:
        print()
        render.table(
            ["NOT INDEXED", "REASON", "TRIES"],
            [
                (
                    p.path,
                    p.reason + ("" if p.transient else " (until it changes)"),
                    p.attempts,
                )
                for p in s.problems
            ],
            right=(2,),
            fit=render.Fit(shrink={0: 24, 1: 16}),
        )
    if s.progress:
        print(_progress_line(s.progress))
    if s.roots:
        print()
        render.table(
            ["ROOT", "ORIGIN", "MEMBER", "SESSIONS", "FILES"],
            [
                (
                    r.path + ("" if r.exists else " (missing)"),
                    r.origin,
                    r.member,
                    r.sessions,
                    r.files,
                )
                for r in s.roots
            ],
            right=(3, 4),
            fit=render.Fit(shrink={0: 24, 2: 12}, drop=(1,)),
        )


def _progress_line(p: IndexProgress) -> str:
    what = "sessions" if p.phase == "scan" else "search index"
    eta = f", {render.duration(p.eta_s)} left" if p.eta_s is not None else ""
    return (
        f"{what} {render.progress_bar(p.percent / 100)} "
        f"{p.files_done}/{p.files_total} files, {render.size(p.bytes_done)}"
        f"/{render.size(p.bytes_total)}{eta}"
    )


def _status(ctx: Context) -> tuple[Any, IndexStatus]:
    raw = ctx.call("index.status")
    return raw, decode(raw, IndexStatus)


def _follow(ctx: Context, raw: Any, status: IndexStatus) -> tuple[Any, IndexStatus]:
    """Redraw one progress line from `index.progress` events until the index is idle."""
    if status.state not in BUSY:
        return raw, status
    tty = sys.stderr.isatty()
    ctx.client.set_timeout(None)
    ctx.call("events.subscribe", topics=["index", "daemon.subsystem"])
    # Ask again: the state may have changed before the subscription started.
    raw, status = _status(ctx)
    if status.state not in BUSY:
        return raw, status
    for note in ctx.client.notifications():
        if note.get("method") != "event":
            continue
        event = note["params"]
        topic = event["topic"]
        data = event.get("data", {})
        if topic == "index.progress":
            line = _progress_line(decode(data, IndexProgress))
            if ctx.json:
                render.emit_json(event)
            elif tty:
                sys.stderr.write("\r\033[K" + line)
                sys.stderr.flush()
            else:
                print(line, file=sys.stderr)
        elif topic == "index.done" or (
            topic == "daemon.subsystem"
            and data.get("name") == "index"
            and data.get("state") in ("idle", "error")
        ):
            break
    if tty and not ctx.json:
        sys.stderr.write("\r\033[K")
    return _status(ctx)


def status(ctx: Context) -> int:
    raw, s = _status(ctx)
    if ctx.args.follow:
        raw, s = _follow(ctx, raw, s)
    if ctx.json:
        render.emit_json(raw)
    else:
        _print_status(s)
    return 1 if s.state == "error" else 0


def _wait_for(ctx: Context, job: int) -> None:
    """Progress lines until `index.done` for `job` (subscribed before asking for it)."""
    tty = sys.stderr.isatty() and not ctx.json
    for note in ctx.client.notifications():
        if note.get("method") != "event":
            continue
        event = note["params"]
        data = event.get("data", {})
        if event["topic"] == "index.progress" and not ctx.json:
            line = _progress_line(decode(data, IndexProgress))
            sys.stderr.write("\r\033[K" + line if tty else line + "\n")
            sys.stderr.flush()
        elif event["topic"] in ("index.done", "index.error") and data.get("job", job) == job:
            break
    if tty:
        sys.stderr.write("\r\033[K")


def rebuild(ctx: Context) -> int:
    if ctx.args.wait:
        ctx.client.set_timeout(None)
        ctx.call("events.subscribe", topics=["index"])
    answer = ctx.call("index.rebuild", text_only=ctx.args.text_only)
    job = decode(answer, IndexRebuild).job
    if ctx.args.wait:
        _wait_for(ctx, job)
        raw, s = _status(ctx)
        if ctx.json:
            render.emit_json({"job": job, "status": raw})
        else:
            _print_status(s)
        return 1 if s.state == "error" else 0
    if ctx.json:
        render.emit_json(answer)
    else:
        print(f"rebuilding the index (job {job}); `karmactl index status -f` shows progress")
    return 0
