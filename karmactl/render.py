"""Output for people (aligned tables, short durations) and for scripts (JSON)."""

from __future__ import annotations

import json
import sys

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TextIO


def emit_json(value: Any, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    out.write(json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    stream: TextIO | None = None,
    *,
    right: Sequence[int] = (),
) -> None:
    """Columns sized to content; `right` lists column indexes to right-align (numbers)."""
    out = stream or sys.stdout
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        parts = []
        for i, cell in enumerate(row):
            last = i == len(row) - 1
            if i in right:
                parts.append(cell.rjust(widths[i]))
            else:
                parts.append(cell if last else cell.ljust(widths[i]))
        out.write("  ".join(parts).rstrip() + "\n")


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def kv(pairs: Sequence[tuple[str, Any]], stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        out.write(f"{key.ljust(width)}  {value}\n")
