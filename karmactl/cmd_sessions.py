"""`sessions ls|show|search|resume`: the sessions karmad has indexed."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator

from karmactl import cli, cmd_resume, pager, render, when
from karmactl.client import CommandFailed
from karmactl.typed import as_sent, decode
from karmactl.whose import MEMBER_HELP, whose
from karmad.protocol import (
    ContentBlock,
    SearchHit,
    SearchResults,
    SessionDetail,
    SessionList,
    SessionMessages,
    SessionSummary,
    TranscriptEntry,
)

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from karmactl.cli import Context

SORTS = ("last", "first", "cost", "tokens", "duration", "prompts")
ORIGINS = ("all", "local", "remote")


COMMANDS = ("sessions",)


def member_labels(items: list[SessionSummary] | list[SearchHit]) -> dict[str, str]:
    """Member tag -> what the MEMBER column says: the user name, or the whole tag when
    the rows show that user on several machines."""
    machines: dict[str, set[str]] = {}
    for item in items:
        machines.setdefault(item.member.split(".", 1)[0], set()).add(item.member)
    return {
        tag: (tag or "local") if len(tags) > 1 else (user or "local")
        for user, tags in machines.items()
        for tag in tags
    }


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    sessions = sub.add_parser("sessions", parents=[common], help="indexed Claude Code sessions")
    verbs = sessions.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser(
        "ls", parents=[common, cli.wide_option()], help="list sessions, most recent first"
    )
    p.add_argument("--project", help="identity, path, or a short form of one project")
    p.add_argument("--since", type=when.argument, help="active since (7d, 24h, 2026-01-31...)")
    p.add_argument("--until", type=when.argument, help="started before")
    p.add_argument("--model", help="used a model whose name contains this")
    p.add_argument("--origin", choices=ORIGINS, default="all")
    p.add_argument("--member", help=MEMBER_HELP)
    p.add_argument("--sort", choices=SORTS, default="last")
    p.add_argument("--asc", action="store_true", help="ascending order")
    p.add_argument(
        "-n", "--limit", type=cli.positive, default=30, help="sessions shown (default 30)"
    )
    p.add_argument("--all", action="store_true", help="every matching session")
    p.set_defaults(func=ls)

    p = verbs.add_parser("show", parents=[common], help="a session's figures and transcript")
    p.add_argument("id", help="session id or an unambiguous prefix")
    p.add_argument("--origin", help="which copy (local, remote:<device>)")
    p.add_argument("--info", action="store_true", help="figures only, no transcript")
    p.add_argument("--no-sidechains", action="store_true", help="leave out subagent turns")
    p.add_argument(
        "--max-text", type=cli.positive, default=4000, help="characters per block (default 4000)"
    )
    p.add_argument("--no-pager", action="store_true", help="never page the output")
    p.set_defaults(func=show)

    p = verbs.add_parser(
        "search",
        parents=[common, cli.wide_option()],
        help="full-text search of prompts and answers",
    )
    p.add_argument("text", nargs="+", help='words (all must match); "quoted phrase" for exact')
    p.add_argument("-n", "--limit", type=cli.positive, default=20, help="hits shown (default 20)")
    p.add_argument("--project")
    p.add_argument("--member", help=MEMBER_HELP)
    p.add_argument("--session", help="only within this session")
    p.add_argument("--since", type=when.argument)
    p.add_argument("--until", type=when.argument)
    p.set_defaults(func=search)

    cmd_resume.add_verb(verbs, common)


# --------------------------------------------------------------------------- ls


def _pages(
    ctx: Context, params: dict[str, Any], limit: int, everything: bool
) -> Iterator[tuple[Any, SessionSummary, int]]:
    """(the session as sent, as typed, how many match) for each session shown."""
    cursor = None
    shown = 0
    while True:
        raw = ctx.call("session.list", **params, limit=min(limit, 500), cursor=cursor)
        page = decode(raw, SessionList)
        for item, typed in as_sent(raw, "sessions", page.sessions):
            yield item, typed, page.total
            shown += 1
            if not everything and shown >= limit:
                return
        cursor = page.next_cursor
        if not cursor:
            return


SESSION_COLUMNS = [
    "ID",
    "LAST",
    "DURATION",
    "MEMBER",
    "PROJECT",
    "PROMPTS",
    "TOKENS",
    "COST",
    "TITLE",
]
SESSION_FIT = render.Fit(shrink={8: 16, 4: 14, 3: 8}, drop=(2, 5, 6, 8))
"""Narrow terminals: TITLE is cut first (to 16 characters), then PROJECT (to 14) and
MEMBER (to 8); then DURATION, PROMPTS, TOKENS and TITLE are left out, in that order."""


def ls(ctx: Context) -> int:
    a = ctx.args
    params = {
        "project": cli.project_arg(a.project),
        "since": a.since,
        "until": a.until,
        "model": a.model,
        "origin": a.origin,
        **whose(a.member),
        "sort": a.sort,
        "ascending": a.asc,
    }
    items = list(_pages(ctx, params, a.limit, a.all))
    if ctx.json:
        render.emit_json([raw for raw, _, _ in items])
        return 0
    if not items:
        print("no sessions", file=sys.stderr)
        return 0
    total = items[0][2]
    sessions = [s for _, s, _ in items]
    labels = member_labels(sessions)
    rows = []
    for s in sessions:
        t = s.tokens
        rows.append(
            (
                s.id[:8],
                render.local_time(s.ended_at) or "-",
                render.duration(s.duration_s) if s.duration_s else "",
                labels[s.member],
                _project(s),
                s.user_prompts,
                render.count(t.total),
                render.money(t.cost, incomplete=t.unpriced_requests > 0),
                _title(s),
            )
        )
    render.table(SESSION_COLUMNS, rows, right=(2, 5, 6, 7), fit=SESSION_FIT)
    if len(items) < total:
        print(f"({len(items)} of {total}; --all or -n for more)", file=sys.stderr)
    return 0


def _title(s: SessionSummary) -> str:
    """The title, or what the session is when it has none to show."""
    title = " ".join(s.title.split())
    if title:
        return title
    return "(no messages)" if s.started_at is None else "(no prompt)"


def _project(s: SessionSummary) -> str:
    project = s.project or s.project_path
    if project.startswith("/"):
        parts = project.rstrip("/").split("/")
        project = "/".join(parts[-2:]) if len(parts) > 2 else project
    return project


# --------------------------------------------------------------------------- show


def _messages(
    ctx: Context, ident: str, origin: str | None, sidechains: bool, max_text: int
) -> Iterator[tuple[Any, TranscriptEntry]]:
    cursor = None
    while True:
        raw = ctx.call(
            "session.messages",
            id=ident,
            origin=origin,
            cursor=cursor,
            limit=200,
            sidechains=sidechains,
            max_text=max_text,
        )
        page = decode(raw, SessionMessages)
        yield from as_sent(raw, "items", page.items)
        cursor = page.next_cursor
        if not cursor:
            return


def show(ctx: Context) -> int:
    a = ctx.args
    raw = ctx.call("session.get", id=a.id, origin=a.origin)
    detail = decode(raw, SessionDetail)
    sidechains = not a.no_sidechains
    if ctx.json:
        doc = dict(raw)
        if not a.info:
            messages = _messages(ctx, detail.id, detail.origin, sidechains, a.max_text)
            doc["messages"] = [item for item, _ in messages]
        render.emit_json(doc)
        return 0
    with pager.paged(not a.no_pager) as out:
        _header(detail, out)
        if not a.info:
            out.write("\n")
            for _, item in _messages(ctx, detail.id, detail.origin, sidechains, a.max_text):
                _entry(item, out)
    return 0


def _header(d: SessionDetail, out: TextIO) -> None:
    t = d.tokens
    written = t.cache_write_5m + t.cache_write_1h
    pairs: list[tuple[str, Any]] = [
        ("session", d.id),
        ("title", _title(d)),
        ("project", d.project + (f"  ({d.project_path})" if d.project_path != d.project else "")),
        ("when", _when(d)),
        ("origin", d.origin + (f" ({d.member})" if d.member else "")),
        ("claude code", ", ".join(d.versions) or "?"),
        ("branches", ", ".join(d.branches) or "-"),
        ("prompts", d.user_prompts),
        (
            "tokens",
            f"{render.count(t.total)} (in {render.count(t.input)}, out "
            f"{render.count(t.output)}, cache write {render.count(written)}, "
            f"cache read {render.count(t.cache_read)}) in {t.requests} requests",
        ),
        (
            "cost",
            render.money(t.cost, incomplete=t.unpriced_requests > 0)
            + f"  (prices {d.price_version})",
        ),
    ]
    if d.tool_uses:
        tools = sorted(d.tool_uses.items(), key=lambda kv: -kv[1])
        pairs.append(
            (
                "tools",
                ", ".join(f"{k} {v}" for k, v in tools)
                + (f"; {d.tool_errors} failed" if d.tool_errors else ""),
            )
        )
    if d.subagents:
        types = ", ".join(f"{k} {v}" for k, v in d.subagent_types.items())
        pairs.append(("subagents", f"{d.subagents}" + (f" ({types})" if types else "")))
    if d.compactions:
        pairs.append(("compactions", d.compactions))
    if d.shared_requests:
        pairs.append(("shared", f"{d.shared_requests} requests also counted in another session"))
    if d.bad_lines or d.errors:
        pairs.append(("problems", f"{d.bad_lines} lines skipped"))
    render.kv(pairs, out)
    if d.by_model:
        out.write("\n")
        render.table(
            ["MODEL", "REQ", "INPUT", "OUTPUT", "CACHE W", "CACHE R", "COST"],
            [
                (
                    m.model,
                    m.tokens.requests,
                    render.count(m.tokens.input),
                    render.count(m.tokens.output),
                    render.count(m.tokens.cache_write_5m + m.tokens.cache_write_1h),
                    render.count(m.tokens.cache_read),
                    render.money(m.tokens.cost) if m.priced else "unpriced",
                )
                for m in d.by_model
            ],
            out,
            right=(1, 2, 3, 4, 5, 6),
        )
    for e in d.errors[:10]:
        kind = "repaired" if e.repaired else "skipped"
        out.write(f"  {kind} {e.path.rsplit('/', 1)[-1]}:{e.line}: {e.reason}\n")


def _when(d: SessionDetail) -> str:
    """When it ran; a session without timestamped messages (only a summary, or empty)
    says so rather than showing an empty span."""
    if d.started_at is None:
        only_summary = set(d.record_types) == {"summary"}
        return "-  (only a summary: no messages)" if only_summary else "-  (no messages)"
    start, end = render.local_time(d.started_at), render.local_time(d.ended_at)
    if start == end or not d.duration_s:
        return start
    return f"{start} → {end}  ({render.duration(d.duration_s)})"


def _entry(item: TranscriptEntry, out: TextIO) -> None:
    prefix = "  │ " if item.sidechain else ""
    who = item.kind
    if item.model:
        who += f" · {item.model}"
    if item.sidechain and item.agent_id:
        who += f" · agent {item.agent_id}"
    if item.subtype:
        who += f" · {item.subtype}"
    if item.meta:
        who += " · meta"
    stamp = render.local_time(item.time, "%H:%M:%S")
    out.write(f"{prefix}── {who} {stamp} ──\n")
    for block in item.blocks:
        for line in _block_lines(block):
            out.write(f"{prefix}{line}\n")
    out.write(prefix.rstrip() + "\n" if prefix else "\n")


TOOL_SUBJECT = ("command", "file_path", "pattern", "url", "query", "description", "prompt")
"""The input of a tool call that says what it does, in order of preference."""


def _block_lines(block: ContentBlock) -> list[str]:
    kind = block.type
    more = " …" if block.truncated else ""
    if kind == "text":
        return (block.text + more).splitlines() or [""]
    if kind == "thinking":
        return ["✻ " + line for line in (block.text + more).splitlines()]
    if kind == "tool_use":
        value = block.input
        if isinstance(value, dict):
            shown = next(
                (str(value[k]) for k in TOOL_SUBJECT if k in value),
                json.dumps(value, ensure_ascii=False),
            )
        else:
            shown = block.text
        return [f"⏺ {block.name}({render.clip(shown, 160)})"]
    if kind == "tool_result":
        lines = block.text.splitlines() or [""]
        head = lines[:12]
        mark = "✗ " if block.is_error else ""
        out = [f"  ⎿ {mark}{head[0]}"] + [f"    {line}" for line in head[1:]]
        if len(lines) > len(head) or block.truncated:
            out.append(f"    … ({len(lines)} lines)")
        return out
    if kind == "image":
        return ["[image]"]
    return [f"[{block.text or kind}]"]


# --------------------------------------------------------------------------- search


def _highlight(snippet: str) -> str:
    """The matched words (between « and ») in bold."""
    bold = snippet.replace("«", "\033[1m").replace("»", "\033[0m")
    return bold + "\033[0m" if snippet.count("«") > snippet.count("»") else bold


def search(ctx: Context) -> int:
    a = ctx.args
    raw = ctx.call(
        "session.search",
        text=" ".join(a.text),
        limit=a.limit,
        project=cli.project_arg(a.project),
        **whose(a.member),
        session=a.session,
        since=a.since,
        until=a.until,
    )
    if ctx.json:
        render.emit_json(raw)
        return 0
    result = decode(raw, SearchResults)
    if not result.available:
        raise CommandFailed(
            "full-text search is not available (index.full_text or FTS5)", reason="unsupported"
        )
    if not result.hits:
        print("no matches", file=sys.stderr)
    labels = member_labels(result.hits)
    rows = [
        (
            h.session[:8],
            render.local_time(h.time),
            labels[h.member],
            h.kind,
            " ".join(h.snippet.split()),
        )
        for h in result.hits
    ]
    if rows:
        render.table(
            ["SESSION", "TIME", "MEMBER", "WHO", "MATCH"],
            rows,
            fit=render.Fit(shrink={4: 40, 2: 8}, drop=(3, 1)),
            colours={4: _highlight},
        )
    if not result.complete:
        print("(the search index is still being built; results may be incomplete)", file=sys.stderr)
    return 0
