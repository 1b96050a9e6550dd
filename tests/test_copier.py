"""One source file into one outbox file, on real files: appends in whole-line pieces,
the same bytes as a copy made at once, and a crash's partial line cut back."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import pytest

from karmad.flow import copier
from karmad.flow.copier import Hashers, Progress, recover, sync_file
from karmad.redact import Redactor

REDACTOR = Redactor()


def line(i: int, size: int = 200, secret: bool = False) -> bytes:
    text = "x" * size if not secret else f"DB_PASSWORD=hunter{i} " + "y" * size
    return json.dumps({"type": "user", "n": i, "message": {"content": text}}).encode() + b"\n"


def expected(data: bytes) -> bytes:
    body, _ = copier.objects_only(data)
    return REDACTOR.redact_chunk(body).data


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "src.jsonl", tmp_path / "out" / "dest.jsonl"


def test_appends_equal_one_copy_of_everything(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks, pieces, a line longer than a block, a half-written last line, lines that
    are not JSON objects: the outbox ends up as if the whole source was copied at once."""
    monkeypatch.setattr(copier, "READ_BYTES", 4096)
    monkeypatch.setattr(copier, "PIECE_BYTES", 1024)
    src, dest = files
    rng = random.Random(5)
    hashers = Hashers()
    progress: Progress | None = None
    written = b""
    for round_ in range(30):
        chunk = b"".join(
            line(round_ * 100 + i, rng.choice([10, 300, 5000]), secret=i % 7 == 0)
            for i in range(rng.randrange(0, 12))
        )
        if round_ % 5 == 0:
            chunk += b"not json\n"
        if round_ == 10:
            chunk += line(999, 20000)  # several blocks long
        cut = rng.randrange(0, 50)
        written += chunk
        src.write_bytes(written + b'{"type": "half' * (cut > 40))
        new = sync_file(src, dest, progress, REDACTOR, hashers)
        progress = new or progress
        assert progress is not None
        assert dest.read_bytes() == expected(written)
        assert progress.dest_size == dest.stat().st_size
        assert progress.src_offset == len(written)
    assert progress is not None and progress.redactions["password"] > 0


def test_an_append_writes_whole_lines_in_pieces(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copier, "PIECE_BYTES", 1000)
    src, dest = files
    src.write_bytes(line(0))
    hashers = Hashers()
    first = sync_file(src, dest, None, REDACTOR, hashers)
    backlog = b"".join(line(i, 150) for i in range(1, 100))
    src.write_bytes(line(0) + backlog)
    sizes: list[int] = []
    real_write = os.write

    def write(fd: int, data: bytes | memoryview) -> int:
        sizes.append(len(data))
        assert bytes(data).endswith(b"\n")  # every piece ends at a line end
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    assert sync_file(src, dest, first, REDACTOR, hashers) is not None
    assert len(sizes) > 10 and max(sizes) <= 1000
    assert dest.read_bytes() == expected(line(0) + backlog)


def test_a_partial_line_left_by_a_crash_is_cut_back(files: tuple[Path, Path]) -> None:
    src, dest = files
    src.write_bytes(line(0) + line(1))
    hashers = Hashers()
    progress = sync_file(src, dest, None, REDACTOR, hashers)
    assert progress is not None
    with dest.open("ab") as f:
        f.write(line(2)[:50])  # killed in the middle of a piece
    assert recover(dest, progress) == progress
    assert dest.read_bytes() == expected(line(0) + line(1))
    src.write_bytes(line(0) + line(1) + line(2))
    again = sync_file(src, dest, progress, REDACTOR, hashers)
    assert again is not None and dest.read_bytes() == expected(line(0) + line(1) + line(2))


def test_a_failed_append_leaves_the_remembered_hash_alone(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copier, "READ_BYTES", 1024)
    monkeypatch.setattr(copier, "PIECE_BYTES", 512)
    src, dest = files
    src.write_bytes(line(0))
    hashers = Hashers()
    first = sync_file(src, dest, None, REDACTOR, hashers)
    assert first is not None
    src.write_bytes(line(0) + b"".join(line(i) for i in range(1, 40)))
    calls = 0
    real_write = os.write

    def failing(fd: int, data: bytes | memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", failing)
    with pytest.raises(OSError):
        sync_file(src, dest, first, REDACTOR, hashers)
    monkeypatch.setattr(os, "write", real_write)
    done = sync_file(src, dest, first, REDACTOR, hashers)
    assert done is not None
    assert dest.read_bytes() == expected(src.read_bytes())
    assert done.sha256 == hashlib.sha256(dest.read_bytes()).hexdigest()
