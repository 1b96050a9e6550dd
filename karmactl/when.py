"""Moments given on the command line: `7d`, `12h`, `2026-01-31`, an ISO date-time.

Dates and times without a zone are local, as a person means them; the daemon gets an
ISO date-time with the offset spelled out.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse(text: str, now: datetime | None = None) -> datetime:
    """A moment from `text`; raises ValueError with a readable message."""
    value = text.strip()
    current = now or datetime.now().astimezone()
    match = _RELATIVE.match(value)
    if match:
        amount, unit = int(match[1]), match[2]
        return current - timedelta(**{_UNITS[unit]: amount})
    if value in ("today", "yesterday"):
        day = current.date() - timedelta(days=1 if value == "yesterday" else 0)
        return datetime.combine(day, datetime.min.time()).astimezone()
    if re.fullmatch(r"\d{8}", value):
        value = f"{value[:4]}-{value[4:6]}-{value[6:]}"
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return datetime.combine(date.fromisoformat(value), datetime.min.time()).astimezone()
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use 7d, 12h, 30m, 2w, today, YYYY-MM-DD or an ISO date-time"
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def argument(text: str) -> str:
    """argparse `type=`: the moment as an ISO string for the protocol."""
    try:
        return parse(text).isoformat()
    except ValueError as exc:
        import argparse

        raise argparse.ArgumentTypeError(str(exc)) from None
