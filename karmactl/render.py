"""Output for people (aligned tables, short durations) and for scripts (JSON)."""

from __future__ import annotations

import json
import os
import sys

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime
    from typing import Any, Final, TextIO


def emit_json(value: Any, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    out.write(json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


class Fit:
    """How a table gives way when it is wider than the terminal.

    `shrink`: columns that may be cut (with `…`), each down to its minimum width, in the
    order given; `drop`: columns left out, one at a time in the order given, when
    cutting is not enough. Every other column keeps its full width.
    """

    __slots__ = ("drop", "shrink")

    def __init__(self, shrink: Mapping[int, int] | None = None, drop: Sequence[int] = ()) -> None:
        self.shrink = dict(shrink or {})
        self.drop = tuple(drop)


GAP = 2
"""Spaces between columns."""


def _layout(widths: list[int], fit: Fit, limit: int) -> tuple[list[int], list[int]]:
    """(the columns kept, their widths) so that the row fits `limit` if it can."""
    dropped: list[int] = []
    for step in range(len(fit.drop) + 1):
        dropped = list(fit.drop[:step])
        kept = [i for i in range(len(widths)) if i not in dropped]
        sized = {i: widths[i] for i in kept}
        excess = sum(sized.values()) + GAP * (len(kept) - 1) - limit
        for i, least in fit.shrink.items():
            if excess <= 0:
                break
            if i in sized and sized[i] > least:
                cut = min(sized[i] - least, excess)
                sized[i] -= cut
                excess -= cut
        if excess <= 0 or step == len(fit.drop):
            return kept, [sized[i] for i in kept]
    raise AssertionError("unreachable")


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    stream: TextIO | None = None,
    *,
    right: Sequence[int] = (),
    fit: Fit | None = None,
    colours: Mapping[int, Callable[[str], str]] | None = None,
) -> None:
    """Columns sized to content (headers counted); `right` lists column indexes to
    right-align (numbers). When the table is wider than the output (`width()`), `fit`
    says which columns are cut and then dropped; `colours` maps a column to a function
    from a cell's text to the same text painted (`by_state`), applied when colour is on."""
    out = stream or sys.stdout
    cells = [[str(h) for h in headers]] + [[_one_line(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    kept = list(range(len(headers)))
    limit = width() if stream is None or stream is sys.stdout else None
    if limit is not None and fit is not None:
        kept, widths = _layout(widths, fit, limit)
    else:
        widths = [widths[i] for i in kept]
    styled = colours if colours and colour_enabled(out) else {}
    for n, row in enumerate(cells):
        parts = []
        for position, (i, w) in enumerate(zip(kept, widths, strict=True)):
            cell = row[i] if len(row[i]) <= w else clip(row[i], w)
            last = position == len(kept) - 1
            if i in right:
                text = cell.rjust(w)
            elif last:
                text = cell
            else:
                text = cell.ljust(w)
            if n and i in styled and cell:
                text = text.replace(cell, styled[i](cell), 1)
            parts.append(text)
        out.write((" " * GAP).join(parts).rstrip() + "\n")


def _one_line(value: Any) -> str:
    """A cell's text; line breaks and tabs (an error message, a title) would break rows."""
    text = "" if value is None else str(value)
    return " ".join(text.split()) if "\n" in text or "\t" in text or "\r" in text else text


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


def local_time(moment: str | datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A moment (an ISO string, or a datetime of a typed answer) in local time."""
    if not moment:
        return ""
    from datetime import datetime

    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone().strftime(fmt)


def clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def width() -> int | None:
    """Columns available for a line on stdout: `$COLUMNS` when set, else the terminal's;
    None (no limit) when stdout is not a terminal, so pipes and files get whole lines.
    `--wide` (`WIDE`) lifts the limit too."""
    if WIDE:
        return None
    try:
        return max(int(os.environ["COLUMNS"]), 20)
    except (KeyError, ValueError):
        pass
    try:
        if sys.stdout.isatty():
            return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        pass
    return None


def terminal_width(default: int = 120) -> int:
    """Like `width()`, with `default` when there is no limit."""
    return width() or default


WIDE = False
"""Set by `--wide`: tables show every column in full whatever the terminal's width."""

STYLES: Final = {"green": "32", "yellow": "33", "red": "31", "bold": "1", "dim": "2"}

STATE_STYLES: Final = {
    **dict.fromkeys(
        (
            "pass",
            "ok",
            "active",
            "accepted",
            "shared",
            "connected",
            "online",
            "idle",
            "running",
            "yes",
            "live",
        ),
        "green",
    ),
    **dict.fromkeys(
        (
            "warn",
            "joining",
            "added",
            "offered",
            "paused",
            "leaving",
            "scanning",
            "starting",
            "indexing text",
            "repricing",
            "waiting",
            "connecting",
            "restarting",
            "syncing",
            "scan-waiting",
            "sync-preparing",
            "disconnected",
            "offline",
            "no",
            "unshared",
        ),
        "yellow",
    ),
    **dict.fromkeys(
        (
            "fail",
            "error",
            "failed",
            "removed",
            "declined",
            "dissolved",
            "unreachable",
            "not-installed",
            "gone",
        ),
        "red",
    ),
}
"""The colour of each state word karmactl prints (the first word of a cell counts)."""


def state_style(text: str) -> str:
    word = text.strip().lower()
    return STATE_STYLES.get(word) or STATE_STYLES.get(word.split(" ", 1)[0].rstrip(":"), "")


def by_state(text: str) -> str:
    """A state painted in its colour: green for good, yellow for waiting, red for bad."""
    return paint(text, state_style(text))


def colour_enabled(stream: TextIO | None = None) -> bool:
    """Colour only on a terminal, and never when `$NO_COLOR` is set (no-color.org) or the
    terminal is `dumb`."""
    out = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def paint(text: str, style: str) -> str:
    code = STYLES.get(style)
    return f"\033[{code}m{text}\033[0m" if code and text else text


def progress_bar(fraction: float, width: int = 30) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(fraction * width)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {fraction * 100:5.1f}%"
