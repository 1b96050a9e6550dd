"""Keeping one file in the archive: a hard link where possible, else a copy kept current.

Claude Code appends to its transcripts in place and deletes them when they grow old, so
a hard link is the whole archive of a transcript: it shares every byte ever appended,
costs one directory entry, and keeps the data when Claude Code unlinks its name. Where
no link can be made (the state directory on another filesystem), a copy is brought up
to date with the bytes appended since; a copy is always a prefix of its source.

A source replaced by a different file (a new inode whose beginning is not what the
archive holds) never overwrites what was archived: the earlier generation is moved
aside first. Nothing here ever deletes archived bytes. What a link cannot protect
against is a source cut shorter in place (same inode): the link sees the same bytes.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

TEMP_PREFIX: Final = ".karmad-archive-"
"""Files being written; hidden names, so the index never takes them for transcripts."""
WINDOW: Final = 64 << 10
"""Bytes compared at the end of an archived copy to tell "grown" from "replaced"."""
HEAD: Final = 4 << 10
"""Bytes compared at the beginning, for the same question."""
READ_BYTES: Final = 8 << 20
NO_LINK: Final = frozenset(
    {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES}
)
"""Why a hard link can fail where a copy still works: another filesystem, a filesystem
without links, too many links, a protected-links policy."""

Action = Literal[
    "linked", "copied", "appended", "relinked", "replaced", "unchanged", "gone", "skipped"
]


@dataclass(frozen=True, slots=True)
class Outcome:
    action: Action
    written: int = 0
    """Bytes copied into the archive (0 for links)."""
    set_aside: Path | None = None
    """Where the earlier generation went, for `replaced`."""


def keep(src: Path, dest: Path, replaced: Path, *, link: bool = True) -> Outcome:
    """Make `dest` hold everything `src` holds, losing nothing `dest` held before.

    `replaced` is the path (without suffix) an earlier generation of `dest` is moved to
    when `src` turns out to be a different file; `link=False` forces copies.
    """
    try:
        st = os.stat(src, follow_symlinks=False)
    except FileNotFoundError:
        return Outcome("gone")
    if not stat.S_ISREG(st.st_mode):
        return Outcome("skipped")
    try:
        dt = os.stat(dest, follow_symlinks=False)
    except FileNotFoundError:
        return _fresh(src, dest, replaced, link=link)
    if (dt.st_dev, dt.st_ino) == (st.st_dev, st.st_ino):
        return Outcome("unchanged")
    if dt.st_size <= st.st_size and _same_prefix(src, dest, dt.st_size):
        if link and dt.st_dev == st.st_dev and _link_over(src, dest):
            return Outcome("relinked")
        if dt.st_size == st.st_size:
            return Outcome("unchanged")
        return Outcome("appended", _append(src, dest, dt.st_size, st))
    aside = _set_aside(dest, replaced)
    fresh = _fresh(src, dest, replaced, link=link)
    return Outcome("replaced", fresh.written, aside)


def _fresh(src: Path, dest: Path, replaced: Path, *, link: bool) -> Outcome:
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dest, follow_symlinks=False)
        except FileNotFoundError:
            return Outcome("gone")
        except FileExistsError:
            return keep(src, dest, replaced, link=link)  # someone else was quicker: compare
        except OSError as exc:
            if exc.errno not in NO_LINK:
                raise
        else:
            return Outcome("linked")
    return Outcome("copied", _copy(src, dest))


def _temp(dest: Path) -> Path:
    return dest.with_name(f"{TEMP_PREFIX}{dest.name}.{os.getpid()}.{time.monotonic_ns()}")


def _copy(src: Path, dest: Path) -> int:
    """A whole copy, appearing under `dest` only once complete (rename)."""
    temp = _temp(dest)
    written = 0
    try:
        with src.open("rb") as fin:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                while block := fin.read(READ_BYTES):
                    written += _write_all(fd, block)
            finally:
                os.close(fd)
            st = os.fstat(fin.fileno())
        os.utime(temp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return written


def _append(src: Path, dest: Path, offset: int, st: os.stat_result) -> int:
    """The bytes of `src` past `offset`, appended to the copy at `dest`."""
    written = 0
    with src.open("rb") as fin:
        fin.seek(offset)
        fd = os.open(dest, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            while block := fin.read(READ_BYTES):
                written += _write_all(fd, block)
        finally:
            os.close(fd)
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    return written


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def _same_prefix(src: Path, dest: Path, size: int) -> bool:
    """Whether `src` begins with what `dest` holds (its first and last bytes compared:
    enough to tell a grown file from another one, without reading either whole)."""
    if size == 0:
        return True
    try:
        with src.open("rb") as a, dest.open("rb") as b:
            head = min(size, HEAD)
            if a.read(head) != b.read(head):
                return False
            tail = min(size, WINDOW)
            a.seek(size - tail)
            b.seek(size - tail)
            return a.read(tail) == b.read(tail)
    except FileNotFoundError:
        return False


def _link_over(src: Path, dest: Path) -> bool:
    """Replace the copy at `dest` by a link to `src` (whose beginning it is)."""
    temp = _temp(dest)
    try:
        os.link(src, temp, follow_symlinks=False)
    except OSError:
        return False
    try:
        os.replace(temp, dest)
    except OSError:
        temp.unlink(missing_ok=True)
        return False
    return True


def _set_aside(dest: Path, replaced: Path) -> Path:
    """Move an earlier generation out of the way, under a name that is never reused."""
    replaced.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = replaced.with_name(f"{replaced.name}.{time.time_ns()}")
    os.replace(dest, target)
    return target
