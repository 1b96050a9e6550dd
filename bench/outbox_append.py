"""One line appended to a large session: what bringing its outbox copy up to date costs.

The shared corpus is concatenated into one transcript of at least `--mb` MB, copied
into an outbox once, then, `--lines` times, one line is appended to the source and
`copier.sync_file` brings the outbox up to date: the packager's incremental path,
redaction on. Per appended line: the time, and the bytes the process wrote (`wchar` in
/proc/self/io on Linux). Beside it, in the same run: the same line appended with one
plain `os.write` (the floor), and the whole file staged under a temporary name and
renamed over the outbox copy (what "stage and rename" costs without reflinks). Goal:
time and bytes written independent of the session's size. Last, a catch-up: a backlog
as large as the session appended at once (karmad was down), its time and the peak
memory it took (tracemalloc).

    .venv/bin/python bench/outbox_append.py [--mb 100] [--lines 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import CORPUS, fresh_ids
from karmad import atomic_file
from karmad.flow.copier import Hashers, Progress, sync_file
from karmad.redact import Redactor


def written_bytes() -> int:
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return -1
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith("wchar"))


def session(target: Path, megabytes: int) -> None:
    lines = [
        line + b"\n"
        for path in sorted((CORPUS / "projects").rglob("*.jsonl"))
        for line in path.read_bytes().splitlines()
        if line.startswith(b"{")
    ]
    size = copy = 0
    with target.open("wb") as f:
        while size < megabytes * 1_000_000:
            chunk = fresh_ids(b"".join(lines), copy)
            f.write(chunk)
            size += len(chunk)
            copy += 1


def measure(action: Callable[[], object]) -> tuple[float, int]:
    before = written_bytes()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start, written_bytes() - before


def report(name: str, runs: list[tuple[float, int]]) -> float:
    seconds = statistics.median(t for t, _ in runs)
    written = statistics.median(b for _, b in runs)
    print(f"{name:<38} median {seconds * 1000:9.3f} ms  {written:>13,.0f} bytes written")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="session size in MB (default 100)")
    parser.add_argument("--lines", type=int, default=50, help="lines appended (default 50)")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="outbox-bench-") as tmp:
        work = Path(tmp)
        src, dest, floor = work / "src.jsonl", work / "out" / "dest.jsonl", work / "floor.jsonl"
        session(src, args.mb)
        redactor, hashers = Redactor(), Hashers()
        progress: Progress | None = sync_file(src, dest, None, redactor, hashers)
        assert progress is not None
        floor.write_bytes(dest.read_bytes())
        print(f"session: {progress.dest_size / 1e6:.1f} MB, {progress.lines:,} lines")

        record = {"type": "assistant", "message": {"role": "assistant", "content": "ok " * 300}}
        appends, floors, stagings = [], [], []
        for n in range(args.lines):
            line = json.dumps(dict(record, uuid=f"line-{n}")).encode() + b"\n"
            with src.open("ab") as f:
                f.write(line)

            def incremental() -> None:
                nonlocal progress
                progress = sync_file(src, dest, progress, redactor, hashers) or progress

            def plain_write(data: bytes = line) -> None:
                fd = os.open(floor, os.O_WRONLY | os.O_APPEND)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)

            def stage_and_rename() -> None:
                atomic_file.write_atomic(work / "staged.jsonl", dest.read_bytes(), durable=False)

            appends.append(measure(incremental))
            floors.append(measure(plain_write))
            if n < min(args.lines, 10):  # slow: a few are enough for a median
                stagings.append(measure(stage_and_rename))
        assert progress is not None and progress.dest_size == dest.stat().st_size

        session(work / "backlog.jsonl", args.mb)
        with src.open("ab") as f:
            f.write((work / "backlog.jsonl").read_bytes())
        tracemalloc.start()
        catch_up = measure(incremental)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert progress is not None and progress.dest_size == dest.stat().st_size

        ours = report("sync_file (incremental append)", appends)
        floor_s = report("one os.write of the line (floor)", floors)
        staged = report("stage whole file and rename", stagings)
        print(
            f"incremental / floor: {ours / floor_s:.1f}x; stage-and-rename / incremental: "
            f"{staged / ours:.0f}x"
        )
        print(
            f"catch-up of a {args.mb} MB backlog: {catch_up[0]:.3f} s, "
            f"{catch_up[1] / 1e6:.1f} MB written, peak memory {peak / 1e6:.1f} MB"
        )


if __name__ == "__main__":
    main()
