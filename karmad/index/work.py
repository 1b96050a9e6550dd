"""One unit of parsing: read what is new in a file and parse it, nothing else.

Plain data in, plain data out (msgspec structs, msgpack on the wire), so the same
function runs in the indexer's thread for a few appended lines and in a pool of parser
processes for the backlog of a first scan, where parsing dominates and one core is not
enough to keep up with the disk.
"""

from __future__ import annotations

import os
import stat
from typing import Final, Literal

import msgspec

from karmad import codec
from karmad.index.parse import UsageDelta, UsageParser
from karmad.index.reader import (
    HEAD_BYTES,
    TAIL_BYTES,
    Chunk,
    ReadState,
    digest,
    digest_of,
    read_lines,
)
from karmad.index.text import TextDelta, TextParser


class ParseJob(msgspec.Struct, array_like=True):
    path: str
    main: bool
    offset: int = 0
    line: int = 0
    records: int = 0
    expect: bytes | None = None
    """Digest of the bytes before `expect_at` when they were read; None to start afresh."""
    expect_at: int = -1
    """Where `expect` applies; -1 means `offset`."""
    text: bool = False
    """Also run the text pass (it has caught up with the aggregates pass)."""
    text_only_until: int = -1
    """≥ 0: only the text pass, from `offset` up to this offset."""


class ParseResult(msgspec.Struct, array_like=True):
    path: str
    status: Literal["ok", "rewritten", "gone", "failed"]
    inode: int = 0
    size: int = 0
    mtime_ns: int = 0
    digest: bytes | None = None
    offset: int = 0
    line: int = 0
    pending: int = 0
    records: int = 0
    usage: UsageDelta | None = None
    text: TextDelta | None = None
    problem: str = ""
    """Why the file could not be read or parsed (status `failed`)."""
    transient: bool = False
    """The problem may go away by itself (permissions, I/O): worth trying again."""


class Limits(msgspec.Struct, array_like=True):
    chunk_bytes: int
    max_line_bytes: int


_JOBS: Final = codec.PackDecoder(tuple[Limits, list[ParseJob]])
RESULTS: Final = codec.PackDecoder(list[ParseResult])


_OPEN_FLAGS: Final = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
"""Never blocking: a named pipe that no one writes to would hold `open` forever (the
file type is checked before and after opening, so only regular files are ever read)."""


def file_type(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def not_regular(mode: int) -> str:
    return f"not a regular file ({file_type(mode)})"


def parse_file(job: ParseJob, limits: Limits) -> ParseResult:
    """What is new in one file; never raises, whatever the file holds or is.

    A file that cannot be read (permissions, I/O errors) or is not a regular file comes
    back `failed` with the reason; so does one whose parsing raised anything, so that one
    file costs only itself, never the batch it is read in.
    """
    try:
        return _parse_file(job, limits)
    except OSError as exc:
        return ParseResult(
            job.path, "failed", problem=f"not readable: {os_reason(exc)}", transient=True
        )
    except Exception as exc:
        return ParseResult(
            job.path, "failed", problem=f"could not be parsed: {type(exc).__name__}: {exc}"
        )


def os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _parse_file(job: ParseJob, limits: Limits) -> ParseResult:
    try:
        before = os.stat(job.path)
    except (FileNotFoundError, NotADirectoryError):
        return ParseResult(job.path, "gone")
    if not stat.S_ISREG(before.st_mode):
        return ParseResult(job.path, "failed", problem=not_regular(before.st_mode))
    try:
        fd = os.open(job.path, _OPEN_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return ParseResult(job.path, "gone")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between the two looks
            return ParseResult(job.path, "failed", problem=not_regular(st.st_mode))
        at = job.offset if job.expect_at < 0 else job.expect_at
        if job.expect is not None and at > 0 and (st.st_size < at or digest(fd, at) != job.expect):
            return ParseResult(job.path, "rewritten", st.st_ino, st.st_size, st.st_mtime_ns)
        state = ReadState(job.offset, job.line)
        text_only = job.text_only_until >= 0
        usage = (
            None
            if text_only
            else UsageParser(file_key=job.path, main=job.main, records_before=job.records)
        )
        texts = TextParser() if job.text or text_only else None
        end = job.text_only_until if text_only else st.st_size
        head: bytes | None = None
        last: Chunk | None = None
        for item in read_lines(
            fd, state, end, chunk_bytes=limits.chunk_bytes, max_line_bytes=limits.max_line_bytes
        ):
            if usage is not None:
                usage.feed(item)
            if texts is not None:
                texts.feed(item)
            if type(item) is Chunk:
                if item.offset == 0:
                    head = item.data[:HEAD_BYTES]
                last = item
            else:
                last = None
        delta = usage.delta() if usage is not None else None
        return ParseResult(
            job.path,
            "ok",
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            _fingerprint(fd, state.offset, head, last) if not text_only else job.expect,
            state.offset,
            state.line,
            state.pending,
            job.records + (delta.records if delta is not None else 0),
            delta,
            texts.delta() if texts is not None else None,
        )
    finally:
        os.close(fd)


def _fingerprint(fd: int, offset: int, head: bytes | None, last: Chunk | None) -> bytes:
    """The digest of the bytes up to `offset`, from the chunks just parsed when they
    hold both ends, else read again."""
    if head is not None and last is not None and last.offset + len(last.data) == offset:
        tail_start = max(0, offset - TAIL_BYTES)
        if last.offset <= tail_start and len(head) >= min(HEAD_BYTES, offset):
            return digest_of(head[:offset], last.data[tail_start - last.offset :])
    return digest(fd, offset)


def parse_many(payload: bytes) -> bytes:
    """Entry point in a parser process: jobs in, results out, both msgpack."""
    limits, jobs = _JOBS.decode(payload)
    return codec.encode_pack([parse_file(job, limits) for job in jobs])


def encode_jobs(limits: Limits, jobs: list[ParseJob]) -> bytes:
    return codec.encode_pack((limits, jobs))
