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


def count(n: float) -> str:
    """Token counts people can read at a glance: 950, 12.3k, 4.56M, 1.2B."""
    value = float(n)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            scaled = value / size
            return f"{scaled:.3g}{unit}" if scaled < 100 else f"{scaled:.0f}{unit}"
    return f"{value:.0f}"


def money(amount: float, *, incomplete: bool = False) -> str:
    """US dollars; `+` marks a figure that leaves out requests of unpriced models."""
    text = f"${amount:,.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.4f}"
    return text + ("+" if incomplete else "")


BLOCKS = " ▏▎▍▌▋▊▉█"
SPARKS = "▁▂▃▄▅▆▇█"


def bar(value: float, peak: float, width: int = 20) -> str:
    """A horizontal bar, eighth-block resolution, `value` of `peak` filling `width`."""
    if peak <= 0 or value <= 0:
        return ""
    eighths = round(min(value / peak, 1.0) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (BLOCKS[rest] if rest else "")


def sparkline(values: Sequence[float]) -> str:
    peak = max(values, default=0)
    if peak <= 0:
        return SPARKS[0] * len(values)
    return "".join(
        SPARKS[min(int(v / peak * (len(SPARKS) - 1) + 0.5), len(SPARKS) - 1)] for v in values
    )


def local_time(iso: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if not iso:
        return ""
    from datetime import datetime

    return datetime.fromisoformat(iso).astimezone().strftime(fmt)


def clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def terminal_width(default: int = 120) -> int:
    import shutil

    return shutil.get_terminal_size((default, 24)).columns


def progress_bar(fraction: float, width: int = 30) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(fraction * width)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {fraction * 100:5.1f}%"
