"""Redaction throughput against a plain file copy of the same bytes.

Builds a corpus of at least 200 MB by replicating the shared Claude Code transcripts,
with a small fraction of lines carrying planted secrets of every kind, then times, in
alternating runs, `shutil.copyfile` and `Redactor.redact_stream` writing a file, and
prints medians and the ratio. Goal: redaction at >= 0.3x the copy's speed (the
packager adds a little on top, so more is better).

    python -m bench.redact_throughput [--mb 200] [--runs 5] [--secret-fraction 0.005]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from karmad.redact import Redactor, Tally
from tests.support.secrets import CORPUS, find_leaks, plant_corpus

GOAL = 0.3


def build_corpus(target: Path, megabytes: int, secret_fraction: float, work: Path) -> int:
    """Write the corpus; return how many secret-carrying lines it holds."""
    clean = [
        line if line.endswith(b"\n") else line + b"\n"
        for path in sorted(CORPUS.rglob("*.jsonl"))
        for line in path.read_bytes().splitlines(keepends=True)
    ]
    planted = plant_corpus(work / "planted", seed=42)
    secret_lines: list[bytes] = []
    for path, numbers in planted.planted_lines.items():
        lines = path.read_bytes().splitlines(keepends=True)
        secret_lines.extend(lines[n] for n in sorted(numbers))
    every = max(1, round(1 / secret_fraction)) if secret_fraction > 0 else 0
    size = megabytes * 1_000_000
    written = 0
    count = 0
    planted_count = 0
    with target.open("wb") as out:
        while written < size:
            for line in clean:
                out.write(line)
                written += len(line)
                count += 1
                if every and count % every == 0:
                    secret = secret_lines[planted_count % len(secret_lines)]
                    out.write(secret)
                    written += len(secret)
                    planted_count += 1
    return planted_count


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="corpus size in MB (default 200)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument(
        "--secret-fraction",
        type=float,
        default=0.005,
        help="fraction of lines carrying a planted secret (default 0.005)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="redact-bench-") as tmp:
        work = Path(tmp)
        source = work / "corpus.jsonl"
        planted = build_corpus(source, args.mb, args.secret_fraction, work)
        data = source.read_bytes()
        lines = data.count(b"\n")
        size_mb = len(data) / 1e6
        print(
            f"corpus: {size_mb:.1f} MB, {lines:,} lines, {planted:,} with planted secrets "
            f"({planted / lines:.2%})"
        )

        redactor = Redactor()
        copy_target = work / "copy.jsonl"
        redact_target = work / "redacted.jsonl"
        tallies: list[Tally] = []

        def copy() -> None:
            shutil.copyfile(source, copy_target)

        def redact() -> None:
            with source.open("rb") as src, redact_target.open("wb") as dst:
                tallies.append(redactor.redact_stream(src, dst))

        def in_memory() -> None:
            redactor.redact_chunk(data)

        copy()
        redact()  # warm the page cache and the compiled rules
        copies: list[float] = []
        redactions: list[float] = []
        for _ in range(args.runs):
            copies.append(timed(copy))
            redactions.append(timed(redact))
        memory = [timed(in_memory) for _ in range(args.runs)]

        def report(name: str, runs: list[float]) -> float:
            median = statistics.median(runs)
            listed = " ".join(f"{r:.3f}" for r in runs)
            speed = size_mb / median
            print(f"{name:<34} median {median:.3f} s  {speed:7.0f} MB/s   runs: {listed}")
            return median

        copy_median = report("copy (shutil.copyfile)", copies)
        redact_median = report("redact_stream (file to file)", redactions)
        report("redact_chunk (in memory, no I/O)", memory)
        ratio = copy_median / redact_median
        verdict = "met" if ratio >= GOAL else "NOT met"
        print(f"ratio redact/copy: {ratio:.2f}x (goal >= {GOAL}x: {verdict})")

        tally = tallies[-1]
        print(
            f"lines redacted: {tally.lines_redacted:,} ({tally.replacements:,} replacements, "
            f"{len(tally.counts)} kinds); output {tally.bytes_out / 1e6:.1f} MB"
        )
        planted_corpus = plant_corpus(work / "check", seed=42)
        leaks = find_leaks(redact_target.read_bytes(), planted_corpus.secrets, "output")
        print(f"planted secrets found in the output: {len(leaks)}")


if __name__ == "__main__":
    main()
