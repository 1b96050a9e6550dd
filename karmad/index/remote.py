"""What a file received from a teammate must satisfy before it is indexed.

Inbox files come from another machine, so nothing in them is trusted: a file is indexed
only if it stays inside its inbox (no symbolic link leads out), is of a sane size, holds
one JSON object per line, and its lines belong to the session its name says. A file
that fails is skipped and recorded (never changed: it is in a receive-only folder), and
looked at again only when it changes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from karmad.index import work
from karmad.index.discovery import FileRef, Root
from karmad.index.work import ParseResult


def confined(root: Root, path: str) -> bool:
    """True when `path` resolves inside the root's inbox (no link leads elsewhere)."""
    if not root.confine_to:
        return True
    base = os.path.realpath(root.confine_to)
    real = os.path.realpath(path)
    return real.startswith(base + os.sep) and not os.path.islink(path)


def before_reading(root: Root, ref: FileRef, st: os.stat_result, max_bytes: int) -> str | None:
    """A reason to refuse the file without reading it, or None."""
    if not confined(root, ref.path) or not confined(root, str(root.path)):
        return "a symbolic link leads out of the inbox"
    if not stat.S_ISREG(st.st_mode):
        return work.not_regular(st.st_mode)
    if st.st_size > max_bytes:
        return f"larger than {max_bytes} bytes"
    return None


def after_reading(ref: FileRef, result: ParseResult, max_bytes: int) -> str | None:
    """A reason to refuse what was read, or None."""
    if result.size > max_bytes:
        return f"larger than {max_bytes} bytes"
    usage = result.usage
    if usage is None:
        return None
    if usage.bad_lines:
        first = usage.errors[0] if usage.errors else None
        where = f"line {first.line}: {first.reason}" if first else f"{usage.bad_lines} bad line(s)"
        return f"not one JSON object per line ({where})"
    if ref.kind in ("main", "subagent"):
        others = sorted(set(usage.facts.session_ids) - {ref.session_id})
        if others:
            return f"holds records of session {others[0]}, not of {ref.session_id}"
    return None


def root_path_problem(root: Root) -> str | None:
    """The root directory itself must not be (or lead through) a link out of the inbox."""
    if root.confine_to and Path(root.path).exists() and not confined(root, str(root.path)):
        return "the project folder is a link out of the inbox"
    return None
