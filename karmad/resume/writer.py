"""The file work of a resume: transcripts written for Claude Code, never over anything.

Everything is first written into a hidden staging directory beside the target (Claude
Code and the index ignore names starting with `.`), then put in place: the main
transcript with a hard link, which fails rather than replace a file that appeared
meanwhile, then the session's directory (subagents, tool results) with a rename. A crash
leaves at most a staging directory, removed by the next attempt.

Every line written is a copy (`plan.COPY_FIELD` names the session it copies), its paths
rewritten and its `sessionId` set to the new id; lines that are not JSON objects are
left out, as the packager leaves them out. The file's modification time is its last
record's, so that `claude --continue` in that checkout still picks the session the
person used last rather than the one just materialised.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from karmad import codec
from karmad.resume.plan import COPY_FIELD
from karmad.resume.rewrite import Rewriter

READ_BYTES: Final = 8 << 20
STAGING_PREFIX: Final = ".karmad-resume-"
_TIMESTAMP = re.compile(rb'"timestamp"\s*:\s*"([0-9T:.+Z-]{10,40})"')


class TargetExists(Exception):
    """Something is already where the transcript would go; nothing was changed."""


@dataclass
class Written:
    files: int = 0
    bytes: int = 0
    main_bytes: int = 0
    main_sha256: str = ""
    dropped_lines: int = 0
    linked: int = 0
    """Files put in place as links to the archive (restores): no bytes written."""


@dataclass(frozen=True, slots=True)
class Copy:
    """How lines are turned into this machine's copy."""

    rewrite: Rewriter
    """For transcript lines (JSON)."""
    rewrite_text: Rewriter
    """For tool results (plain text)."""
    old_id: str
    new_id: str
    copy_of: str
    _session: re.Pattern[bytes] = field(init=False)
    _marker: bytes = field(init=False)

    def __post_init__(self) -> None:
        old = re.escape(self.old_id.encode())
        object.__setattr__(self, "_session", re.compile(rb'"sessionId"\s*:\s*"' + old + rb'"'))
        marker = b'"' + COPY_FIELD.encode() + b'":' + codec.encode_json(self.copy_of)
        object.__setattr__(self, "_marker", marker)

    def lines(self, chunk: bytes) -> tuple[bytes, int]:
        """Whole lines in, whole lines out, and how many were left out."""
        chunk = self.rewrite(chunk)
        if self.old_id != self.new_id:
            chunk = self._session.sub(b'"sessionId":"' + self.new_id.encode() + b'"', chunk)
        out: list[bytes] = []
        dropped = 0
        for line in chunk.split(b"\n")[:-1]:
            body = line.rstrip(b"\r \t")
            if body[:1] != b"{" or body[-1:] != b"}":
                dropped += 1
                continue
            rest = body[1:]
            sep = b"" if rest.lstrip()[:1] == b"}" else b","
            out.append(b"{" + self._marker + sep + rest)
        return (b"\n".join(out) + b"\n" if out else b""), dropped


def _transcript(src: Path, dest: Path, copy: Copy, written: Written) -> hashlib._Hash:
    """One transcript copied line by line; returns the hash of what was written."""
    digest = hashlib.sha256()
    latest = b""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with src.open("rb") as fin:
            carry = b""
            while block := fin.read(READ_BYTES):
                data = carry + block
                end = data.rfind(b"\n")
                if end < 0:
                    carry = data
                    continue
                carry = data[end + 1 :]
                out, dropped = copy.lines(data[: end + 1])
                written.dropped_lines += dropped
                stamps = _TIMESTAMP.findall(out)
                if stamps:
                    latest = max(latest, *stamps)
                _write_all(fd, out)
                digest.update(out)
                written.bytes += len(out)
            # Bytes after the last newline are a line still being written: not a record.
    finally:
        os.close(fd)
    written.files += 1
    _set_mtime(dest, latest)
    return digest


def _text(src: Path, dest: Path, copy: Copy, written: Written) -> None:
    """A tool result: its paths rewritten when it is text, else copied as it is."""
    data = src.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        data = copy.rewrite_text(data)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)
    st = src.stat()
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    written.files += 1
    written.bytes += len(data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _set_mtime(path: Path, stamp: bytes) -> None:
    if not stamp:
        return
    try:
        when = datetime.fromisoformat(stamp.decode().replace("Z", "+00:00"))
    except ValueError:
        return
    seconds = when.timestamp()
    os.utime(path, (seconds, seconds))


def _staging(target: Path, session_id: str) -> Path:
    staging = target.parent / f"{STAGING_PREFIX}{session_id}"
    if staging.exists():
        shutil.rmtree(staging)  # what a crash left: ours, never put in place
    staging.mkdir(mode=0o700, parents=True)
    return staging


def _side_target(target: Path, session_id: str) -> Path:
    side = target.parent / session_id
    if side.exists() and any(side.iterdir()):
        raise TargetExists(f"{side} already exists")
    return side


def materialise(
    main: Path, side: list[tuple[Path, str, bool]], target: Path, copy: Copy
) -> Written:
    """Write the session at `target` (`<project dir>/<new id>.jsonl`).

    `side` holds (source, path under the session's directory, is a transcript) for
    subagent transcripts and tool results.
    """
    if target.exists():
        raise TargetExists(f"{target} already exists")
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    side_target = _side_target(target, copy.new_id)
    staging = _staging(target, copy.new_id)
    written = Written()
    try:
        for src, rel, transcript in side:
            dest = staging / copy.new_id / rel
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if transcript:
                _transcript(src, dest, copy, written)
            else:
                _text(src, dest, copy, written)
        staged = staging / target.name
        before = written.bytes
        digest = _transcript(main, staged, copy, written)
        written.main_bytes = written.bytes - before
        written.main_sha256 = digest.hexdigest()
        _put(staged, target)
        if (staging / copy.new_id).is_dir():
            os.rename(staging / copy.new_id, side_target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def _put(staged: Path, target: Path) -> None:
    try:
        os.link(staged, target)
    except FileExistsError:
        raise TargetExists(f"{target} appeared meanwhile") from None


def restore(files: list[tuple[Path, Path]]) -> Written:
    """Put archived files back where Claude Code had them, as they are: hard links to
    the archive (which then follows what Claude Code appends), copies across filesystems.
    The main transcript comes last in `files`."""
    written = Written()
    for _, dest in files:
        if dest.exists():
            raise TargetExists(f"{dest} already exists")
    for src, dest in files:
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.link(src, dest)
        except FileExistsError:
            raise TargetExists(f"{dest} appeared meanwhile") from None
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            temp = dest.with_name(f"{STAGING_PREFIX}{dest.name}")
            shutil.copy2(src, temp)
            try:
                _put(temp, dest)
            finally:
                temp.unlink(missing_ok=True)
            written.bytes += dest.stat().st_size
        else:
            written.linked += 1
        written.files += 1
    if files:
        main = files[-1][1]
        written.main_bytes = main.stat().st_size
        written.main_sha256 = prefix_sha256(main, written.main_bytes) or ""
    return written


def prefix_sha256(path: Path, size: int) -> str | None:
    """sha256 of the first `size` bytes of `path`; None when it is shorter or gone."""
    digest = hashlib.sha256()
    remaining = size
    try:
        with path.open("rb") as f:
            while remaining > 0:
                block = f.read(min(READ_BYTES, remaining))
                if not block:
                    return None
                digest.update(block)
                remaining -= len(block)
    except FileNotFoundError:
        return None
    return digest.hexdigest()
