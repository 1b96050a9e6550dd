"""Chunk hashes of append-only files: what a signed manifest says about the bytes.

A transcript grows by appends, up to hundreds of megabytes. If the signed manifest held
only a whole-file hash, a reader would rehash the whole file on every append to check
a few new lines. Instead the manifest lists the SHA-256 of every `chunk`-sized piece
(1 MiB by default; the last one may be shorter), and:

- the owner keeps the digests of complete chunks and hashes only what it appends (plus,
  after a restart, the current partial chunk);
- a reader remembers which complete chunks it has verified and checks only from the
  first unverified chunk to the end of the claim: at most one chunk plus the appended
  bytes, whatever the file's size.

A reader believes exactly `Verified.size` bytes: what matched the claim. Bytes beyond the
claim (a file that arrived before its manifest) wait for the next manifest; bytes that do
not match (forged, or still arriving) are reported with their offset and never believed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from karmad.trust.keys import TrustError

CHUNK_BYTES = 1 << 20
MIN_CHUNK = 1 << 12
MAX_CHUNK = 1 << 26
_READ = 1 << 20
_HEX = frozenset("0123456789abcdef")


class BadClaim(TrustError):
    """A chunk list that cannot describe any file (wrong count, malformed digests)."""


class ChunkList(msgspec.Struct, kw_only=True):
    """One file as its manifest describes it."""

    size: int
    chunk: int = CHUNK_BYTES
    sha256: list[str] = msgspec.field(default_factory=list)
    """Hex digests, one per chunk: `ceil(size / chunk)` of them."""

    def validate(self) -> ChunkList:
        if not MIN_CHUNK <= self.chunk <= MAX_CHUNK:
            raise BadClaim(f"chunk size {self.chunk} outside {MIN_CHUNK}..{MAX_CHUNK}")
        if self.size < 0:
            raise BadClaim("negative size")
        if len(self.sha256) != -(-self.size // self.chunk):
            raise BadClaim(
                f"{len(self.sha256)} chunk digests for {self.size} bytes in chunks of {self.chunk}"
            )
        for digest in self.sha256:
            if len(digest) != 64 or not _HEX.issuperset(digest):
                raise BadClaim("a chunk digest is not 64 lowercase hex characters")
        return self


def _hash_range(fd: int, start: int, end: int, mark: int | None = None) -> tuple[str, int, str]:
    """sha256 of bytes [start, end), how many there were (fewer at end of file), and the
    sha256 of [start, mark) when `mark` is given (else "")."""
    hasher = hashlib.sha256()
    marked = ""
    offset = start
    while offset < end:
        stop = end if mark is None or offset >= mark else mark
        block = os.pread(fd, min(_READ, stop - offset), offset)
        if not block:
            break
        hasher.update(block)
        offset += len(block)
        if offset == mark:
            marked = hasher.copy().hexdigest()
    return hasher.hexdigest(), offset - start, marked


class ChunkHasher:
    """The owner's side: chunk digests kept up to date as the file grows."""

    __slots__ = ("_chunk", "_full", "_tail", "_tail_len")

    def __init__(self, chunk: int = CHUNK_BYTES) -> None:
        self._chunk = chunk
        self._full: list[str] = []
        self._tail = hashlib.sha256()
        self._tail_len = 0

    @property
    def size(self) -> int:
        return len(self._full) * self._chunk + self._tail_len

    @property
    def complete(self) -> tuple[str, ...]:
        """Digests of the complete chunks: what to record to resume without rehashing."""
        return tuple(self._full)

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), self._chunk - self._tail_len)
            self._tail.update(view[:take])
            self._tail_len += take
            view = view[take:]
            if self._tail_len == self._chunk:
                self._full.append(self._tail.hexdigest())
                self._tail = hashlib.sha256()
                self._tail_len = 0

    def claim(self) -> ChunkList:
        digests = list(self._full)
        if self._tail_len:
            digests.append(self._tail.hexdigest())
        return ChunkList(size=self.size, chunk=self._chunk, sha256=digests)

    @classmethod
    def resume(
        cls, path: Path, size: int, complete: tuple[str, ...] = (), chunk: int = CHUNK_BYTES
    ) -> ChunkHasher:
        """Continue from the first `size` bytes of `path`, trusting `complete` (our own
        records of this file's complete chunks) and rehashing only the partial chunk."""
        hasher = cls(chunk)
        done = min(len(complete), size // chunk)
        hasher._full = list(complete[:done])
        start = done * chunk
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            offset = start
            while offset < size:
                block = os.pread(fd, min(_READ, size - offset), offset)
                if not block:
                    raise ValueError(f"{path} is shorter than {size} bytes")
                hasher.update(block)
                offset += len(block)
        finally:
            os.close(fd)
        return hasher


@dataclass(frozen=True, slots=True)
class Verified:
    """What a reader has checked of one file, and can resume from."""

    size: int
    """Bytes [0, size) are the owner's."""
    chunk: int
    complete: tuple[str, ...]
    """Digests of the complete chunks within [0, size)."""
    tail: str = ""
    """Digest of the partial chunk after them, if `size` is not a multiple of `chunk`."""


@dataclass(frozen=True, slots=True)
class Check:
    verified: Verified
    rewritten: bool = False
    """The claim contradicts what was verified before: the owner replaced the file (or
    the claim is bogus); `verified` starts over from the beginning."""
    mismatch_at: int | None = None
    """The bytes on disk differ from the claim from this offset (forged, or a newer
    version still arriving); nothing from there on is believed."""

    def with_rewritten(self) -> Check:
        return Check(self.verified, True, self.mismatch_at)


def check(claim: ChunkList, path: Path, known: Verified | None = None) -> Check:
    """How much of `path` is what the owner's `claim` says, reading only new chunks.

    `known` is the result of the previous check of this file (None: never checked).
    Raises BadClaim for a claim that describes no file, OSError if `path` cannot be read.
    """
    claim.validate()
    rewritten = False
    base = known if known is not None and known.chunk == claim.chunk else None
    if known is not None and base is None:
        rewritten = True
    if base is not None:
        n = len(base.complete)
        if claim.size < base.size or claim.sha256[:n] != list(base.complete):
            base, rewritten = None, True
        elif claim.size == base.size:
            if not base.tail or claim.sha256[n] == base.tail:
                return Check(base)  # the same claim as last time: nothing to read
            base, rewritten = None, True
    start_index = len(base.complete) if base is not None else 0
    complete = list(base.complete) if base is not None else []
    verified_size = base.size if base is not None else 0
    tail = base.tail if base is not None else ""
    mismatch: int | None = None
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        on_disk = os.fstat(fd).st_size
        for index in range(start_index, len(claim.sha256)):
            start = index * claim.chunk
            end = min(start + claim.chunk, claim.size)
            if end > on_disk:
                break  # this chunk has not fully arrived yet
            # The partial chunk checked last time is read again as it grew: its start
            # must still be what was believed then.
            mark = verified_size if tail and index == start_index else None
            digest, got, before = _hash_range(fd, start, end, mark)
            if got != end - start:
                break  # the file shrank while we read it
            if digest != claim.sha256[index]:
                mismatch = start
                break
            if mark is not None and before != tail:
                # The owner's bytes we already believed have changed: a rewrite.
                return check(claim, path, None).with_rewritten()
            verified_size = max(verified_size, end)
            if end - start == claim.chunk:
                complete.append(digest)
                tail = ""
            else:
                tail = digest
    finally:
        os.close(fd)
    return Check(Verified(verified_size, claim.chunk, tuple(complete), tail), rewritten, mismatch)
