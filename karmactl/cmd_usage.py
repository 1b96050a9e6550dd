"""`usage`: tokens and cost by day, week, month, project, model, session, member, user or
device."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, timedelta

from karmactl import cli, render, when
from karmactl.whose import MEMBER_HELP, whose

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

    from karmactl.cli import Context

GROUPS = ("day", "week", "month", "project", "model", "session", "member", "user", "device")


COMMANDS = ("usage",)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "usage", parents=[common, cli.wide_option()], help="tokens and cost, with a bar chart"
    )
    p.add_argument("--by", choices=GROUPS, default="day", help="grouping (default: day)")
    p.add_argument("--since", type=when.argument, help="from (7d, 2026-01-01...)")
    p.add_argument("--until", type=when.argument, help="up to, excluded")
    p.add_argument("--project")
    p.add_argument("--model")
    p.add_argument("--origin", choices=("all", "local", "remote"), default="all")
    p.add_argument("--member", help=MEMBER_HELP)
    p.add_argument(
        "--tz", type=cli.time_zone, help="IANA zone for days (default: $TZ, else local time)"
    )
    p.add_argument("--breakdown", action="store_true", help="one line per model in each row")
    p.set_defaults(func=usage)


UNITS: Final = {"day": "day", "week": "week", "month": "month"}


def _periods(first: str, last: str, by: str) -> list[str]:
    """Every day, week (its Monday) or month (`2026-01`) from `first` to `last`, both
    included: the table's range, with the periods that had no use."""
    out: list[str] = []
    if by == "month":
        year, month = map(int, first.split("-"))
        while f"{year:04d}-{month:02d}" <= last:
            out.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return out
    day, end = date.fromisoformat(first), date.fromisoformat(last)
    step = timedelta(days=7 if by == "week" else 1)
    while day <= end:
        out.append(day.isoformat())
        day += step
    return out


def sparkline(
    rows: list[dict[str, Any]], by: str, metric: str, width: int
) -> tuple[str, int] | None:
    """The table's whole date range as at most `width` marks, each the sum of the same
    number of consecutive periods (the last mark may hold fewer, up to the last row).
    Returns (sparkline, periods per mark); None for fewer than two periods."""
    periods = _periods(rows[0]["key"], rows[-1]["key"], by)
    if len(periods) < 2:
        return None
    values = {r["key"]: float(r["tokens"][metric]) for r in rows}
    per_mark = -(-len(periods) // max(width, 1))
    series = [
        sum(values.get(p, 0.0) for p in periods[i : i + per_mark])
        for i in range(0, len(periods), per_mark)
    ]
    return render.sparkline(series), per_mark


def _spark_header(rows: list[dict[str, Any]], by: str, what: str, per_mark: int) -> str:
    unit = UNITS[by]
    size = f"1 mark = {per_mark} {unit}{'s' if per_mark > 1 else ''}"
    return f"{what} by {unit}, {rows[0]['key']} … {rows[-1]['key']} ({size})"


def usage(ctx: Context) -> int:
    a = ctx.args
    result = ctx.call(
        "usage.summary",
        group_by=a.by,
        since=a.since,
        until=a.until,
        project=cli.project_arg(a.project),
        model=a.model,
        origin=a.origin,
        **whose(a.member),
        tz=a.tz or _env_zone(),
        # JSON rows always carry their models: a script should not need a second call.
        breakdown=ctx.json or (a.breakdown and a.by != "model"),
    )
    if ctx.json:
        render.emit_json(result)
        return 0
    rows = result["rows"]
    if not rows:
        print("no usage recorded", file=sys.stderr)
        return 0
    by_cost = any(r["tokens"]["cost"] > 0 for r in rows)
    metric = "cost" if by_cost else "total"
    peak = max(r["tokens"][metric] for r in rows)
    if a.by in UNITS and (spark := sparkline(rows, a.by, metric, render.terminal_width() - 2)):
        line, per_mark = spark
        print(_spark_header(rows, a.by, "cost" if by_cost else "tokens", per_mark))
        print(line)
        print()
    table = []
    for r in rows:
        key = r["key"]
        if a.by == "session":
            key = " ".join(f"{key[:8]} {r.get('label') or ''}".split())
        table.append(_line(key, r["tokens"], render.bar(r["tokens"][metric], peak)))
        for model, t in sorted(r.get("models", {}).items(), key=lambda kv: -kv[1]["cost"]):
            table.append(_line(f"  {model}", t, ""))
    table.append(_line("TOTAL", result["totals"], ""))
    render.table(
        [a.by.upper(), "REQ", "INPUT", "OUTPUT", "CACHE W", "CACHE R", "TOTAL", "COST", ""],
        table,
        right=(1, 2, 3, 4, 5, 6, 7),
        fit=USAGE_FIT,
    )
    notes = [f"prices {result['price_version']}, {result['currency']}"]
    if result["unpriced_models"]:
        notes.append("unpriced (cost left out, marked +): " + ", ".join(result["unpriced_models"]))
    print("\n".join(notes), file=sys.stderr)
    return 0


USAGE_FIT = render.Fit(shrink={0: 24}, drop=(8, 4, 5, 3, 1))
"""Narrow terminals: long row names (sessions, projects) are cut to 24 characters; then
the bars, the cache columns, OUTPUT and REQ are left out, in that order."""


def _env_zone() -> str | None:
    """`$TZ` when it names an IANA zone; POSIX rules (`EST5EDT`, `:/etc/localtime`) are
    left to the daemon's own local time."""
    zone = os.environ.get("TZ", "")
    try:
        return cli.time_zone(zone.removeprefix(":")) if "/" in zone or zone == "UTC" else None
    except argparse.ArgumentTypeError:
        return None


def _line(key: str, t: dict[str, Any], chart: str) -> tuple[Any, ...]:
    return (
        key,
        t["requests"],
        render.count(t["input"]),
        render.count(t["output"]),
        render.count(t["cache_write_5m"] + t["cache_write_1h"]),
        render.count(t["cache_read"]),
        render.count(t["total"]),
        render.money(t["cost"], incomplete=t["unpriced_requests"] > 0),
        chart,
    )
