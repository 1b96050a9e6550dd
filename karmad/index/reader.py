"""Reading the new complete lines of an append-only file, from a byte offset.

Transcripts only grow, so the index remembers per file how far it has read (offset and
line number) and, to notice a file that was replaced rather than appended to, its inode
and a hash of its first bytes. Bytes after the last newline are a line still being
written; they stay unread until their newline arrives. Memory is bounded by the chunk
size plus the longest line accepted, whatever the file's size.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

HEAD_BYTES: Final = 4096
TAIL_BYTES: Final = 256
"""How much of a file's beginning, and of the bytes before where reading stopped, must
be unchanged for the file to count as the same file grown (also across a rename: a
synced file arrives under a new inode)."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Complete lines: `data` starts at byte `offset`, after `line` earlier lines."""

    offset: int
    line: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Overlong:
    """A line longer than the limit, skipped without being held in memory."""

    offset: int
    line: int
    """Lines before this one (its 1-based number is `line + 1`)."""
    length: int


@dataclass(slots=True)
class ReadState:
    """Where reading stopped: after the last complete line."""

    offset: int
    line: int
    """Complete lines before `offset`."""
    pending: int = 0
    """Bytes after the last newline (a line still being written)."""


def digest(fd: int, offset: int) -> bytes:
    """Fingerprint of the bytes already read: the first ones and the last ones.

    Checked before reading on from `offset`; a mismatch means the file was rewritten
    (or replaced by another), so what was read from it must be read again.
    """
    head = os.pread(fd, min(HEAD_BYTES, offset), 0)
    tail_start = max(0, offset - TAIL_BYTES)
    tail = os.pread(fd, offset - tail_start, tail_start)
    return digest_of(head, tail)


def digest_of(head: bytes, tail: bytes) -> bytes:
    """`digest` of bytes already in memory: a file read whole in one chunk (most are)
    needs no second read for its fingerprint."""
    h = hashlib.blake2b(digest_size=16)
    h.update(len(head).to_bytes(4, "big"))
    h.update(head)
    h.update(tail)
    return h.digest()


def count_lines(data: bytes) -> int:
    """Newlines in `data`.

    `bytes.count` tests every byte; `find` jumps from newline to newline with memchr,
    three times faster on transcripts, whose lines are kilobytes long (tool outputs).
    """
    find = data.find
    n = 0
    at = find(b"\n")
    while at >= 0:
        n += 1
        at = find(b"\n", at + 1)
    return n


def read_lines(
    fd: int,
    state: ReadState,
    end: int,
    *,
    chunk_bytes: int,
    max_line_bytes: int,
) -> Iterator[Chunk | Overlong]:
    """Yield the complete lines between `state.offset` and `end`, updating `state`.

    `end` is the size observed when the read was decided; bytes appended meanwhile wait
    for the next pass, so one pass always terminates.
    """
    pos = state.offset
    start = state.offset
    line = state.line
    carry = b""
    skipping = False
    while pos < end:
        data = os.pread(fd, min(chunk_bytes, end - pos), pos)
        if not data:
            break  # the file shrank under us; the next pass notices and starts over
        pos += len(data)
        if skipping:
            cut = data.find(b"\n")
            if cut < 0:
                continue
            skipping = False
            yield Overlong(start, line, pos - len(data) + cut + 1 - start)
            line += 1
            start = pos - len(data) + cut + 1
            data = data[cut + 1 :]
        buf = carry + data if carry else data
        cut = buf.rfind(b"\n")
        if cut < 0:
            if len(buf) > max_line_bytes:
                skipping = True
                carry = b""
            else:
                carry = buf
            continue
        body = buf[: cut + 1]
        carry = buf[cut + 1 :]
        if len(carry) > max_line_bytes:
            skipping = True
            carry = b""
        state.offset = start + len(body)
        state.line = line + count_lines(body)
        yield Chunk(start, line, body)
        start = state.offset
        line = state.line
    state.offset = start
    state.line = line
    state.pending = end - start
