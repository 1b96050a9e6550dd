"""Structured logging for the daemon.

One structlog pipeline renders both our own events and the standard-library records of
libraries (httpx, watchfiles), so every line on stderr has the same shape. The shape
depends on who reads it: people at a terminal get colours, systemd's journal gets
`<N>`-prefixed lines so `journalctl -p err` works, everything else gets JSON lines.

Under launchd nobody collects stderr, so karmad can write its own log file instead, and
rotate it by size itself so that a chatty month cannot fill the disk.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Literal, TextIO

import structlog

Format = Literal["auto", "console", "json", "journal"]

# syslog(3) priorities, as sd-daemon(3) expects them in a "<N>" prefix.
_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2, "exception": 3}


def stderr_is_journal(environ: MutableMapping[str, str] | None = None) -> bool:
    """True when systemd connected stderr straight to the journal.

    `$JOURNAL_STREAM` holds "device:inode" of that stream; comparing it with our own
    stderr avoids trusting a variable inherited by a child whose stderr was redirected.
    """
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not dev or not ino:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return f"{st.st_dev}:{st.st_ino}" == value


LOG_FILE_NAME = "karmad.log"


def _resolve_format(fmt: Format, stream: TextIO | None) -> Format:
    if fmt != "auto":
        return fmt
    if stream is None:
        return "json"
    if stderr_is_journal():
        return "journal"
    try:
        return "console" if stream.isatty() else "json"
    except ValueError:
        return "json"


class _JournalRenderer:
    """`<6>event key=value` lines; the journal adds its own timestamp."""

    def __init__(self) -> None:
        self._kv = structlog.processors.KeyValueRenderer(
            key_order=["event"], drop_missing=True, sort_keys=True
        )

    def __call__(self, logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> str:
        level = str(event_dict.pop("level", name)).lower()
        event_dict.pop("timestamp", None)
        exc = event_dict.pop("exception", None)
        line = f"<{_PRIORITY.get(level, 6)}>{self._kv(logger, name, event_dict)}"
        if exc:
            line += "\n" + "\n".join(f"<{_PRIORITY.get(level, 3)}>{x}" for x in exc.splitlines())
        return line


def configure(
    level: str = "info",
    fmt: Format = "auto",
    stream: TextIO | None = None,
    *,
    file: Path | None = None,
    max_bytes: int = 10 << 20,
    backups: int = 5,
) -> Format:
    """Install the pipeline; returns the format actually chosen.

    With `file`, records go to that file (rotated at `max_bytes`, keeping `backups` old
    ones) instead of stderr; `auto` then means JSON lines, which `karmactl service logs`
    renders. Raises OSError when the file cannot be opened.
    """
    handler: logging.Handler
    if file is not None:
        handler = logging.handlers.RotatingFileHandler(
            file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        chosen = _resolve_format(fmt, None)
    else:
        out = stream or sys.stderr
        handler = logging.StreamHandler(out)
        chosen = _resolve_format(fmt, out)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if chosen == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=file is None)
    elif chosen == "journal":
        renderer = _JournalRenderer()
    else:
        renderer = structlog.processors.JSONRenderer()
    tail: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if chosen != "console":
        tail.append(structlog.processors.format_exc_info)
    tail.append(renderer)
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=tail)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # httpx announces every request at INFO; that is our own REST chatter with Syncthing.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # watchfiles announces every batch of changes at INFO ("1 change detected"): a line
    # per Claude Code write would bury everything else in the journal.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return chosen


def get(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
