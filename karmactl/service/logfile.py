"""Reading karmad's own log file (launchd agents): last lines, follow, priority filter.

karmad writes JSON lines there and rotates the file by renaming it to `karmad.log.1`;
following survives that by reopening when the file at the path is a new one.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from karmactl.service import ServiceError

# syslog priorities, as journalctl's -p takes them.
_PRIORITY_NAMES = {
    "emerg": 0,
    "alert": 1,
    "crit": 2,
    "err": 3,
    "warning": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}
_LEVELS = {"critical": 2, "exception": 3, "error": 3, "warning": 4, "info": 6, "debug": 7}

POLL_S = 0.5


def parse_priority(text: str) -> int:
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    try:
        return _PRIORITY_NAMES[text.lower()]
    except KeyError:
        names = ", ".join(_PRIORITY_NAMES)
        raise ServiceError(f"unknown priority {text!r}: use 0-7 or one of {names}") from None


def _record(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def render(line: str) -> str:
    record = _record(line)
    if record is None:
        return line
    record = dict(record)
    when = str(record.pop("timestamp", ""))
    level = str(record.pop("level", "")).upper()
    event = str(record.pop("event", ""))
    record.pop("logger", None)
    exc = record.pop("exception", None)
    rest = " ".join(f"{k}={v}" for k, v in record.items())
    text = f"{when} {level:<7} {event} {rest}".rstrip()
    return f"{text}\n{exc}" if exc else text


def _wanted(line: str, max_priority: int | None) -> bool:
    if max_priority is None:
        return True
    record = _record(line)
    if record is None:
        return False
    return _LEVELS.get(str(record.get("level", "")).lower(), 6) <= max_priority


def _emit(lines: Iterable[str], priority: int | None, as_json: bool, out: TextIO) -> None:
    for line in lines:
        if line and _wanted(line, priority):
            out.write((line if as_json else render(line)) + "\n")
    out.flush()


def _open(path: Path) -> TextIO | None:
    try:
        return path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None


def tail(
    path: Path,
    *,
    lines: int,
    follow: bool,
    priority: str | None,
    as_json: bool,
    out: TextIO | None = None,
) -> int:
    stream = out or sys.stdout
    max_priority = parse_priority(priority) if priority else None
    handle = _open(path)
    if handle is None and not follow:
        raise ServiceError(f"no log file at {path} (has karmad run as a service yet?)")
    # Filter first, then keep the last `lines` of what is left, as journalctl does. The
    # newest rotated file is read too, in case the live one was just started.
    kept: deque[str] = deque(maxlen=max(lines, 0))
    pending = ""
    old = _open(path.with_name(path.name + ".1"))
    sources = [h for h in (old, handle) if h is not None]
    for source in sources:
        # readline, not iteration: iterating a text file disables tell(), which
        # following needs to notice a truncated file.
        while line := source.readline():
            if not line.endswith("\n"):
                pending = line  # still being written; following prints it once complete
                break
            if _wanted(line.rstrip("\n"), max_priority):
                kept.append(line.rstrip("\n"))
    if old is not None:
        old.close()
    _emit(kept, None, as_json, stream)
    if not follow:
        if handle is not None:
            handle.close()
        return 0
    try:
        # The same handle goes on from exactly where the lines above ended.
        _follow(path, handle, pending, max_priority, as_json, stream)
    except KeyboardInterrupt:
        return 0
    return 0


def _follow(
    path: Path,
    handle: TextIO | None,
    pending: str,
    priority: int | None,
    as_json: bool,
    out: TextIO,
) -> None:
    inode = os.fstat(handle.fileno()).st_ino if handle is not None else None
    try:
        while True:
            if handle is None:
                handle = _open(path)
                if handle is None:
                    time.sleep(POLL_S)
                    continue
                inode = os.fstat(handle.fileno()).st_ino
            chunk = handle.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split("\n")
                _emit(complete, priority, as_json, out)
                continue
            try:
                current = path.stat()
            except FileNotFoundError:
                current = None
            if current is not None and (current.st_ino != inode or current.st_size < handle.tell()):
                # Rotated (renamed away, a new file in its place) or truncated: the rest
                # of the old file was read above; the new one is read from its start.
                handle.close()
                handle = None
                pending = ""
                continue
            time.sleep(POLL_S)
    finally:
        if handle is not None:
            handle.close()
