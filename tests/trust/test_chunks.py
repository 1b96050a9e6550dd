"""Chunk hashes: owners hash only what they append, readers believe only what matches."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from karmad.trust.chunks import MIN_CHUNK, BadClaim, ChunkHasher, ChunkList, Verified, check

C = MIN_CHUNK  # small chunks, so that small examples span many of them


def _claim(data: bytes, chunk: int = C) -> ChunkList:
    digests = [hashlib.sha256(data[i : i + chunk]).hexdigest() for i in range(0, len(data), chunk)]
    return ChunkList(size=len(data), chunk=chunk, sha256=digests)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=3 * C), max_size=8))
def test_appending_gives_the_same_claim_as_hashing_the_whole_file(parts: list[bytes]) -> None:
    hasher = ChunkHasher(C)
    for part in parts:
        hasher.update(part)
    assert hasher.claim() == _claim(b"".join(parts))


def test_an_owner_resumes_from_its_records_rehashing_only_the_partial_chunk(
    tmp_path: Path,
) -> None:
    data = bytes(range(256)) * 70  # 4.4 chunks
    path = _write(tmp_path / "s.jsonl", data)
    first = ChunkHasher(C)
    first.update(data)
    resumed = ChunkHasher.resume(path, len(data), first.complete, C)
    assert resumed.claim() == _claim(data)
    # The records are trusted for complete chunks: what is on disk there is not reread.
    _write(path, b"\0" * (4 * C) + data[4 * C :])
    assert ChunkHasher.resume(path, len(data), first.complete, C).claim() == _claim(data)
    assert ChunkHasher.resume(path, len(data), (), C).claim() != _claim(data)


def test_a_reader_believes_the_whole_file_when_it_matches(tmp_path: Path) -> None:
    data = b"line\n" * 3000
    result = check(_claim(data), _write(tmp_path / "f", data))
    assert result.verified.size == len(data)
    assert not result.rewritten and result.mismatch_at is None


def test_bytes_beyond_the_claim_wait_for_the_next_manifest(tmp_path: Path) -> None:
    data = b"x" * (2 * C + 100)
    result = check(_claim(data), _write(tmp_path / "f", data + b"more lines\n"))
    assert result.verified.size == len(data)
    assert result.mismatch_at is None


def test_a_file_still_arriving_is_believed_up_to_its_last_complete_chunk(
    tmp_path: Path,
) -> None:
    data = b"y" * (3 * C + 10)
    result = check(_claim(data), _write(tmp_path / "f", data[: 2 * C + 7]))
    assert result.verified.size == 2 * C
    assert result.mismatch_at is None


def test_forged_appended_bytes_are_reported_and_never_believed(tmp_path: Path) -> None:
    owner = b"a" * (C + 50)
    path = _write(tmp_path / "f", owner)
    first = check(_claim(owner), path)
    grown = owner + b"b" * C
    _write(path, owner + b"B" * C)  # what a forger put there instead
    second = check(_claim(grown), path, first.verified)
    assert second.verified.size == first.verified.size
    assert second.mismatch_at == C


def test_growth_rereads_only_from_the_last_partial_chunk(tmp_path: Path) -> None:
    data = b"z" * (5 * C + 3)
    path = _write(tmp_path / "f", data)
    first = check(_claim(data), path)
    assert len(first.verified.complete) == 5
    # Complete chunks already verified are not read again: damage there goes unseen
    # by an incremental check (what was in them is already in the index) ...
    grown = data + b"w" * (2 * C)
    _write(path, b"\0" * C + grown[C:])
    second = check(_claim(grown), path, first.verified)
    assert second.verified.size == len(grown)
    assert second.mismatch_at is None and not second.rewritten
    # ... while a fresh check from nothing reads everything and sees it.
    assert check(_claim(grown), path).mismatch_at == 0


def test_an_unchanged_claim_reads_nothing(tmp_path: Path) -> None:
    data = b"q" * (C + 9)
    path = _write(tmp_path / "f", data)
    first = check(_claim(data), path)
    path.unlink()  # nothing is opened at all
    assert check(_claim(data), path, first.verified).verified == first.verified


def test_a_replaced_file_starts_over(tmp_path: Path) -> None:
    data = b"old\n" * 3000
    path = _write(tmp_path / "f", data)
    first = check(_claim(data), path)
    replaced = b"new\n" * 2000
    _write(path, replaced)
    second = check(_claim(replaced), path, first.verified)
    assert second.rewritten
    assert second.verified.size == len(replaced)


def test_a_rewritten_partial_chunk_is_noticed_when_it_grows(tmp_path: Path) -> None:
    data = b"p" * (C + 100)
    path = _write(tmp_path / "f", data)
    first = check(_claim(data), path)
    rewritten = data[:C] + b"P" * 100 + b"more"
    _write(path, rewritten)
    second = check(_claim(rewritten), path, first.verified)
    assert second.rewritten
    assert second.verified.size == len(rewritten)


def test_a_known_state_with_another_chunk_size_starts_over(tmp_path: Path) -> None:
    data = b"r" * (4 * C)
    path = _write(tmp_path / "f", data)
    first = check(_claim(data, 2 * C), path)
    second = check(_claim(data), path, first.verified)
    assert second.rewritten and second.verified.size == len(data)


@pytest.mark.parametrize(
    "claim",
    [
        ChunkList(size=10, chunk=C, sha256=[]),
        ChunkList(size=10, chunk=C, sha256=["0" * 64, "0" * 64]),
        ChunkList(size=10, chunk=C, sha256=["XYZ"]),
        ChunkList(size=10, chunk=1, sha256=["0" * 64] * 10),
        ChunkList(size=-1, chunk=C, sha256=[]),
    ],
)
def test_impossible_claims_are_refused(claim: ChunkList, tmp_path: Path) -> None:
    with pytest.raises(BadClaim):
        check(claim, _write(tmp_path / "f", b"0123456789"))


@settings(max_examples=150, deadline=None)
@given(
    owner=st.binary(min_size=1, max_size=5 * C),
    cut=st.integers(0, 5 * C),
    flip=st.one_of(st.none(), st.integers(0, 5 * C)),
    known_at=st.one_of(st.none(), st.integers(0, 5 * C)),
)
def test_only_the_owners_bytes_are_ever_believed(
    tmp_path_factory: pytest.TempPathFactory,
    owner: bytes,
    cut: int,
    flip: int | None,
    known_at: int | None,
) -> None:
    """Whatever is on disk (a prefix of the owner's file, with a byte changed, with
    junk after it), the verified prefix is the owner's own bytes, and all of what is
    there is believed up to the last chunk that is complete on disk."""
    path = tmp_path_factory.mktemp("c") / "f"
    disk = bytearray(owner[: min(cut, len(owner))])
    if flip is not None and flip < len(disk):
        disk[flip] ^= 0xFF
    disk += b"junk"
    path.write_bytes(disk)
    known: Verified | None = None
    if known_at is not None:
        partial = owner[: min(known_at, len(owner))]
        staged = tmp_path_factory.mktemp("k") / "f"
        staged.write_bytes(partial)
        known = check(_claim(partial), staged).verified
    result = check(_claim(owner), path, known)
    size = result.verified.size
    assert size <= len(owner)
    # Everything newly believed was compared with the owner's digests (what was believed
    # before is in the index already and is not read again).
    start = known.size if known is not None and not result.rewritten else 0
    assert bytes(disk[start:size]) == owner[start:size]
    if flip is None or flip >= len(owner[:cut]):
        # The owner's bytes up to the cut (then junk): all of them that form whole
        # chunks (or the whole claim) are believed.
        whole = len(owner) if cut >= len(owner) else cut // C * C
        before = known.size if known is not None and not result.rewritten else 0
        assert size == max(whole, before)
