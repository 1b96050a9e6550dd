"""One unit of parsing: read what is new in a file and parse it, nothing else.

Plain data in, plain data out (msgspec structs, msgpack on the wire), so the same
function runs in the indexer's thread for a few appended lines and in a pool of parser
processes for the backlog of a first scan, where parsing dominates and one core is not
enough to keep up with the disk.
"""

from __future__ import annotations

import os
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
    status: Literal["ok", "rewritten", "gone"]
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


class Limits(msgspec.Struct, array_like=True):
    chunk_bytes: int
    max_line_bytes: int


_JOBS: Final = codec.PackDecoder(tuple[Limits, list[ParseJob]])
RESULTS: Final = codec.PackDecoder(list[ParseResult])


def parse_file(job: ParseJob, limits: Limits) -> ParseResult:
    try:
        fd = os.open(job.path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return ParseResult(job.path, "gone")
    try:
        st = os.fstat(fd)
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
