"""One source file into one outbox file: incremental, redacted, crash-safe.

Transcripts only ever grow, so normally only the new complete lines are read, redacted
and appended (cost proportional to what was added, not to the file). A source that
shrank or was replaced (new inode) is copied again whole. A managed Syncthing never
sends a partial line or a line twice, whatever happens (an external one, which outlives
karmad, may send a partial last line after a kill -9 until karmad starts again;
receivers read only complete lines):

- a new file is written under a temporary name (ignored by Syncthing) and renamed;
- an append writes whole lines, in pieces of at most `PIECE_BYTES` that each end at a
  line end, read and redacted a block at a time (memory stays around a block and the
  longest line, however large the backlog). The progress (source offset, outbox size)
  is recorded only afterwards.

An append cannot be atomic for a reader, and a crash (kill -9) in the middle of a
piece leaves a partial line on disk. Nothing sends it: the managed Syncthing dies with
karmad (`karmad.syncthing.guard`), and before Syncthing starts again every outbox file
longer than recorded is cut back to its last recorded line (`recover`). While karmad
runs, a Syncthing scan that overlaps a write sees the file change under it (Syncthing
checks size and time after hashing) and scans again. Rewriting the file under a new
name instead would make the cost of one appended line the size of the session.

Lines that are not a JSON object (a comment, a line cut by a crash of the writer) are
dropped and counted rather than passed on, so receivers can insist on valid lines.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from karmad import atomic_file
from karmad.redact import Redactor, Tally
from karmad.sync.statefile import TEMP_PREFIX

READ_BYTES = 8 << 20
PIECE_BYTES = 1 << 20
"""Largest write of an append: each piece ends at a line end (unless one line is
longer), so a reader that overlaps a write sees a partial line for at most one piece."""


@dataclass(frozen=True, slots=True)
class Progress:
    src_inode: int
    src_offset: int
    """Bytes of the source consumed (always at a line boundary for transcripts)."""
    dest_size: int
    lines: int
    sha256: str
    dropped: int = 0
    redactions: dict[str, int] = field(default_factory=dict)


@dataclass
class Hashers:
    """Running sha256 of outbox files, so an append hashes only the appended bytes."""

    by_path: dict[str, tuple[int, hashlib._Hash]] = field(default_factory=dict)

    def for_file(self, path: Path, size: int) -> hashlib._Hash:
        known = self.by_path.get(str(path))
        if known is not None and known[0] == size:
            return known[1]
        hasher = hashlib.sha256()
        with path.open("rb") as f:
            remaining = size
            while remaining > 0:
                block = f.read(min(READ_BYTES, remaining))
                if not block:
                    break
                hasher.update(block)
                remaining -= len(block)
        return hasher

    def keep(self, path: Path, size: int, hasher: hashlib._Hash) -> None:
        self.by_path[str(path)] = (size, hasher)

    def forget(self, path: Path) -> None:
        self.by_path.pop(str(path), None)


def objects_only(data: bytes) -> tuple[bytes, int]:
    """Complete lines that look like JSON objects, and how many others were dropped.

    A cheap shape test (first byte `{`, last `}`): Claude Code writes one object per
    line, and what fails this is never a valid transcript record. Receivers decode every
    line fully anyway.
    """
    if not data:
        return data, 0
    lines = data.split(b"\n")
    tail = lines.pop()  # empty: the data ends with a newline
    assert tail == b""
    kept = [line for line in lines if line[:1] == b"{" and line.rstrip(b"\r \t")[-1:] == b"}"]
    dropped = len(lines) - len(kept)
    if not dropped:
        return data, 0
    return b"".join(line + b"\n" for line in kept), dropped


def _complete(data: bytes) -> bytes:
    """Up to and including the last newline: a half-written line waits for its end."""
    end = data.rfind(b"\n")
    return data[: end + 1] if end >= 0 else b""


def _read_from(path: Path, offset: int) -> tuple[os.stat_result, bytes]:
    with path.open("rb") as f:
        st = os.fstat(f.fileno())
        f.seek(offset)
        return st, f.read()


def _merge(counts: dict[str, int], tally: Tally) -> dict[str, int]:
    merged = dict(counts)
    for kind, n in tally.counts.items():
        merged[kind] = merged.get(kind, 0) + n
    return merged


def _redact(redactor: Redactor, data: bytes) -> tuple[bytes, Tally]:
    tally = Tally()
    result = redactor.redact_chunk(data)
    tally.add(result)
    return result.data, tally


def _rewrite(
    src: Path, dest: Path, redactor: Redactor, hashers: Hashers, *, transcript: bool
) -> Progress | None:
    try:
        st, raw = _read_from(src, 0)
    except FileNotFoundError:
        return None
    body = _complete(raw) if transcript else raw
    consumed = len(body)
    dropped = 0
    if transcript:
        body, dropped = objects_only(body)
    out, tally = _redact(redactor, body)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Not fsynced: a copy lost to a power cut is found shorter than recorded and
    # written again (see `recover`); a crash of karmad itself cannot lose it.
    atomic_file.write_atomic(dest, out, 0o644, temp_prefix=TEMP_PREFIX, durable=False)
    hasher = hashlib.sha256(out)
    hashers.keep(dest, len(out), hasher)
    return Progress(
        src_inode=st.st_ino,
        src_offset=consumed,
        dest_size=len(out),
        lines=out.count(b"\n"),
        sha256=hasher.hexdigest(),
        dropped=dropped,
        redactions=_merge({}, tally),
    )


def _write_pieces(fd: int, data: bytes) -> None:
    """`data` (whole lines) in pieces that each end at a line end."""
    view = memoryview(data)
    start, size = 0, len(data)
    while start < size:
        end = size
        if size - start > PIECE_BYTES:
            cut = data.rfind(b"\n", start, start + PIECE_BYTES)
            end = cut + 1 if cut >= 0 else data.find(b"\n", start + PIECE_BYTES) + 1 or size
        piece = view[start:end]
        while piece:
            piece = piece[os.write(fd, piece) :]
        start = end


def _append(
    src: Path, dest: Path, previous: Progress, redactor: Redactor, hashers: Hashers
) -> Progress | None:
    try:
        f = src.open("rb", buffering=0)
    except FileNotFoundError:
        return None
    with f:
        st = os.fstat(f.fileno())
        f.seek(previous.src_offset)
        # What is there now; lines added meanwhile wait for the next pass. Reading no
        # more than that keeps the common case (one new line) to one small read.
        remaining = st.st_size - previous.src_offset
        # A copy: an append that fails half-way must leave the remembered hash alone
        # (the file is cut back to what it hashes before the next attempt).
        hasher = hashers.for_file(dest, previous.dest_size).copy()
        consumed = written = lines = dropped = 0
        tally = Tally()
        fd = -1
        carry = b""
        try:
            while remaining > 0 and (block := f.read(min(READ_BYTES, remaining))):
                remaining -= len(block)
                data = carry + block if carry else block
                end = data.rfind(b"\n") + 1
                carry = data[end:]
                if not end:
                    continue  # one line longer than a block: read on to its end
                body, n_dropped = objects_only(data[:end])
                consumed += end
                dropped += n_dropped
                out, block_tally = _redact(redactor, body)
                tally.merge(block_tally)
                if not out:
                    continue
                if fd < 0:
                    fd = os.open(dest, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
                _write_pieces(fd, out)
                hasher.update(out)
                written += len(out)
                lines += out.count(b"\n")
        finally:
            if fd >= 0:
                os.close(fd)
    if not consumed:
        return None  # nothing but the start of a line still being written
    size = previous.dest_size + written
    hashers.keep(dest, size, hasher)
    return replace(
        previous,
        src_inode=st.st_ino,
        src_offset=previous.src_offset + consumed,
        dest_size=size,
        lines=previous.lines + lines,
        sha256=hasher.hexdigest(),
        dropped=previous.dropped + dropped,
        redactions=_merge(previous.redactions, tally),
    )


def recover(dest: Path, previous: Progress | None) -> Progress | None:
    """Make the outbox file agree with the recorded progress after a crash.

    Returns the progress to continue from: None means "copy again from the start".
    """
    try:
        size = dest.stat().st_size
    except FileNotFoundError:
        return None  # never written, or removed by hand: write it again
    if previous is None:
        return None
    if size > previous.dest_size:
        # Written but not recorded (a crash in between): cut back to what is recorded.
        with dest.open("r+b") as f:
            f.truncate(previous.dest_size)
            os.fsync(f.fileno())
        return previous
    if size < previous.dest_size:
        return None  # shorter than we wrote: someone changed it; start over
    return previous


def sync_file(
    src: Path,
    dest: Path,
    previous: Progress | None,
    redactor: Redactor,
    hashers: Hashers,
    *,
    transcript: bool = True,
) -> Progress | None:
    """Bring `dest` up to date with `src`; returns the new progress, or None if nothing
    changed (including: the source is gone — outboxes keep what they have)."""
    try:
        st = src.stat()
    except FileNotFoundError:
        return None
    current = recover(dest, previous)
    if current is None:
        hashers.forget(dest)
        return _rewrite(src, dest, redactor, hashers, transcript=transcript)
    if not transcript:
        # Whole files (tool results): copied again only when they changed.
        if st.st_ino == current.src_inode and st.st_size == current.src_offset:
            return current if current is not previous else None
        return _rewrite(src, dest, redactor, hashers, transcript=False)
    if st.st_ino != current.src_inode or st.st_size < current.src_offset:
        hashers.forget(dest)
        return _rewrite(src, dest, redactor, hashers, transcript=True)
    if st.st_size == current.src_offset:
        return current if current is not previous else None
    return _append(src, dest, current, redactor, hashers)
